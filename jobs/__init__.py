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
