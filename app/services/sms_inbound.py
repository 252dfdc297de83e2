"""Inbound SMS replies (短信回复) from a gateway: the sender's number is matched to a customer
by its normalised form (the E.164 keys of customers and their contacts); the customer's owner
is notified with the text, and a pool customer's reply is kept in the audit log only.

A reply of TD / td / 退订 (trimmed, full-width letters too) puts the number on the marketing
opt-out list (source sms_reply, audited) whoever it belongs to, and notifies nobody."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask import current_app, has_app_context
from sqlalchemy import or_, select, union_all

from app.extensions import db
from app.models import ApiKey, Contact, Customer, Ownership
from app.services import audit, campaign_sending, notifications
from app.services.errors import ValidationFailed, tr
from app.services.normalize import InvalidValue, normalize_phone
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_text, parse_local

TEXT_MAX = 1_000   # characters of one reply (a long SMS is a few hundred)
FROM_MAX = 40      # characters of the sender's number as the gateway writes it
BODY_MAX = 16_384  # bytes of the whole request (the endpoint refuses more with 413)


def _region() -> str:
    return current_app.config.get("PHONE_DEFAULT_REGION", "CN") if has_app_context() else "CN"


def clean_reply(data: dict[str, Any]) -> tuple[str, str, Optional[dt.datetime]]:
    """(sender in E.164, text, received at as stored) or ValidationFailed naming each field."""
    errors: dict[str, str] = {}
    sender, text, received = data.get("from"), data.get("text"), data.get("received_at")
    phone = None
    if not isinstance(sender, str) or not sender.strip():
        errors["from"] = tr("Required")
    elif is_unclean(sender):
        errors["from"] = f"from {UNCLEAN_MESSAGE}"
    elif len(sender) > FROM_MAX:
        errors["from"] = tr("Cannot exceed %(limit)s characters", limit=FROM_MAX)
    else:
        try:
            phone = normalize_phone(sender, _region())
        except InvalidValue as exc:
            errors["from"] = str(exc)
    if not isinstance(text, str) or not text.strip():
        errors["text"] = tr("Required")
    elif is_unclean(text):
        errors["text"] = f"text {UNCLEAN_MESSAGE}"
    elif len(text) > TEXT_MAX:
        errors["text"] = tr("Cannot exceed %(limit)s characters", limit=TEXT_MAX)
    when = None
    if received not in (None, ""):
        try:
            when = parse_local(received) if isinstance(received, str) else None
        except ValueError:
            when = None
        if when is None:
            errors["received_at"] = tr("received_at must be an RFC 3339 time, e.g. "
                                       "2026-12-01T09:30:00+08:00")
    if errors:
        raise ValidationFailed(errors)
    return phone, text.strip(), when


def customer_with_number(e164: str) -> Optional[int]:
    """The customer whose own or whose contact's mobile or phone is `e164` (the lowest id when
    several are), in one statement on the E.164 indexes."""
    c, k = Customer, Contact
    ids = union_all(
        select(c.id.label("customer_id")).where(or_(c.mobile_e164 == e164, c.phone_e164 == e164)),
        select(k.customer_id.label("customer_id")).where(
            or_(k.mobile_e164 == e164, k.phone_e164 == e164))).subquery()
    return db.session.execute(
        select(ids.c.customer_id).join(Ownership, Ownership.customer_id == ids.c.customer_id)
        .order_by(ids.c.customer_id).limit(1)).scalar()


def receive_reply(key: ApiKey, data: dict[str, Any]) -> dict:
    """{"matched": True, "customer_id": …} after notifying the owner (a pool customer: the
    audit row only), or {"matched": False} when no customer has that number."""
    phone, text, when = clean_reply(data)
    customer_id = customer_with_number(phone)
    if campaign_sending.is_unsubscribe_reply(text):
        return _opt_out(key, phone, customer_id)
    if customer_id is None:
        return {"matched": False}
    try:
        row = db.session.execute(
            select(Customer.name, Ownership.owner_id).join(
                Ownership, Ownership.customer_id == Customer.id)
            .where(Customer.id == customer_id)).one()
        audit.record(None, "sms_reply", "customer", customer_id,
                     {"mobile": (None, phone), "text": (None, text),
                      "received_at": (None, when), "api_key": (None, key.name)})
        if row.owner_id is not None:
            name = row.name[:120]  # the title's column holds 200 characters
            title = tr("Customer %(name)s replied by SMS (%(at)s)", name=name,
                       at=local_text(when)) if when else \
                tr("Customer %(name)s replied by SMS", name=name)
            notifications.notify([row.owner_id], "sms_reply", title, text,
                                 link=f"/customers/show/{customer_id}")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {"matched": True, "customer_id": customer_id}


def _opt_out(key: ApiKey, phone: str, customer_id: Optional[int]) -> dict:
    """TD: the number opts out of marketing SMS (and SMS care); a repeat changes nothing."""
    try:
        campaign_sending.record_optout("sms", phone, "sms_reply", customer_id=customer_id)
        if customer_id is not None:
            audit.record(None, "sms_opt_out", "customer", customer_id,
                         {"mobile": (None, phone), "api_key": (None, key.name)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    answer: dict = {"matched": customer_id is not None, "opted_out": True}
    if customer_id is not None:
        answer["customer_id"] = customer_id
    return answer
