"""Running the periodic jobs inside the web process, for the embedded default (no broker)."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from core.jobs import tasks

log = logging.getLogger(__name__)


class InProcessRunner:
    """A daemon thread calling ``tasks.tick`` every ``interval`` seconds until stopped."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clinic-saas-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.app.app_context():
                    tasks.tick()
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("in-process jobs failed")
