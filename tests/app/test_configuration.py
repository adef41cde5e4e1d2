"""Settings read from the environment: refused when unsafe or malformed, and the secret key rotated."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask

from core.config import SettingError, from_environment
from core.errors import NotFound

MASTER_KEYS = "k1:" + "A" * 43 + "="


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "MASTER_KEYS", "CLINIC_SAAS_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_production_refuses_to_start_without_a_secret_key(environment, tmp_path: Path):
    environment.setenv("CLINIC_SAAS_ENV", "production")
    environment.setenv("MASTER_KEYS", MASTER_KEYS)
    with pytest.raises(SettingError, match="SECRET_KEY"):
        from_environment(tmp_path)
    assert not (tmp_path / "secret_key").exists()  # nothing generated behind the operator's back


def test_outside_production_a_secret_key_is_made_once_and_kept(environment, tmp_path: Path):
    first = from_environment(tmp_path)["SECRET_KEY"]
    assert first == from_environment(tmp_path)["SECRET_KEY"]
    assert len(first) >= 32


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SMTP_PORT", "twenty-five", "a whole number"),
        ("STRIPE_WEB_TIMEOUT", "4s", "a number"),
        ("SELF_SERVICE_LINK_DAYS", "", "a whole number"),
    ],
)
def test_a_malformed_setting_is_refused_naming_it(environment, tmp_path, name, value, words):
    environment.setenv(name, value)
    with pytest.raises(SettingError) as refused:
        from_environment(tmp_path)
    assert name in str(refused.value) and words in str(refused.value)
    assert repr(value) in str(refused.value)


def _link_app(secret: str, fallbacks: list[str]) -> Flask:
    app = Flask("links")
    app.config.update(SECRET_KEY=secret, SECRET_KEY_FALLBACKS=fallbacks, SELF_SERVICE_LINK_DAYS=30)
    return app


def test_links_sent_before_the_secret_key_was_rotated_still_open(environment, tmp_path):
    from core.bookings import links

    booking = SimpleNamespace(
        clinic_id=7, id=41, manage_nonce="n0nce", ends_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    with _link_app("old-secret-" + "x" * 30, []).app_context():
        sent = links.token_for(booking)
    environment.setenv("SECRET_KEY", "new-secret-" + "y" * 30)
    environment.setenv("SECRET_KEY_FALLBACKS", "old-secret-" + "x" * 30)
    settings = from_environment(tmp_path)
    assert settings["SECRET_KEY_FALLBACKS"] == ["old-secret-" + "x" * 30]
    rotated = _link_app(settings["SECRET_KEY"], settings["SECRET_KEY_FALLBACKS"])
    with rotated.app_context():
        assert links.read_token(sent, 7) == (41, "n0nce")
        fresh = links.token_for(booking)
    # New links are signed with the new key alone: they open once the old one is dropped.
    with _link_app(settings["SECRET_KEY"], []).app_context():
        assert links.read_token(fresh, 7) == (41, "n0nce")
        with pytest.raises(NotFound):
            links.read_token(sent, 7)


def _read_by_the_app() -> set[str]:
    """Every variable the app reads, found in the code that reads them."""
    import re

    from core.config import PROJECT_ROOT

    text = (PROJECT_ROOT / "core" / "config.py").read_text()
    text += (PROJECT_ROOT / "core" / "app.py").read_text()
    found = re.findall(
        r'(?:env\.get|environ\.get|_int\(env,|_float\(env,|_list\(env,)\s*\(?"([A-Z][A-Z0-9_]*)"',
        text,
    )
    return set(found) - {"XDG_DATA_HOME"}  # the system's, not the app's


def test_every_setting_is_in_env_example_and_the_readme():
    from core.config import PROJECT_ROOT

    example = (PROJECT_ROOT / ".env.example").read_text()
    listed = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("### When a dependency fails")]
    read = _read_by_the_app()
    assert len(read) > 40
    assert sorted(read - listed) == []
    assert sorted(listed - read) == []  # nothing listed that the app ignores
    assert sorted(name for name in read if f"`{name}`" not in table) == []
