"""Follow-ups (跟进记录): a logged contact with a customer. A follow-up restarts the reclaim
clock (the ownership row's last follow-up) and moves the customer from 未联系 to 跟进中."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import case, func, select, true, union_all, update

from app.extensions import db
from app.models import Contact, Customer, FollowUp, Notification, Ownership, User
from app.models.activity import FOLLOWUP_CHANNELS
from app.models.customer import utcnow
from app.services import limits, notifications, tasks
from app.services.customers import get_customer_for_write
from app.services.errors import ValidationFailed, tr
from app.services.times import local_date, local_day_start, local_today, parse_local

# A follow-up may be logged a little ahead of the server clock (a phone's clock), not later.
CLOCK_SLACK = dt.timedelta(minutes=5)


def _parse_time(value: Any, field: str, errors: dict) -> Optional[dt.datetime]:
    """Typed text is business time (GUISHU_TIMEZONE) unless it names its offset; the answer is
    stored time (naive UTC), so the "not later than now" check compares like with like."""
    try:
        return parse_local(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError):
        errors[field] = tr("A time is written YYYY-MM-DD HH:MM")
        return None


def parse_date(value: Any, field: str, errors: dict) -> Optional[dt.date]:
    """A YYYY-MM-DD form or API value as a date (None if empty); a bad one goes to errors."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = tr("A date is written YYYY-MM-DD")
        return None


def clean_followup(data: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    errors: dict[str, str] = {}
    channel = (data.get("channel") or "").strip() if isinstance(data.get("channel"), str) else ""
    if channel not in FOLLOWUP_CHANNELS:
        errors["channel"] = tr("The channel can only be: %(choices)s", choices=tr(", ").join(
            tr("%(key)s (%(label)s)", key=k, label=v) for k, v in FOLLOWUP_CHANNELS.items()))
    content = data.get("content")
    content = content.strip() if isinstance(content, str) else ""
    if not content:
        errors["content"] = tr("Please write what the follow-up was")
    limits.check_length(errors, "content", content, limits.NOTE)
    happened = _parse_time(data.get("happened_at"), "happened_at", errors) or now
    if happened > now + CLOCK_SLACK:
        errors["happened_at"] = tr("The follow-up time cannot be later than now")
    next_on = parse_date(data.get("next_contact_on"), "next_contact_on", errors)
    if next_on is not None and next_on < local_date(happened):
        errors["next_contact_on"] = tr("The next contact date cannot be before this follow-up")
    if errors:
        raise ValidationFailed(errors)
    return {"channel": channel, "content": content, "happened_at": happened,
            "next_contact_on": next_on}


def log_followup(actor: User, customer_id: int, data: dict[str, Any],
                 contact_id: Optional[int] = None) -> FollowUp:
    """Log a follow-up on a customer the actor may write (or on one of its contacts)."""
    customer = get_customer_for_write(actor, customer_id)
    now = utcnow()
    values = clean_followup(data, now)
    if contact_id is not None:
        contact = db.session.get(Contact, contact_id)
        if contact is None or contact.customer_id != customer.id:
            raise ValidationFailed({"contact_id": tr("The contact does not belong to this "
                                                     "customer")})
    followup = record_followup(customer.id, actor.id, values, now, contact_id=contact_id)
    # The previous follow-up task is done; a next contact date opens the owner's next one.
    tasks.followup_logged(actor, customer, values["next_contact_on"], now)
    db.session.commit()
    return followup


def record_followup(customer_id: int, user_id: int, values: dict[str, Any], now: dt.datetime,
                    contact_id: Optional[int] = None, restart_clock: bool = True,
                    plans_next_contact: bool = True) -> FollowUp:
    """Add a follow-up with clean `values` (clean_followup's) and move the ownership row:
    the reclaim clock (restart_clock) and the next contact (plans_next_contact). No scope
    check and no commit: log_followup checks the actor first; a call that became history
    (app.services.cti_events) is logged by the system, restarting the clock only when it
    lasted long enough, and leaves the rep's planned next contact alone."""
    followup = FollowUp(customer_id=customer_id, contact_id=contact_id, user_id=user_id,
                        created_at=now, **values)
    db.session.add(followup)
    moved: dict[str, Any] = {}
    if restart_clock:
        # The clock only moves forward: logging an old call does not shorten what a newer
        # one gave.
        moved["last_followup_at"] = clock_forward(values["happened_at"])
    if plans_next_contact:
        # The next contact is the latest follow-up's, whatever it asked (none clears it).
        moved["next_contact_on"] = values["next_contact_on"]
    if moved:
        db.session.execute(update(Ownership).where(Ownership.customer_id == customer_id)
                           .values(**moved))
    return followup


def clock_forward(happened: dt.datetime):
    """The ownership row's last follow-up moved to `happened` unless it is already later."""
    return case(((Ownership.last_followup_at.is_(None))
                 | (Ownership.last_followup_at < happened), happened),
                else_=Ownership.last_followup_at)


def latest_next_contact(customer_id_column):
    """The next contact date the customer's latest follow-up (the last logged) asked for, as
    a scalar subquery correlated on `customer_id_column`."""
    return (select(FollowUp.next_contact_on)
            .where(FollowUp.customer_id == customer_id_column)
            .order_by(FollowUp.id.desc()).limit(1).scalar_subquery())


def refresh_next_contact(customer_ids) -> None:
    """Recompute the ownership rows' next contact from the follow-ups (after a merge or its
    undo moved follow-ups between customers)."""
    ids = sorted({int(i) for i in customer_ids if i is not None})
    if ids:
        db.session.execute(update(Ownership).where(Ownership.customer_id.in_(ids)).values(
            next_contact_on=latest_next_contact(Ownership.customer_id)))


REMINDERS_SHOWN = 20  # per list (today / overdue) on the workbench: the soonest, and how many more


def due_reminders(user_id: int, today: dt.date,
                  limit: int = REMINDERS_SHOWN) -> dict[str, Any]:
    """The user's customers whose latest follow-up asked for a next contact today ("today")
    or earlier ("overdue", most overdue first), at most `limit` of each, with how many
    there are ("counts"); a newer follow-up clears the reminder. Read from the ownership
    rows (followups keeps their next contact), so a rep with tens of thousands of customers
    costs two short index ranges."""
    mine = Ownership.owner_id == user_id
    counts = select(
        func.count().filter(Ownership.next_contact_on == today).label("today"),
        func.count().filter(Ownership.next_contact_on < today).label("overdue"),
    ).where(mine, Ownership.next_contact_on <= today).subquery()
    pick = select(Ownership.customer_id, Ownership.next_contact_on)
    # Each part is a subquery: SQLite takes no ORDER BY / LIMIT on a UNION's own members.
    parts = [pick.where(mine, Ownership.next_contact_on == today)
             .order_by(Ownership.customer_id).limit(limit).subquery(),
             pick.where(mine, Ownership.next_contact_on < today)
             .order_by(Ownership.next_contact_on, Ownership.customer_id).limit(limit).subquery()]
    keys = union_all(*(select(p) for p in parts)).subquery()
    # The names and the last follow-up of the rows kept only (joined before the LIMIT,
    # every overdue customer's name was read: 1,700 of them for a rep at 1M customers).
    last = (select(FollowUp.content).where(FollowUp.customer_id == keys.c.customer_id)
            .order_by(FollowUp.id.desc()).limit(1).scalar_subquery())
    due = (select(keys.c.customer_id, Customer.name, keys.c.next_contact_on,
                  last.label("content"))
           .join(Customer, Customer.id == keys.c.customer_id)).subquery()
    # The counts ride on every row (one statement); no row means nothing is due.
    rows = db.session.execute(
        select(due, counts.c.today.label("n_today"), counts.c.overdue.label("n_overdue"))
        .select_from(due.join(counts, true()))).all()
    n_today, n_overdue = (rows[0].n_today, rows[0].n_overdue) if rows else (0, 0)
    out: dict[str, Any] = {"today": [], "overdue": [],
                           "counts": {"today": n_today, "overdue": n_overdue}}
    for r in sorted(rows, key=lambda r: (r.next_contact_on, r.customer_id)):
        out["today" if r.next_contact_on == today else "overdue"].append(
            {"customer_id": r.customer_id, "name": r.name, "due": r.next_contact_on,
             "days_late": (today - r.next_contact_on).days, "last": r.content})
    return out


def send_digests(today: Optional[dt.date] = None) -> int:
    """The daily digest: one in-app notification per owner with follow-ups due today or
    overdue; a second run on the same day sends nothing. Returns how many were sent."""
    today = today or local_today()
    owners = db.session.execute(
        select(Ownership.owner_id)
        .where(Ownership.owner_id.is_not(None), Ownership.next_contact_on <= today)
        .distinct()).scalars().all()
    since = local_day_start()
    already = set(db.session.execute(select(Notification.user_id).where(
        Notification.kind == "followup_digest", Notification.created_at >= since)).scalars())
    sent = 0
    for owner_id in owners:
        if owner_id in already:
            continue
        due = due_reminders(owner_id, today, limit=5)
        if not due["today"] and not due["overdue"]:
            continue
        names = "、".join(r["name"] for r in (due["overdue"] + due["today"])[:5])
        n = due["counts"]
        notifications.notify([owner_id], "followup_digest",
                             f"今日待跟进 {n['today']} 个，已逾期 {n['overdue']} 个",
                             names, link="/workbench/")
        sent += 1
    db.session.commit()
    return sent
