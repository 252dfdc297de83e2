"""Helpers for the service desk's tests: teams, tickets, categories by name."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.extensions import db
from app.models.service_desk import Ticket, TicketCategory
from app.services import service_admin

# A Tuesday at 10:00 Beijing time (02:00 UTC): a working day.
NOW = dt.datetime(2026, 12, 1, 2, 0)


def category(name: str) -> TicketCategory:
    return db.session.execute(select(TicketCategory).where(
        TicketCategory.name == name)).scalar_one()


def team(actor, name: str, members, strategy: str = "round_robin", **extra):
    return service_admin.create_team(actor, dict(
        {"name": name, "strategy": strategy, "member_ids": [m.id for m in members]}, **extra))


def ticket(customer=None, category_name: str | None = None, priority: str = "P3",
           **extra) -> Ticket:
    extra.setdefault("status", "new")
    row = Ticket(customer_id=customer.id if customer is not None else None, channel="phone",
                 subject="打印机无法连接", priority=priority,
                 category_id=category(category_name).id if category_name else None, **extra)
    db.session.add(row)
    db.session.flush()
    return row
