"""Routing (分派): which team and agent a ticket goes to.

1. The customer's dedicated service agent (专属客服), if they can take it today: active, a
   service role, not on leave (app.services.absences).
2. Else the first active routing rule, by position, whose conditions all match (category:
   the rule's category or below it; priority; the customer's province; the customer's
   grade) and whose team is active — else the settings' default team.
3. Within the team, among the members present today: round robin (the team's last_agent_id,
   advanced under the team's row lock, so simultaneous tickets spread), or the fewest open
   tickets (counted under the same lock).

route() decides and sets nothing on the ticket: the caller (app.services.tickets) does, in
the transaction that holds the team's lock until it commits.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Customer, Ownership, User
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.service_desk import (OPEN_TICKET_STATUSES, ServiceTeam, ServiceTeamMember,
                                     Ticket, TicketCategory, TicketRoutingRule)
from app.services import absences, service_admin
from app.services.times import local_date


def _agent_present(agent_id: int, day: dt.date) -> bool:
    user = db.session.get(User, agent_id)
    return (user is not None and user.active and user.employment_status == EMPLOYMENT_ACTIVE
            and service_admin.is_service_user(user)
            and agent_id not in absences.absent_user_ids(day))


def _customer_facts(ticket: Ticket) -> tuple[Optional[str], Optional[str]]:
    """(province, grade) of the ticket's customer."""
    if ticket.customer_id is None:
        return None, None
    row = db.session.execute(select(Customer.province, Ownership.grade).outerjoin(
        Ownership, Ownership.customer_id == Customer.id).where(
        Customer.id == ticket.customer_id)).first()
    return (row.province, row.grade) if row is not None else (None, None)


def _category_path(ticket: Ticket) -> Optional[str]:
    if ticket.category_id is None:
        return None
    return db.session.execute(select(TicketCategory.path).where(
        TicketCategory.id == ticket.category_id)).scalar_one_or_none()


def matching_team_id(ticket: Ticket) -> Optional[int]:
    """The team of the first active rule matching the ticket, else the default team."""
    province, grade = _customer_facts(ticket)
    path = _category_path(ticket)
    rules = db.session.execute(
        select(TicketRoutingRule, TicketCategory.path, ServiceTeam.active)
        .outerjoin(TicketCategory, TicketCategory.id == TicketRoutingRule.category_id)
        .join(ServiceTeam, ServiceTeam.id == TicketRoutingRule.team_id)
        .where(TicketRoutingRule.active.is_(True))
        .order_by(TicketRoutingRule.position, TicketRoutingRule.id)).all()
    for rule, rule_path, team_active in rules:
        if not team_active:
            continue
        if rule.category_id is not None and not (path and path.startswith(rule_path)):
            continue
        if rule.priority is not None and rule.priority != ticket.priority:
            continue
        if rule.province is not None and rule.province != province:
            continue
        if rule.grade is not None and rule.grade != grade:
            continue
        return rule.team_id
    default = service_admin.settings().default_team_id
    if default is not None and db.session.execute(select(ServiceTeam.active).where(
            ServiceTeam.id == default)).scalar_one_or_none():
        return default
    return None


def lock_team(team_id: int) -> Optional[ServiceTeam]:
    """The team's row locked until the transaction ends (the UPDATE takes the row lock on
    PostgreSQL and the write lock on SQLite), read fresh."""
    db.session.execute(update(ServiceTeam).where(ServiceTeam.id == team_id)
                       .values(last_agent_id=ServiceTeam.last_agent_id))
    return db.session.execute(select(ServiceTeam).where(ServiceTeam.id == team_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def pick_agent(team_id: int, now: dt.datetime, exclude_ticket_id: Optional[int] = None
               ) -> Optional[int]:
    """An agent of the team present on `now`'s business date, by the team's strategy; None
    when nobody is (the ticket waits in the team's queue)."""
    team = lock_team(team_id)
    if team is None:
        return None
    present = service_admin.present_member_ids(team_id, local_date(now))
    if not present:
        return None
    if team.strategy == "least_loaded":
        q = select(Ticket.agent_id, func.count()).where(
            Ticket.agent_id.in_(present), Ticket.status.in_(OPEN_TICKET_STATUSES))
        if exclude_ticket_id is not None:
            q = q.where(Ticket.id != exclude_ticket_id)
        loads = dict(db.session.execute(q.group_by(Ticket.agent_id)).all())
        return min(present, key=lambda agent: (loads.get(agent, 0), agent))
    last = team.last_agent_id
    chosen = next((agent for agent in present if last is None or agent > last), present[0])
    db.session.execute(update(ServiceTeam).where(ServiceTeam.id == team_id)
                       .values(last_agent_id=chosen))
    return chosen


def _team_of_agent(agent_id: int, preferred: list[Optional[int]]) -> Optional[int]:
    teams = list(db.session.execute(select(ServiceTeamMember.team_id).join(
        ServiceTeam, ServiceTeam.id == ServiceTeamMember.team_id).where(
        ServiceTeamMember.user_id == agent_id, ServiceTeam.active.is_(True))
        .order_by(ServiceTeamMember.team_id)).scalars())
    for team_id in preferred:
        if team_id in teams:
            return team_id
    return teams[0] if teams else None


def route(ticket: Ticket, now: dt.datetime) -> tuple[Optional[int], Optional[int]]:
    """(team_id, agent_id) for the ticket; either may be None (no team matched, nobody
    present). See the module's docstring for the order."""
    day = local_date(now)
    if ticket.customer_id is not None:
        dedicated = service_admin.dedicated_agent_of(ticket.customer_id)
        if dedicated is not None and _agent_present(dedicated, day):
            settings = service_admin.settings()
            team_id = _team_of_agent(dedicated, [matching_team_id(ticket),
                                                 settings.dedicated_team_id])
            return team_id, dedicated
    team_id = matching_team_id(ticket)
    if team_id is None:
        return None, None
    return team_id, pick_agent(team_id, now, exclude_ticket_id=ticket.id)
