"""A customer's timeline: everything that happened to it, newest first, one page at a time.

Each kind of record is a source in SOURCES (follow-ups, won deals, ownership events, merges);
a later module registers its own with `@source("tickets")` and the customer page shows it
without change. A source answers two questions about a customer's history — how many entries,
and the newest N — and the page merges the sources' newest entries, so a page costs one count
and one bounded read per source whatever the history's length.

The history of a customer includes the records of the customers merged into it: follow-ups
and deals were re-pointed to the survivor by the merge, ownership events and merge records
stay under the id they were written for (app.services.merge.history_clause).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import AuditLog, Customer, Deal, FollowUp, Ownership, OwnershipEvent, User
from app.models.merge import CustomerMerge
from app.security import can_see_customer
from app.services import merge
from app.services.errors import NO_SUCH_CUSTOMER, OutOfScope, tr
from app.services.event_labels import event_kind_label, rule_label

PAGE_SIZE = 20


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when, what kind, what happened, who did it, where to read
    more (a path on this site, or None)."""

    time: dt.datetime
    kind: str
    summary: str
    actor: str
    link: Optional[str] = None


@dataclass(frozen=True)
class History:
    """Whose history a source reads: the customer and the ids merged into it; and who reads
    it (`reader`), for a source whose records have a scope of their own (tickets)."""

    customer_id: int
    merged_ids: tuple[int, ...]
    reader: Optional[User] = field(default=None, compare=False)

    @property
    def ids(self) -> list[int]:
        return [self.customer_id, *self.merged_ids]


@dataclass(frozen=True)
class Source:
    count: Callable[[History], int]
    newest: Callable[[History, int], list[Entry]]


SOURCES: dict[str, Source] = {}


def source(name: str):
    """Register a source: a class (or namespace) with `count(history)` and
    `newest(history, limit)` static methods."""

    def register(cls):
        SOURCES[name] = Source(count=cls.count, newest=cls.newest)
        return cls

    return register


@dataclass
class Page:
    entries: list[Entry]
    page: int  # from 1
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def readable(actor: Optional[User], customer_id: int) -> bool:
    """The actor may read the customer: in their data scope (with read shares), or sitting in
    a pool they belong to (reps browse and claim pool customers)."""
    if actor is None:
        return False
    if can_see_customer(actor, customer_id):
        return True
    from app.services.pool import member_pool_ids

    pool_id = db.session.execute(select(Ownership.pool_id).where(
        Ownership.customer_id == customer_id)).scalar()
    return pool_id is not None and pool_id in member_pool_ids(actor)


def history_of(customer_id: int, reader: Optional[User] = None) -> History:
    return History(customer_id, tuple(sorted(merge.merged_into([customer_id]))), reader)


def page_of(actor: Optional[User], customer_id: int, page: int = 1,
            size: int = PAGE_SIZE) -> Page:
    """Page `page` (from 1, clamped to the pages there are) of the customer's timeline;
    OutOfScope when the actor may not read the customer."""
    if db.session.get(Customer, customer_id) is None or not readable(actor, customer_id):
        raise OutOfScope(tr(NO_SUCH_CUSTOMER))
    # A pool customer browsed by a pool member: its records' own pages are out of scope.
    linked = can_see_customer(actor, customer_id)
    history = history_of(customer_id, actor)
    total = sum(s.count(history) for s in SOURCES.values())
    pages = max(1, math.ceil(total / size))
    page = min(max(1, page), pages)
    wanted = page * size
    entries: list[Entry] = []
    for s in SOURCES.values():
        entries.extend(s.newest(history, wanted))
    # Stable: entries of one time keep their source's order (each newest first).
    entries.sort(key=lambda e: e.time, reverse=True)
    entries = entries[wanted - size:wanted]
    if not linked:
        entries = [replace(e, link=None) for e in entries]
    return Page(entries=entries, page=page, pages=pages, total=total)


# --- the sources ---------------------------------------------------------------------------
def _name(user: Optional[User]) -> str:
    return user.display_name if user is not None else ""


def _count(statement) -> int:
    return db.session.execute(select(func.count()).select_from(statement.subquery())
                              ).scalar_one()


@source("followup")
class FollowUps:
    @staticmethod
    def _query(history: History):
        return select(FollowUp).where(FollowUp.customer_id.in_(history.ids))

    @staticmethod
    def count(history: History) -> int:
        return _count(FollowUps._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        rows = db.session.execute(FollowUps._query(history).options(
            selectinload(FollowUp.user), selectinload(FollowUp.contact)).order_by(
            FollowUp.happened_at.desc(), FollowUp.id.desc()).limit(limit)).scalars()
        out = []
        for f in rows:
            summary = _("%(channel)s: %(content)s", channel=f.channel_label, content=f.content)
            if f.contact is not None:
                summary = _("%(channel)s with %(contact)s: %(content)s", channel=f.channel_label,
                            contact=f.contact.name, content=f.content)
            if f.next_contact_on:
                summary += " " + _("(next contact %(day)s)", day=f.next_contact_on.isoformat())
            out.append(Entry(f.happened_at, "followup", summary, _name(f.user),
                             url_for("FollowUpView.show", pk=f.id)))
        return out


@source("deal")
class Deals:
    @staticmethod
    def _query(history: History):
        return select(Deal).where(Deal.customer_id.in_(history.ids))

    @staticmethod
    def count(history: History) -> int:
        return _count(Deals._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        rows = db.session.execute(Deals._query(history).options(
            selectinload(Deal.user)).order_by(
            Deal.created_at.desc(), Deal.id.desc()).limit(limit)).scalars()
        out = []
        for d in rows:
            summary = _("Won deal of %(amount)s yuan on %(day)s", amount=f"{d.amount:,.2f}",
                        day=d.won_on.isoformat())
            if d.product_line:
                summary += " " + _("(product line %(name)s)", name=d.product_line)
            out.append(Entry(d.created_at, "deal", summary, _name(d.user),
                             url_for("DealView.show", pk=d.id)))
        return out


@source("ownership")
class OwnershipEvents:
    @staticmethod
    def _query(history: History):
        return select(OwnershipEvent).where(
            merge.history_clause(OwnershipEvent.customer_id, history.customer_id))

    @staticmethod
    def count(history: History) -> int:
        return _count(OwnershipEvents._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        oe = OwnershipEvent
        rows = db.session.execute(OwnershipEvents._query(history).options(
            selectinload(oe.from_owner), selectinload(oe.to_owner), selectinload(oe.from_pool),
            selectinload(oe.to_pool), selectinload(oe.actor)).order_by(
            OwnershipEvent.created_at.desc(), OwnershipEvent.id.desc()).limit(limit)).scalars()
        out = []
        for e in rows:
            parts = [_("%(kind)s: %(change)s", kind=event_kind_label(e.kind),
                       change=" → ".join(x for x in (e.from_label, e.to_label)
                                         if x and x != "—"))]
            if e.reason:
                parts.append(e.reason)
            if e.rule:
                parts.append(rule_label(e.rule))  # says itself what rule it is
            if e.customer_id != history.customer_id:
                parts.append(_("(as customer #%(id)s, merged into this one)", id=e.customer_id))
            out.append(Entry(e.created_at, "ownership", " ".join(parts), _name(e.actor),
                             url_for("CustomerEventView.show", pk=e.id)))
        return out


@source("lock")
class Locks:
    """Locking and unlocking (app.services.assignment.lock/unlock): no ownership event (the
    holder does not change), so the audit rows they write are the record."""

    @staticmethod
    def _query(history: History):
        return select(AuditLog).where(
            AuditLog.object_type == "customer", AuditLog.action.in_(("lock", "unlock")),
            AuditLog.object_id.in_(history.ids))

    @staticmethod
    def count(history: History) -> int:
        return _count(Locks._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        rows = db.session.execute(Locks._query(history).options(
            selectinload(AuditLog.actor)).order_by(
            AuditLog.created_at.desc(), AuditLog.id.desc()).limit(limit)).scalars()
        return [Entry(a.created_at, "lock",
                      _("Locked: exempt from reclaim") if a.action == "lock" else _("Unlocked"),
                      _name(a.actor)) for a in rows]


@source("merge")
class Merges:
    @staticmethod
    def _query(history: History):
        return select(CustomerMerge).where(CustomerMerge.survivor_id.in_(history.ids))

    @staticmethod
    def count(history: History) -> int:
        return _count(Merges._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        rows = db.session.execute(Merges._query(history).options(
            selectinload(CustomerMerge.actor)).order_by(
            CustomerMerge.created_at.desc(), CustomerMerge.id.desc()).limit(limit)).scalars()
        out = []
        for m in rows:
            name = ((m.snapshot or {}).get("customer") or {}).get("name") or ""
            summary = _("Customer #%(id)s %(name)s was merged into this one", id=m.merged_id,
                        name=name)
            if m.undone_at is not None:
                summary += " " + _("(undone)")
            out.append(Entry(m.created_at, "merge", summary, _name(m.actor)))
        return out


@source("ticket")
class Tickets:
    """工单: raised, each change of status, reopened (app.services.tickets writes the
    events); the customer's tickets, merged-in customers' included (a merge re-points them),
    only those the reader may read (tickets.scope_clause: reading the customer is not
    reading its tickets — marketing reads none, an agent its teams' only)."""

    @staticmethod
    def _query(history: History):
        from app.models import Ticket, TicketEvent
        from app.services.tickets import TIMELINE_KINDS, scope_clause

        return select(TicketEvent).join(Ticket, Ticket.id == TicketEvent.ticket_id).where(
            Ticket.customer_id.in_(history.ids), TicketEvent.kind.in_(TIMELINE_KINDS),
            scope_clause(history.reader))

    @staticmethod
    def count(history: History) -> int:
        return _count(Tickets._query(history))

    @staticmethod
    def newest(history: History, limit: int) -> list[Entry]:
        from app.models import TicketEvent
        from app.models.service_desk import TICKET_STATUSES
        from app.services.tickets import page_link

        rows = db.session.execute(Tickets._query(history).options(
            selectinload(TicketEvent.actor), selectinload(TicketEvent.ticket)).order_by(
            TicketEvent.at.desc(), TicketEvent.id.desc()).limit(limit)).scalars()
        out = []
        for e in rows:
            t = e.ticket
            if e.kind == "created":
                summary = _("Ticket #%(id)s raised (%(channel)s, %(priority)s): %(subject)s",
                            id=t.id, channel=t.channel_label, priority=t.priority_label,
                            subject=t.subject)
            else:
                change = " → ".join(str(TICKET_STATUSES.get(v, v or ""))
                                    for v in (e.from_value, e.to_value))
                summary = _("Ticket #%(id)s %(subject)s: %(change)s", id=t.id,
                            subject=t.subject, change=change)
                if e.kind == "reopened":
                    summary = _("Ticket #%(id)s %(subject)s reopened: %(change)s", id=t.id,
                                subject=t.subject, change=change)
            if e.note:
                summary += " " + _("(%(note)s)", note=e.note)
            out.append(Entry(e.at, "ticket", summary, _name(e.actor), page_link(t.id)))
        return out
