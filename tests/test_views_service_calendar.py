"""Pages of SLA policies, the work calendar and the working hours: CSRF, refusals shown beside
their field, the year's list (the role × route matrix: tests/test_views_access.py)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.models import AuditLog
from app.models.service_desk import ServiceSettings, SlaPolicy, WorkCalendarDay
from app.services import sla_policies, work_calendar
from tests.conftest import login

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
