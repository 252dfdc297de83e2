"""The service desk for ticket tests: a team of agent1 (managed by svcmgr1) and one of agent2,
the seeded category tree with a complaint sub-category and a retired one, an SLA policy for
every ticket, and fixed times."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from app.models import ServiceTeam, ServiceTeamMember, SlaPolicy, TicketCategory
from app.services import service_admin

NOW = dt.datetime(2026, 12, 1, 2, 0)  # 10:00 in Shanghai, a Tuesday (a working day)


@dataclass
class Desk:
    team: object        # 一线 (agent1; svcmgr1 manages it)
    team2: object       # 二线 (agent2)
    consult: object     # 咨询 (seeded)
    complaint: object   # 投诉 (seeded, is_complaint)
    product: object     # 投诉 / 产品投诉 (under a complaint)
    retired: object     # an inactive category
    policy: object      # any ticket: respond in 60, resolve in 480 business minutes


def category(db, name, parent=None, is_complaint=False, active=True):
    c = TicketCategory(name=name, parent_id=parent.id if parent else None,
                       is_complaint=is_complaint, active=active)
    db.session.add(c)
    db.session.flush()
    c.path = (parent.path if parent else "/") + f"{c.id}/"
    return c


def seeded(db, name):
    return db.session.execute(select(TicketCategory).where(
        TicketCategory.name == name)).scalar_one()


def build_desk(db, org) -> Desk:
    team = ServiceTeam(name="一线", manager_id=org.service_manager.id)
    team2 = ServiceTeam(name="二线")
    db.session.add_all([team, team2])
    db.session.flush()
    db.session.add_all([ServiceTeamMember(team_id=team.id, user_id=org.agent.id),
                        ServiceTeamMember(team_id=team2.id, user_id=org.agent2.id)])
    complaint = seeded(db, "投诉")
    product = category(db, "产品投诉", parent=complaint)
    retired = category(db, "旧分类", active=False)
    policy = SlaPolicy(name="全部工单", first_response_minutes=60, resolution_minutes=480,
                       clock="business")
    db.session.add(policy)
    db.session.commit()
    return Desk(team, team2, seeded(db, "咨询"), complaint, product, retired, policy)


def route_to(db, team) -> None:
    """Tickets no routing rule matches go to `team` (None: to no team)."""
    service_admin.settings().default_team_id = team.id if team is not None else None
    db.session.commit()
