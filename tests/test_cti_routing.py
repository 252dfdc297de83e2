"""来电路由 (issue 18): GET /api/v1/cti/route?caller=… — the decision table (dedicated agent →
owner → team queue walking up the departments → default queue; unknown numbers; leads), the
agent-number rule, and the endpoint's authentication, audit and bad input."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Absence, AuditLog
from app.models.service_desk import CustomerServiceAgent
from app.services import api_keys, cti_routing
from app.services.errors import ValidationFailed
from app.services.times import local_today

URL = "/api/v1/cti/route"
C_REP = "+86 138-0013-8000"   # org.c_rep's mobile, as a PBX might send it


def seat(db, user, no, status="available"):
    user.agent_no, user.agent_status = no, status
    db.session.commit()


def away_today(db, user):
    db.session.add(Absence(user_id=user.id, starts_on=local_today(), ends_on=local_today()))
    db.session.commit()


def dedicate(db, customer, agent):
    db.session.add(CustomerServiceAgent(customer_id=customer.id, agent_id=agent.id))
    db.session.commit()


def decide(caller=C_REP) -> dict:
    return cti_routing.route(caller).to_dict()


@pytest.fixture
def seats(db, org):
    seat(db, org.agent, "8001")
    seat(db, org.rep, "8101")
    dedicate(db, org.c_rep, org.agent)
    return org


def test_the_dedicated_agent_present_takes_the_call(seats):
    assert decide() == {"target": "agent", "agent_no": "8001", "queue": None,
                        "reason": "dedicated_agent", "customer_id": seats.c_rep.id,
                        "lead_id": None}


@pytest.mark.parametrize("why", ["absent", "busy", "away", "offline", "no_status", "no_seat",
                                 "departed", "inactive"])
def test_a_dedicated_agent_not_present_passes_to_the_owner(db, seats, why):
    agent = seats.agent
    if why == "absent":
        away_today(db, agent)
    elif why == "no_status":
        seat(db, agent, "8001", None)
    elif why == "no_seat":
        seat(db, agent, None)
    elif why == "departed":
        agent.employment_status = "departed"
        db.session.commit()
    elif why == "inactive":
        agent.active = False
        db.session.commit()
    else:
        seat(db, agent, "8001", why)
    assert decide() == {"target": "agent", "agent_no": "8101", "queue": None,
                        "reason": "owner", "customer_id": seats.c_rep.id, "lead_id": None}


def test_an_absence_of_another_day_or_cancelled_does_not_count(db, seats):
    import datetime as dt

    day = local_today()
    db.session.add(Absence(user_id=seats.agent.id, starts_on=day - dt.timedelta(days=3),
                           ends_on=day - dt.timedelta(days=1)))
    db.session.add(Absence(user_id=seats.agent.id, starts_on=day, ends_on=day,
                           cancelled_at=dt.datetime(2026, 1, 1)))
    db.session.commit()
    assert decide()["reason"] == "dedicated_agent"


def test_without_a_dedicated_agent_the_owner_takes_it(db, org):
    seat(db, org.rep, "8101")
    assert decide()["reason"] == "owner"
    assert decide()["agent_no"] == "8101"


def test_owner_not_present_team_queue_of_the_owners_department(db, seats):
    seat(db, seats.agent, "8001", "busy")
    seat(db, seats.rep, "8101", "busy")
    seats.east.cti_queue = "east-sales"
    seats.centre.cti_queue = "centre"
    db.session.commit()
    assert decide() == {"target": "queue", "agent_no": None, "queue": "east-sales",
                        "reason": "team_queue", "customer_id": seats.c_rep.id,
                        "lead_id": None}


def test_team_queue_walks_up_to_the_nearest_department_with_one(db, seats):
    away_today(db, seats.agent)
    away_today(db, seats.rep)
    seats.centre.cti_queue = "centre"
    db.session.commit()
    assert decide()["queue"] == "centre"
    assert decide()["reason"] == "team_queue"


def test_no_queue_up_the_tree_is_the_default_queue(db, org, app):
    assert decide() == {"target": "queue", "agent_no": None, "queue": "default",
                        "reason": "default_queue", "customer_id": org.c_rep.id,
                        "lead_id": None}


def test_a_pool_customer_goes_to_the_default_queue(db, org, app):
    org.east.cti_queue = "east-sales"
    db.session.commit()
    assert decide("021-62345678") == {"target": "queue", "agent_no": None, "queue": "default",
                                      "reason": "default_queue", "customer_id": org.c_pool.id,
                                      "lead_id": None}


def test_a_pool_customers_dedicated_agent_still_takes_it(db, org):
    seat(db, org.agent, "8001")
    dedicate(db, org.c_pool, org.agent)
    assert decide("02162345678")["reason"] == "dedicated_agent"


def test_a_contacts_number_routes_as_its_customer(db, org):
    from app.services import customers

    customers.add_contact(org.rep2, org.c_rep2.id, {"name": "王经理", "mobile": "13700137000"})
    seat(db, org.rep2, "8102")
    assert decide("13700137000") == {"target": "agent", "agent_no": "8102", "queue": None,
                                     "reason": "owner", "customer_id": org.c_rep2.id,
                                     "lead_id": None}


def test_an_unknown_number_goes_to_the_default_queue(app, db, org):
    app.config["CTI_DEFAULT_QUEUE"] = "hotline"
    try:
        assert decide("13111112222") == {"target": "queue", "agent_no": None,
                                         "queue": "hotline", "reason": "unknown_number",
                                         "customer_id": None, "lead_id": None}
        # a well-formed number that is no valid one (too short): unknown too
        assert decide("12345")["reason"] == "unknown_number"
    finally:
        app.config["CTI_DEFAULT_QUEUE"] = "default"


def test_a_leads_owner_takes_its_call_else_its_team_queue(db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep, {"person_name": "线索甲", "company_name": "甲公司",
                                       "mobile": "13655556666"})
    assert decide("13655556666") == {"target": "queue", "agent_no": None, "queue": "default",
                                     "reason": "default_queue", "customer_id": None,
                                     "lead_id": lead.id}
    org.east.cti_queue = "east-sales"
    db.session.commit()
    assert decide("13655556666")["reason"] == "team_queue"
    seat(db, org.rep, "8101")
    assert decide("13655556666") == {"target": "agent", "agent_no": "8101", "queue": None,
                                     "reason": "owner", "customer_id": None,
                                     "lead_id": lead.id}


@pytest.mark.parametrize("bad", [None, "", "   ", "abc", "1380013800\x00", "1" * 65,
                                 "13800138000; drop", "１３８００１３８０００"])
def test_bad_callers_are_refused_naming_caller(db, org, bad):
    with pytest.raises(ValidationFailed) as err:
        cti_routing.route(bad)
    assert set(err.value.fields) == {"caller"}


# --- agent numbers -------------------------------------------------------------------------
def test_agent_numbers(db, org):
    assert cti_routing.clean_agent_no("  ") is None
    assert cti_routing.clean_agent_no(" A-01_x ") == "A-01_x"
    for bad in ("8 01", "工号1", "a" * 33, "x\x00", "8001/2"):
        with pytest.raises(ValidationFailed) as err:
            cti_routing.clean_agent_no(bad)
        assert set(err.value.fields) == {"agent_no"}
    seat(db, org.rep, "8101")
    with pytest.raises(ValidationFailed) as err:
        cti_routing.clean_agent_no("8101", org.rep2.id)
    assert "8101" in err.value.fields["agent_no"]
    assert cti_routing.clean_agent_no("8101", org.rep.id) == "8101"  # its own


# --- the endpoint ------------------------------------------------------------------------------
@pytest.fixture
def key(db, org):
    _, raw = api_keys.create_key(org.admin, "呼叫中心", "call_events")
    return raw


def get(app, raw=None, header="X-Api-Key", **params):
    headers = {}
    if raw is not None:
        headers = {"Authorization": f"Bearer {raw}"} if header == "bearer" else {header: raw}
    return app.test_client().get(URL, query_string=params, headers=headers)


def _uses(db) -> list[tuple]:
    db.session.expire_all()
    return [(r.changes["result"][1], r.changes["endpoint"][1]) for r in db.session.execute(
        select(AuditLog).where(AuditLog.action == api_keys.USE).order_by(AuditLog.id)).scalars()]


@pytest.mark.parametrize("header", ["X-Api-Key", "bearer"])
def test_the_endpoint_answers_the_route_and_audits_the_use(app, db, seats, key, header):
    resp = get(app, key, header=header, caller=C_REP)
    assert (resp.status_code, resp.get_json()) == (200, {
        "target": "agent", "agent_no": "8001", "queue": None, "reason": "dedicated_agent",
        "customer_id": seats.c_rep.id, "lead_id": None})
    assert _uses(db) == [("ok", URL)]


def test_the_endpoint_refusals(app, db, org, key):
    assert get(app, None, caller=C_REP).get_json()["code"] == "missing_key"
    assert get(app, None, caller=C_REP).status_code == 401
    assert get(app, "gsk_00000000_" + "x" * 30, caller=C_REP).status_code == 401
    _, other = api_keys.create_key(org.admin, "短信", "sms_inbound")
    resp = get(app, other, caller=C_REP)
    assert (resp.status_code, resp.get_json()["code"]) == (403, "wrong_purpose")
    for params in ({}, {"caller": ""}, {"caller": "x" * 5000}, {"caller": "abc"},
                   {"caller": "1\x00"}):
        resp = get(app, key, **params)
        assert resp.status_code == 400, params
        assert resp.get_json()["code"] == "invalid"
        assert "caller" in resp.get_json()["fields"]
    resp = get(app, key, caller=C_REP, extra="1")
    assert (resp.status_code, list(resp.get_json()["fields"])) == (400, ["extra"])


def test_a_jwt_or_a_session_is_no_key(app, db, org, api, clients):
    assert api("admin")("GET", URL + "?caller=13800138000").status_code == 401
    assert clients.admin.get(URL + "?caller=13800138000").status_code == 401


def test_the_cti_rate_applies_not_the_webhooks(app, db, org, key):
    app.config["CTI_KEY_RATE_PER_MINUTE"], app.config["API_KEY_RATE_PER_MINUTE"] = 2, 1000
    try:
        assert [get(app, key, caller=C_REP).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        app.config["CTI_KEY_RATE_PER_MINUTE"] = 6000
        app.config.pop("API_KEY_RATE_PER_MINUTE", None)


def test_route_statements(app, db, seats):
    """One statement for the customer's own number, one for the decision."""
    from sqlalchemy import event

    seen = []
    engine = db.engine

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        decide()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 2
