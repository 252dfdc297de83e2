"""Read models of the service desk for pages other than the ticket's own: the customer
page's 服务 tab and the workbench's ticket panels. Every list is limited by the one ticket
scope (app.services.tickets.scope_clause), so a panel shows what its reader may open."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import case, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Ownership, User
from app.models.service_desk import OPEN_TICKET_STATUSES, Ticket
from app.security import ROLE_MANAGER, ROLE_REP, Scope, has_role, scope_of, visible_owner_ids
from app.services import sla, tickets
from app.services.errors import tr

CUSTOMER_TAB_LIMIT = 50
PANEL_LIMIT = 20


@dataclass
class Rating:
    score: int
    comment: Optional[str]
    rated_at: dt.datetime
    ticket_id: int


def customer_tickets(actor: User, customer_id: int, limit: int = CUSTOMER_TAB_LIMIT
                     ) -> list[Ticket]:
    """The customer's tickets the actor may read: open ones first, newest first within."""
    still_open = case((Ticket.status.in_(OPEN_TICKET_STATUSES), 0), else_=1)
    return list(db.session.execute(select(Ticket).where(
        Ticket.customer_id == customer_id, tickets.scope_clause(actor))
        .options(joinedload(Ticket.agent), joinedload(Ticket.category))
        .order_by(still_open, Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
        .scalars())


def last_rating(actor: User, customer_id: int) -> Optional[Rating]:
    """The customer's latest satisfaction score on a ticket the actor may read."""
    row = db.session.execute(select(Ticket.satisfaction_score, Ticket.satisfaction_comment,
                                    Ticket.rated_at, Ticket.id).where(
        Ticket.customer_id == customer_id, Ticket.satisfaction_score.is_not(None),
        tickets.scope_clause(actor)).order_by(Ticket.rated_at.desc(), Ticket.id.desc())
        .limit(1)).first()
    return Rating(*row) if row is not None else None


def my_open_tickets(user: User, now: dt.datetime, limit: int = PANEL_LIMIT) -> list[dict[str, Any]]:
    """An agent's open tickets, the nearest SLA due first (those without one last), each
    with its time left in business time (sla.time_left)."""
    nearest = case((Ticket.first_response_at.is_(None), Ticket.first_response_due_at),
                   else_=Ticket.resolution_due_at)
    rows = db.session.execute(select(Ticket).where(
        Ticket.agent_id == user.id, Ticket.status.in_(OPEN_TICKET_STATUSES))
        .options(joinedload(Ticket.customer))
        .order_by(nearest.is_(None), nearest, Ticket.id).limit(limit)).scalars()
    return [{"ticket": t, "left": sla.time_left(t, now)} for t in rows]


def open_tickets_of_my_customers(user: User, limit: int = PANEL_LIMIT) -> list[Ticket]:
    """Reps: the open tickets of the customers they own; managers: of their scope's
    customers (owned by them or their team)."""
    if not has_role(user, ROLE_REP, ROLE_MANAGER):
        return []
    scope = scope_of(user)
    owners = [user.id] if scope in (None, Scope.ALL) else sorted(visible_owner_ids(user, scope))
    return list(db.session.execute(select(Ticket).join(
        Ownership, Ownership.customer_id == Ticket.customer_id).where(
        Ownership.owner_id.in_(owners), Ticket.status.in_(OPEN_TICKET_STATUSES))
        .options(joinedload(Ticket.customer), joinedload(Ticket.agent))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)).scalars())


def duration_text(seconds: Optional[int]) -> str:
    """Business seconds as "1d 3h 20m" in the reader's language (the sign is the caller's:
    a negative value is shown as the same length, late)."""
    if seconds is None:
        return ""
    minutes = abs(int(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return tr("%(days)sd %(hours)sh %(minutes)sm", days=days, hours=hours,
                  minutes=minutes)
    return tr("%(hours)sh %(minutes)sm", hours=hours, minutes=minutes)
