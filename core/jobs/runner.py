"""Running the periodic jobs inside the web process, for the embedded default (no broker)."""

from __future__ import annotations

import atexit
import logging
import threading

from flask import Flask

from core.jobs import tasks

log = logging.getLogger(__name__)

#: Seconds a stop waits for the tick in progress: under gunicorn's default graceful timeout
#: (30 s), which also bounds the whole of a worker's shutdown before it is killed.
STOP_TIMEOUT = 25.0


class InProcessRunner:
    """A daemon thread calling ``tasks.tick`` every ``interval`` seconds until stopped.

    Stopping lets the tick in progress finish and starts no other. A started runner is
    stopped when its process exits normally (a gunicorn worker after SIGTERM and its last
    request, ``flask run`` after Ctrl-C), whichever server runs the app; a process killed
    outright loses at most the step in progress, which is its own unit of work and so is
    rolled back whole and done again by the next tick.
    """

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        # A daemon, so that a tick stuck past the stop's wait cannot hold the process open.
        self._thread = threading.Thread(target=self._run, name="clinic-saas-jobs", daemon=True)

    def start(self) -> None:
        """Start ticking; stop at the process's normal exit."""
        self._thread.start()
        # atexit runs after gunicorn's worker loop ends and before daemon threads are frozen;
        # it needs no server hook, so it holds for any server and any configuration.
        atexit.register(self.stop)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Start no further tick and wait up to ``timeout`` seconds for the one in progress.

        Return whether the thread has ended. Stopping again, or a runner never started,
        returns at once.
        """
        self._stop.set()
        atexit.unregister(self.stop)
        if not self._thread.is_alive() or self._thread is threading.current_thread():
            return not self._thread.is_alive()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "in-process jobs: the tick in progress did not finish within %.0f s; "
                "what it has not committed is done again by the next tick",
                timeout,
            )
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.app.app_context():
                    tasks.tick()
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("in-process jobs failed")
