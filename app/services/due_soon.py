"""待回收预警 (due soon): per owner, the customers and leads the reclaim sweeps will take within
the next N days. A dry run of the sweeps' own rule: reclaim.due_customers and
leads.due_leads evaluated at now + N days (segment policies included), which changes
nothing. Scoped like the customers: a rep sees their own, a manager each owner of their
team, an admin everyone. Counts per owner in one grouped statement per record type; one
owner's rows keyset-paged by id."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Lead, User
from app.models.customer import utcnow
from app.security import Scope, scope_of, visible_owner_ids
from app.services import leads, reclaim
from app.services.errors import NotFound, tr
from app.services.ids import parse_int, parse_optional_id

DEFAULT_DAYS = 7
MAX_DAYS = 90
PAGE_SIZE = 100


@dataclass
class DueSoon:
    days: int
    until: dt.datetime
    owners: list[dict] = field(default_factory=list)  # owner_id, name, customers, leads
    owner_id: Optional[int] = None
    customers: list[dict] = field(default_factory=list)
    leads: list[dict] = field(default_factory=list)
    next_after: Optional[int] = None       # the next page of the owner's customers
    next_lead_after: Optional[int] = None  # ... and of their leads


def _days_left(when: dt.datetime, now: dt.datetime) -> int:
    return math.ceil((when - now) / dt.timedelta(days=1))


def due_soon(actor: User, days: Any = DEFAULT_DAYS, owner_id: Any = None, after: Any = None,
             lead_after: Any = None, now: Optional[dt.datetime] = None,
             page_size: int = PAGE_SIZE) -> DueSoon:
    """What the sweeps take by now + `days` (1..90), per owner in the actor's scope, and the
    rows of one owner (`owner_id`; a rep's own by default). NotFound for an owner outside
    the scope, as for one that does not exist."""
    days = parse_int(DEFAULT_DAYS if days in (None, "") else days, "days", 1, MAX_DAYS)
    owner_id = parse_optional_id(owner_id, "owner_id")
    after = parse_optional_id(after, "after")
    lead_after = parse_optional_id(lead_after, "lead_after")
    now = now or utcnow()
    until = now + dt.timedelta(days=days)
    scope = scope_of(actor) or Scope.OWN
    visible = None if scope == Scope.ALL else visible_owner_ids(actor, scope)
    if owner_id is None and scope == Scope.OWN:
        owner_id = actor.id
    if owner_id is not None and (visible is not None and owner_id not in visible
                                 or db.session.get(User, owner_id) is None):
        raise NotFound(tr("The user does not exist or is outside your data scope"))
    page = DueSoon(days, until, owner_id=owner_id)
    customers = reclaim.due_customers(until).subquery("due_customers")
    due_leads = leads.due_leads(until).subquery("due_leads")

    def in_scope(column):
        return column.in_(sorted(visible)) if visible is not None else column.is_not(None)

    counts: dict[int, dict] = {}
    for kind, sub in (("customers", customers), ("leads", due_leads)):
        for oid, n in db.session.execute(
                select(sub.c.owner_id, func.count()).where(in_scope(sub.c.owner_id))
                .group_by(sub.c.owner_id)):
            counts.setdefault(oid, {"owner_id": oid, "customers": 0, "leads": 0})[kind] = n
    if counts:
        for user in db.session.execute(select(User).where(User.id.in_(sorted(counts)))
                                       ).scalars():
            counts[user.id]["name"] = user.display_name
    page.owners = sorted(counts.values(), key=lambda o: (-(o["customers"] + o["leads"]),
                                                         o.get("name", ""), o["owner_id"]))
    if owner_id is None:
        return page
    q = (select(customers, Customer.name).join(Customer, Customer.id == customers.c.customer_id)
         .where(customers.c.owner_id == owner_id)
         .order_by(customers.c.customer_id).limit(page_size + 1))
    if after is not None:
        q = q.where(customers.c.customer_id > after)
    rows = db.session.execute(q).all()
    for r in rows[:page_size]:
        when, rule = reclaim.deadline(r.acquired_at, r.last_followup_at, r.no_followup_days,
                                      r.no_deal_days, r.protected_since)
        period = r.no_followup_days if rule == reclaim.RULE_NO_FOLLOWUP else r.no_deal_days
        page.customers.append({"id": r.customer_id, "name": r.name, "due_at": when,
                               "days_left": max(_days_left(when, now), 0), "rule": rule,
                               "days": period})
    if len(rows) > page_size:
        page.next_after = page.customers[-1]["id"]
    q = (select(due_leads, Lead).join(Lead, Lead.id == due_leads.c.lead_id)
         .where(due_leads.c.owner_id == owner_id)
         .order_by(due_leads.c.lead_id).limit(page_size + 1))
    if lead_after is not None:
        q = q.where(due_leads.c.lead_id > lead_after)
    rows = db.session.execute(q).all()
    for r in rows[:page_size]:
        touch = max(r.acquired_at, r.last_followup_at or r.acquired_at)
        when = touch + dt.timedelta(days=r.days)
        page.leads.append({"id": r.lead_id, "name": r.Lead.name, "due_at": when,
                           "days_left": max(_days_left(when, now), 0), "days": r.days})
    if len(rows) > page_size:
        page.next_lead_after = page.leads[-1]["id"]
    return page
