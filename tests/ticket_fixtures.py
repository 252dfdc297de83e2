"""The service desk for ticket tests: a team of agent1 (managed by svcmgr1) and one of agent2,
the category tree with a complaint branch, and fixed times."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.models import ServiceTeam, ServiceTeamMember, TicketCategory

NOW = dt.datetime(2026, 12, 1, 2, 0)  # 10:00 in Shanghai, a Tuesday


@dataclass
class Desk:
    team: object        # 一线 (agent1; svcmgr1 manages it)
    team2: object       # 二线 (agent2)
    consult: object     # 咨询
    complaint: object   # 投诉 (is_complaint)
    product: object     # 投诉 / 产品投诉 (under a complaint)
    retired: object     # an inactive category


def category(db, name, parent=None, is_complaint=False, active=True):
    c = TicketCategory(name=name, parent_id=parent.id if parent else None,
                       is_complaint=is_complaint, active=active)
    db.session.add(c)
    db.session.flush()
    c.path = (parent.path if parent else "/") + f"{c.id}/"
    return c


def build_desk(db, org) -> Desk:
    team = ServiceTeam(name="一线", manager_id=org.service_manager.id)
    team2 = ServiceTeam(name="二线")
    db.session.add_all([team, team2])
    db.session.flush()
    db.session.add_all([ServiceTeamMember(team_id=team.id, user_id=org.agent.id),
                        ServiceTeamMember(team_id=team2.id, user_id=org.agent2.id)])
    consult = category(db, "咨询")
    complaint = category(db, "投诉", is_complaint=True)
    product = category(db, "产品投诉", parent=complaint)
    retired = category(db, "旧分类", active=False)
    db.session.commit()
    return Desk(team, team2, consult, complaint, product, retired)


# --- until app.services.sla and app.services.ticket_routing are merged (other branches) ----
class Calls(list):
    """The SLA moments the tickets service called, as (name, ticket id)."""

    def names(self, ticket_id):
        return [name for name, tid in self if tid == ticket_id]


def install_fake_desk(monkeypatch, route=(None, None)):
    import sys
    import types

    calls = Calls()
    sla = types.ModuleType("app.services.sla")

    def moment(name):
        def call(ticket, now):
            calls.append((name, ticket.id))
            if name == "responded":
                ticket.first_response_at = now
        return call

    for name in ("start", "reprioritise", "pause", "resume", "responded", "stop", "reopened"):
        setattr(sla, name, moment(name))
    routing = types.ModuleType("app.services.ticket_routing")
    routing.answer = route
    routing.route = lambda ticket, now: routing.answer
    monkeypatch.setitem(sys.modules, "app.services.sla", sla)
    monkeypatch.setitem(sys.modules, "app.services.ticket_routing", routing)
    return calls, routing
