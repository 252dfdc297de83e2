"""TEMPORARY until tickets-core / calendar-sla are merged: stand-ins for tickets.scope_clause,
add_event, reopen and work_calendar.business_seconds. Removed at the merge."""
from __future__ import annotations

import sys
import types

import pytest


@pytest.fixture(autouse=True)
def desk_stand_ins(monkeypatch):
    try:
        import app.services.tickets  # noqa: F401
        return
    except ImportError:
        pass
    from sqlalchemy import or_, true

    from app.extensions import db
    from app.models import Ticket, TicketEvent
    from app.security import ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_STAFF, has_role

    fake = types.ModuleType("app.services.tickets")

    def scope_clause(actor, column=Ticket.id):
        if has_role(actor, ROLE_ADMIN, ROLE_STAFF, ROLE_AUDITOR):
            return true()
        if has_role(actor, ROLE_MANAGER):
            from app.security import customer_scope_clause
            return customer_scope_clause(actor, Ticket.customer_id)
        return or_(Ticket.agent_id == actor.id, Ticket.team_id.isnot(None))

    def add_event(ticket, kind, actor_id, from_value=None, to_value=None, note=None):
        db.session.add(TicketEvent(ticket_id=ticket.id, kind=kind, actor_id=actor_id,
                                   from_value=from_value, to_value=to_value, note=note))

    def reopen(actor, ticket_id, reason):
        ticket = db.session.get(Ticket, ticket_id)
        add_event(ticket, "reopened", None, ticket.status, "assigned", reason)
        ticket.status, ticket.reopened_count = "assigned", ticket.reopened_count + 1
        db.session.commit()
        return ticket

    fake.scope_clause, fake.add_event, fake.reopen = scope_clause, add_event, reopen
    monkeypatch.setitem(sys.modules, "app.services.tickets", fake)
    cal = types.ModuleType("app.services.work_calendar")
    cal.business_seconds = lambda a, b, team_id=None: int((b - a).total_seconds())
    monkeypatch.setitem(sys.modules, "app.services.work_calendar", cal)
