"""Pages of SLA policies, the work calendar and the working hours: every route × every role
(including the service agent and the service manager), the exact answer and whether the
database changed; refusals shown beside their field."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.models import AuditLog
from app.models.service_desk import ServiceSettings, SlaPolicy, WorkCalendarDay
from app.services import sla_policies, work_calendar
from tests.conftest import login

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing", "agent", "service_manager")
EDITORS = {"admin", "service_manager"}


def _only(*roles, ok=200, other=403) -> dict:
    return {r: (ok if r in roles else other) for r in ROLES}


@pytest.fixture
def ids(db, org):
    policy = sla_policies.create(org.admin, {"name": "矩阵策略", "first_response_minutes": 60,
                                             "resolution_minutes": 480})
    day = work_calendar.put_day(org.admin, {"day": "2030-05-06", "is_workday": False,
                                            "name": "矩阵假日"})
    return SimpleNamespace(policy=policy.id, day=day.id)


def state(db) -> tuple:
    db.session.expire_all()
    return (db.session.execute(select(func.count(AuditLog.id))).scalar(),
            db.session.execute(select(func.count(SlaPolicy.id))).scalar(),
            db.session.execute(select(func.count(WorkCalendarDay.id))).scalar(),
            db.session.execute(select(ServiceSettings.work_periods)).scalars().all())


POLICY_FORM = {"name": "新策略", "priority": "P2", "grade": "", "first_response_minutes": "30",
               "resolution_minutes": "240", "clock": "business", "warn_before_minutes": "10",
               "escalate_after_minutes": "60", "position": "5", "active": "y"}
ROUTES = [
    ("GET", "/sla-policies/list/", None, _only("admin", "service_manager", "agent"), False),
    ("GET", "/sla-policies/show/{policy}", None, _only("admin", "service_manager", "agent"),
     False),
    ("GET", "/sla-policies/add", None, _only(*EDITORS), False),
    ("POST", "/sla-policies/add", POLICY_FORM, _only(*EDITORS, ok=302), True),
    ("POST", "/sla-policies/edit/{policy}", dict(POLICY_FORM, name="改名策略"),
     _only(*EDITORS, ok=302), True),
    ("POST", "/sla-policies/delete/{policy}", {}, _only(*EDITORS, ok=302), True),
    ("GET", "/work-calendar/", None, _only(*EDITORS), False),
    ("GET", "/work-calendar/?year=2030&edit={day}", None, _only(*EDITORS), False),
    ("POST", "/work-calendar/put", {"day": "2030-05-11", "is_workday": "1", "name": "调休"},
     _only(*EDITORS, ok=302), True),
    ("POST", "/work-calendar/{day}/delete", {}, _only(*EDITORS, ok=302), True),
    ("POST", "/work-calendar/seed", {"year": "2025"}, _only(*EDITORS, ok=302), True),
    ("GET", "/working-hours/", None, _only(*EDITORS), False),
    ("POST", "/working-hours/save", {"work_periods": "08:30-12:00,13:00-17:30"},
     _only(*EDITORS, ok=302), True),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_routes_by_role(app, db, org, ids, role, method, path, form, expected, changes):
    client = login(app.test_client(), getattr(org, role).username)
    url = path.format(**vars(ids))
    before = state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        data = {k: v.format(**vars(ids)) for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf))
    assert resp.status_code == expected[role], (role, url)
    assert (state(db) != before) == (changes and role in EDITORS), (role, url)


def test_a_post_without_csrf_changes_nothing(app, db, org):
    client = login(app.test_client(), org.service_manager.username)
    before = state(db)
    resp = client.post("/working-hours/save", data={"work_periods": "08:00-17:00"})
    assert resp.status_code == 400 and state(db) == before


def test_refusals_stand_beside_their_fields(app, db, org, ids):
    client = login(app.test_client(), org.service_manager.username)
    resp = client.post("/working-hours/save", data={"work_periods": "12:00-09:00",
                                                    "csrf_token": client.csrf})
    assert resp.status_code == 400
    assert "时段 12:00-09:00 的结束早于开始" in resp.get_data(as_text=True)
    resp = client.post("/work-calendar/put", data={"day": "2030-13-01", "is_workday": "1",
                                                   "csrf_token": client.csrf})
    assert resp.status_code == 400
    assert "请填写 1990 到 2100 年之间的日期（YYYY-MM-DD）" in resp.get_data(as_text=True)
    resp = client.post("/sla-policies/add", data=dict(
        POLICY_FORM, first_response_minutes="600", resolution_minutes="60",
        csrf_token=client.csrf))
    assert resp.status_code == 200
    assert "解决时限（60 分钟）短于首次响应时限（600 分钟）" in resp.get_data(as_text=True)
    assert db.session.execute(select(func.count(SlaPolicy.id))).scalar() == 1


def test_the_calendar_page_lists_the_year(app, db, org, ids):
    client = login(app.test_client(), org.admin.username)
    work_calendar.seed_year(2026)
    text = client.get("/work-calendar/?year=2026").get_data(as_text=True)
    assert "2026-02-14" in text and "2026-02-17" in text and "2030-05-06" not in text
    assert work_calendar.is_workday(dt.date(2026, 2, 14))
