"""ticket_routing.route: the dedicated agent first, then the first matching rule's team (or
the default team), then round robin / fewest open tickets among the members present."""
from __future__ import annotations

from sqlalchemy import update

from app.models import Ownership
from app.models.service_desk import ServiceTeam
from app.services import absences, service_admin, ticket_routing
from tests.service_desk_fixtures import NOW, category, team, ticket


def _grade(db, customer, grade):
    db.session.execute(update(Ownership).where(Ownership.customer_id == customer.id)
                       .values(grade=grade))


def test_no_team_at_all_routes_nowhere(db, org):
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (None, None)


def test_default_team_round_robin_in_member_order(db, org):
    first = team(org.admin, "一线", [org.agent2, org.agent])
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    picks = []
    for _ in range(4):
        t = ticket(org.c_rep)
        team_id, agent_id = ticket_routing.route(t, NOW)
        t.team_id, t.agent_id = team_id, agent_id
        picks.append(agent_id)
        assert team_id == first.id
    low, high = sorted([org.agent.id, org.agent2.id])
    assert picks == [low, high, low, high]


def test_first_matching_rule_wins_category_matches_its_subtree(db, org):
    first = team(org.admin, "一线", [org.agent])
    complaints = team(org.admin, "投诉组", [org.agent2])
    fault = category("故障")
    network = service_admin.create_category(org.admin, {"name": "网络", "parent_id": fault.id})
    service_admin.create_rule(org.admin, {"name": "故障类", "position": 10,
                                          "category_id": fault.id, "team_id": complaints.id})
    service_admin.create_rule(org.admin, {"name": "其他", "position": 20, "team_id": first.id})
    t = ticket(org.c_rep)
    t.category_id = network.id
    assert ticket_routing.route(t, NOW) == (complaints.id, org.agent2.id)
    assert ticket_routing.route(ticket(org.c_rep, "咨询"), NOW) == (first.id, org.agent.id)
    assert ticket_routing.route(ticket(None), NOW) == (first.id, org.agent.id)


def test_rule_conditions_priority_province_grade(db, org):
    vip = team(org.admin, "VIP", [org.agent2])
    first = team(org.admin, "一线", [org.agent])
    service_admin.create_rule(org.admin, {"name": "浙江A级P1", "position": 1, "priority": "P1",
                                          "province": "浙江", "grade": "A", "team_id": vip.id})
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    _grade(db, org.c_rep, "A")       # c_rep is in 浙江
    _grade(db, org.c_north, "A")
    assert ticket_routing.route(ticket(org.c_rep, priority="P1"), NOW)[0] == vip.id
    assert ticket_routing.route(ticket(org.c_rep, priority="P2"), NOW)[0] == first.id
    assert ticket_routing.route(ticket(org.c_north, priority="P1"), NOW)[0] == first.id
    _grade(db, org.c_rep, "B")
    assert ticket_routing.route(ticket(org.c_rep, priority="P1"), NOW)[0] == first.id


def test_inactive_rules_and_teams_are_passed_over(db, org):
    first = team(org.admin, "一线", [org.agent])
    second = team(org.admin, "二线", [org.agent2])
    rule = service_admin.create_rule(org.admin, {"name": "全部", "position": 1,
                                                 "team_id": second.id})
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    service_admin.update_rule(org.admin, rule.id, {"active": False})
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, org.agent.id)
    service_admin.update_rule(org.admin, rule.id, {"active": True})
    service_admin.update_team(org.admin, second.id, {"active": False})
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, org.agent.id)


def test_dedicated_agent_first_unless_absent(db, org):
    first = team(org.admin, "一线", [org.agent])
    big = team(org.admin, "大客户组", [org.agent2])
    service_admin.update_settings(org.admin, {"default_team_id": first.id,
                                              "dedicated_team_id": big.id})
    service_admin.set_dedicated_agent(org.admin, org.c_rep.id, org.agent2.id)
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (big.id, org.agent2.id)
    assert ticket_routing.route(ticket(org.c_rep2), NOW) == (first.id, org.agent.id)
    absences.create_absence(org.admin, org.agent2.id, "2026-12-01", "2026-12-01")
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, org.agent.id)
    # The next day they are back.
    tomorrow = NOW.replace(day=2)
    assert ticket_routing.route(ticket(org.c_rep), tomorrow) == (big.id, org.agent2.id)


def test_dedicated_agent_no_longer_a_service_user_is_passed_over(db, org):
    first = team(org.admin, "一线", [org.agent])
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    service_admin.set_dedicated_agent(org.admin, org.c_rep.id, org.agent2.id)
    org.agent2.active = False
    db.session.flush()
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, org.agent.id)


def test_absent_members_are_skipped_and_nobody_present_leaves_the_queue(db, org):
    first = team(org.admin, "一线", [org.agent, org.agent2])
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    absences.create_absence(org.admin, org.agent.id, "2026-12-01", "2026-12-03")
    for _ in range(2):
        assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, org.agent2.id)
    absences.create_absence(org.admin, org.agent2.id, "2026-12-01", "2026-12-01")
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, None)


def test_least_loaded_counts_open_tickets(db, org):
    first = team(org.admin, "一线", [org.agent, org.agent2], strategy="least_loaded")
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    ticket(org.c_rep, agent_id=org.agent.id, status="in_progress")
    ticket(org.c_rep, agent_id=org.agent.id, status="waiting")
    ticket(org.c_rep, agent_id=org.agent2.id, status="assigned")
    for _ in range(3):  # closed ones do not count
        ticket(org.c_rep, agent_id=org.agent2.id, status="closed")
    t = ticket(org.c_rep)
    assert ticket_routing.route(t, NOW) == (first.id, org.agent2.id)
    t.agent_id = org.agent2.id
    db.session.flush()
    # 2 each: the lower id
    low = min(org.agent.id, org.agent2.id)
    assert ticket_routing.route(ticket(org.c_rep), NOW) == (first.id, low)
    assert db.session.get(ServiceTeam, first.id).last_agent_id is None
