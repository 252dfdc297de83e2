"""The number on the far side of a call, normalised and matched to what Guishu knows.

Telephony platforms send caller ids in every shape: "+8613800138000", "8613800138000",
"008613800138000", "013800138000" (a trunk prefix before a mobile), "02162345678",
"021-6234 5678", or a landline without its area code ("62345678") when the call came in
through a local trunk. `caller_e164` folds them onto the E.164 keys the customer, contact
and lead rows already carry (phone_e164 / mobile_e164), so one indexed lookup per table
finds the record. A local number without area code takes `CTI_LOCAL_AREA_CODE` (e.g. "21"
for Shanghai) when that is configured, else it matches nothing rather than guessing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from flask import current_app, has_app_context
from sqlalchemy import or_, select

from app.extensions import db
from app.models import Contact, Customer, Lead
from app.services.normalize import InvalidValue, normalize_phone

MAX_RAW = 64
_DIGITS = re.compile(r"\D")


def local_area_code() -> str:
    if not has_app_context():
        return ""
    return str(current_app.config.get("CTI_LOCAL_AREA_CODE") or "").lstrip("0")


def caller_e164(raw: Optional[str], area_code: Optional[str] = None) -> Optional[str]:
    """E.164 of a caller id as platforms send it; None when it is no valid number
    (anonymous, too short, garbage)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_RAW:
        return None
    text = raw.strip()
    plus = text.startswith("+")
    digits = _DIGITS.sub("", text)
    if not digits:
        return None
    if plus:
        candidate = "+" + digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith("86") and len(digits) in (12, 13):
        # 86 + mobile (13 digits) or 86 + area code + number (12-13): the country code
        # without its plus, as several PBXs send it. "86" cannot begin a national number
        # of that length (area codes begin 1-9 after the trunk 0, mobiles begin 1).
        candidate = "+" + digits
    elif digits.startswith("01") and len(digits) == 12:
        candidate = digits[1:]            # a trunk 0 before a mobile
    elif len(digits) in (7, 8) and not digits.startswith(("0", "1")):
        code = local_area_code() if area_code is None else area_code.lstrip("0")
        if not code:
            return None
        candidate = "0" + code + digits
    else:
        candidate = digits
    try:
        return normalize_phone(candidate, "CN")
    except InvalidValue:
        return None


@dataclass(frozen=True)
class NumberMatch:
    """What a number belongs to: a customer (directly or through one of its contacts) or,
    failing that, a lead. All None: an unknown number."""

    customer_id: Optional[int] = None
    contact_id: Optional[int] = None
    lead_id: Optional[int] = None

    @property
    def known(self) -> bool:
        return any((self.customer_id, self.contact_id, self.lead_id))


def match_number(e164: Optional[str]) -> NumberMatch:
    """The record a normalised number belongs to: a customer's own phone or mobile first,
    then a contact's (for its customer), then an open lead's. Several customers sharing a
    number (duplicates not yet merged): the oldest, the one a merge would keep. One indexed
    query per table, at most three."""
    if not e164:
        return NumberMatch()
    customer_id = db.session.execute(
        select(Customer.id).where(or_(Customer.mobile_e164 == e164,
                                      Customer.phone_e164 == e164))
        .order_by(Customer.id).limit(1)).scalar()
    if customer_id is not None:
        return NumberMatch(customer_id=customer_id)
    row = db.session.execute(
        select(Contact.id, Contact.customer_id).where(or_(Contact.mobile_e164 == e164,
                                                          Contact.phone_e164 == e164))
        .order_by(Contact.id).limit(1)).first()
    if row is not None:
        return NumberMatch(customer_id=row.customer_id, contact_id=row.id)
    lead_id = db.session.execute(
        select(Lead.id).where(or_(Lead.mobile_e164 == e164, Lead.phone_e164 == e164),
                              Lead.status.notin_(("converted", "invalid")))
        .order_by(Lead.id.desc()).limit(1)).scalar()
    return NumberMatch(lead_id=lead_id)
