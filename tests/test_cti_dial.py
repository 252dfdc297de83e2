"""Click-to-call (issue 18 §5): who may dial what, the agent number, the pluggable dialers,
and the number never reaching the page or the answer."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from tests.conftest import login

DIAL = "/api/v1/cti/dial"


def agent_no(db, *users):
    for i, user in enumerate(users):
        user.agent_no = f"80{i:02d}{user.id}"
    db.session.commit()


def calls(db):
    from app.models.cti import CtiCall

    db.session.commit()
    return db.session.execute(select(CtiCall).order_by(CtiCall.id)).scalars().all()


def asked():
    from app.services import cti_dial

    return cti_dial.fake_requests()


@pytest.fixture(autouse=True)
def fake_dialer(app):
    from app.services import cti_dial

    app.config.update(CTI_DIALER="fake", CTI_DIAL_PER_MINUTE=10)
    cti_dial._memory.clear()
    yield
    app.config.update(CTI_DIALER="fake", CTI_DIALER_URL="", CTI_DIAL_PER_MINUTE=10)
    cti_dial._memory.clear()


# --- the happy paths ------------------------------------------------------------------------
def test_an_owner_dials_its_customer_and_gets_no_number_back(db, org, api):
    from app.models import AuditLog

    agent_no(db, org.rep)
    number = org.rep.agent_no
    resp = api(org.rep.username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"call_id", "crm_ref"}
    assert "13800138000" not in resp.get_data(as_text=True)
    [call] = calls(db)
    assert (call.id, call.crm_ref) == (body["call_id"], body["crm_ref"])
    assert (call.direction, call.state, call.dialed_by_id, call.agent_id, call.agent_no) == (
        "out", "dialing", org.rep.id, org.rep.id, number)
    assert (call.customer_id, call.contact_id, call.lead_id) == (org.c_rep.id, None, None)
    assert call.number_e164 == "+8613800138000"
    assert len(call.crm_ref) == 32
    assert [(a["agent_no"], a["number"], a["crm_ref"]) for a in asked()] == [
        (number, "+8613800138000", call.crm_ref)]
    entry = db.session.execute(select(AuditLog).where(AuditLog.action == "cti_dial")).scalar_one()
    assert (entry.actor_id, entry.object_type, entry.object_id) == (org.rep.id, "cti_call",
                                                                    call.id)
    assert "+8613800138000" not in json.dumps(entry.changes)


def test_a_pool_member_dials_a_masked_pool_customer_from_the_page(app, db, org):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    agent_no(db, org.rep)
    client = login(app.test_client(), org.rep.username)
    page = client.get(f"/pool/show/{org.c_pool.id}").get_data(as_text=True)
    assert "021****5678" in page
    assert "62345678" not in page.replace("021****5678", "")
    button = re.search(r'<button[^>]*class="[^"]*cti-dial[^>]*>', page).group(0)
    assert f'data-cti-id="{org.c_pool.id}"' in button and 'data-cti-field="customer_id"' in button
    assert 'data-cti-number="phone"' in button
    csrf = re.search(r'data-csrf="([^"]+)"', button).group(1)
    resp = client.post(DIAL, json={"customer_id": org.c_pool.id, "number": "phone"},
                       headers={"X-CSRFToken": csrf})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "62345678" not in resp.get_data(as_text=True)
    assert [a["number"] for a in asked()] == ["+862162345678"]
    assert calls(db)[0].customer_id == org.c_pool.id


def test_a_session_call_without_the_csrf_token_is_refused(app, db, org):
    agent_no(db, org.rep)
    client = login(app.test_client(), org.rep.username)
    resp = client.post(DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 400 and resp.get_json()["code"] == "csrf"
    assert calls(db) == [] and asked() == []


def test_a_contact_and_a_lead_are_dialled_at_their_own_numbers(db, org, api):
    from app.models import Contact
    from app.services import leads

    agent_no(db, org.rep)
    contact = Contact(customer_id=org.c_rep.id, name="王经理", mobile="13500135000",
                      mobile_e164="+8613500135000")
    db.session.add(contact)
    db.session.commit()
    lead = leads.create_lead(org.rep, {"company_name": "拨号线索", "phone": "021-63456789"},
                             owner_id=org.rep.id)
    call = api(org.rep.username)
    assert call("POST", DIAL, json={"contact_id": contact.id}).status_code == 200
    assert call("POST", DIAL, json={"lead_id": lead.id}).status_code == 200
    made = calls(db)
    assert [(c.customer_id, c.contact_id, c.lead_id) for c in made] == [
        (org.c_rep.id, contact.id, None), (None, None, lead.id)]
    assert [a["number"] for a in reversed(asked())] == ["+8613500135000", "+862163456789"]


# --- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize("who, target", [("rep", "c_north"), ("rep", "c_pool"),
                                         ("rep", "c_rep2"), ("manager", "c_north")])
def test_out_of_scope_is_404_naming_the_field(db, org, api, who, target):
    agent_no(db, getattr(org, who))
    resp = api(getattr(org, who).username)("POST", DIAL,
                                           json={"customer_id": getattr(org, target).id})
    assert resp.status_code == 404
    body = resp.get_json()
    assert body["code"] == "out_of_scope" and set(body["fields"]) == {"customer_id"}
    assert calls(db) == [] and asked() == []


def test_without_an_agent_number_it_is_400_naming_agent_no(db, org, api):
    resp = api(org.rep.username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid" and set(body["fields"]) == {"agent_no"}
    assert "agent_no" in body["message"]
    assert calls(db) == [] and asked() == []


@pytest.mark.parametrize("payload, field, status", [
    ({"customer_id": 2147483648}, "customer_id", 400),
    ({"contact_id": 10 ** 20}, "contact_id", 400),
    ({"lead_id": "1e3"}, "lead_id", 400),
    ({"customer_id": 0}, "customer_id", 400),
    ({"customer_id": True}, "customer_id", 400),
    ({}, "customer_id", 400),
    ({"customer_id": 1, "lead_id": 1}, "lead_id", 400),
    ({"customer_id": 1, "number": "fax"}, "number", 400),
    ({"customer_id": 1, "extra": 1}, "extra", 400),
    ({"contact_id": 2147483647}, "contact_id", 404),
    ({"lead_id": 2147483647}, "lead_id", 404),
    ({"customer_id": 2147483647}, "customer_id", 404),
])
def test_bad_ids_are_refused_naming_the_field(db, org, api, payload, field, status):
    agent_no(db, org.rep)
    resp = api(org.rep.username)("POST", DIAL, json=payload)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert field in resp.get_json()["fields"]
    assert calls(db) == []


def test_a_body_that_is_not_json_is_400(db, org, api):
    agent_no(db, org.rep)
    resp = api(org.rep.username)("POST", DIAL, data=b"\xff\x00", content_type="application/json")
    assert resp.status_code == 400


def test_a_record_without_a_number_is_400_naming_number(db, org, api):
    agent_no(db, org.rep_north)
    resp = api(org.rep_north.username)("POST", DIAL, json={"customer_id": org.c_north.id})
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"number"}


@pytest.mark.parametrize("role", ["auditor", "marketing"])
def test_roles_that_do_not_call_are_403(db, org, api, role):
    agent_no(db, getattr(org, role))
    resp = api(getattr(org, role).username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 403
    assert calls(db) == []


def test_dialling_is_rate_limited_per_user(app, db, org, api, redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable")
    app.config["CTI_DIAL_PER_MINUTE"] = 2
    agent_no(db, org.rep)
    call = api(org.rep.username)
    codes = [call("POST", DIAL, json={"customer_id": org.c_rep.id}).status_code
             for _ in range(3)]
    assert codes[:2] == [200, 200] and codes[2] in (200, 429)
    if codes[2] == 200:  # the minute turned between the calls: one more within this one
        codes.append(call("POST", DIAL, json={"customer_id": org.c_rep.id}).status_code)
    assert codes[-1] == 429
    assert len(calls(db)) == len(codes) - 1


# --- the dialers -----------------------------------------------------------------------------
class _Stub(BaseHTTPRequestHandler):
    status = 200
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_dialer(app):
    class Handler(_Stub):
        received = []

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    app.config.update(CTI_DIALER="http",
                      CTI_DIALER_URL=f"http://127.0.0.1:{server.server_address[1]}/dial")
    try:
        yield Handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_http_dialer_posts_agent_number_and_reference(db, org, api, stub_dialer):
    agent_no(db, org.rep)
    resp = api(org.rep.username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 200
    [call] = calls(db)
    assert stub_dialer.received == [{"agent_no": org.rep.agent_no, "number": "+8613800138000",
                                     "crm_ref": call.crm_ref}]


def test_a_failing_http_dialer_is_502_and_the_call_is_marked_failed(db, org, api, stub_dialer):
    from app.models import AuditLog

    stub_dialer.status = 500
    agent_no(db, org.rep)
    resp = api(org.rep.username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 502
    body = resp.get_json()
    assert body["code"] == "dialer_failed" and "500" in body["message"]
    assert "13800138000" not in resp.get_data(as_text=True)
    [call] = calls(db)
    assert (call.state, call.result) == ("ended", "failed") and call.ended_at is not None
    assert db.session.execute(select(AuditLog.id).where(
        AuditLog.action == "cti_dial_failed")).first() is not None


def test_an_unreachable_dialer_is_502(app, db, org, api):
    app.config.update(CTI_DIALER="http", CTI_DIALER_URL="http://127.0.0.1:1/dial",
                      CTI_DIALER_TIMEOUT=1)
    agent_no(db, org.rep)
    resp = api(org.rep.username)("POST", DIAL, json={"customer_id": org.c_rep.id})
    assert resp.status_code == 502 and resp.get_json()["code"] == "dialer_failed"
    assert [(c.state, c.result) for c in calls(db)] == [("ended", "failed")]


class RecordingDialer:
    """A `module:Class` dialer for the test below."""

    seen: list = []

    def dial(self, agent_no: str, number: str, crm_ref: str) -> None:
        type(self).seen.append((agent_no, number, crm_ref))


def test_a_module_class_dialer_is_used(app, db, org, api):
    app.config["CTI_DIALER"] = "tests.test_cti_dial:RecordingDialer"
    RecordingDialer.seen = []
    agent_no(db, org.rep)
    assert api(org.rep.username)("POST", DIAL,
                                 json={"customer_id": org.c_rep.id}).status_code == 200
    [call] = calls(db)
    assert RecordingDialer.seen == [(org.rep.agent_no, "+8613800138000", call.crm_ref)]


# --- the buttons -----------------------------------------------------------------------------
def dial_buttons(html: str) -> list[str]:
    return re.findall(r'<button[^>]*class="[^"]*cti-dial[^>]*>', html)


def test_the_owner_with_an_agent_number_gets_buttons_beside_numbers(app, db, org):
    from app.models import Contact

    db.session.add(Contact(customer_id=org.c_rep.id, name="李四", mobile="13500135000",
                           mobile_e164="+8613500135000"))
    agent_no(db, org.rep)
    page = login(app.test_client(), org.rep.username).get(
        f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    fields = sorted((re.search(r'data-cti-field="(\w+)"', b).group(1),
                     re.search(r'data-cti-number="(\w+)"', b).group(1))
                    for b in dial_buttons(page))
    assert fields == [("contact_id", "mobile"), ("customer_id", "mobile")]


@pytest.mark.parametrize("role", ["rep_without_agent_no", "auditor"])
def test_no_buttons_for_those_who_cannot_call(app, db, org, role):
    if role == "auditor":
        agent_no(db, org.auditor)
        user = org.auditor
    else:
        user = org.rep
    page = login(app.test_client(), user.username).get(
        f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert dial_buttons(page) == []


def test_the_lead_page_has_buttons_for_its_numbers(app, db, org):
    from app.services import leads

    agent_no(db, org.rep)
    lead = leads.create_lead(org.rep, {"company_name": "按钮线索", "mobile": "13600136000"},
                             owner_id=org.rep.id)
    page = login(app.test_client(), org.rep.username).get(
        f"/leads/show/{lead.id}").get_data(as_text=True)
    [button] = dial_buttons(page)
    assert f'data-cti-id="{lead.id}"' in button and 'data-cti-field="lead_id"' in button
