"""Absences (休假): who is on leave, and when. A user records their own leave, a manager the
leave of users in their data scope, an admin anyone's; every change is audited.

While a user is away (any business date from `starts_on` to `ends_on`, inclusive) the
automatic pickers pass them over: even distribution, the assignment rules (new customers,
imports, pool rules, departure handover by rules) and an assignment to them; their reclaim
warnings go to their superior, else their department's manager. `absent_user_ids(day)` and
`current_absences(ids, day)` answer "who is away" in one statement each.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Absence, Department, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import ROLE_ADMIN, ROLE_MANAGER, Scope, has_role, scope_of, \
    visible_owner_ids
from app.services import audit, limits, ownership
from app.services.errors import (Conflict, NotFound, OutOfScope, PermissionDenied,
                                 ValidationFailed, lazy_tr, tr)
from app.services.ids import parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_today

MAX_DAYS = 366       # the longest absence, in days (both ends counted)
REASON_MAX = 200     # the reason's column

ACTIVE, CANCELLED, PAST, UPCOMING = "active", "cancelled", "past", "upcoming"
STATUS_LABELS = {ACTIVE: lazy_tr("On leave now"), CANCELLED: lazy_tr("Cancelled"),
                 PAST: lazy_tr("Ended"), UPCOMING: lazy_tr("Not started")}


def status_of(absence: Absence, today: Optional[dt.date] = None) -> str:
    today = today or local_today()
    if absence.cancelled_at is not None:
        return CANCELLED
    if absence.ends_on < today:
        return PAST
    if absence.starts_on > today:
        return UPCOMING
    return ACTIVE


def status_label(absence: Absence) -> str:
    return str(STATUS_LABELS[status_of(absence)])


def period_text(starts_on: dt.date, ends_on: dt.date) -> str:
    return f"{starts_on.isoformat()}–{ends_on.isoformat()}"


def on_leave_text(starts_on: dt.date, ends_on: dt.date) -> str:
    """"休假中 2026-12-01–2026-12-05": how pages and refusals name an absence."""
    return tr("On leave %(period)s", period=period_text(starts_on, ends_on))


# --- reading ---------------------------------------------------------------------------------
def _current(day: dt.date):
    return (Absence.cancelled_at.is_(None), Absence.starts_on <= day, Absence.ends_on >= day)


def absent_user_ids(day: Optional[dt.date] = None) -> set[int]:
    """The users on leave on business date `day` (default today), in one statement."""
    day = day or local_today()
    return set(db.session.execute(select(Absence.user_id).where(*_current(day))).scalars())


def current_absences(user_ids: Optional[Iterable[int]] = None,
                     day: Optional[dt.date] = None) -> dict[int, tuple[dt.date, dt.date]]:
    """{user id: (from, to)} of those of `user_ids` (default: everyone) on leave on `day`, in
    one statement. (Absences of one user never overlap, so each has at most one.)"""
    day = day or local_today()
    q = select(Absence.user_id, Absence.starts_on, Absence.ends_on).where(*_current(day))
    if user_ids is not None:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        q = q.where(Absence.user_id.in_(ids))
    return {r.user_id: (r.starts_on, r.ends_on) for r in db.session.execute(q)}


def current_select(user_id: int, column: str, day: Optional[dt.date] = None):
    """A scalar subquery: `column` (starts_on / ends_on) of the user's leave on `day`, NULL
    when at work (for statements that read it beside other things)."""
    return (select(getattr(Absence, column)).where(Absence.user_id == user_id,
                                                   *_current(day or local_today()))
            .limit(1).scalar_subquery())


def readable_user_ids(actor: User):
    """SELECT of the users whose absences the actor may read (None: everyone): their data
    scope's users (admins, back-office staff and auditors: all; managers: their department
    tree; reps: themselves)."""
    scope = scope_of(actor)
    if scope == Scope.ALL:
        return None
    ids = visible_owner_ids(actor, scope) if scope is not None else frozenset({actor.id})
    return select(User.id).where(User.id.in_(sorted(ids | {actor.id})))


def may_manage(actor: User, user_id: int) -> bool:
    """Record or cancel `user_id`'s leave: oneself, a manager for users in their data scope,
    an admin anyone."""
    if actor is None:
        return False
    if has_role(actor, ROLE_ADMIN) or actor.id == user_id:
        return True
    if has_role(actor, ROLE_MANAGER):
        return user_id in visible_owner_ids(actor, scope_of(actor) or Scope.OWN)
    return False


def manageable_users(actor: User) -> list[User]:
    """The active users whose leave the actor may record (the form's choices)."""
    q = select(User).where(User.active.is_(True), User.employment_status == EMPLOYMENT_ACTIVE)
    if not has_role(actor, ROLE_ADMIN):
        ids = {actor.id}
        if has_role(actor, ROLE_MANAGER):
            ids |= visible_owner_ids(actor, scope_of(actor) or Scope.OWN)
        q = q.where(User.id.in_(sorted(ids)))
    return list(db.session.execute(q.order_by(User.username)).scalars())


# --- writing ---------------------------------------------------------------------------------
def _date(value: Any, field: str, errors: dict[str, str]) -> Optional[dt.date]:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value
    if value in (None, ""):
        errors[field] = tr("Required")
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    errors[field] = tr("%(field)s must be a date, YYYY-MM-DD", field=field)
    return None


def clean_absence(starts_on: Any, ends_on: Any, reason: Any) -> tuple[dt.date, dt.date,
                                                                      Optional[str]]:
    """The dates and reason, checked: both dates, to >= from, at most MAX_DAYS days, a
    reason of at most REASON_MAX characters without NUL. ValidationFailed names each field."""
    errors: dict[str, str] = {}
    start = _date(starts_on, "starts_on", errors)
    end = _date(ends_on, "ends_on", errors)
    if reason is not None and not isinstance(reason, str):
        errors["reason"] = tr("Must be text")
    elif is_unclean(reason):
        errors["reason"] = f"reason {UNCLEAN_MESSAGE}"
    else:
        limits.check_length(errors, "reason", reason, REASON_MAX)
    if start and end and "ends_on" not in errors:
        if end < start:
            errors["ends_on"] = tr("The end date cannot be before the start date")
        elif (end - start).days + 1 > MAX_DAYS:
            errors["ends_on"] = tr("An absence cannot be longer than %(days)s days",
                                   days=MAX_DAYS)
    if errors:
        raise ValidationFailed(errors)
    reason = (reason or "").strip() or None
    return start, end, reason


def _target(actor: User, user_id: Any) -> User:
    number = parse_pk(user_id)
    user = db.session.get(User, number) if number is not None else None
    if user is None or not _may_read(actor, user.id):
        raise OutOfScope(tr("The user does not exist or is outside your data scope"))
    if not may_manage(actor, user.id):
        raise PermissionDenied(tr("You can record only your own leave; managers that of "
                                  "their team, admins anyone's"))
    return user


def _may_read(actor: User, user_id: int) -> bool:
    allowed = readable_user_ids(actor)
    return allowed is None or db.session.execute(
        allowed.where(User.id == user_id)).first() is not None


def create_absence(actor: User, user_id: Any, starts_on: Any, ends_on: Any,
                   reason: Any = None) -> Absence:
    """Record that `user_id` is on leave from `starts_on` to `ends_on` (inclusive).

    Refusals: ValidationFailed naming the field (dates, length, reason); OutOfScope for a user
    the actor cannot see; PermissionDenied for one they may not manage; Conflict
    `absence_overlap` when the user already has leave on one of those days. The user's row
    lock (the one ownership changes take) serialises two simultaneous requests for one user,
    so overlapping absences cannot both commit."""
    start, end, text = clean_absence(starts_on, ends_on, reason)
    try:
        user = _target(actor, user_id)
        if not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
            raise ValidationFailed({"user": tr("%(name)s is deactivated or departed",
                                               name=user.display_name)})
        ownership.lock_rep(user.id)
        clash = db.session.execute(select(Absence).where(
            Absence.user_id == user.id, Absence.cancelled_at.is_(None),
            Absence.starts_on <= end, Absence.ends_on >= start)
            .order_by(Absence.starts_on).limit(1)).scalar_one_or_none()
        if clash is not None:
            raise Conflict(tr("%(name)s is already on leave %(period)s",
                              name=user.display_name,
                              period=period_text(clash.starts_on, clash.ends_on)),
                           code="absence_overlap", absence_id=clash.id)
        absence = Absence(user_id=user.id, starts_on=start, ends_on=end, reason=text,
                          created_by_id=actor.id, created_at=utcnow())
        db.session.add(absence)
        db.session.flush()
        audit.record(actor.id, "create", "absence", absence.id,
                     {"user_id": (None, user.id), "starts_on": (None, start.isoformat()),
                      "ends_on": (None, end.isoformat()), "reason": (None, text)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return absence


def cancel_absence(actor: User, absence_id: Any) -> Absence:
    """Cancel a recorded absence (the row stays, marked cancelled): who may record it may
    cancel it. A cancelled one is refused with Conflict `already_cancelled`."""
    number = parse_pk(absence_id)
    absence = db.session.get(Absence, number) if number is not None else None
    try:
        if absence is None or not _may_read(actor, absence.user_id):
            raise NotFound(tr("The absence does not exist or is outside your data scope"))
        if not may_manage(actor, absence.user_id):
            raise PermissionDenied(tr("You can record only your own leave; managers that of "
                                      "their team, admins anyone's"))
        if absence.cancelled_at is not None:
            raise Conflict(tr("This absence is already cancelled"), code="already_cancelled")
        absence.cancelled_at = utcnow()
        absence.cancelled_by_id = actor.id
        audit.record(actor.id, "cancel", "absence", absence.id,
                     {"cancelled_at": (None, absence.cancelled_at)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return absence


def substitutes(user_ids: Iterable[int]) -> dict[int, Optional[int]]:
    """{user id: who stands in while they are away}: their superior, else their department's
    manager (None when neither, or when that is themselves); one statement."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        select(User.id, User.superior_id, Department.manager_id)
        .outerjoin(Department, Department.id == User.department_id)
        .where(User.id.in_(ids))).all()
    out: dict[int, Optional[int]] = {}
    for r in rows:
        stand_in = r.superior_id or r.manager_id
        out[r.id] = stand_in if stand_in and stand_in != r.id else None
    return out
