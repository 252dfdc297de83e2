"""RQ wired in: a real `rq worker --burst` process runs jobs against real Redis and the DB."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from app.launcher import worker_command
from app.models import Customer
from app.services.normalize import NORMALIZER_VERSION

ROOT = Path(__file__).resolve().parent.parent


def run_burst_worker(redis_url: str, database_url: str, queue: str,
                     extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """The worker `make start` runs (app.launcher.worker_command), in burst mode: it moves
    the scheduled jobs already due to the queue, runs the queue empty and exits."""
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, **(extra_env or {}))
    return subprocess.run(worker_command(redis_url, queue) + ["--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def queue_name():
    return f"test-{uuid.uuid4().hex[:8]}"


def test_worker_refreshes_stale_normalised_keys(app, db, org, redis_url, database_url, queue_name):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue
    from jobs.customers import refresh_normalised_keys

    # Simulate rows written by an older normaliser: keys missing, version 0.
    db.session.execute(update(Customer).where(Customer.id == org.c_rep.id)
                       .values(mobile_e164=None, norm_version=0))
    db.session.commit()

    job = get_queue(queue_name).enqueue(refresh_normalised_keys)
    result = run_burst_worker(redis_url, database_url, queue_name)
    assert result.returncode == 0, result.stderr[-2000:]

    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert job.return_value() == 1
    db.session.expire_all()
    row = db.session.get(Customer, org.c_rep.id)
    assert row.mobile_e164 == "+8613800138000"
    assert row.norm_version == NORMALIZER_VERSION


def test_each_job_finds_the_app_built_by_the_worker_before_it_forked(app, db, org, redis_url,
                                                                    database_url, queue_name):
    """The worker builds the app once; every horse (a new process per job) inherits it and
    opens its own database connection: three jobs, three processes, none building the app."""
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from sqlalchemy import func, select

    from app.queue import get_queue
    from tests.job_fixtures import app_state_at_start

    customers = db.session.scalar(select(func.count(Customer.id)))
    queue = get_queue(queue_name)
    enqueued = [queue.enqueue(app_state_at_start) for _ in range(3)]
    result = run_burst_worker(redis_url, database_url, queue_name)
    assert result.returncode == 0, result.stderr[-2000:]
    states = []
    for job in enqueued:
        job.refresh()
        assert job.get_status() == "finished", result.stderr[-2000:]
        states.append(job.return_value())
    assert [(s["built"], s["customers"]) for s in states] == [(True, customers)] * 3
    assert len({s["pid"] for s in states}) == 3


def test_a_failed_job_is_retried_once_its_backoff_is_over(app, db, org, redis_url, database_url,
                                                        queue_name, tmp_path):
    """A retry waits in the scheduled registry for its interval; the worker's scheduler puts
    it back on the queue when due (each burst worker moves what is due, then runs it)."""
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from rq import Retry

    from app.queue import get_queue
    from tests.job_fixtures import fails_once

    job = get_queue(queue_name).enqueue(fails_once, str(tmp_path / "memory"),
                                        retry=Retry(max=2, interval=1))
    deadline = time.monotonic() + 30
    while True:
        result = run_burst_worker(redis_url, database_url, queue_name)
        assert result.returncode == 0, result.stderr[-2000:]
        job.refresh()
        if job.get_status() != "scheduled" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (job.get_status(), job.return_value(), job.retries_left) == (
        "finished", "second run", 1), result.stderr[-2000:]


def test_admin_action_queues_job_that_worker_runs(app, db, org, admin_client, redis_url,
                                                  database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.redis_conn import forget_status, get_redis
    from rq import Queue

    forget_status()
    Queue("default", connection=get_redis()).empty()
    db.session.execute(update(Customer).where(Customer.id == org.c_north.id)
                       .values(email_norm=None, norm_version=0))
    db.session.commit()
    resp = admin_client.post("/customers/action_post",
                             data={"action": "refresh_keys", "rowid": [str(org.c_north.id)],
                                   "csrf_token": admin_client.csrf},
                             follow_redirects=True)
    assert resp.status_code == 200
    assert Queue("default", connection=get_redis()).count == 1
    result = run_burst_worker(redis_url, database_url, "default")
    assert result.returncode == 0, result.stderr[-2000:]
    db.session.expire_all()
    assert db.session.get(Customer, org.c_north.id).email_norm == "contact@hualian.cn"


def test_pages_keep_working_when_redis_is_down(app, db, org, admin_client):
    """No Redis: pages render, a banner says jobs are paused, the action says nothing queued."""
    from app.redis_conn import forget_status

    good = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    forget_status()
    try:
        page = admin_client.get("/customers/list/")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'id="jobs-paused-banner"' in html
        resp = admin_client.post("/customers/action_post",
                                 data={"action": "refresh_keys", "rowid": [str(org.c_rep.id)],
                                       "csrf_token": admin_client.csrf},
                                 follow_redirects=True)
        assert resp.status_code == 200
        assert "后台任务已暂停（Redis 不可用）：未排队任何任务。" in resp.get_data(as_text=True)
    finally:
        app.config["REDIS_URL"] = good
        forget_status()
    assert 'id="jobs-paused-banner"' not in admin_client.get("/customers/list/").get_data(
        as_text=True)


def test_worker_reminds_due_tasks_once(app, db, org, redis_url, database_url, queue_name):
    """jobs.tasks.task_reminders on a real worker: each due task's owner is told once, a
    second run tells nobody again."""
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from sqlalchemy import select

    from app.models import Notification, Task
    from app.queue import get_queue
    from app.services import tasks
    from jobs.tasks import task_reminders

    due = tasks.create(org.rep, {"subject": "已到期的待办", "due_at": "2020-01-01 09:00"})
    later = tasks.create(org.rep, {"subject": "以后的待办", "due_at": "2099-01-01 09:00"})
    first = get_queue(queue_name).enqueue(task_reminders)
    second = get_queue(queue_name).enqueue(task_reminders)
    result = run_burst_worker(redis_url, database_url, queue_name)
    assert result.returncode == 0, result.stderr[-2000:]
    first.refresh()
    second.refresh()
    assert (first.return_value(), second.return_value()) == (1, 0)
    db.session.expire_all()
    assert db.session.get(Task, due.id).reminded_at is not None
    assert db.session.get(Task, later.id).reminded_at is None
    notes = db.session.execute(select(Notification.title).where(
        Notification.user_id == org.rep.id, Notification.kind == "task_due")).scalars().all()
    assert notes == ["待办到期：已到期的待办"]
