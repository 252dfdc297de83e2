"""What the admins' job page shows: queues and their registries, failed jobs with their
errors, running jobs with their progress, and the last run of each periodic job (recorded by
the job itself in Redis). Every function answers None / empty when Redis is unreachable."""
from __future__ import annotations

import datetime as dt
import json
from typing import Optional

from redis.exceptions import RedisError

from app.queue import schedule

LAST_RUN_KEY = "guishu:periodic:last_run"
QUEUES = ("default",)


def _redis():
    from app.redis_conn import get_redis

    return get_redis()


def record_run(name: str, started: dt.datetime, summary, status: str = "finished",
               error: Optional[str] = None) -> None:
    """Called by each periodic job when it ends (jobs.periodic does it)."""
    value = {"at": started.isoformat(timespec="seconds"),
             "ended": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
             .isoformat(timespec="seconds"), "status": status, "summary": summary,
             "error": error}
    try:
        _redis().hset(LAST_RUN_KEY, name, json.dumps(value, ensure_ascii=False, default=str))
    except (RedisError, OSError):
        pass  # monitoring must never fail the job itself


def last_runs() -> dict[str, dict]:
    raw = _redis().hgetall(LAST_RUN_KEY)
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}


def periodic_jobs() -> list[dict]:
    """Every job of app.queue.PERIODIC with its schedule and last run (None if never ran)."""
    runs = last_runs()
    return [dict(job, last=runs.get(job["name"])) for job in schedule()]


def _job_row(job) -> dict:
    exc = (job.latest_result().exc_string if job.latest_result() else None) or job.exc_info
    return {"id": job.id, "func": job.func_name, "status": job.get_status(refresh=False),
            "enqueued_at": job.enqueued_at, "started_at": job.started_at,
            "ended_at": job.ended_at, "progress": job.meta.get("progress"),
            "retries_left": job.retries_left,
            "error": (exc or "").strip().splitlines()[-1] if exc else None, "trace": exc}


def overview(limit: int = 50) -> dict:
    """Queues with counts, started and failed jobs; raises RedisError/OSError if Redis is
    down (the page shows the paused banner instead)."""
    from rq import Queue
    from rq.registry import (DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                             ScheduledJobRegistry, StartedJobRegistry)

    conn = _redis()
    queues = []
    started, failed = [], []
    for name in QUEUES:
        q = Queue(name, connection=conn)
        regs = {"started": StartedJobRegistry(queue=q), "failed": FailedJobRegistry(queue=q),
                "finished": FinishedJobRegistry(queue=q), "deferred": DeferredJobRegistry(queue=q),
                "scheduled": ScheduledJobRegistry(queue=q)}
        queues.append({"name": name, "queued": q.count,
                       **{k: r.count for k, r in regs.items()}})
        for kind, target in (("started", started), ("failed", failed)):
            ids = regs[kind].get_job_ids(0, limit - 1)
            for job in q.job_class.fetch_many(ids, connection=conn):
                if job is not None:
                    target.append(_job_row(job))
    return {"queues": queues, "started": started, "failed": failed}


def requeue_failed(job_id: str) -> bool:
    from rq import Queue
    from rq.registry import FailedJobRegistry

    for name in QUEUES:
        registry = FailedJobRegistry(queue=Queue(name, connection=_redis()))
        if job_id in registry.get_job_ids():
            registry.requeue(job_id)
            return True
    return False
