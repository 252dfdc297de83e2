"""The RQ worker Guishu runs: the app is built once, in the worker, before it forks.

`rq worker` forks a work horse per job. With the stock class each horse imported the app and
ran `create_app()` itself (jobs.job_app builds it once per *process*, and every horse is a new
process): seconds of start-up before every job, on a busy machine ten. This class builds the
app in the worker process before its first fork, so every horse inherits it ready (the way
gunicorn's --preload does), and the horse only opens its own database connections.

Database connections must never cross a fork: two processes writing on one socket corrupt each
other's protocol stream. The worker closes the connections it opened while building the app
before it forks, and each horse drops the pool it inherited without touching its sockets
(SQLAlchemy's `dispose(close=False)`, the documented pattern for a forked child).
"""
from __future__ import annotations

import logging

from rq.worker import Worker

import jobs


def _engines(app):
    from app import db

    with app.app_context():
        return list(db.engines.values())


class AppWorker(Worker):
    """`rq worker -w jobs.worker.AppWorker`: app.launcher.worker_command starts it."""

    def work(self, *args, **kwargs):
        app = jobs.job_app()
        rq_log = logging.getLogger("rq.worker")
        if rq_log.handlers:
            # `rq worker` gave its logger a handler before the app existed; create_app's root
            # handler would print each of its lines a second time.
            rq_log.propagate = False
        for engine in _engines(app):
            engine.dispose()  # the worker itself runs no query: nothing open to inherit
        return super().work(*args, **kwargs)

    def main_work_horse(self, job, queue):
        if jobs._app is not None:
            for engine in _engines(jobs._app):
                engine.dispose(close=False)  # the parent's, if any: forget, don't close
        return super().main_work_horse(job, queue)
