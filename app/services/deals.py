"""Won deals (成交). A deal marks the customer won: it leaves the cap count (unless the
policy counts won customers), is exempt from reclaim, and is classified active."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import update

from app.extensions import db
from app.models import Deal, Ownership, User
from app.models.customer import utcnow
from app.services import audit, classification
from app.services.customers import get_customer_for_write
from app.services.errors import ValidationFailed, tr
from app.services.followups import parse_date
from app.services.times import local_date

MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)


def clean_deal(data: dict[str, Any], today: dt.date) -> dict[str, Any]:
    errors: dict[str, str] = {}
    raw = data.get("amount")
    amount = None
    try:
        if isinstance(raw, bool) or raw in (None, ""):
            raise InvalidOperation
        amount = Decimal(str(raw).strip().replace(",", "")).quantize(Decimal("0.01"))
        if not Decimal(0) < amount <= MAX_AMOUNT:
            errors["amount"] = tr("The deal amount must be greater than 0")
    except (InvalidOperation, ValueError):
        errors["amount"] = tr("The deal amount must be a number, e.g. 12800.00")
    won_on = parse_date(data.get("won_on"), "won_on", errors) or today
    if won_on > today:
        errors["won_on"] = tr("The deal date cannot be after today")
    product_line = data.get("product_line")
    product_line = product_line.strip() if isinstance(product_line, str) else None
    notes = data.get("notes")
    notes = notes.strip() if isinstance(notes, str) else None
    if errors:
        raise ValidationFailed(errors)
    return {"amount": amount, "won_on": won_on, "product_line": product_line or None,
            "notes": notes or None}


def record_deal(actor: User, customer_id: int, data: dict[str, Any],
                commit: bool = True) -> Deal:
    """Record a won deal on a customer the actor may write; the customer becomes won.
    `commit=False`: the deal is flushed into the caller's transaction (a won opportunity links
    it in the same commit) and the caller classifies after committing (classify_won)."""
    customer = get_customer_for_write(actor, customer_id)
    now = utcnow()
    values = clean_deal(data, local_date(now))  # "not after today": the business day
    if customer.ownership.owner_id is None:
        raise ValidationFailed({"customer": tr("A pool customer cannot have a deal; claim or "
                                                "assign it first")})
    # The deal is the owner's win (their targets count it), whoever records it — a manager
    # dragging a team card to 赢单, staff entering it; the recorder is in the audit log.
    deal = Deal(customer_id=customer.id, user_id=customer.ownership.owner_id, created_at=now,
                **values)
    db.session.add(deal)
    db.session.execute(update(Ownership).where(Ownership.customer_id == customer.id)
                       .values(won=True))
    db.session.flush()
    audit.record(actor.id, "create", "deal", deal.id,
                 {"customer_id": (None, customer.id), "amount": (None, str(values["amount"])),
                  "won_on": (None, values["won_on"].isoformat()),
                  "user_id": (None, deal.user_id)})
    if commit:
        db.session.commit()
        classify_won(customer.id)
    return deal


def classify_won(customer_id: int) -> None:
    """The won customer's category and grade now, not tonight."""
    classification.classify([customer_id])
