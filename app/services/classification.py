"""Classification (潜在 / 活跃 / 沉默) and grading (A/B/C) from the deal history.

potential: never won; active: a deal won within `silent_after_days`; silent: won before, not
since. Grade by the won amount of the trailing 12 months against the admins' thresholds;
a grade set by hand (grade_override) is kept. One set-based UPDATE per chunk of customers,
nightly for everyone and immediately for a customer whose deal was just recorded.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterable, Optional

from sqlalchemy import case, exists, func, select, update

from app.extensions import db
from app.models import Deal, GradingSettings, Ownership, User
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, ROLE_MANAGER, has_role
from app.services import audit
from app.services.errors import NO_SUCH_CUSTOMER, OutOfScope, PermissionDenied, ValidationFailed, tr
from app.services.times import local_date

CHUNK = 20000
GRADES = ("A", "B", "C")


def settings() -> GradingSettings:
    """The one settings row (created with the defaults when missing)."""
    row = db.session.execute(select(GradingSettings).order_by(GradingSettings.id)).scalars().first()
    if row is None:
        row = GradingSettings(silent_after_days=180, grade_a_min=Decimal(500000),
                              grade_b_min=Decimal(100000))
        db.session.add(row)
        db.session.flush()
    return row


def validate_settings(row: GradingSettings) -> None:
    errors = {}
    if row.silent_after_days is None or row.silent_after_days <= 0:
        errors["silent_after_days"] = tr("The silent days must be greater than 0")
    if row.grade_b_min is None or row.grade_b_min < 0:
        errors["grade_b_min"] = tr("The grade B threshold cannot be negative")
    if row.grade_a_min is None or (row.grade_b_min is not None
                                   and row.grade_a_min < row.grade_b_min):
        errors["grade_a_min"] = tr("The grade A threshold cannot be below the grade B threshold")
    if errors:
        raise ValidationFailed(errors)


def _values(today: dt.date, conf: GradingSettings) -> dict:
    """The SET clause: category and grade from correlated subqueries on the deals."""
    cid = Ownership.customer_id
    last_won = select(func.max(Deal.won_on)).where(Deal.customer_id == cid).scalar_subquery()
    any_deal = exists().where(Deal.customer_id == cid)
    category = case((~any_deal, "potential"),
                    (last_won >= today - dt.timedelta(days=conf.silent_after_days), "active"),
                    else_="silent")
    # `won` is not recomputed here: recording a deal sets it (the cap and the reclaim rules
    # read it), and nothing un-wins a customer.
    return {"category": category,
            "grade": func.coalesce(Ownership.grade_override, computed_grade(today, conf))}


def computed_grade(today: dt.date, conf: GradingSettings):
    """The grade the last 12 months' deals give (A/B/C), whatever a hand-set grade says: a
    correlated subquery on Ownership.customer_id (the value re-evaluation compares the two)."""
    year_amount = select(func.coalesce(func.sum(Deal.amount), 0)).where(
        Deal.customer_id == Ownership.customer_id,
        Deal.won_on > today - dt.timedelta(days=365)).scalar_subquery()
    return case((year_amount >= conf.grade_a_min, "A"),
                (year_amount >= conf.grade_b_min, "B"), else_="C")


def classify(customer_ids: Optional[Iterable[int]] = None,
             now: Optional[dt.datetime] = None) -> int:
    """Recompute category and grade for the given customers (all when None), in chunks;
    returns how many rows were written. Commits."""
    today = local_date(now or utcnow())  # deal dates (won_on) are business days
    conf = settings()
    values = _values(today, conf)
    done = 0
    if customer_ids is not None:
        ids = list(customer_ids)
        for start in range(0, len(ids), CHUNK):
            done += db.session.execute(update(Ownership).where(
                Ownership.customer_id.in_(ids[start:start + CHUNK])).values(**values)).rowcount
        db.session.commit()
        # A customer that just became grade A gets its dedicated service agent now, not at
        # the nightly run (one look-up when no dedicated team is set).
        from app.services.service_admin import assign_grade_a

        assign_grade_a(ids, now)
        return done
    last = 0
    while True:  # key ranges of CHUNK customers, a transaction each
        ids = list(db.session.execute(
            select(Ownership.customer_id).where(Ownership.customer_id > last)
            .order_by(Ownership.customer_id).limit(CHUNK)).scalars())
        if not ids:
            return done
        done += db.session.execute(update(Ownership).where(
            Ownership.customer_id.between(ids[0], ids[-1])).values(**values)).rowcount
        db.session.commit()
        last = ids[-1]


def set_grade(actor: User, customer_ids: Iterable[int], grade: Optional[str]) -> list[int]:
    """Managers (in scope) and admins set a grade by hand, or give it back to the nightly
    grading (grade None); audited."""
    from app.services.pool import managed_owner_ids, parse_ids

    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        raise PermissionDenied(tr("Only sales managers and admins can set a customer's grade"))
    if grade is not None and grade not in GRADES:
        raise ValidationFailed({"grade": tr("The grade can only be A, B, C or automatic")})
    ids = parse_ids(customer_ids)
    rows = db.session.execute(select(Ownership.customer_id, Ownership.owner_id)
                              .where(Ownership.customer_id.in_(ids))).all()
    owners = {r.owner_id for r in rows if r.owner_id is not None}
    allowed = managed_owner_ids(actor, owners)
    known = {r.customer_id: r.owner_id for r in rows}
    foreign = [i for i in ids if i not in known or (
        known[i] not in allowed if known[i] is not None else not has_role(actor, ROLE_ADMIN))]
    if foreign:
        raise OutOfScope(tr(NO_SUCH_CUSTOMER), customer_ids=foreign)
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(ids))
                       .values(grade_override=grade))
    for cid in ids:
        audit.record(actor.id, "update", "customer_grade", cid,
                     {"grade_override": (None, grade or "auto")})
    db.session.commit()
    classify(ids)
    return ids
