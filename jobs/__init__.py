"""RQ entry points. Each job opens an app context, calls one service and logs a summary.

`enqueue` is the only way the web app queues work: it returns None (and logs) when Redis is
unreachable, so callers can tell the user that background jobs are paused.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from rq import Queue, Retry
from rq.job import Job

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


def get_queue(name: str = "default") -> Queue:
    from app.redis_conn import get_redis

    return Queue(name, connection=get_redis())


def enqueue(func: Callable, *args: Any, queue: str = "default", **kwargs: Any) -> Optional[Job]:
    """Queue func(*args, **kwargs) with retries; None if Redis is unreachable."""
    from redis.exceptions import RedisError

    try:
        return get_queue(queue).enqueue(func, *args, retry=Retry(max=3, interval=[10, 60, 300]),
                                        **kwargs)
    except (RedisError, OSError) as exc:
        log.warning("background jobs paused, could not queue %s: %s", func.__name__, exc)
        from app.redis_conn import forget_status

        forget_status()
        return None


def periodic(name: str):
    """Decorator for the jobs of jobs/cron.py: record each run's start, end, status and
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
    """Long jobs call this as they go; the job page shows it (no-op outside a worker)."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.meta["progress"] = {"done": done, "total": total}
        job.save_meta()
