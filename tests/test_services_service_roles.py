"""The service desk's roles (客服, 客服主管) outside the tickets: they read the customers of the
tickets in their scope (page, API, contacts) and edit none; contact details in full only
while that customer holds an open ticket in their scope (the one masking rule), masked
otherwise; they own nothing (every ownership path refuses them, owner pickers leave them
out) and take no ownership action."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Contact, User
from app.security import can_see_customer, can_write_customer
from app.services import assignment, customers, masking, ownership, tickets, transfers
from app.services.errors import OutOfScope, PermissionDenied, ValidationFailed
from tests.ticket_fixtures import NOW, build_desk


@pytest.fixture
def desk(db, org):
    return build_desk(db, org)


def ticket_for(org, desk, customer):
    t = tickets.create(org.staff, {"customer_id": customer.id, "channel": "phone",
                                   "subject": "报修"}, now=NOW)
    tickets.assign(org.staff, t.id, agent_id=org.agent.id, team_id=desk.team.id, now=NOW)
    return t


def test_agents_read_the_customers_of_their_tickets_only(db, org, desk):
    assert not can_see_customer(org.agent, org.c_rep.id)
    t = ticket_for(org, desk, org.c_rep)
    assert can_see_customer(org.agent, org.c_rep.id)
    assert can_see_customer(org.service_manager, org.c_rep.id)   # its team's ticket
    assert not can_see_customer(org.agent, org.c_north.id)
    assert not can_see_customer(org.agent2, org.c_rep.id)
    assert not can_write_customer(org.agent, org.c_rep.id)
    assert customers.get_customer(org.agent, org.c_rep.id).id == org.c_rep.id
    with pytest.raises(OutOfScope):
        customers.get_customer(org.agent, org.c_north.id)
    with pytest.raises(PermissionDenied):
        customers.update_customer(org.agent, org.c_rep.id, {"city": "宁波"})
    tickets.change_status(org.agent, t.id, "closed")
    assert can_see_customer(org.agent, org.c_rep.id)   # its history stays readable


def test_contacts_in_full_only_while_a_ticket_is_open(db, org, desk):
    owner = org.c_rep.ownership.owner_id
    assert masking.rule_for(org.agent)(owner, None, org.c_rep.id) is False
    t = ticket_for(org, desk, org.c_rep)
    assert masking.rule_for(org.agent)(owner, None, org.c_rep.id) is True
    assert masking.rule_for(org.service_manager)(owner, None, org.c_rep.id) is True
    assert masking.rule_for(org.agent2)(owner, None, org.c_rep.id) is False
    assert masking.rule_for(org.agent)(owner, None) is False  # no customer named: masked
    tickets.change_status(org.agent, t.id, "resolved")
    assert masking.rule_for(org.agent)(owner, None, org.c_rep.id) is False
    # The sales rule is unchanged: the owner in full, marketing masked.
    assert masking.rule_for(org.rep)(owner, None, org.c_rep.id) is True
    assert masking.rule_for(org.marketing)(owner, None, org.c_rep.id) is False


def test_the_customer_page_and_api_by_the_rule(clients, api, db, org, desk):
    contact = Contact(customer_id=org.c_rep.id, name="李工", mobile="13912345678")
    db.session.add(contact)
    db.session.commit()
    call = api("agent1")
    assert call("GET", f"/api/v1/customers/{org.c_rep.id}").status_code == 404
    assert clients.agent.get(f"/customers/show/{org.c_rep.id}").status_code in (302, 404)
    t = ticket_for(org, desk, org.c_rep)
    body = call("GET", f"/api/v1/customers/{org.c_rep.id}").get_json()["result"]
    assert body["mobile"] == "13800138000"
    listing = call("GET", "/api/v1/customers/?q=(page_size:100)").get_json()
    assert [c["id"] for c in listing["result"]] == [org.c_rep.id]
    page = clients.agent.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "13800138000" in page and "13912345678" in page
    assert call("PUT", f"/api/v1/customers/{org.c_rep.id}",
                json={"city": "宁波"}).status_code == 403
    tickets.change_status(org.agent, t.id, "resolved")
    body = call("GET", f"/api/v1/customers/{org.c_rep.id}").get_json()["result"]
    assert body["mobile"] == "138****8000"
    page = clients.agent.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "138****8000" in page and "13800138000" not in page
    assert "139****5678" in page and "13912345678" not in page
    assert clients.agent.get(f"/customers/show/{org.c_north.id}").status_code in (302, 404)


def test_the_service_desk_owns_nothing(db, org, desk):
    for user in (org.agent, org.service_manager):
        with pytest.raises(ValidationFailed) as exc:
            ownership.ensure_active_owner(user.id)
        assert exc.value.fields == {
            "owner": f"{user.display_name} 是客服人员，不能负责客户或线索"}
        with pytest.raises(ValidationFailed) as exc:
            ownership.lock_active_rep(user.id)
        assert exc.value.fields == {"owner": f"{user.username} 是客服人员，不能负责客户或线索"}
        db.session.rollback()
    with pytest.raises(ValidationFailed) as exc:
        assignment.assign(org.admin, [org.c_pool.id], org.agent.id)
    assert exc.value.fields == {"owner": "测试agent1 是客服人员，不能负责客户或线索"}
    with pytest.raises(ValidationFailed):
        transfers.create_transfer(org.rep, [org.c_rep.id], org.agent.id, "调整")
    with pytest.raises(PermissionDenied):
        customers.create_customer(org.agent, {"name": "客服录入有限公司"})
    pickable = set(db.session.execute(select(User.id).where(
        User.id.in_(customers.assignable_owner_ids(org.admin)))).scalars())
    assert org.rep.id in pickable
    assert not {org.agent.id, org.agent2.id, org.service_manager.id, org.marketing.id} & pickable


def test_a_rep_who_also_serves_reads_both_scopes_and_may_own(db, org, desk):
    from app.extensions import appbuilder
    from app.security import ROLE_SERVICE_AGENT
    from app.models import ServiceTeamMember

    both = org.rep2
    both.roles.append(appbuilder.sm.find_role(ROLE_SERVICE_AGENT))
    db.session.add(ServiceTeamMember(team_id=desk.team.id, user_id=both.id))
    db.session.commit()
    assert can_see_customer(both, org.c_rep2.id)      # its own customer, as a rep
    assert not can_see_customer(both, org.c_north.id)
    ticket_for(org, desk, org.c_north)                 # a ticket of its team
    assert can_see_customer(both, org.c_north.id)
    assert not can_write_customer(both, org.c_north.id)
    assert ownership.ensure_active_owner(both.id).id == both.id   # a rep owns customers
