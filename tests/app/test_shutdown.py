"""SIGTERM stops the service cleanly: the request in flight and the tick in progress finish.

The served tests run real processes: gunicorn serving ``served_with_a_slow_path()`` and a
Celery worker from ``run_celery_worker_with_a_slow_tick()``, both defined here. In them the
periodic jobs' ``tasks.tick`` is a stand-in that takes a second and writes what it does to a
file the test reads, and ``/slow`` is answered as ``/livez`` after a pause, so the signal
arrives while both are under way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from core.config import PROJECT_ROOT
from core.jobs import tasks
from core.jobs.runner import InProcessRunner
from tests.database import TEST_MASTER_KEYS
from tests.live_servers import gunicorn

#: How long the stand-in tick takes, and how long ``/slow`` waits before answering.
TICK_SECONDS = 1.0
SLOW_SECONDS = 1.0
CELERY_REDIS = "redis://127.0.0.1:6379/12"  # a database of these tests' own

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Record:
    """What a served process did, one event a line, appended to a file the test reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._started = threading.Condition()
        self._ticks = 0

    def write(self, event: str) -> None:
        with self._lock, self.path.open("a") as out:
            out.write(event + "\n")

    def tick(self) -> tasks.TickReport:
        """Stand in for ``tasks.tick``: take TICK_SECONDS, noting the start and the end."""
        self.write("tick started")
        with self._started:
            self._ticks += 1
            self._started.notify_all()
        time.sleep(TICK_SECONDS)
        self.write("tick finished")
        return tasks.TickReport(0, 0, 0, 0)

    def wait_for_a_new_tick(self, timeout: float) -> None:
        with self._started:
            seen = self._ticks
            self._started.wait_for(lambda: self._ticks > seen, timeout)


def events(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class SlowPath:
    """WSGI middleware answering ``/slow`` as ``/livez``, after SLOW_SECONDS and a tick's start."""

    def __init__(self, app: WSGIApp, record: Record) -> None:
        self.app = app
        self.record = record

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/slow":
            return self.app(environ, start_response)
        self.record.write("request in")
        time.sleep(SLOW_SECONDS)
        # Answered just after a tick starts, the worker exits with that tick under way.
        self.record.wait_for_a_new_tick(timeout=10)
        environ["PATH_INFO"] = "/livez"
        answer = self.app(environ, start_response)
        self.record.write("request answered")
        return answer


def served_with_a_slow_path() -> Flask:
    """The app gunicorn serves in the test below: ``tests.app.test_shutdown:served_with_a_slow_path()``."""
    from core import create_app

    record = Record(Path(os.environ["SHUTDOWN_RECORD"]))
    tasks.tick = record.tick  # the runner calls it through the module
    app = create_app()
    app.wsgi_app = SlowPath(app.wsgi_app, record)  # type: ignore[method-assign]
    return app


def run_celery_worker_with_a_slow_tick() -> None:
    """Run ``celery worker`` (one process) on the app, its tick the stand-in; exit with its status."""
    from core import create_app
    from core.jobs.celery import make_celery

    tasks.tick = Record(Path(os.environ["SHUTDOWN_RECORD"])).tick
    celery = make_celery(create_app())
    # A queue of this run's own: another run on the same Redis must not take its task.
    celery.conf.task_default_queue = os.environ["SHUTDOWN_QUEUE"]
    sys.exit(
        celery.start(
            ["worker", "--pool=solo", "--without-mingle", "--without-gossip", "--loglevel=INFO"]
        )
    )


def _environment(test_db: Any, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RATELIMIT_", "REDIS_", "CELERY_", "JOBS_"))
    }
    env.update(
        DATABASE_URL=test_db.app_url,
        SECRET_KEY="shutdown-secret",
        MASTER_KEYS=TEST_MASTER_KEYS,
        INSTANCE_PATH=str(tmp_path / "instance"),
        SHUTDOWN_RECORD=str(tmp_path / "record.txt"),
        PYTHONPATH=str(PROJECT_ROOT),
        **settings,
    )
    return env


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _get(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, None


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def test_sigterm_lets_the_request_in_flight_and_the_tick_in_progress_finish(
    test_db: Any, tmp_path: Path
) -> None:
    env = _environment(test_db, tmp_path, JOBS_BACKEND="inprocess", JOBS_TICK_SECONDS="0.05")
    record, log = tmp_path / "record.txt", tmp_path / "gunicorn.log"
    with gunicorn("tests.app.test_shutdown:served_with_a_slow_path()", env, log, workers=1) as (
        url,
        server,
    ):
        _wait_for(lambda: _answers(url + "/livez"), server, log)  # which starts the runner
        _wait_for(lambda: "tick started" in events(record), server, log)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(_get, url + "/slow")
            _wait_for(lambda: "request in" in events(record), server, log)
            server.send_signal(signal.SIGTERM)
            assert not slow.done()
            assert slow.result(timeout=20) == (200, {"status": "ok"})
        assert server.wait(timeout=30) == 0, log.read_text()

    seen = events(record)
    # The tick under way when the worker exited finished, and none started after it.
    after_answer = seen[seen.index("request answered") + 1 :]
    assert after_answer == ["tick finished"], seen
    assert seen.count("tick started") == seen.count("tick finished")
    assert "Traceback" not in log.read_text()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2).close()


class HeldTick:
    """Stand in for ``tasks.tick``: each call holds until released, and is counted."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.starts = 0
        self.ends = 0

    def __call__(self) -> None:
        self.starts += 1
        self.started.set()
        self.release.wait(10)
        self.ends += 1


@pytest.fixture
def held_tick(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldTick]:
    held = HeldTick()
    monkeypatch.setattr(tasks, "tick", held)
    yield held
    held.release.set()  # a thread still waiting must not outlive the test by long


def test_stopping_the_runner_lets_the_tick_in_progress_finish_and_starts_no_other(
    held_tick: HeldTick,
) -> None:
    runner = InProcessRunner(Flask(__name__), interval=0.01)
    runner.start()
    assert held_tick.started.wait(5)
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(runner.stop)
        time.sleep(0.3)
        assert not stopping.done()  # it waits for the tick rather than cutting it short
        held_tick.release.set()
        assert stopping.result(timeout=5) is True  # and the thread has ended
    time.sleep(0.1)  # ten intervals: room for another tick, were one to start
    assert (held_tick.starts, held_tick.ends) == (1, 1)
    assert "clinic-saas-jobs" not in [thread.name for thread in threading.enumerate()]
    assert runner.stop(timeout=0) is True  # stopping again (the process's exit) is harmless


def test_a_tick_outlasting_the_stop_is_left_to_the_process_exit_and_logged(
    held_tick: HeldTick, caplog: pytest.LogCaptureFixture
) -> None:
    runner = InProcessRunner(Flask(__name__), interval=0.01)
    runner.start()
    assert held_tick.started.wait(5)
    with caplog.at_level(logging.WARNING, logger="core.jobs.runner"):
        assert runner.stop(timeout=0.1) is False
    assert "did not finish within" in caplog.text
    held_tick.release.set()
    assert runner.stop(timeout=5) is True
    assert (held_tick.starts, held_tick.ends) == (1, 1)


def test_a_runner_never_started_stops_at_once() -> None:
    assert InProcessRunner(Flask(__name__), interval=60).stop(timeout=0) is True


def test_a_celery_worker_told_sigterm_finishes_its_task_and_acknowledges_it(
    test_db: Any, tmp_path: Path
) -> None:
    from celery import Celery

    queue = f"clinic-saas-shutdown-{uuid.uuid4().hex[:8]}"
    env = _environment(
        test_db,
        tmp_path,
        JOBS_BACKEND="celery",
        CELERY_BROKER_URL=CELERY_REDIS,
        CELERY_RESULT_BACKEND=CELERY_REDIS,
        SHUTDOWN_QUEUE=queue,
    )
    record, log = tmp_path / "record.txt", tmp_path / "celery.log"
    sender = Celery("clinic_saas_shutdown_test", broker=CELERY_REDIS, backend=CELERY_REDIS)
    broker = redis.Redis.from_url(CELERY_REDIS)
    with log.open("w") as output:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tests.app.test_shutdown import run_celery_worker_with_a_slow_tick as run; run()",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        result = sender.send_task("clinic_saas.tick", queue=queue)
        _wait_for(lambda: "tick started" in events(record), worker, log)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, log.read_text()
        assert events(record) == ["tick started", "tick finished"]
        assert result.get(timeout=5)["holds_expired"] == 0  # it ran to the end and answered
        # Acknowledged once done (acks_late): nothing handed back to run again.
        assert broker.llen(queue) == 0
        assert "Warm shutdown" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        broker.delete(queue)
        broker.close()
        sender.close()
