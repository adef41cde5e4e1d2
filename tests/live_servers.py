"""The app served for real: gunicorn in its own process group on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import PROJECT_ROOT
from tests.mail import free_port

#: What a served app may take from the shell: nothing that is an app setting.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


def environment(**settings: str) -> dict[str, str]:
    """The environment of a served app: ``settings`` and the shell's basics, nothing else."""
    env = {key: value for key, value in os.environ.items() if key in PASSED_THROUGH}
    env.update(settings)
    return env


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], log: Path, *, workers: int = 2, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve ``app`` under gunicorn on loopback; yield its URL and the master process.

    Stopped with SIGTERM (then SIGKILL) to the whole process group when the block ends,
    whatever state it is in.
    """
    port = port or free_port()
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--chdir",
                str(PROJECT_ROOT),
                app,
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        for sent in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.pid, sent)
            except ProcessLookupError:
                break
            try:
                server.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue


def wait_until_up(url: str, pid: int, log: Path, seconds: float = 30) -> None:
    """Wait until ``url`` answers 2xx; fail with the server's log if it dies or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.HTTPError):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise RuntimeError(f"{url} did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s:\n{log.read_text()}")
