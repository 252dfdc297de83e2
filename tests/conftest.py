"""Fixtures: the app on SQLite or PostgreSQL (GUISHU_TEST_DB), real Redis, one client per role.

Every test starts from the same small organisation (see `org`): two sales departments under
one sales centre, a manager, two reps and one more rep in the other department, staff, an
auditor, an admin, and one customer held by each rep plus one in the default pool.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from tests import services_boot

BACKEND = os.environ.get("GUISHU_TEST_DB", "sqlite")
PASSWORD = "Test-pass-123"
CI = os.environ.get("CI", "").lower() == "true"
_state = {"redis_url": None, "redis_how": "", "skipped_infra": []}


def pytest_report_header(config):
    return f"guishu: database backend = {BACKEND}"


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


@pytest.fixture(scope="session")
def database_url():
    if BACKEND == "postgres":
        url, how = services_boot.find_postgres()
        if url is None:
            pytest.exit(f"GUISHU_TEST_DB=postgres but no PostgreSQL could be reached or started: {how}",
                        returncode=3)
        print(f"\nPostgreSQL for tests: {how}")
        # A database of this run's own, so parallel runs on one server cannot collide.
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
    _state["redis_url"], _state["redis_how"] = url, how
    return url


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
    os.environ.setdefault("GUISHU_INSTANCE_DIR", str(tmp_path_factory.mktemp("instance")))
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

        upgrade()
        from app.services import bootstrap

        bootstrap.initialise()
    yield application


_KEEP = {"ab_role", "ab_permission", "ab_view_menu", "ab_permission_view",
         "ab_permission_view_role", "alembic_version", "ab_group", "ab_group_role"}


def _wipe(db):
    from flask_appbuilder import Model

    tables = [t for t in Model.metadata.sorted_tables if t.name not in _KEEP]
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.session.commit()
        return
    with db.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        for t in reversed(tables):
            conn.execute(t.delete())
        conn.exec_driver_sql("DELETE FROM sqlite_sequence") if conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'").first() else None


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


@pytest.fixture
def db(app):
    from app.extensions import db as _db

    with app.app_context():
        _wipe(_db)
        from app.services import bootstrap

        bootstrap.initialise()
        yield _db
        _db.session.remove()


@pytest.fixture
def org(db):
    from app.security import ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP, ROLE_STAFF
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
    east.manager_id, north.manager_id = manager.id, manager_north.id
    db.session.commit()
    c_rep = customers.create_customer(rep, {"name": "杭州云帆科技有限公司", "mobile": "13800138000",
                                            "city": "杭州", "province": "浙江"})
    c_rep2 = customers.create_customer(rep2, {"name": "苏州恒信电子有限公司", "mobile": "13900139000"})
    c_north = customers.create_customer(rep_north, {"name": "北京华联商贸有限公司",
                                                    "email": "Contact@HuaLian.cn"})
    c_pool = customers.create_customer(staff, {"name": "上海申达物流有限公司",
                                               "phone": "021-62345678"})
    return Org(admin=admin, manager=manager, manager_north=manager_north, rep=rep, rep2=rep2,
               rep_north=rep_north, staff=staff, auditor=auditor, east=east, north=north,
               centre=centre, pool=default_pool(), c_rep=c_rep, c_rep2=c_rep2,
               c_north=c_north, c_pool=c_pool)


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
    client.csrf = csrf_token(client, "/customers/list/")
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
def clients(app, org):
    """One logged-in client per role, by role key."""
    return SimpleNamespace(admin=_client(app, org.admin), manager=_client(app, org.manager),
                           rep=_client(app, org.rep), staff=_client(app, org.staff),
                           auditor=_client(app, org.auditor))


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
