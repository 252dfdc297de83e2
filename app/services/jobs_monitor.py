"""What the admins' job page shows: queues and their registries, failed jobs with their
errors, running jobs with their progress, abandoned and scheduled jobs, and the last run of
each periodic job (recorded by the job itself in Redis); and putting a failed, scheduled or
abandoned job back on its queue."""
from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple, Optional

from redis.exceptions import RedisError
from rq.job import Job

from app.extensions import db
from app.models import User
from app.queue import schedule
from app.security import ROLE_ADMIN, has_role
from app.services import audit
from app.services.errors import NotFound, PermissionDenied, lazy_tr, tr
from app.services.times import to_local

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


def periodic_jobs(with_runs: bool = True, now: Optional[dt.datetime] = None) -> list[dict]:
    """Every job of app.queue.PERIODIC with its schedule (also in business time, see
    schedule_times) and last run (None if never ran; not read when with_runs is False)."""
    runs = last_runs() if with_runs else {}
    return [dict(job, last=runs.get(job["name"]), **schedule_times(job["cron"], now))
            for job in schedule()]


def schedule_times(cron: str, now: Optional[dt.datetime] = None) -> dict:
    """A cron schedule (UTC: `rq cron` reads it so) for people in GUISHU_TIMEZONE: the next
    run (stored time, naive UTC), the local "HH:MM" of a daily job, the step of an every-N-
    minutes job. Anything else is shown as its cron line."""
    from croniter import croniter

    out = {"next_run": None, "daily_at": None, "every_minutes": None}
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        upcoming = croniter(cron, now.replace(tzinfo=dt.timezone.utc)).get_next(dt.datetime)
    except (ValueError, KeyError):  # a bad GUISHU_CRON_* value: the page still shows it
        return out
    out["next_run"] = upcoming.astimezone(dt.timezone.utc).replace(tzinfo=None)
    minute, hour, *rest = cron.split() + [""] * 5
    if rest[:3] == ["*", "*", "*"] and minute.isdigit() and hour.isdigit():
        out["daily_at"] = to_local(upcoming).strftime("%H:%M")
    elif rest[:3] == ["*", "*", "*"] and hour == "*" and minute.startswith("*/") \
            and minute[2:].isdigit():
        out["every_minutes"] = int(minute[2:])
    elif rest[:3] == ["*", "*", "*"] and hour == "*" and minute == "*":
        out["every_minutes"] = 1
    return out


def _job_row(job, **extra) -> dict:
    exc = (job.latest_result().exc_string if job.latest_result() else None) or job.exc_info
    return {"id": job.id, "func": job.func_name, "status": job.get_status(refresh=False),
            "enqueued_at": job.enqueued_at, "started_at": job.started_at,
            "ended_at": job.ended_at, "progress": job.meta.get("progress"),
            "retries_left": job.retries_left,
            "error": (exc or "").strip().splitlines()[-1] if exc else None, "trace": exc,
            **extra}


def _worker_gone(conn, name: Optional[str]) -> bool:
    """Whether a worker is no longer there: its heartbeat key expired, or nobody listens on
    its command channel any more. A worker subscribes to that channel for its whole life, and
    Redis drops the subscription the moment the process dies (even by SIGKILL, on any
    machine), where the heartbeat key outlives it by a minute or more."""
    from rq.command import PUBSUB_CHANNEL_TEMPLATE
    from rq.worker import Worker

    if not name or not conn.exists(Worker.redis_worker_namespace_prefix + name):
        return True
    return not conn.pubsub_numsub(PUBSUB_CHANNEL_TEMPLATE % name)[0][1]


class _Started(NamedTuple):
    executions: list
    workers: list[str]
    abandoned: bool


def _started(conn, registry, limit: int = -1) -> dict[str, _Started]:
    """The jobs of the started registry by id. A job is abandoned when the worker of every
    execution is gone (the execution names its worker from the moment it is registered; its
    record expires with the worker's heartbeat)."""
    from rq.executions import Execution
    from rq.utils import as_text

    jobs: dict[str, _Started] = {}
    for job_id, execution_id in registry.get_job_and_execution_ids(0, limit):
        execution = Execution(execution_id, job_id, conn)
        worker = conn.hget(execution.key, "worker_name")
        worker = as_text(worker) if worker else None
        seen = jobs.get(job_id, _Started([], [], True))
        jobs[job_id] = _Started(seen.executions + [execution], seen.workers + [worker or "?"],
                                seen.abandoned and _worker_gone(conn, worker))
    return jobs


def overview(limit: int = 50) -> dict:
    """Queues with counts; running jobs, abandoned ones (started by a worker that is gone:
    killed, or its machine lost), jobs scheduled for later (retries waiting for their
    backoff) and failed jobs. Raises RedisError/OSError if Redis is down (the page shows the
    paused banner instead)."""
    from rq import Queue
    from rq.registry import (DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                             ScheduledJobRegistry, StartedJobRegistry)

    conn = _redis()
    queues = []
    started, abandoned, scheduled, failed = [], [], [], []
    for name in QUEUES:
        q = Queue(name, connection=conn)
        regs = {"started": StartedJobRegistry(queue=q), "failed": FailedJobRegistry(queue=q),
                "finished": FinishedJobRegistry(queue=q), "deferred": DeferredJobRegistry(queue=q),
                "scheduled": ScheduledJobRegistry(queue=q)}
        queues.append({"name": name, "queued": q.count,
                       **{k: r.count for k, r in regs.items()}})
        running = _started(conn, regs["started"], limit - 1)
        for job in _fetch(q, list(running)):
            (abandoned if running[job.id].abandoned else started).append(
                _job_row(job, worker=", ".join(running[job.id].workers)))
        for job in _fetch(q, regs["scheduled"].get_job_ids(0, limit - 1)):
            due = regs["scheduled"].get_scheduled_time(job).replace(tzinfo=None)
            scheduled.append(_job_row(job, due=due))
        failed += [_job_row(job) for job in _fetch(q, regs["failed"].get_job_ids(0, limit - 1))]
    return {"queues": queues, "started": started, "abandoned": abandoned,
            "scheduled": scheduled, "failed": failed}


def _fetch(q, ids: list[str]) -> list:
    return [job for job in q.job_class.fetch_many(ids, connection=q.connection) if job is not None]


REQUEUE_KINDS = {"failed": lazy_tr("There is no such failed job."),
                 "scheduled": lazy_tr("There is no such scheduled job."),
                 "abandoned": lazy_tr("There is no such abandoned job (its worker is still "
                                      "running, or the job has ended).")}


def requeue(actor: User, kind: str, job_id: str) -> Job:
    """Put a failed, scheduled or abandoned job back on its queue now (admins only; audited).
    A scheduled job keeps its remaining retries. An abandoned job must still be abandoned
    when asked: its worker may have answered again since the page was drawn."""
    from rq import Queue
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can requeue background jobs"))
    if kind not in REQUEUE_KINDS:
        raise NotFound(tr("There is no such kind of job"))
    conn = _redis()
    for name in QUEUES:
        q = Queue(name, connection=conn)
        if kind == "abandoned":
            seen = _started(conn, StartedJobRegistry(queue=q)).get(job_id)
            job = q.fetch_job(job_id) if seen and seen.abandoned else None
            if job is None:
                continue
            with conn.pipeline() as pipe:
                for execution in seen.executions:
                    execution.delete(job, pipe)
                pipe.execute()
            job.started_at = job.ended_at = None
            q.enqueue_job(job)
        else:
            registry = (FailedJobRegistry if kind == "failed" else ScheduledJobRegistry)(queue=q)
            try:
                job = registry.requeue(job_id)
            except (InvalidJobOperation, NoSuchJobError):  # not (or no longer) in it
                continue
        audit.record(actor.id, "requeue", "job", None,
                     {"job": (None, job_id), "function": (None, job.func_name),
                      "from": (kind, "queued")})
        db.session.commit()
        return job
    raise NotFound(REQUEUE_KINDS[kind])
