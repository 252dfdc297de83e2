"""Reclaim warnings count working days of the work calendar: on Friday Feb 13 2026 (Beijing)
"within the next 3 working days" reaches over the 调休 Saturday and 春节 to Wednesday Feb 25,
where 3 calendar days would stop on Monday Feb 16. Customers and leads alike; fixed dates."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import LeadOwnership, Ownership, Policy, ReclaimWarning
from app.services import customers, lead_warnings, leads, reclaim
from app.services import work_calendar as wc

DAY = dt.timedelta(days=1)
NOW = dt.datetime(2026, 2, 13, 2, 0)  # Friday 10:00 in Beijing


@pytest.fixture(autouse=True)
def beijing(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")


@pytest.fixture
def calendar(db, org):
    wc.seed_year(2026)
    row = db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one()
    row.reclaim_no_followup_days, row.reclaim_no_deal_days = 30, 90
    row.lead_reclaim_no_followup_days, row.warn_before_days = 15, 3
    db.session.execute(update(Ownership).where(Ownership.owner_id.is_not(None))
                       .values(acquired_at=NOW - DAY))  # the org fixture's: fresh
    db.session.commit()


def owned(db, org, name, due_at) -> int:
    """A customer of rep1 whose 30-days-without-follow-up deadline is `due_at`."""
    c = customers.create_customer(org.rep, {"name": name})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id).values(
        acquired_at=due_at - 30 * DAY, last_followup_at=None))
    db.session.commit()
    return c.id


def test_customer_warnings_reach_over_the_holiday(db, org, calendar):
    in_holiday = owned(db, org, "春节期间到期", NOW + 7 * DAY)            # Fri Feb 20
    last_day = owned(db, org, "第三个工作日到期", NOW + 12 * DAY - dt.timedelta(hours=1))
    after = owned(db, org, "第四个工作日到期", NOW + 12 * DAY + dt.timedelta(hours=1))
    assert reclaim.warn(now=NOW) == 2
    warned = set(db.session.execute(select(ReclaimWarning.customer_id)).scalars())
    assert warned == {in_holiday, last_day}
    assert after not in warned


def test_customer_warnings_over_a_normal_weekend(db, org, calendar):
    friday = dt.datetime(2026, 3, 6, 2, 0)
    by_wednesday = owned(db, org, "周三到期", friday + 5 * DAY - dt.timedelta(hours=1))
    thursday = owned(db, org, "周四到期", friday + 6 * DAY)
    assert reclaim.warn(now=friday) == 1
    assert set(db.session.execute(select(ReclaimWarning.customer_id)).scalars()) == {
        by_wednesday}
    assert thursday


def test_lead_warnings_count_working_days_too(db, org, calendar):
    in_holiday = leads.create_lead(org.rep, {"person_name": "春节线索"})
    later = leads.create_lead(org.rep, {"person_name": "节后线索"})
    for lead, due in ((in_holiday, NOW + 10 * DAY), (later, NOW + 13 * DAY)):  # Feb 23 / 26
        db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == lead.id)
                           .values(acquired_at=due - 15 * DAY, last_followup_at=None))
    db.session.commit()
    assert lead_warnings.warn(now=NOW) == 1
    assert lead_warnings.warn(now=NOW) == 0  # once per cycle
