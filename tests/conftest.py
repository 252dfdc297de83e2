"""Fixtures: the app on SQLite or PostgreSQL (GUISHU_TEST_DB), real Redis, one client per role.

Every test starts from the same small organisation (see `org`): two sales departments under
one sales centre, a manager, two reps and one more rep in the other department, staff, an
auditor, an admin, and one customer held by each rep plus one in the default pool.

Isolation. The organisation is built once per test process and committed. A test then runs
inside one outer transaction that is rolled back when it ends: every session the test and
its requests open joins that transaction, and their commits become SAVEPOINT releases.
Tests whose work must really commit (other threads or processes read it: race tests, RQ
workers, a live server) carry the `real_db` mark, and so run, as does every test that asks
for `db` without `org` (it starts from an empty organisation), against the committed
database, which is rebuilt after them. Under pytest-xdist every worker has its own
database, Redis db and instance folder (tests/isolation.py).
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, fields

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from tests import isolation, services_boot

BACKEND = os.environ.get("GUISHU_TEST_DB", "sqlite")
PASSWORD = "Test-pass-123"
CI = os.environ.get("CI", "").lower() == "true"
_state = {"redis_url": None, "redis_how": "", "skipped_infra": [], "org_ids": None}

# config.py reads the instance folder when it is imported: give this worker its own first.
isolation.own_instance_dir()


def pytest_report_header(config):
    return f"guishu: database backend = {BACKEND}"


def pytest_configure(config):
    config.addinivalue_line("markers", "real_db: the test commits for real (threads, worker "
                                       "processes or a live server read its data)")
    config.addinivalue_line("markers", "slow: demo, race, browser and worker tests (still run "
                                       "by make test; -m 'not slow' leaves them out)")


# Whole modules whose tests hand their data to other threads or processes.
_REAL_DB_MODULES = {"test_race_claims", "test_browser", "test_jobs", "test_jobs_import"}
# A test that takes these hands the database or Redis to another process (a worker) or
# thread (a live server): what it wrote must really be committed.
_HANDS_OVER = {"database_url", "redis_url", "live_url"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        hands_over = _HANDS_OVER & set(getattr(item, "_fixtureinfo").argnames)
        if module in _REAL_DB_MODULES or hands_over or item.get_closest_marker("real_db"):
            item.add_marker(pytest.mark.real_db)
            item.add_marker(pytest.mark.slow)
        elif module == "test_demo":
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report):
    # With CI=true a skipped PostgreSQL or Redis test is a failure (see pytest_sessionfinish).
    if report.skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if re.search(r"postgres|redis", reason, re.IGNORECASE):
            _state["skipped_infra"].append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if CI and _state["skipped_infra"]:
        print("\nCI=true and PostgreSQL/Redis tests were skipped:")
        for line in _state["skipped_infra"]:
            print("  " + line)
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """No thread, child process or checked-out database connection may outlive its test."""
    before = isolation.Residents.now()
    yield
    left = isolation.Residents.now().left_behind_since(before)
    if left:
        pytest.fail(f"{request.node.nodeid} left running: {left}", pytrace=False)


@pytest.fixture(scope="session")
def database_url():
    if BACKEND == "postgres":
        url, how = services_boot.find_postgres()
        if url is None:
            pytest.exit(f"GUISHU_TEST_DB=postgres but no PostgreSQL could be reached or started: {how}",
                        returncode=3)
        print(f"\nPostgreSQL for tests: {how}")
        # A database of this worker's own, so parallel workers and runs cannot collide.
        own = services_boot.create_scratch_database(url)
        yield own or url
        if own:
            services_boot.drop_scratch_database(url, own)
        return
    folder = tempfile.mkdtemp(prefix="guishu-test-")
    yield f"sqlite:///{folder}/test.db"


@pytest.fixture(scope="session")
def redis_url():
    url, how = services_boot.find_redis()
    if url is not None:
        url = isolation.own_redis_db(url)
    _state["redis_url"], _state["redis_how"] = url, how
    yield url
    if url is not None:
        isolation.release_redis_db(url)


class FreshContextClient(FlaskClient):
    """Each request in its own app context, as in production.

    Tests hold an app context open (for db.session); Flask would reuse it for requests, so
    `g.user` from one client's request would leak into the next client's request.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(database_url, redis_url, tmp_path_factory):
    if BACKEND == "postgres":
        import sqlalchemy as sa

        engine = sa.create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    from config import TestConfig

    from app import create_app

    application = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url,
                             REDIS_URL=redis_url or "redis://127.0.0.1:1/0")
    application.test_client_class = FreshContextClient
    with application.app_context():
        from flask_migrate import upgrade

        from app.extensions import db as _db

        upgrade()
        isolation.watch_engine(_db.engine)
        _rebuild(_db, with_org=True)
        _db.session.remove()
    yield application
    with application.app_context():
        from app.extensions import db as _db

        _db.session.remove()
        _db.engine.dispose()


_KEEP = {"ab_role", "ab_permission", "ab_view_menu", "ab_permission_view",
         "ab_permission_view_role", "alembic_version", "ab_group", "ab_group_role"}


def _wipe(db):
    from flask_appbuilder import Model

    db.session.remove()
    tables = [t for t in Model.metadata.sorted_tables if t.name not in _KEEP]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return
    # Every row goes: the foreign keys have nothing to guard (and a RESTRICT action fires
    # row by row, whatever the order, once a worker process has written the same tables).
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, as it must be
        conn.commit()
        try:
            with conn.begin():
                for t in reversed(tables):
                    conn.execute(t.delete())
                # Deleting the ownership rows made the owner tally's triggers write changes.
                conn.execute(Model.metadata.tables["owner_tally"].delete())
                conn.exec_driver_sql("DELETE FROM sqlite_sequence") if conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'").first() \
                    else None
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _rebuild(db, *, with_org: bool) -> None:
    """The committed starting point: bootstrap data, and the organisation when with_org."""
    from app.services import bootstrap

    _wipe(db)
    bootstrap.initialise()
    _state["org_ids"] = _build_org(db) if with_org else None
    db.session.remove()


@dataclass
class Org:
    admin: object
    manager: object          # manages 华东 (east), which has rep and rep2
    manager_north: object
    rep: object
    rep2: object
    rep_north: object
    staff: object
    auditor: object
    marketing: object        # 市场专员 (ops department), reads everything masked
    service_manager: object  # 客服主管 svcmgr1 (客服中心)
    agent: object            # 客服 agent1 (客服中心), reports to svcmgr1
    agent2: object           # 客服 agent2 (客服中心), reports to svcmgr1
    service: object          # the department 客服中心
    east: object
    north: object
    centre: object
    pool: object
    c_rep: object            # customer owned by rep
    c_rep2: object           # owned by rep2 (same department as rep)
    c_north: object          # owned by rep_north (other department)
    c_pool: object           # in the default pool


def make_user(username, role_name, department=None, superior=None):
    from app.extensions import appbuilder, db

    sm = appbuilder.sm
    user = sm.add_user(username, username, "测试", f"{username}@test.local",
                       sm.find_role(role_name), PASSWORD)
    assert user, f"could not create {username}"
    user.department_id = department.id if department else None
    user.superior_id = superior.id if superior else None
    db.session.commit()
    return user


def _build_org(db) -> dict:
    """Create the organisation; {Org field: (model class, id)}."""
    from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP,
                              ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF)
    from app.services import customers, org as org_service
    from app.services.ownership import default_pool

    centre = org_service.create_department("销售中心")
    east = org_service.create_department("华东大区", parent=centre)
    north = org_service.create_department("华北大区", parent=centre)
    ops = org_service.create_department("运营中心")
    admin = make_user("admin", ROLE_ADMIN)
    manager = make_user("manager1", ROLE_MANAGER, east)
    manager_north = make_user("manager2", ROLE_MANAGER, north)
    rep = make_user("rep1", ROLE_REP, east, manager)
    rep2 = make_user("rep2", ROLE_REP, east, manager)
    rep_north = make_user("rep3", ROLE_REP, north, manager_north)
    staff = make_user("staff1", ROLE_STAFF, ops)
    auditor = make_user("auditor1", ROLE_AUDITOR, ops)
    marketing = make_user("marketing1", ROLE_MARKETING, ops)
    service = org_service.create_department("客服中心")
    service_manager = make_user("svcmgr1", ROLE_SERVICE_MANAGER, service)
    agent = make_user("agent1", ROLE_SERVICE_AGENT, service, service_manager)
    agent2 = make_user("agent2", ROLE_SERVICE_AGENT, service, service_manager)
    east.manager_id, north.manager_id = manager.id, manager_north.id
    service.manager_id = service_manager.id
    db.session.commit()
    c_rep = customers.create_customer(rep, {"name": "杭州云帆科技有限公司", "mobile": "13800138000",
                                            "city": "杭州", "province": "浙江"})
    c_rep2 = customers.create_customer(rep2, {"name": "苏州恒信电子有限公司", "mobile": "13900139000"})
    c_north = customers.create_customer(rep_north, {"name": "北京华联商贸有限公司",
                                                    "email": "Contact@HuaLian.cn"})
    c_pool = customers.create_customer(staff, {"name": "上海申达物流有限公司",
                                               "phone": "021-62345678"})
    made = dict(admin=admin, manager=manager, manager_north=manager_north, rep=rep, rep2=rep2,
                rep_north=rep_north, staff=staff, auditor=auditor, marketing=marketing,
                service_manager=service_manager, agent=agent, agent2=agent2, service=service,
                east=east, north=north,
                centre=centre, pool=default_pool(), c_rep=c_rep, c_rep2=c_rep2,
                c_north=c_north, c_pool=c_pool)
    return {name: (type(obj), obj.id) for name, obj in made.items()}


@contextmanager
def _rolled_back(database):
    """Every session opened inside joins one outer transaction, rolled back at the end."""
    engine = database.engine
    conn = engine.connect()
    raw = conn.connection.driver_connection
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # pysqlite opens transactions itself (only before DML), so a SAVEPOINT would start
        # one and its RELEASE commit it. Take that over: BEGIN here, savepoints inside.
        raw.isolation_level = None
    outer = conn.begin()
    if sqlite:
        conn.exec_driver_sql("BEGIN")
    factory = database.session.session_factory
    saved_kw, saved_class = dict(factory.kw), factory.class_

    class JoinedSession(saved_class):
        # Flask-SQLAlchemy's get_bind always answers the engine; here it is the connection.
        def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
            return bind if bind is not None else self.bind

    database.session.remove()
    factory.class_ = JoinedSession
    factory.configure(bind=conn, join_transaction_mode="create_savepoint")
    try:
        yield
    finally:
        database.session.remove()
        factory.class_ = saved_class
        factory.kw.clear()
        factory.kw.update(saved_kw)
        if outer.is_active:
            outer.rollback()
        if sqlite:
            raw.isolation_level = ""
        conn.close()


@pytest.fixture
def db(app, redis_url, request):
    from app.extensions import db as _db

    if redis_url is not None:
        isolation.empty_redis_db(redis_url)  # jobs queued by earlier tests name rolled-back rows

    wants_org = "org" in request.fixturenames
    committing = request.node.get_closest_marker("real_db") is not None or not wants_org
    with app.app_context():
        if not committing:
            with _rolled_back(_db):
                yield _db
                _check_tally(_db)
            return
        if not wants_org:
            _rebuild(_db, with_org=False)
        try:
            yield _db
            _check_tally(_db)
        finally:
            _db.session.remove()
            _rebuild(_db, with_org=True)


def _check_tally(database) -> None:
    """After every test: the owner tally (kept by triggers, app.services.tally) equals a
    recount of the ownership rows, whatever paths the test wrote them through. Skipped only
    when the test left its transaction unusable (an expected database error it caught)."""
    from sqlalchemy.exc import DBAPIError, PendingRollbackError

    from app.services import tally

    if not database.session.is_active:
        return
    try:
        drift = tally.drift()  # in the test's own session: what it wrote, committed or not
    except PendingRollbackError:
        return
    except DBAPIError as exc:
        if "current transaction is aborted" in str(exc):
            return
        raise
    if drift:
        pytest.fail(f"owner tally differs from a recount (tally, recount): {drift}")


@pytest.fixture
def org(db):
    """The organisation, loaded into this test's session."""
    return Org(**{f.name: db.session.get(*_state["org_ids"][f.name]) for f in fields(Org)})


# --- web clients ---------------------------------------------------------------------------
_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(client, path="/login/") -> str:
    html = client.get(path).get_data(as_text=True)
    m = _CSRF_RE.search(html)
    assert m, f"no csrf token on {path}"
    return m.group(1) or m.group(2)


def login(client, username):
    token = csrf_token(client)
    resp = client.post("/login/", data={"username": username, "password": PASSWORD,
                                        "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    # Signing in keeps the session's CSRF secret, so the login page's token stays valid.
    client.csrf = token
    return client


def _client(app, user):
    client = app.test_client()
    return login(client, user.username)


@pytest.fixture
def admin_client(app, org):
    return _client(app, org.admin)


@pytest.fixture
def manager_client(app, org):
    return _client(app, org.manager)


@pytest.fixture
def rep_client(app, org):
    return _client(app, org.rep)


@pytest.fixture
def backoffice_client(app, org):
    return _client(app, org.staff)


@pytest.fixture
def auditor_client(app, org):
    return _client(app, org.auditor)


@pytest.fixture
def marketing_client(app, org):
    return _client(app, org.marketing)


class RoleClients:
    """One logged-in client per role, by role key, each signed in when first used."""

    _USERS = {"admin": "admin", "manager": "manager", "rep": "rep", "staff": "staff",
              "auditor": "auditor", "marketing": "marketing", "agent": "agent",
              "service_manager": "service_manager"}

    def __init__(self, app, org):
        self._app, self._org = app, org

    def __getattr__(self, role):
        if role not in self._USERS:
            raise AttributeError(role)
        client = _client(self._app, getattr(self._org, self._USERS[role]))
        setattr(self, role, client)
        return client


@pytest.fixture
def clients(app, org):
    return RoleClients(app, org)


def api_token(client, username) -> str:
    resp = client.post("/api/v1/security/login", json={"username": username, "password": PASSWORD,
                                                       "provider": "db"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["access_token"]


@pytest.fixture
def api(app, org):
    """api(username) -> a callable (method, path, json=None) with that user's JWT."""

    def make(username):
        client = app.test_client()
        token = api_token(client, username)

        def call(method, path, **kwargs):
            return client.open(path, method=method,
                               headers={"Authorization": f"Bearer {token}"}, **kwargs)

        return call

    return make
