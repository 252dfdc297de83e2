"""RQ entry points. Each job opens an app context, calls one service and logs a summary.

The app queues them by dotted path through app.queue; the periodic ones are listed in
app.queue.PERIODIC.
"""
from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger("guishu.jobs")
_app = None


def job_app():
    """The Flask app a worker process runs jobs in (built once per process)."""
    global _app
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def periodic(name: str):
    """Decorator for the jobs of app.queue.PERIODIC: record each run's start, end, status and
    summary (or error) for the admins' job page, without changing what the job returns."""
    import datetime as dt
    import functools

    def wrap(func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            from app.services.jobs_monitor import record_run

            started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                with job_app().app_context():
                    record_run(name, started, None, status="failed",
                               error=f"{type(exc).__name__}: {exc}")
                raise
            with job_app().app_context():
                record_run(name, started, result)
            return result
        return run
    return wrap


def report_progress(done: int, total: Optional[int] = None) -> None:
    """Long jobs call this as they go; the job page shows it (no-op outside a worker). Redis
    going away must not fail the job: its work is in the database, the progress is only shown."""
    from redis.exceptions import RedisError
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.meta["progress"] = {"done": done, "total": total}
        try:
            job.save_meta()
        except (RedisError, OSError) as exc:
            log.warning("progress of job %s not recorded (%d done): %s", job.id, done, exc)
