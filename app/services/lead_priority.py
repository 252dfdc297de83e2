"""A lead's priority score (优先级), rule-based and explained: four rules, each giving points,
stored one column per rule beside their sum (lead.priority_*), so the lead page shows which
rule gave how many points and the list and the API sort by the indexed sum.

    source        the source channel: referral 30, exhibition 25, website form / phone 20,
                  marketing campaign 15, advertising 10, other 5, none 0
    completeness  5 per contact field given (mobile 10): company, person, mobile, phone,
                  e-mail, province or city — at most 35
    engagement    10 per follow-up in the last ENGAGEMENT_DAYS days, at most 30
    age           fresh leads first: created within 3 days 20, 7 days 15, 30 days 5, else 0

`recompute` is the one place the rules are written: one UPDATE whose SET computes every part
in SQL, for one lead (after create, edit, follow-up) or for every open lead (the nightly job:
age and engagement change with the calendar, not with a write).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import and_, case, func, literal, or_, select, update

from app.extensions import db
from app.models import Lead, LeadFollowUp
from app.models.customer import utcnow
from app.models.lead import LEAD_SOURCES
from app.services.errors import lazy_tr, tr

SOURCE_POINTS = {"referral": 30, "exhibition": 25, "web_form": 20, "phone": 20,
                 "campaign": 15, "advertising": 10, "other": 5}
FIELD_POINTS = (("company_name", 5), ("person_name", 5), ("mobile", 10), ("phone", 5),
                ("email", 5))
PLACE_POINTS = 5  # province or city
ENGAGEMENT_DAYS = 14
ENGAGEMENT_EACH, ENGAGEMENT_MAX = 10, 30
AGE_POINTS = ((3, 20), (7, 15), (30, 5))  # created within N days -> points; older: 0
OPEN = ("new", "working")

RULE_LABELS = {
    "source": lazy_tr("Source channel"),
    "completeness": lazy_tr("Contact fields given"),
    "engagement": lazy_tr("Follow-ups in the last %(days)s days", days=ENGAGEMENT_DAYS),
    "age": lazy_tr("Age of the lead"),
}


def _given(column):
    return case((and_(column.is_not(None), column != ""), 1), else_=0)


def parts(now: dt.datetime) -> dict[str, Any]:
    """The rules as SQL expressions over a lead row, by rule name."""
    source = case(*[(Lead.source == code, points) for code, points in SOURCE_POINTS.items()],
                  else_=0)
    completeness = sum((_given(getattr(Lead, name)) * points for name, points in FIELD_POINTS),
                       start=literal(0))
    completeness = completeness + case((or_(_given(Lead.province) == 1,
                                            _given(Lead.city) == 1), PLACE_POINTS), else_=0)
    recent = (select(func.count()).select_from(LeadFollowUp)
              .where(LeadFollowUp.lead_id == Lead.id,
                     LeadFollowUp.happened_at >= now - dt.timedelta(days=ENGAGEMENT_DAYS))
              .scalar_subquery())
    engagement = case((recent * ENGAGEMENT_EACH > ENGAGEMENT_MAX, ENGAGEMENT_MAX),
                      else_=recent * ENGAGEMENT_EACH)
    age = case(*[(Lead.created_at >= now - dt.timedelta(days=days), points)
                 for days, points in AGE_POINTS], else_=0)
    return {"source": source, "completeness": completeness, "engagement": engagement,
            "age": age}


def recompute(lead_id: Optional[int] = None, now: Optional[dt.datetime] = None) -> int:
    """Set every part and the score: of one lead, or (None) of every open lead. One UPDATE;
    the caller commits. Returns the rows written."""
    now = now or utcnow()
    p = parts(now)
    where = Lead.id == lead_id if lead_id is not None else Lead.status.in_(OPEN)
    return db.session.execute(
        update(Lead).where(where).values(
            priority_source=p["source"], priority_completeness=p["completeness"],
            priority_engagement=p["engagement"], priority_age=p["age"],
            priority_score=p["source"] + p["completeness"] + p["engagement"] + p["age"])
        .execution_options(synchronize_session=False)).rowcount


def recompute_all(now: Optional[dt.datetime] = None) -> int:
    """The nightly job: every open lead, set-based, committed."""
    try:
        n = recompute(None, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return n


def explanation(lead: Lead) -> list[dict[str, Any]]:
    """The stored parts of a lead's score, each with its rule and what it read (the lead
    page shows these lines; they add up to lead.priority_score)."""
    given = [name for name, _points in FIELD_POINTS if getattr(lead, name)]
    if lead.province or lead.city:
        given.append("place")
    return [
        {"rule": "source", "label": str(RULE_LABELS["source"]), "points": lead.priority_source,
         "detail": str(LEAD_SOURCES[lead.source]) if lead.source in LEAD_SOURCES
         else tr("none")},
        {"rule": "completeness", "label": str(RULE_LABELS["completeness"]),
         "points": lead.priority_completeness,
         "detail": tr("%(n)s of %(total)s", n=len(given), total=len(FIELD_POINTS) + 1)},
        {"rule": "engagement", "label": str(RULE_LABELS["engagement"]),
         "points": lead.priority_engagement,
         "detail": tr("%(n)s points each, at most %(max)s", n=ENGAGEMENT_EACH,
                      max=ENGAGEMENT_MAX)},
        {"rule": "age", "label": str(RULE_LABELS["age"]), "points": lead.priority_age,
         "detail": tr("created %(date)s", date=_date(lead.created_at))},
    ]


def _date(value: Optional[dt.datetime]) -> str:
    from app.services.times import local_date

    return str(local_date(value)) if value else ""
