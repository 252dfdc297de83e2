"""Tickets (工单): who may read and work them, raising and editing one, assigning, the status
machine, replies and notes, and every change into the ticket's history (TicketEvent), the
audit trail and the customer's timeline.

Who reads a ticket (scope_clause): admins, back-office staff and auditors every ticket; a
service agent or manager the tickets of its teams (member, lead or manager of the team) and
those assigned to it — not those it raised once they went elsewhere, and a manager not an
agent's tickets of another team (it could otherwise read them by making a team of that
agent); sales reps and managers the tickets of the customers in their data scope.
Marketing none.

Who works one (write): service agents and managers in their scope, staff and admins. Who
raises one: those, and a customer's owner (a rep or manager for a customer in the scope
they may edit), who may also add internal notes to the tickets of their customers.

The SLA clocks are app.services.sla's, routing app.services.ticket_routing's and the
satisfaction survey app.services.satisfaction's: this module calls them at the moments the
ticket's life gives (created, waiting, resolved, reopened, first reply).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Optional

from sqlalchemy import false, or_, select, true, update as sa_update
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Contact, Customer, Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.service_desk import (OPEN_TICKET_STATUSES, TICKET_CHANNELS, TICKET_PRIORITIES,
                                     TICKET_STATUSES, ServiceTeam, ServiceTeamMember, Ticket,
                                     TicketCategory, TicketEvent, TicketMessage)
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP,
                          ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF,
                          can_write_customer, customer_scope_clause, has_role)
from app.services import audit, limits, notifications
from app.services.errors import (N_, UNKNOWN_FIELD, Conflict, OutOfScope, PermissionDenied,
                                 ValidationFailed, tr)
from app.services.ids import parse_optional_id, parse_pk
from app.services.normalize import InvalidValue, normalize_email
from app.services.text import UNCLEAN_MESSAGE, is_unclean

SUBJECT = 200  # the subject column
DESCRIPTION = limits.NOTE  # a description or a message body
REQUESTER = 200  # requester_name / requester_email columns
NO_SUCH_TICKET = N_("The ticket does not exist or is outside your data scope")  # msgid
FIELDS = ("customer_id", "contact_id", "channel", "category_id", "priority", "subject",
          "description", "requester_name", "requester_email")

# The status machine: from -> the statuses a change may go to. 'assigned' is reached by
# assign(); from resolved / closed, in_progress and assigned are a reopen (reopened_count+1).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("in_progress", "resolved", "closed"),
    "assigned": ("in_progress", "waiting", "resolved", "closed"),
    "in_progress": ("waiting", "resolved", "closed"),
    "waiting": ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "in_progress", "assigned"),
    "closed": ("in_progress", "assigned"),
}
REOPEN_FROM = ("resolved", "closed")
# The history kinds shown on the customer's timeline.
TIMELINE_KINDS = ("created", "status", "reopened")


# --- who ------------------------------------------------------------------------------------
def is_service_user(user: Optional[User]) -> bool:
    return has_role(user, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)


def agent_team_ids(user: Optional[User]) -> set[int]:
    """The teams the user belongs to, leads or manages."""
    if user is None:
        return set()
    member = select(ServiceTeamMember.team_id).where(ServiceTeamMember.user_id == user.id)
    led = select(ServiceTeam.id).where(or_(ServiceTeam.lead_id == user.id,
                                           ServiceTeam.manager_id == user.id))
    return set(db.session.execute(member.union(led)).scalars())


def reads_all(user: Optional[User]) -> bool:
    return has_role(user, ROLE_ADMIN, ROLE_STAFF, ROLE_AUDITOR)


def works_tickets(user: Optional[User]) -> bool:
    """May work tickets (edit, assign, change status, reply): the desk, staff and admins."""
    return has_role(user, ROLE_ADMIN, ROLE_STAFF, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)


def raises_tickets(user: Optional[User]) -> bool:
    """May raise tickets and add notes: those who work them, and customers' owners."""
    return works_tickets(user) or has_role(user, ROLE_REP, ROLE_MANAGER)


def scope_clause(actor: Optional[User], column=Ticket.id):
    """WHERE clause: the tickets (`column`: a ticket id column) the actor may read."""
    if actor is None:
        return false()
    if reads_all(actor):
        return true()
    parts = []
    if is_service_user(actor):
        parts.append(service_scope_clause(actor))
    if has_role(actor, ROLE_REP, ROLE_MANAGER):
        parts.append(customer_scope_clause(actor, Ticket.customer_id))
    if not parts:
        return false()
    where = or_(*parts)
    if column is Ticket.id:
        return where
    return column.in_(select(Ticket.id).where(where))


def service_scope_clause(actor: User):
    """The desk's part of the scope (spec §5): the tickets of the actor's teams and those
    assigned to it. Not those it raised (a ticket routed to another team is that team's),
    and a manager's reach is its teams, not every ticket of an agent it put in one. Also
    what app.security reads the desk's customers by."""
    teams = agent_team_ids(actor)
    mine = Ticket.agent_id == actor.id
    return or_(Ticket.team_id.in_(sorted(teams)), mine) if teams else mine


def may_read(actor: Optional[User], ticket_id: int) -> bool:
    """Whether the actor may read the ticket (after raising one: routing may have sent it
    out of the raiser's scope)."""
    return actor is not None and db.session.execute(select(Ticket.id).where(
        Ticket.id == ticket_id, scope_clause(actor))).first() is not None


def raised_elsewhere(ticket: Ticket) -> str:
    """What the raiser of a ticket it may not read is told, by the page and the API alike:
    where routing sent it."""
    team = db.session.get(ServiceTeam, ticket.team_id) if ticket.team_id else None
    if team is not None:
        return tr("Ticket #%(id)s was raised and routed to the team %(team)s, outside your "
                  "scope", id=ticket.id, team=team.name)
    return tr("Ticket #%(id)s was raised; no team took it yet (back-office staff route it), "
              "so it is outside your scope", id=ticket.id)


def addresses_in_full(actor: Optional[User], ticket: Ticket) -> bool:
    """May the reader see the ticket's addresses (requester, inbound senders) in full: the
    masking rule of the ticket's customer (app.services.masking), or — no customer linked —
    the desk that works the ticket. The API and the ticket page both ask this."""
    if ticket.customer_id is None:
        return works_tickets(actor)
    from flask import has_request_context

    from app.security import current_user
    from app.services import masking

    signed_in = current_user() if has_request_context() else None
    rule = masking.current_rule() if (
        signed_in is not None and actor is not None and signed_in.id == actor.id) \
        else masking.rule_for(actor)
    return rule(*masking.holder_of(ticket.customer_id), ticket.customer_id)


def get_ticket(actor: Optional[User], ticket_id: Any, write: bool = False,
               fresh: bool = False) -> Ticket:
    """The ticket if the actor may read it (write: work it); OutOfScope (404) for missing
    and "not yours" alike, PermissionDenied when the role may not work tickets. `fresh`:
    read the row again even if the session holds it (after taking its lock)."""
    if write and not works_tickets(actor):
        raise PermissionDenied(tr("Your role cannot work tickets"))
    pk = parse_pk(ticket_id)
    ticket = None
    if pk is not None and actor is not None:
        ticket = db.session.execute(select(Ticket).where(
            Ticket.id == pk, scope_clause(actor)).execution_options(
            populate_existing=fresh)).scalar_one_or_none()
    if ticket is None:
        raise OutOfScope(tr(NO_SUCH_TICKET), code="not_found")
    return ticket


def _locked(actor: Optional[User], ticket_id: Any, write: bool = True) -> Ticket:
    """The ticket with its row locked until the transaction ends (a no-op UPDATE: the row
    lock on PostgreSQL, the write lock on SQLite, taken before any read so that a second
    writer waits and then reads the first one's result), after the scope check."""
    pk = parse_pk(ticket_id)
    if pk is not None:
        db.session.execute(sa_update(Ticket).where(Ticket.id == pk).values(
            updated_at=Ticket.updated_at).execution_options(synchronize_session=False))
    try:
        if actor is None:  # the system (a low score reopens, inbound mail continues)
            ticket = db.session.get(Ticket, pk, populate_existing=True) \
                if pk is not None else None
            if ticket is None:
                raise OutOfScope(tr(NO_SUCH_TICKET), code="not_found")
            return ticket
        return get_ticket(actor, pk, write=write, fresh=True)
    except Exception:
        db.session.rollback()
        raise


def open_tickets_of(actor: Optional[User], customer_id: int) -> list[Ticket]:
    """The customer's open tickets the actor may read, newest first."""
    return list(db.session.execute(select(Ticket).where(
        Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_TICKET_STATUSES),
        scope_clause(actor)).options(joinedload(Ticket.agent)).order_by(
        Ticket.created_at.desc(), Ticket.id.desc())).scalars())


def open_customer_ids(actor: Optional[User]) -> frozenset[int]:
    """The customers holding an open ticket the actor may read (the masking rule of the
    service desk: their contact details in full)."""
    return frozenset(db.session.execute(select(Ticket.customer_id).where(
        Ticket.customer_id.is_not(None), Ticket.status.in_(OPEN_TICKET_STATUSES),
        scope_clause(actor)).distinct()).scalars())


# --- validation -----------------------------------------------------------------------------
def _text(data: dict, field: str, limit: int, errors: dict, required: bool = False):
    value = data.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = tr("Must be text")
        return None
    value = value.strip()
    if is_unclean(value):
        errors[field] = str(UNCLEAN_MESSAGE)
    elif required and not value:
        errors[field] = tr("Required")
    else:
        limits.check_length(errors, field, value, limit)
    return value or None


def _choice(data: dict, field: str, choices: dict, errors: dict, default=None):
    value = data.get(field)
    if value in (None, "") and default is not None:
        return default
    if not isinstance(value, str) or value not in choices:
        errors[field] = tr("%(field)s can only be: %(choices)s", field=field,
                           choices=tr(", ").join(choices))
        return None
    return value


def _id(data: dict, field: str, errors: dict) -> Optional[int]:
    try:
        return parse_optional_id(data.get(field), field)
    except ValidationFailed as exc:
        errors.update(exc.fields)
        return None


def _check_customer(actor: User, customer_id: Optional[int], errors: dict) -> None:
    """The desk serves every customer; an owner raises tickets for the customers in the scope
    they may edit."""
    if customer_id is None:
        return
    if db.session.get(Customer, customer_id) is None:
        errors["customer_id"] = tr("The customer does not exist or is outside your data scope")
    elif not works_tickets(actor) and not can_write_customer(actor, customer_id):
        errors["customer_id"] = tr("You can raise tickets only for customers in your data scope")


def _check_contact(contact_id: Optional[int], customer_id: Optional[int], errors: dict) -> None:
    if contact_id is None:
        return
    contact = db.session.get(Contact, contact_id)
    if contact is None or customer_id is None or contact.customer_id != customer_id:
        errors["contact_id"] = tr("The contact is not one of the ticket's customer's contacts")


def _check_category(category_id: Optional[int], errors: dict) -> None:
    if category_id is None:
        return
    category = db.session.get(TicketCategory, category_id)
    if category is None or not category.active:
        errors["category_id"] = tr("The category does not exist or is no longer in use")


def clean(actor: User, data: Any, ticket: Optional[Ticket] = None) -> dict[str, Any]:
    """The ticket's fields from a form or a body, checked; ValidationFailed naming each bad
    field. With `ticket` (an update) only the fields given are read."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    partial = ticket is not None
    errors: dict[str, str] = {k: str(UNKNOWN_FIELD) for k in data if k not in FIELDS}
    out: dict[str, Any] = {}

    def given(field: str) -> bool:
        return not partial or field in data

    if given("subject"):
        out["subject"] = _text(data, "subject", SUBJECT, errors, required=True)
    if given("description"):
        out["description"] = _text(data, "description", DESCRIPTION, errors)
    if given("channel"):
        out["channel"] = _choice(data, "channel", TICKET_CHANNELS, errors)
    if given("priority"):
        out["priority"] = _choice(data, "priority", TICKET_PRIORITIES, errors,
                                  default=None if partial else "P3")
    if given("category_id"):
        out["category_id"] = _id(data, "category_id", errors)
        if "category_id" not in errors:
            _check_category(out["category_id"], errors)
    for field in ("requester_name", "requester_email"):
        if given(field):
            out[field] = _text(data, field, REQUESTER, errors)
    if out.get("requester_email") and "requester_email" not in errors:
        try:
            out["requester_email"] = normalize_email(out["requester_email"])
        except InvalidValue as exc:
            errors["requester_email"] = str(exc)
    if given("customer_id"):
        out["customer_id"] = _id(data, "customer_id", errors)
        if "customer_id" not in errors:
            _check_customer(actor, out["customer_id"], errors)
    if given("contact_id") or "customer_id" in out:
        contact_id = _id(data, "contact_id", errors) if "contact_id" in data else (
            ticket.contact_id if partial else None)
        customer_id = out.get("customer_id", ticket.customer_id if partial else None)
        if "contact_id" not in errors and "customer_id" not in errors:
            if "contact_id" not in data and partial and customer_id != ticket.customer_id:
                contact_id = None  # another customer: its contact no longer fits
            _check_contact(contact_id, customer_id, errors)
        out["contact_id"] = contact_id
    if not partial and not errors and out.get("customer_id") is None:
        if not works_tickets(actor):
            errors["customer_id"] = tr("Required")
        elif not out.get("requester_name") and not out.get("requester_email"):
            errors["customer_id"] = tr("Name the customer, or who asked (a name or an "
                                       "e-mail address)")
    if errors:
        raise ValidationFailed(errors)
    return out


# --- history --------------------------------------------------------------------------------
def add_event(ticket: Ticket, kind: str, actor_id: Optional[int], from_value=None,
              to_value=None, note: Optional[str] = None) -> TicketEvent:
    """One line of the ticket's history (does not commit)."""
    event = TicketEvent(ticket_id=ticket.id, kind=kind, actor_id=actor_id,
                        from_value=None if from_value is None else str(from_value)[:200],
                        to_value=None if to_value is None else str(to_value)[:200],
                        note=note, at=utcnow())
    db.session.add(event)
    return event


def _actor_id(actor: Optional[User]) -> Optional[int]:
    return actor.id if actor is not None else None


def page_link(ticket_id: int) -> str:
    return f"/tickets/show/{ticket_id}"


# --- the other modules' moments -------------------------------------------------------------
def _sla():
    from app.services import sla

    return sla


def _route(ticket: Ticket, now: dt.datetime) -> tuple[Optional[int], Optional[int]]:
    from app.services import ticket_routing

    return ticket_routing.route(ticket, now)


def _on_resolved(ticket: Ticket, now: dt.datetime) -> None:
    """The satisfaction survey (app.services.satisfaction, which calls back into reopen: so
    imported here, not at the top)."""
    from app.services import satisfaction

    satisfaction.on_resolved(ticket, now)


def is_complaint(category_id: Optional[int]) -> bool:
    """The category, or one above it, is a complaint category."""
    if category_id is None:
        return False
    path = db.session.execute(select(TicketCategory.path).where(
        TicketCategory.id == category_id)).scalar() or "/"
    ids = {int(p) for p in path.strip("/").split("/") if p.isdigit()} | {category_id}
    return db.session.execute(select(TicketCategory.id).where(
        TicketCategory.id.in_(sorted(ids)), TicketCategory.is_complaint.is_(True)).limit(1)
    ).first() is not None


def _tell_owner(actor: Optional[User], ticket: Ticket) -> None:
    """The customer's owner hears of every complaint and every P1 ticket."""
    if ticket.customer_id is None:
        return
    complaint = is_complaint(ticket.category_id)
    if not complaint and ticket.priority != "P1":
        return
    owner_id = db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == ticket.customer_id)).scalar()
    if owner_id is None or owner_id == _actor_id(actor):
        return
    name = db.session.execute(select(Customer.name).where(
        Customer.id == ticket.customer_id)).scalar()
    title = (tr("Complaint from %(customer)s: %(subject)s", customer=name,
                subject=ticket.subject) if complaint else
             tr("P1 ticket of %(customer)s: %(subject)s", customer=name,
                subject=ticket.subject))
    notifications.notify([owner_id], "ticket_complaint" if complaint else "ticket_p1", title,
                         tr("Ticket #%(id)s, %(priority)s", id=ticket.id,
                            priority=ticket.priority_label), link=page_link(ticket.id))


# --- writes ---------------------------------------------------------------------------------
def _apply_route(ticket: Ticket, actor_id: Optional[int], now: dt.datetime) -> None:
    team_id, agent_id = _route(ticket, now)
    if team_id is not None and team_id != ticket.team_id:
        add_event(ticket, "team", actor_id, ticket.team_id, team_id)
        ticket.team_id = team_id
    if agent_id is not None and agent_id != ticket.agent_id:
        add_event(ticket, "assigned", actor_id, ticket.agent_id, agent_id)
        ticket.agent_id, ticket.assigned_at = agent_id, now
        if ticket.status == "new":
            add_event(ticket, "status", actor_id, "new", "assigned")
            ticket.status = "assigned"


def create(actor: Optional[User], data: Any, now: Optional[dt.datetime] = None,
           commit: bool = True) -> Ticket:
    """A ticket raised by hand or by the API (actor None: the system, inbound mail): routed
    (a dedicated agent first), its SLA clocks started, the owner told of a complaint or a
    P1, audited. `now` for tests and jobs."""
    if actor is not None and not raises_tickets(actor):
        raise PermissionDenied(tr("Your role cannot raise tickets"))
    values = clean(actor, data) if actor is not None else data
    now = now or utcnow()
    ticket = Ticket(status="new", created_by_id=_actor_id(actor), created_at=now,
                    updated_at=now, **values)
    db.session.add(ticket)
    db.session.flush()
    add_event(ticket, "created", _actor_id(actor), to_value=ticket.subject)
    audit.record(_actor_id(actor), "create", "ticket", ticket.id,
                 {k: (None, v) for k, v in values.items() if v is not None})
    _apply_route(ticket, _actor_id(actor), now)
    _sla().start(ticket, now)
    _tell_owner(actor, ticket)
    if commit:
        db.session.commit()
    return ticket


def update(actor: User, ticket_id: Any, data: Any, now: Optional[dt.datetime] = None) -> Ticket:
    """Subject, description, category, priority, channel, the customer / contact link."""
    ticket = _locked(actor, ticket_id)
    try:
        values = clean(actor, data, ticket)
    except ValidationFailed:
        db.session.rollback()
        raise
    now = now or utcnow()
    changes = audit.diff(ticket, values)
    if not changes:
        db.session.rollback()
        return get_ticket(actor, ticket_id)
    was_complaint, was_p1 = is_complaint(ticket.category_id), ticket.priority == "P1"
    for field, (old, new) in changes.items():
        setattr(ticket, field, new)
        if field in ("customer_id", "category_id", "priority", "channel", "contact_id"):
            add_event(ticket, field.removesuffix("_id"), actor.id, old, new)
    if set(changes) - {"customer_id", "category_id", "priority", "channel", "contact_id"}:
        add_event(ticket, "edited", actor.id,
                  note=", ".join(sorted(set(changes) - {"customer_id", "category_id",
                                                        "priority", "channel",
                                                        "contact_id"})))
    ticket.updated_at = now
    audit.record(actor.id, "update", "ticket", ticket.id, changes)
    if {"priority", "customer_id"} & set(changes):
        _sla().reprioritise(ticket, now)
    # Newly a complaint or a P1 (or newly of a customer): its owner hears of it now.
    if ("customer_id" in changes or (not was_complaint and "category_id" in changes)
            or (not was_p1 and "priority" in changes)):
        _tell_owner(actor, ticket)
    db.session.commit()
    return ticket


def _check_assignee(agent_id: int, team_id: Optional[int]) -> User:
    agent = db.session.get(User, agent_id)
    if agent is None or not agent.active or agent.employment_status != EMPLOYMENT_ACTIVE:
        raise ValidationFailed({"agent_id": tr("No such active user")})
    if not is_service_user(agent):
        raise ValidationFailed({"agent_id": tr("%(name)s is not a service agent",
                                               name=agent.display_name)})
    if team_id is not None and db.session.execute(select(ServiceTeamMember.id).where(
            ServiceTeamMember.team_id == team_id,
            ServiceTeamMember.user_id == agent_id)).first() is None:
        raise ValidationFailed({"agent_id": tr("%(name)s is not a member of the team",
                                               name=agent.display_name)})
    return agent


def assign(actor: User, ticket_id: Any, agent_id: Any = None, team_id: Any = None,
           now: Optional[dt.datetime] = None) -> Ticket:
    """Give the ticket to an agent (of the team, when one is named) and / or a team; the
    status becomes 'assigned'. An agent takes unassigned tickets or hands on its own; a
    ticket another agent took meanwhile is a Conflict. Managers assign within their teams,
    staff and admins anywhere. Neither agent nor team: route it again."""
    agent_pk = parse_optional_id(agent_id, "agent_id")
    team_pk = parse_optional_id(team_id, "team_id")
    ticket = _locked(actor, ticket_id)
    now = now or utcnow()
    try:
        if ticket.status not in ("new", "assigned", "in_progress", "waiting"):
            raise Conflict(tr("A %(status)s ticket cannot be assigned; reopen it first",
                              status=ticket.status_label), code="ticket_status")
        agent_only = has_role(actor, ROLE_SERVICE_AGENT) and not has_role(
            actor, ROLE_SERVICE_MANAGER, ROLE_ADMIN, ROLE_STAFF)
        if agent_only and ticket.agent_id not in (None, actor.id):
            holder = db.session.get(User, ticket.agent_id)
            raise Conflict(tr("The ticket is already assigned to %(name)s",
                              name=holder.display_name if holder else ticket.agent_id),
                           code="ticket_taken")
        if team_pk is not None:
            team = db.session.get(ServiceTeam, team_pk)
            if team is None or not team.active:
                raise ValidationFailed({"team_id": tr("The team does not exist or is no "
                                                      "longer active")})
            if (has_role(actor, ROLE_SERVICE_MANAGER) and not has_role(
                    actor, ROLE_ADMIN, ROLE_STAFF) and team_pk not in agent_team_ids(actor)):
                raise ValidationFailed({"team_id": tr("You can assign tickets only to "
                                                      "your own teams")})
        if agent_pk is not None:
            team_of_agent = team_pk if team_pk is not None else ticket.team_id
            if agent_only and agent_pk != actor.id and team_of_agent is None:
                raise ValidationFailed({"agent_id": tr(
                    "You can hand tickets only to members of the ticket's team")})
            _check_assignee(agent_pk, team_of_agent)
    except Exception:
        db.session.rollback()
        raise
    before = {"team_id": ticket.team_id, "agent_id": ticket.agent_id, "status": ticket.status}
    if agent_pk is None and team_pk is None:
        _apply_route(ticket, actor.id, now)
    else:
        if team_pk is not None and team_pk != ticket.team_id:
            add_event(ticket, "team", actor.id, ticket.team_id, team_pk)
            ticket.team_id = team_pk
            if agent_pk is None and ticket.agent_id is not None:
                add_event(ticket, "assigned", actor.id, ticket.agent_id, None)
                ticket.agent_id = None  # the new team spreads it
        if agent_pk is not None and agent_pk != ticket.agent_id:
            add_event(ticket, "assigned", actor.id, ticket.agent_id, agent_pk)
            ticket.agent_id, ticket.assigned_at = agent_pk, now
        if ticket.status != "assigned":
            if ticket.status == "waiting":
                _sla().resume(ticket, now)
            add_event(ticket, "status", actor.id, ticket.status, "assigned")
            ticket.status = "assigned"
    after = {"team_id": ticket.team_id, "agent_id": ticket.agent_id, "status": ticket.status}
    changes = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if "team_id" in changes:
        _sla().reprioritise(ticket, now)
    ticket.updated_at = now
    audit.record(actor.id, "assign", "ticket", ticket.id, changes)
    if ticket.agent_id is not None and ticket.agent_id != actor.id and "agent_id" in changes:
        notifications.notify([ticket.agent_id], "ticket_assigned",
                             tr("Ticket #%(id)s is yours: %(subject)s", id=ticket.id,
                                subject=ticket.subject), link=page_link(ticket.id))
    db.session.commit()
    return ticket


def _move(actor: Optional[User], ticket: Ticket, status: str, now: dt.datetime,
          note: Optional[str] = None) -> None:
    """Move the locked ticket to `status` by the machine, with its SLA and survey moments."""
    old = ticket.status
    if old == status:
        raise Conflict(tr("The ticket is already %(status)s", status=TICKET_STATUSES[old]),
                       code="ticket_status")
    if status not in TRANSITIONS.get(old, ()):
        raise Conflict(tr("A ticket cannot go from %(from)s to %(to)s",
                          **{"from": TICKET_STATUSES[old], "to": TICKET_STATUSES[status]}),
                       code="ticket_status")
    sla = _sla()
    actor_id = _actor_id(actor)
    if old == "waiting":
        sla.resume(ticket, now)
    ticket.status = status
    ticket.updated_at = now
    reopening = old in REOPEN_FROM and status in ("in_progress", "assigned")
    if reopening:
        ticket.reopened_count = (ticket.reopened_count or 0) + 1
        ticket.resolved_at = ticket.closed_at = None
        add_event(ticket, "reopened", actor_id, old, status, note=note)
        sla.reopened(ticket, now)
    else:
        add_event(ticket, "status", actor_id, old, status, note=note)
    if status == "waiting":
        sla.pause(ticket, now)
    elif status == "resolved":
        ticket.resolved_at = now
        sla.stop(ticket, now)
        _on_resolved(ticket, now)
    elif status == "closed":
        ticket.closed_at = now
        if old != "resolved":
            sla.stop(ticket, now)
    audit.record(actor_id, "reopen" if reopening else "status", "ticket", ticket.id,
                 {"status": (old, status)})


def _note_text(note: Any, field: str = "note") -> Optional[str]:
    errors: dict[str, str] = {}
    value = _text({field: note}, field, limits.REASON, errors)
    if errors:
        raise ValidationFailed(errors)
    return value


def change_status(actor: User, ticket_id: Any, status: Any, note: Any = None,
                  now: Optional[dt.datetime] = None) -> Ticket:
    """Move the ticket by the status machine (TRANSITIONS); a move it does not allow, or
    one overtaken by another's change, is a Conflict naming both statuses."""
    if not isinstance(status, str) or status not in TICKET_STATUSES:
        raise ValidationFailed({"status": tr("%(field)s can only be: %(choices)s",
                                             field="status",
                                             choices=tr(", ").join(TICKET_STATUSES))})
    note = _note_text(note)
    ticket = _locked(actor, ticket_id)
    try:
        _move(actor, ticket, status, now or utcnow(), note)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return ticket


def reopen(actor: Optional[User], ticket_id: Any, reason: Any,
           now: Optional[dt.datetime] = None) -> Ticket:
    """A resolved or closed ticket back to work (actor None: the system, e.g. a low
    satisfaction score): to 'assigned' when it has an agent to pick it up again — or
    'in_progress' when that agent reopens it — else 'assigned' to its team."""
    reason = _note_text(reason, "reason")
    ticket = _locked(actor, ticket_id)
    try:
        if ticket.status not in REOPEN_FROM:
            raise Conflict(tr("Only a resolved or closed ticket can be reopened; this one is "
                              "%(status)s", status=ticket.status_label), code="ticket_status")
        target = "in_progress" if (actor is not None and ticket.agent_id == actor.id) \
            else "assigned"
        _move(actor, ticket, target, now or utcnow(), reason)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return ticket


def _message(actor: Optional[User], ticket: Ticket, kind: str, body: Any, now: dt.datetime,
             **columns) -> TicketMessage:
    errors: dict[str, str] = {}
    text = _text({"body": body}, "body", DESCRIPTION, errors, required=True)
    if errors:
        raise ValidationFailed(errors)
    message = TicketMessage(ticket_id=ticket.id, kind=kind, body=text,
                            author_id=_actor_id(actor), created_at=now, **columns)
    db.session.add(message)
    db.session.flush()
    return message


def _attach(actor: Optional[User], ticket: Ticket, message: TicketMessage,
            attachments: Iterable) -> None:
    attachments = list(attachments or ())
    if attachments:
        from app.services import ticket_storage

        for upload in attachments:
            ticket_storage.attach(actor, ticket, upload, message_id=message.id)


def reply_address(ticket: Ticket) -> Optional[str]:
    """Where a reply is e-mailed: the contact's address, else the customer's, else the
    requester's (inbound mail of an unlinked sender)."""
    for record in (ticket.contact, ticket.customer):
        if record is not None and record.email:
            return record.email
    return ticket.requester_email


def reply(actor: User, ticket_id: Any, body: Any, attachments: Iterable = (),
          now: Optional[dt.datetime] = None) -> TicketMessage:
    """A reply to the customer: e-mailed through the ticket mail job when there is an
    address (delivery 'pending'), recorded either way. The first reply stops the response
    clock; a reply to a new or assigned ticket puts it in progress."""
    ticket = _locked(actor, ticket_id)
    now = now or utcnow()
    try:
        if ticket.status not in OPEN_TICKET_STATUSES:
            raise Conflict(tr("A %(status)s ticket takes no replies; reopen it first",
                              status=ticket.status_label), code="ticket_status")
        address = reply_address(ticket)
        message = _message(actor, ticket, "reply", body, now, address=address,
                           delivery_status="pending" if address else None,
                           next_attempt_at=now if address else None)
        _attach(actor, ticket, message, attachments)
    except Exception:
        db.session.rollback()
        raise
    add_event(ticket, "reply", actor.id, to_value=message.id)
    if ticket.first_response_at is None:
        _sla().responded(ticket, now)
    if ticket.status in ("new", "assigned"):
        _move(actor, ticket, "in_progress", now)
    ticket.updated_at = now
    audit.record(actor.id, "reply", "ticket", ticket.id, {"message": (None, message.id)})
    db.session.commit()
    if address:
        _enqueue_delivery(message.id)
    return message


def note(actor: User, ticket_id: Any, body: Any, attachments: Iterable = (),
         now: Optional[dt.datetime] = None) -> TicketMessage:
    """An internal note (never sent): the desk, and the customer's owner on the tickets of
    their customers."""
    if not raises_tickets(actor):
        raise PermissionDenied(tr("Your role cannot work tickets"))
    ticket = _locked(actor, ticket_id, write=False)
    now = now or utcnow()
    try:
        message = _message(actor, ticket, "note", body, now)
        _attach(actor, ticket, message, attachments)
    except Exception:
        db.session.rollback()
        raise
    add_event(ticket, "note", actor.id, to_value=message.id)
    ticket.updated_at = now
    audit.record(actor.id, "note", "ticket", ticket.id, {"message": (None, message.id)})
    db.session.commit()
    return message


def _enqueue_delivery(message_id: int) -> None:
    """Send the reply now rather than at the next periodic run (best effort: the periodic
    job, jobs.tickets.ticket_mail_deliver, finds every pending reply anyway)."""
    from app.queue import enqueue

    enqueue("jobs.tickets.ticket_reply_deliver", message_id)


def customer_wrote(ticket_id: int, body: str, now: Optional[dt.datetime] = None,
                   **mail_columns) -> TicketMessage:
    """A message from the customer (inbound mail) on an open or resolved ticket: a waiting
    ticket is back in progress, a resolved one reopened, its agent told. Does not commit."""
    now = now or utcnow()
    ticket = _locked(None, ticket_id)
    message = TicketMessage(ticket_id=ticket.id, kind="inbound", body=body, created_at=now,
                            **mail_columns)
    db.session.add(message)
    db.session.flush()
    add_event(ticket, "inbound", None, to_value=message.id)
    if ticket.status == "waiting":
        _move(None, ticket, "in_progress", now)
    elif ticket.status == "resolved":
        _move(None, ticket, "assigned", now, tr("The customer wrote again"))
    ticket.updated_at = now
    if ticket.agent_id is not None:
        notifications.notify([ticket.agent_id], "ticket_inbound", tr(
            "The customer wrote on ticket #%(id)s: %(subject)s", id=ticket.id,
            subject=ticket.subject), link=page_link(ticket.id))
    return message


# --- reading --------------------------------------------------------------------------------
def history(ticket: Ticket) -> list[TicketEvent]:
    return list(db.session.execute(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id).options(joinedload(TicketEvent.actor)).order_by(
        TicketEvent.id)).scalars())


def messages(ticket: Ticket) -> list[TicketMessage]:
    return list(db.session.execute(select(TicketMessage).where(
        TicketMessage.ticket_id == ticket.id).options(joinedload(TicketMessage.author))
        .order_by(TicketMessage.id)).scalars())
