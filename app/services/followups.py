"""Follow-ups (跟进记录): a logged contact with a customer. A follow-up restarts the reclaim
clock (the ownership row's last follow-up) and moves the customer from 未联系 to 跟进中."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Contact, Customer, FollowUp, Notification, Ownership, User
from app.models.activity import FOLLOWUP_CHANNELS
from app.models.customer import utcnow
from app.services import limits, notifications
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
    followup = FollowUp(customer_id=customer.id, contact_id=contact_id, user_id=actor.id,
                        created_at=now, **values)
    db.session.add(followup)
    # The clock only moves forward: logging an old call does not shorten what a newer one gave.
    db.session.execute(
        update(Ownership).where(Ownership.customer_id == customer.id,
                                (Ownership.last_followup_at.is_(None))
                                | (Ownership.last_followup_at < values["happened_at"]))
        .values(last_followup_at=values["happened_at"]))
    db.session.commit()
    return followup


def due_reminders(user_id: int, today: dt.date) -> dict[str, list[dict]]:
    """The user's customers whose latest follow-up asked for a next contact today ("today")
    or earlier ("overdue"): a newer follow-up clears the reminder."""
    latest = (select(FollowUp.customer_id, func.max(FollowUp.id).label("last_id"))
              .join(Ownership, Ownership.customer_id == FollowUp.customer_id)
              .where(Ownership.owner_id == user_id).group_by(FollowUp.customer_id).subquery())
    rows = db.session.execute(
        select(FollowUp.customer_id, Customer.name, FollowUp.next_contact_on, FollowUp.content)
        .join(latest, latest.c.last_id == FollowUp.id)
        .join(Customer, Customer.id == FollowUp.customer_id)
        .where(FollowUp.next_contact_on.is_not(None), FollowUp.next_contact_on <= today)
        .order_by(FollowUp.next_contact_on, FollowUp.customer_id)).all()
    out: dict[str, list[dict]] = {"today": [], "overdue": []}
    for r in rows:
        out["today" if r.next_contact_on == today else "overdue"].append(
            {"customer_id": r.customer_id, "name": r.name, "due": r.next_contact_on,
             "days_late": (today - r.next_contact_on).days, "last": r.content})
    return out


def send_digests(today: Optional[dt.date] = None) -> int:
    """The daily digest: one in-app notification per owner with follow-ups due today or
    overdue; a second run on the same day sends nothing. Returns how many were sent."""
    today = today or local_today()
    owners = db.session.execute(
        select(Ownership.owner_id).join(FollowUp, FollowUp.customer_id == Ownership.customer_id)
        .where(Ownership.owner_id.is_not(None), FollowUp.next_contact_on <= today)
        .distinct()).scalars().all()
    since = local_day_start()
    already = set(db.session.execute(select(Notification.user_id).where(
        Notification.kind == "followup_digest", Notification.created_at >= since)).scalars())
    sent = 0
    for owner_id in owners:
        if owner_id in already:
            continue
        due = due_reminders(owner_id, today)
        if not due["today"] and not due["overdue"]:
            continue
        names = "、".join(r["name"] for r in (due["overdue"] + due["today"])[:5])
        notifications.notify([owner_id], "followup_digest",
                             f"今日待跟进 {len(due['today'])} 个，已逾期 {len(due['overdue'])} 个",
                             names, link="/workbench/")
        sent += 1
    db.session.commit()
    return sent
