"""Staff sign-in, roles, API tokens, idle logoff and throttling: deny by default, 404 across clinics."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import clock
from core.accounts.access import access_rule
from core.accounts.models import ApiToken, Role, User
from core.extensions import db
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import PASSWORD, assert_problem, issue_token, login, make_clinic, make_staff


@pytest.fixture
def clinics(app):
    with app.app_context():
        make_clinic("alpha", idle_timeout_minutes=15)
        make_clinic("beta", idle_timeout_minutes=5)
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        make_staff("alpha", "desk@alpha.example.com", Role.front_desk)
        make_staff("alpha", "doc@alpha.example.com", Role.provider)
        make_staff("beta", "owner@beta.example.com", Role.owner)
    return app


def test_every_endpoint_declares_who_may_call_it(app):
    undeclared = []
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"OPTIONS", "HEAD"}:
            if access_rule(app, rule.endpoint, method) is None:
                undeclared.append(f"{method} {rule.rule}")
    assert undeclared == []


def test_an_endpoint_without_an_access_rule_is_refused(app, client):
    @app.get("/undeclared")
    def undeclared():
        return {"secret": True}

    assert_problem(client.get("/undeclared"), 403, "no-access-rule")


def test_passwords_are_stored_as_argon2id_hashes(clinics):
    with clinics.app_context():
        user = db.session.scalar(select(User).where(User.email == "owner@alpha.example.com"))
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


def test_sign_in_binds_the_session_to_the_clinic(clinics, client):
    response = login(client, "alpha", "owner@alpha.example.com")
    assert response.status_code == 201
    assert response.get_json()["role"] == "owner"
    assert client.get("/api/v1/clinics/alpha/staff").status_code == 200
    # The same cookie at another clinic's URL: that clinic does not exist for this user.
    assert_problem(client.get("/api/v1/clinics/beta"), 404)
    assert_problem(client.get("/api/v1/clinics/beta/staff"), 404)


def test_a_member_of_two_clinics_must_sign_in_to_each(clinics, client):
    with clinics.app_context():
        make_staff("beta", "owner@alpha.example.com", Role.manager)
    login(client, "alpha", "owner@alpha.example.com")
    assert_problem(client.get("/api/v1/clinics/beta"), 404)
    assert login(client, "beta", "owner@alpha.example.com").status_code == 201
    assert client.get("/api/v1/clinics/beta").status_code == 200
    # Signing in to beta replaced the session: alpha needs its own sign-in again.
    assert_problem(client.get("/api/v1/clinics/alpha"), 404)


def test_wrong_password_unknown_email_and_non_member_get_the_same_answer(clinics, client):
    for email, password in [
        ("owner@alpha.example.com", "wrong password!!"),
        ("nobody@alpha.example.com", PASSWORD),
        ("owner@beta.example.com", PASSWORD),  # a real account, but not alpha's
    ]:
        body = assert_problem(login(client, "alpha", email, password), 401, "invalid-credentials")
        assert body["detail"] == "The email or password is wrong."


def test_sign_out_ends_the_session(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    assert client.delete("/api/v1/clinics/alpha/session").status_code == 204
    assert_problem(client.get("/api/v1/clinics/alpha"), 401)


def test_missing_credentials_get_401(clinics, client):
    body = assert_problem(client.get("/api/v1/clinics/alpha/staff"), 401)
    assert "Sign in" in body["detail"]


def test_unknown_clinic_is_404_for_everyone(clinics, client):
    assert_problem(client.get("/api/v1/clinics/no-such-clinic"), 404)
    login(client, "alpha", "owner@alpha.example.com")
    assert_problem(client.get("/api/v1/clinics/no-such-clinic/staff"), 404)


def test_roles_decide_what_staff_may_do(clinics, client):
    login(client, "alpha", "desk@alpha.example.com")
    assert client.get("/api/v1/clinics/alpha").status_code == 200
    body = assert_problem(client.get("/api/v1/clinics/alpha/staff"), 403)
    assert "front_desk" in body["detail"]
    assert_problem(
        client.post(
            "/api/v1/clinics/alpha/staff",
            json={
                "email": "x@alpha.example.com",
                "name": "X",
                "role": "owner",
                "password": PASSWORD,
            },
        ),
        403,
    )


def test_idle_session_is_signed_out_after_the_clinics_timeout(clinics, client):
    # COMPLIANCE.md, automatic logoff (164.312(a)(2)(iii)): "idle timeout per clinic"
    start = clock.now()
    with time_machine.travel(start, tick=False) as traveller:
        login(client, "beta", "owner@beta.example.com")
        traveller.shift(4 * 60)
        assert client.get("/api/v1/clinics/beta").status_code == 200
        traveller.shift(4 * 60)  # 4 minutes since the last request: still within 5
        assert client.get("/api/v1/clinics/beta").status_code == 200
        traveller.shift(5 * 60 + 1)
        assert_problem(client.get("/api/v1/clinics/beta"), 401, "session-expired")
        assert_problem(client.get("/api/v1/clinics/beta"), 401)


def test_failed_sign_ins_are_throttled_per_account(clinics, client):
    for _ in range(5):
        assert (
            login(client, "alpha", "owner@alpha.example.com", "wrong password!!").status_code == 401
        )
    response = login(
        client, "alpha", "owner@alpha.example.com"
    )  # even the right password now waits
    assert_problem(response, 429)
    # Another account at the same address is not locked out by it.
    assert login(client, "alpha", "desk@alpha.example.com").status_code == 201


def test_successful_sign_ins_are_not_throttled(clinics, client):
    for _ in range(8):
        assert login(client, "alpha", "owner@alpha.example.com").status_code == 201


# --- API tokens ---------------------------------------------------------------


def test_api_token_authenticates_and_is_stored_hashed(clinics, client):
    secret = issue_token(clinics, "alpha", "owner@alpha.example.com")
    response = client.get(
        "/api/v1/clinics/alpha/staff", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200
    with (
        clinics.app_context(),
        clinic_scope(db.session.scalar(select(Clinic).filter_by(slug="alpha"))),
    ):
        stored = db.session.scalars(select(ApiToken)).all()
        assert [t.token_hash for t in stored] == [hashlib.sha256(secret.encode()).hexdigest()]
        assert all(secret not in (t.token_hash, t.prefix) for t in stored)
        assert stored[0].last_used_at is not None


def test_api_token_of_one_clinic_is_unknown_at_another(clinics, client):
    # A token is looked up in the scope of the clinic in the URL only: at beta, alpha's token
    # is no credential at all, and says nothing of alpha.
    secret = issue_token(clinics, "alpha", "owner@alpha.example.com")
    refused = assert_problem(
        client.get("/api/v1/clinics/beta", headers={"Authorization": f"Bearer {secret}"}),
        401,
        "invalid-token",
    )
    assert "alpha" not in str(refused)
    ok = client.get("/api/v1/clinics/alpha", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200


def test_unknown_or_malformed_tokens_get_401(clinics, client):
    assert_problem(
        client.get("/api/v1/clinics/alpha", headers={"Authorization": "Bearer cst_nope"}),
        401,
        "invalid-token",
    )
    assert_problem(client.get("/api/v1/clinics/alpha", headers={"Authorization": "Basic abc"}), 401)


def test_revoked_token_stops_working(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    created = client.post("/api/v1/clinics/alpha/tokens", json={"name": "tablet"})
    assert created.status_code == 201
    secret, token_id = created.get_json()["token"], created.get_json()["id"]
    listed = client.get("/api/v1/clinics/alpha/tokens").get_json()
    assert "token" not in listed["items"][0]  # the secret is shown once only
    other = clinics.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert other.get("/api/v1/clinics/alpha", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/clinics/alpha/tokens/{token_id}").status_code == 204
    assert_problem(other.get("/api/v1/clinics/alpha", headers=headers), 401, "invalid-token")


def test_expired_token_stops_working(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    secret = client.post(
        "/api/v1/clinics/alpha/tokens", json={"name": "short", "expires_in_days": 1}
    ).get_json()["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    other = clinics.test_client()
    assert other.get("/api/v1/clinics/alpha", headers=headers).status_code == 200
    with time_machine.travel(clock.now().timestamp() + 86401, tick=False):
        assert_problem(other.get("/api/v1/clinics/alpha", headers=headers), 401, "invalid-token")


def test_token_of_a_removed_staff_member_stops_working(clinics, client):
    secret = issue_token(clinics, "alpha", "desk@alpha.example.com")
    headers = {"Authorization": f"Bearer {secret}"}
    other = clinics.test_client()
    assert other.get("/api/v1/clinics/alpha", headers=headers).status_code == 200
    login(client, "alpha", "owner@alpha.example.com")
    desk = next(
        m
        for m in client.get("/api/v1/clinics/alpha/staff").get_json()["items"]
        if m["user"]["email"] == "desk@alpha.example.com"
    )
    assert client.delete(f"/api/v1/clinics/alpha/staff/{desk['id']}").status_code == 204
    assert other.get("/api/v1/clinics/alpha", headers=headers).status_code in (401, 404)


# --- staff management ---------------------------------------------------------


def test_owner_adds_and_manages_staff(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    response = client.post(
        "/api/v1/clinics/alpha/staff",
        json={
            "email": "New.Manager@Alpha.example.com",
            "name": "New Manager",
            "role": "manager",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.get_json()
    member = response.get_json()
    assert member["user"]["email"] == "new.manager@alpha.example.com"
    assert member["role"] == "manager"
    patched = client.patch(f"/api/v1/clinics/alpha/staff/{member['id']}", json={"role": "provider"})
    assert patched.get_json()["role"] == "provider"
    fresh = clinics.test_client()
    assert login(fresh, "alpha", "new.manager@alpha.example.com").get_json()["role"] == "provider"


def test_manager_cannot_make_an_owner(clinics, client):
    with clinics.app_context():
        make_staff("alpha", "manager@alpha.example.com", Role.manager)
    login(client, "alpha", "manager@alpha.example.com")
    response = client.post(
        "/api/v1/clinics/alpha/staff",
        json={"email": "x@alpha.example.com", "name": "X", "role": "owner", "password": PASSWORD},
    )
    assert_problem(response, 403)


def test_the_last_owner_cannot_be_removed_or_demoted(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    me = next(
        m
        for m in client.get("/api/v1/clinics/alpha/staff").get_json()["items"]
        if m["role"] == "owner"
    )
    assert_problem(
        client.patch(f"/api/v1/clinics/alpha/staff/{me['id']}", json={"role": "manager"}),
        409,
        "last-owner",
    )
    assert_problem(client.delete(f"/api/v1/clinics/alpha/staff/{me['id']}"), 409, "last-owner")


def test_staff_ids_of_another_clinic_are_not_found(clinics, client):
    with clinics.app_context():
        beta_owner_membership = make_staff("beta", "second@beta.example.com", Role.provider)
    login(client, "alpha", "owner@alpha.example.com")
    assert_problem(client.get(f"/api/v1/clinics/alpha/staff/{beta_owner_membership}"), 404)
    assert_problem(
        client.patch(
            f"/api/v1/clinics/alpha/staff/{beta_owner_membership}", json={"active": False}
        ),
        404,
    )


def test_weak_password_is_refused_with_the_field(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    body = assert_problem(
        client.post(
            "/api/v1/clinics/alpha/staff",
            json={
                "email": "weak@alpha.example.com",
                "name": "W",
                "role": "provider",
                "password": "short",
            },
        ),
        422,
    )
    assert body["errors"][0]["field"] == "password"


# --- the operator ----------------------------------------------------------------


def test_operator_lists_and_suspends_clinics_but_cannot_enter_them(clinics, client, runner):
    result = runner.invoke(
        args=[
            "operator",
            "create",
            "--email",
            "ops@platform.example.com",
            "--name",
            "Ops",
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    assert (
        client.post(
            "/api/v1/platform/session",
            json={"email": "ops@platform.example.com", "password": PASSWORD},
        ).status_code
        == 201
    )
    slugs = [c["slug"] for c in client.get("/api/v1/platform/clinics").get_json()["items"]]
    assert slugs == ["alpha", "beta"]
    assert_problem(client.get("/api/v1/clinics/alpha"), 404)  # no membership, no clinic data
    assert (
        client.patch("/api/v1/platform/clinics/beta", json={"status": "suspended"}).get_json()[
            "status"
        ]
        == "suspended"
    )
    staff_client = clinics.test_client()
    assert_problem(login(staff_client, "beta", "owner@beta.example.com"), 403, "clinic-suspended")


def test_staff_cannot_use_the_operator_api(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    assert_problem(client.get("/api/v1/platform/clinics"), 403)
    assert_problem(
        client.post(
            "/api/v1/platform/session",
            json={"email": "owner@alpha.example.com", "password": PASSWORD},
        ),
        401,
    )


def test_a_clinic_token_never_reaches_the_operator_api(clinics, runner, client):
    runner.invoke(
        args=[
            "operator",
            "create",
            "--email",
            "ops@platform.example.com",
            "--name",
            "Ops",
            "--password",
            PASSWORD,
        ]
    )
    with clinics.app_context():
        make_staff("alpha", "ops@platform.example.com", Role.owner)
    secret = issue_token(clinics, "alpha", "ops@platform.example.com")
    headers = {"Authorization": f"Bearer {secret}"}
    assert_problem(client.get("/api/v1/platform/clinics", headers=headers), 403)
    assert_problem(
        client.patch(
            "/api/v1/platform/clinics/beta", json={"status": "suspended"}, headers=headers
        ),
        403,
    )


def test_a_cookie_copied_before_sign_out_no_longer_works(clinics, client):
    login(client, "alpha", "owner@alpha.example.com")
    copied = client.get_cookie("clinic_session").value
    assert client.delete("/api/v1/clinics/alpha/session").status_code == 204
    replay = clinics.test_client()
    replay.set_cookie("clinic_session", copied)
    assert_problem(replay.get("/api/v1/clinics/alpha/staff"), 401)


def test_a_busy_session_still_ends_after_its_maximum_age(clinics, client):
    start = clock.now()
    with time_machine.travel(start, tick=False) as traveller:
        login(client, "alpha", "owner@alpha.example.com")
        for _ in range(12 * 6 + 1):  # a request every ten minutes, past twelve hours
            traveller.shift(10 * 60)
            response = client.get("/api/v1/clinics/alpha")
            if response.status_code != 200:
                break
        assert_problem(response, 401, "session-expired")
        assert clock.now() - start >= timedelta(hours=12)


def test_parallel_guesses_cannot_outrun_the_throttle(clinics):
    def guess(_):
        return login(
            clinics.test_client(), "alpha", "owner@alpha.example.com", "wrong password!!"
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(20)))
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 15


def test_an_account_is_throttled_across_clinics_not_per_clinic(clinics):
    with clinics.app_context():
        make_staff("beta", "owner@alpha.example.com", Role.manager)
    client = clinics.test_client()
    for slug in ("alpha", "beta", "alpha", "beta", "alpha"):
        assert login(client, slug, "owner@alpha.example.com", "wrong password!!").status_code == 401
    assert_problem(login(client, "beta", "owner@alpha.example.com"), 429)


def test_an_api_call_costs_the_guard_one_statement_once_its_token_is_known(clinics, client, app):
    # The first call: the caller's clinic (with its row-level-security scope set in the same
    # statement), its row, then the token with its user and their membership here. Later
    # calls: the clinic's id and setup version with the token's user, and nothing more before
    # the view runs, since the clinic's row and the token are kept while its setup stands.
    from sqlalchemy import event

    token = issue_token(app, "alpha", "owner@alpha.example.com")
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        first = client.get("/api/v1/clinics/alpha", headers=headers)
        assert first.status_code == 200
        first_seen, seen[:] = list(seen), []
        response = client.get("/api/v1/clinics/alpha", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "set_config" in first_seen[0] or engine.dialect.name == "sqlite"
    assert "FROM clinic" in first_seen[1]
    assert "membership" in first_seen[2] and "api_token" in first_seen[2]
    assert response.status_code == 200
    # One for the guard, one for the clinic's locations the profile lists.
    assert len(seen) == 2, "\n".join(seen)
    assert "set_config" in seen[0] or engine.dialect.name == "sqlite"
    assert "user_account" in seen[0] and "setup_version" in seen[0]
    assert not any("api_token" in statement for statement in seen)
    assert "FROM clinic" not in seen[1]
