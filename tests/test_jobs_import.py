"""The import job on a real RQ worker: a whole file, and a worker killed (SIGKILL) in the
middle of a file that a second worker then finishes — no row lost, none inserted twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from app.models import Customer, ImportBatch, OwnershipEvent
from app.services import import_mapping, import_run
from tests.test_jobs import ROOT, queue_name, run_burst_worker  # noqa: F401

ROWS = 1200


def big_file() -> bytes:
    lines = ["客户名称,手机,城市"]
    lines += [f"昆明{i:04d}号茶业有限公司,1370170{i:04d},昆明" for i in range(ROWS)]
    lines += ["昆明0007号茶业有限公司,13701709999,昆明",   # in-file duplicate (name)
              "丽江坏号码有限公司,110,丽江"]              # invalid
    return ("\n".join(lines) + "\n").encode("gbk")


def queued_batch(db, org, queue):
    from app.queue import get_queue
    from jobs.imports import run_import

    batch = import_mapping.upload(org.staff, "昆明.csv", big_file())
    import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    get_queue(queue).enqueue(run_import, batch.id, job_timeout=600)
    return batch.id


def imported(db) -> list[str]:
    return db.session.execute(select(Customer.name).where(
        Customer.name.like("昆明%"))).scalars().all()


def group_gone(pgid: int, timeout: float = 10) -> None:
    """Wait until no process of the group is left."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} still running after {timeout} s")


def kill_worker(worker: subprocess.Popen) -> None:
    """SIGKILL an RQ worker started in a session of its own, and its work horse, as when
    their machine is lost; wait until all of them are gone. rq starts each horse in a process
    group of its own, so the worker's group alone would leave the horse running the job."""
    horses = [child.pid for child in psutil.Process(worker.pid).children()]
    os.killpg(worker.pid, signal.SIGKILL)
    for horse in horses:
        try:
            os.killpg(horse, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait(timeout=10)
    for group in [worker.pid, *horses]:
        group_gone(group)


def finish_on_a_worker(db, batch_id, redis_url, database_url, queue_name) -> None:
    """Run the queued import on a real burst worker; the whole file is then in."""
    result = run_burst_worker(redis_url, database_url, queue_name,
                              {"GUISHU_IMPORT_CHUNK_ROWS": "500"})
    assert result.returncode == 0, result.stderr[-2000:]
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch_id)
    assert (batch.status, batch.inserted, batch.duplicates, batch.invalid) == (
        "done", ROWS, 1, 1)


def test_worker_imports_a_file(app, db, org, redis_url, database_url, queue_name):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    batch_id = queued_batch(db, org, queue_name)
    finish_on_a_worker(db, batch_id, redis_url, database_url, queue_name)
    assert len(imported(db)) == ROWS


def test_a_killed_worker_resumes_without_duplicates_or_losses(app, db, org, redis_url,
                                                              database_url, queue_name):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    batch_id = queued_batch(db, org, queue_name)
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url,
               GUISHU_IMPORT_CHUNK_ROWS="20")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "rq"), "worker", "--burst",
                               "--url", redis_url, queue_name], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until some chunks are committed, not all
            db.session.expire_all()
            if db.session.get(ImportBatch, batch_id).inserted >= 100:
                break
            time.sleep(0.05)
        kill_worker(worker)  # the work horse too: nothing finishes the chunk
    finally:
        if worker.poll() is None:
            kill_worker(worker)
    db.session.rollback()
    # The batch's counter and the customers, read in one statement (one snapshot).
    status, inserted, landed = db.session.execute(select(
        ImportBatch.status, ImportBatch.inserted,
        select(func.count()).select_from(Customer).where(Customer.name.like("昆明%"))
        .scalar_subquery()).where(ImportBatch.id == batch_id)).one()
    assert status == "running" and 100 <= inserted < ROWS
    assert landed == inserted  # committed chunks only
    import_run.start(org.staff, batch_id, queue=queue_name)  # the page's "继续导入" button
    finish_on_a_worker(db, batch_id, redis_url, database_url, queue_name)
    names = imported(db)
    assert len(names) == len(set(names)) == ROWS
    events = db.session.execute(select(func.count()).select_from(OwnershipEvent).where(
        OwnershipEvent.reason.like(f"批量导入 #{batch_id}：%"))).scalar_one()
    assert events == ROWS
