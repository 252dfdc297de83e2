"""The suite's own isolation: what a test commits is gone after it, and what it leaves
running is caught."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from sqlalchemy import create_engine, func, select

from app.models import Customer, Ownership
from app.services import customers
from tests import isolation
from tests.conftest import _rolled_back


def _committed_names(database_url: str) -> set[str]:
    """Names as another connection sees them: only what was really committed."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(Customer.name)).scalars())
    finally:
        engine.dispose()


def test_a_commit_inside_a_test_is_a_savepoint_and_is_rolled_back(app, db, org):
    # `db` holds this test in an outer transaction: the service's commit stays inside it.
    # (Asking for the database_url fixture would make this a real_db test.)
    customers.create_customer(org.rep, {"name": "隔离测试有限公司"})
    assert db.session.execute(select(func.count()).select_from(Customer).where(
        Customer.name == "隔离测试有限公司")).scalar_one() == 1
    # SQLite: a RELEASE of the outermost SAVEPOINT would commit; the outer BEGIN prevents it.
    assert "隔离测试有限公司" not in _committed_names(app.config["SQLALCHEMY_DATABASE_URI"])


def test_what_a_test_commits_is_gone_after_it(app):
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    from app.extensions import db as _db
    from app.models import User

    with app.app_context():
        before = _committed_names(database_url)
        with _rolled_back(_db):
            staff = _db.session.execute(select(User).where(User.username == "staff1")).scalar_one()
            customers.create_customer(staff, {"name": "回滚客户有限公司"})
            _db.session.commit()
            assert "回滚客户有限公司" in set(_db.session.execute(select(Customer.name)).scalars())
        assert _committed_names(database_url) == before
        assert _db.session.execute(select(func.count()).select_from(Ownership)).scalar_one() == 4
        _db.session.remove()


def test_a_thread_left_running_is_named():
    before = isolation.Residents.now()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="forgotten-server", daemon=True)
    thread.start()
    old_grace, isolation.GRACE_SECONDS = isolation.GRACE_SECONDS, 0.2
    try:
        assert isolation.Residents.now().left_behind_since(before) == \
            "threads forgotten-server"
    finally:
        isolation.GRACE_SECONDS = old_grace
        stop.set()
        thread.join()
    assert isolation.Residents.now().left_behind_since(before) == ""


def test_a_child_process_left_running_is_named():
    before = isolation.Residents.now()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    old_grace, isolation.GRACE_SECONDS = isolation.GRACE_SECONDS, 0.2
    try:
        left = isolation.Residents.now().left_behind_since(before)
        assert left.startswith(f"processes {child.pid} ") and "time.sleep(30)" in left
    finally:
        isolation.GRACE_SECONDS = old_grace
        child.kill()
        child.wait()
    assert isolation.Residents.now().left_behind_since(before) == ""


def test_a_checked_out_connection_is_counted(app, db, org):
    before = isolation.Residents.now()
    conn = db.engine.connect()
    old_grace, isolation.GRACE_SECONDS = isolation.GRACE_SECONDS, 0.2
    try:
        assert isolation.Residents.now().left_behind_since(before) == \
            "1 database connection(s) still checked out"
    finally:
        isolation.GRACE_SECONDS = old_grace
        conn.close()


def test_workers_racing_for_the_same_free_redis_dbs_never_share_one(redis_url):
    """Eight workers whose preferred databases are taken (a killed run's claims) look for a
    free one in the same order at the same moment: each gets its own."""
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    got: list[str] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for round_ in range(3):  # claim, give back, claim again: chances to interleave
            url = isolation.own_redis_db(redis_url)
            isolation.empty_redis_db(url)  # what every test does to its database
            if round_ < 2:
                isolation.release_redis_db(url)
            else:
                got.append(url)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    try:
        for t in threads:
            t.start()
    finally:
        for t in threads:
            t.join()
    try:
        assert len(got) == 8 and len(set(got)) == 8, got
        assert redis_url not in got
    finally:
        for url in got:
            isolation.release_redis_db(url)


def test_two_runs_on_one_machine_never_share_a_redis_db(redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    other = isolation.own_redis_db(redis_url)  # what a second run's worker would be given
    try:
        assert other != redis_url
    finally:
        isolation.release_redis_db(other)
    again = isolation.own_redis_db(redis_url)  # released: free for the next run
    isolation.release_redis_db(again)
    assert again == other
