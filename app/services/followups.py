"""Follow-ups (跟进记录): a logged contact with a customer. A follow-up restarts the reclaim
clock (the ownership row's last follow-up) and moves the customer from 未联系 to 跟进中."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import update

from app.extensions import db
from app.models import Contact, FollowUp, Ownership, User
from app.models.activity import FOLLOWUP_CHANNELS
from app.models.customer import utcnow
from app.services.customers import get_customer_for_write
from app.services.errors import ValidationFailed

# A follow-up may be logged a little ahead of the server clock (a phone's clock), not later.
CLOCK_SLACK = dt.timedelta(minutes=5)


def _parse_time(value: Any, field: str, errors: dict) -> Optional[dt.datetime]:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = "时间格式应为 YYYY-MM-DD HH:MM"
        return None


def _parse_date(value: Any, field: str, errors: dict) -> Optional[dt.date]:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = "日期格式应为 YYYY-MM-DD"
        return None


def clean_followup(data: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    errors: dict[str, str] = {}
    channel = (data.get("channel") or "").strip() if isinstance(data.get("channel"), str) else ""
    if channel not in FOLLOWUP_CHANNELS:
        errors["channel"] = "跟进方式只能是：" + "、".join(
            f"{k}（{v}）" for k, v in FOLLOWUP_CHANNELS.items())
    content = data.get("content")
    content = content.strip() if isinstance(content, str) else ""
    if not content:
        errors["content"] = "请填写跟进内容"
    happened = _parse_time(data.get("happened_at"), "happened_at", errors) or now
    if happened > now + CLOCK_SLACK:
        errors["happened_at"] = "跟进时间不能晚于现在"
    next_on = _parse_date(data.get("next_contact_on"), "next_contact_on", errors)
    if next_on is not None and next_on < happened.date():
        errors["next_contact_on"] = "下次联系日期不能早于本次跟进"
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
            raise ValidationFailed({"contact_id": "联系人不属于该客户"})
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
