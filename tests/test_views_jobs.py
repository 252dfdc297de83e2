"""The admins' job page: queues, a failed job retried and then shown with its error (and
requeued from the page), the last run of periodic jobs with their summary, Redis down."""
from __future__ import annotations

import uuid

import pytest
from rq import Retry

from app.services import jobs_monitor
from tests.test_jobs import run_burst_worker
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
    # Retry from the page: back in the queue.
    resp = post(clients.admin, f"/jobs/failed/{job.id}/requeue", {})
    assert resp.status_code == 302
    job.refresh()
    assert job.get_status() == "queued"
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
    assert post(client, "/jobs/failed/abc/requeue", {}).status_code == 403


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
