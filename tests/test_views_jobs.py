"""The admins' job page: queues, a failed job retried and then shown with its error (and
requeued from the page), a retry waiting for its backoff and a job whose worker was killed
(each queued again from the page), the last run of periodic jobs with their summary, Redis
down."""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from rq import Retry
from sqlalchemy import select

from app.launcher import worker_command
from app.models import AuditLog
from app.services import jobs_monitor
from app.services.errors import NotFound, PermissionDenied
from tests.test_jobs import ROOT, run_burst_worker
from tests.test_jobs_import import kill_worker
from tests.test_views_access import flashes
from tests.test_views_ownership import post


@pytest.fixture
def clean_default_queue(redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from rq.registry import FailedJobRegistry

    from app.queue import get_queue

    q = get_queue("default")
    q.empty()
    registry = FailedJobRegistry(queue=q)
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    return q


def test_a_failing_job_is_retried_then_shown_with_its_error(app, db, org, clients, redis_url,
                                                            database_url, clean_default_queue):
    from tests.job_fixtures import always_fails

    marker = uuid.uuid4().hex[:6]
    job = clean_default_queue.enqueue(always_fails, marker, retry=Retry(max=1))
    result = run_burst_worker(redis_url, database_url, "default")
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "failed" and job.retries_left == 0  # ran twice
    html = clients.admin.get("/jobs/").get_data(as_text=True)
    assert f'data-id="{job.id}"' in html and f"RuntimeError: 故意失败：{marker}" in html
    # Retry from the page: back in the queue, and the audit log says who did it.
    resp = post(clients.admin, f"/jobs/failed/{job.id}/requeue", {})
    assert resp.status_code == 302
    job.refresh()
    assert job.get_status() == "queued"
    assert requeued_by(db, job.id) == [(org.admin.id, ["failed", "queued"])]
    clean_default_queue.empty()


def table(html: str, table_id: str) -> str:
    return html.split(f'id="{table_id}"')[1].split("</table>")[0]


def requeued_by(db, job_id: str) -> list[tuple]:
    db.session.expire_all()
    return [(a.actor_id, a.changes["from"]) for a in db.session.execute(
        select(AuditLog).where(AuditLog.action == "requeue", AuditLog.object_type == "job"))
        .scalars() if a.changes["job"] == [None, job_id]]


def test_a_retry_waiting_for_its_backoff_is_shown_and_queued_now(
        app, db, org, clients, redis_url, database_url, clean_default_queue, tmp_path):
    from tests.job_fixtures import fails_once

    job = clean_default_queue.enqueue(fails_once, str(tmp_path / "memory"),
                                      retry=Retry(max=1, interval=3600))
    result = run_burst_worker(redis_url, database_url, "default")
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "scheduled"
    html = clients.admin.get("/jobs/").get_data(as_text=True)
    row = table(html, "scheduled").split(f'data-id="{job.id}"')[1].split("</tr>")[0]
    assert "tests.job_fixtures.fails_once" in row and job.retries_left == 0
    resp = post(clients.admin, f"/jobs/scheduled/{job.id}/requeue", {}, follow_redirects=True)
    assert "任务已重新排队。" in flashes(resp.get_data(as_text=True))
    job.refresh()
    assert job.get_status() == "queued"
    assert requeued_by(db, job.id) == [(org.admin.id, ["scheduled", "queued"])]
    result = run_burst_worker(redis_url, database_url, "default")
    job.refresh()
    assert (job.get_status(), job.return_value()) == ("finished", "second run"), \
        result.stderr[-2000:]


def test_a_job_whose_worker_was_killed_is_shown_abandoned_and_queued_again(
        app, db, org, clients, redis_url, database_url, clean_default_queue, tmp_path):
    from tests.job_fixtures import hangs_once

    memory = tmp_path / "memory"
    job = clean_default_queue.enqueue(hangs_once, str(memory))
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
    worker = subprocess.Popen(worker_command(redis_url, "default") + ["--burst"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.time() + 60
        while not (memory.exists() and job.get_status(refresh=True) == "started"):
            assert time.time() < deadline, "the job did not start"
            time.sleep(0.05)
        html = clients.admin.get("/jobs/").get_data(as_text=True)
        assert f'data-id="{job.id}"' not in table(html, "abandoned")  # its worker is alive
        with pytest.raises(NotFound, match="没有这个被遗弃的任务"):
            jobs_monitor.requeue(org.admin, "abandoned", job.id)
        kill_worker(worker)  # worker and work horse: nobody finishes the job
    finally:
        if worker.poll() is None:
            kill_worker(worker)
    assert job.get_status(refresh=True) == "started"  # what rq still says
    deadline = time.time() + 5  # Redis drops the dead worker's subscription as it sees EOF
    while job.id not in [j["id"] for j in jobs_monitor.overview()["abandoned"]]:
        assert time.time() < deadline, "the job was not seen abandoned"
        time.sleep(0.05)
    html = clients.admin.get("/jobs/").get_data(as_text=True)
    row = table(html, "abandoned").split(f'data-id="{job.id}"')[1].split("</tr>")[0]
    assert "tests.job_fixtures.hangs_once" in row
    assert f'data-id="{job.id}"' not in html.split('id="running"')[1].split("</table>")[0]
    resp = post(clients.admin, f"/jobs/abandoned/{job.id}/requeue", {}, follow_redirects=True)
    assert resp.status_code == 200
    assert "任务已重新排队。" in flashes(resp.get_data(as_text=True))
    job.refresh()
    assert job.get_status() == "queued"
    assert requeued_by(db, job.id) == [(org.admin.id, ["abandoned", "queued"])]
    result = run_burst_worker(redis_url, database_url, "default")
    job.refresh()
    assert (job.get_status(), job.return_value()) == ("finished", "second run"), \
        result.stderr[-2000:]
    assert f'data-id="{job.id}"' not in table(clients.admin.get("/jobs/").get_data(
        as_text=True), "abandoned")


def test_only_admins_requeue_jobs_even_through_the_service(app, db, org, redis_url,
                                                           clean_default_queue):
    job = clean_default_queue.enqueue("tests.job_fixtures.always_fails", "x")
    for user in (org.manager, org.rep, org.staff, org.auditor):
        with pytest.raises(PermissionDenied, match="只有管理员可以重新排队后台任务"):
            jobs_monitor.requeue(user, "failed", job.id)
    with pytest.raises(NotFound, match="没有这个失败的任务。"):
        jobs_monitor.requeue(org.admin, "failed", job.id)  # queued, not failed
    with pytest.raises(NotFound, match="没有这个计划中的任务。"):
        jobs_monitor.requeue(org.admin, "scheduled", job.id)
    clean_default_queue.empty()


def test_periodic_jobs_show_their_last_run_and_summary(app, db, org, clients, redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from jobs.ownership import reclaim_sweep

    summary = reclaim_sweep()  # as the scheduler's job would run it
    assert summary["reclaimed"] == 0
    runs = jobs_monitor.last_runs()
    assert runs["reclaim_sweep"]["status"] == "finished"
    assert runs["reclaim_sweep"]["summary"]["reclaimed"] == 0
    html = clients.admin.get("/jobs/").get_data(as_text=True)
    row = html.split('data-job="reclaim_sweep"')[1].split("</tr>")[0]
    assert "finished" in row and "reclaimed" in row and "0 3 * * *" in row
    for name in ("followup_digest", "reclaim_warnings", "classify_customers"):
        assert f'data-job="{name}"' in html


@pytest.mark.parametrize("role", ["manager", "rep", "staff", "auditor"])
def test_only_admins_see_the_job_page(clients, role):
    client = getattr(clients, role)
    assert client.get("/jobs/").status_code == 403
    for kind in ("failed", "scheduled", "abandoned"):
        assert post(client, f"/jobs/{kind}/abc/requeue", {}).status_code == 403


def test_page_says_jobs_are_paused_when_redis_is_down(app, db, org, clients):
    from app.redis_conn import forget_status

    good = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    forget_status()
    try:
        resp = clients.admin.get("/jobs/")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert 'id="jobs-redis-down"' in html and 'data-job="reclaim_sweep"' in html
    finally:
        app.config["REDIS_URL"] = good
        forget_status()
