"""Celery for running jobs at scale: ``celery -A core.jobs.celery worker --beat``.

The broker is CELERY_BROKER_URL (Redis). Nothing is lost if the broker is
down: the work lives in the database (the outbox, held bookings), and the
next tick picks up whatever is due.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task

from core.jobs import tasks

TICK_SECONDS = float(os.environ.get("JOBS_TICK_SECONDS", "60"))


def make_celery(flask_app: Any = None) -> Celery:
    """Build the Celery app; each task runs inside a Flask app context."""
    if flask_app is None:
        from core import create_app

        flask_app = create_app()

    class AppContextTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(
        "clinic_saas",
        task_cls=AppContextTask,
        broker=flask_app.config["CELERY_BROKER_URL"],
        backend=flask_app.config.get("CELERY_RESULT_BACKEND"),
    )
    celery.conf.update(
        task_acks_late=True,  # a worker that dies mid-task gives the task back
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        beat_schedule={"tick": {"task": "clinic_saas.tick", "schedule": TICK_SECONDS}},
        timezone="UTC",
    )

    @celery.task(name="clinic_saas.tick")
    def tick() -> dict[str, int]:
        report = tasks.tick()
        return report.__dict__

    flask_app.extensions["celery"] = celery
    return celery


#: The module-level app the ``celery`` command finds. Built lazily, so that
#: importing this module (in tests) needs no configured environment.
def __getattr__(name: str) -> Any:
    if name in {"app", "celery"}:
        global _app
        try:
            return _app
        except NameError:
            _app = make_celery()
            return _app
    raise AttributeError(name)
