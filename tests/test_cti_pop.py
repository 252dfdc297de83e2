"""Screen pops (issue 18 §3): the card per role (scope and the masking rule), the SSE stream
fed by Redis pub/sub, the polling fallback, publish_ringing without Redis."""
from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from sqlalchemy import select

from tests.conftest import login

FULL = "13800138000"        # c_rep's mobile, as the pages write it
MASKED = "138****8000"
POOL_FULL = "02162345678"   # c_pool's phone
POOL_MASKED = "021****5678"


def ring(db, agent, customer=None, *, number="+8613800138000", state="ringing", lead=None,
         contact=None, minutes_ago=0):
    """A call ringing at `agent`, inserted directly (helper A's ingest is not on this branch)."""
    from app.models.cti import CtiCall
    from app.models.customer import utcnow

    call = CtiCall(vendor="test", call_id=uuid.uuid4().hex, direction="in", state=state,
                   caller=number, number_e164=number,
                   customer_id=customer.id if customer is not None else None,
                   contact_id=contact.id if contact is not None else None,
                   lead_id=lead.id if lead is not None else None,
                   agent_id=agent.id, agent_no=agent.agent_no,
                   started_at=utcnow() - dt.timedelta(minutes=minutes_ago))
    db.session.add(call)
    db.session.commit()
    return call.id


def pops(client, since=0):
    resp = client.get(f"/cti/pops?since={since}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_json()


def only_card(client):
    body = pops(client)
    assert len(body["pops"]) == 1, body
    return body["pops"][0]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- the card per role -------------------------------------------------------------------
def test_owner_sees_the_whole_card_with_the_full_number(app, db, org):
    from app.models.activity import FollowUp
    from app.models.customer import utcnow
    from app.services import opportunities, tickets

    for i in range(4):
        db.session.add(FollowUp(customer_id=org.c_rep.id, user_id=org.rep.id, channel="call",
                                content=f"第{i}次跟进", happened_at=utcnow()
                                - dt.timedelta(days=10 - i)))
    db.session.commit()
    tickets.create(org.rep, {"customer_id": org.c_rep.id, "channel": "phone",
                             "subject": "打印机卡纸"})
    opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "续约商机",
                                   "amount": "8000"})
    call_id = ring(db, org.rep, org.c_rep)
    card = only_card(login(app.test_client(), org.rep.username))
    assert card["call_id"] == call_id
    assert card["kind"] == "customer"
    assert card["name"] == "杭州云帆科技有限公司"
    assert card["number"] == FULL
    assert (card["holder_kind"], card["holder"]) == ("owner", org.rep.display_name)
    assert card["category"] == "潜在客户"
    assert [f["content"] for f in card["followups"]] == ["第3次跟进", "第2次跟进", "第1次跟进"]
    assert card["tickets"]["count"] == 1
    assert [t["title"] for t in card["tickets"]["items"]] == ["打印机卡纸"]
    assert card["opportunities"]["count"] == 1
    assert [o["title"] for o in card["opportunities"]["items"]] == ["续约商机"]
    links = {link["key"]: link["url"] for link in card["links"]}
    assert set(links) == {"followup", "ticket"}
    assert links["followup"] == f"/followups/add?_flt_0_customer={org.c_rep.id}"
    assert links["ticket"] == f"/tickets/add?customer_id={org.c_rep.id}"
    html = card["html"]
    assert "杭州云帆科技有限公司" in html and FULL in html and "打印机卡纸" in html
    assert "记跟进" in html or "Log follow-up" in html


def test_manager_of_the_owner_sees_it_in_full(app, db, org):
    ring(db, org.manager, org.c_rep)
    card = only_card(login(app.test_client(), org.manager.username))
    assert (card["kind"], card["name"], card["number"]) == ("customer", "杭州云帆科技有限公司",
                                                            FULL)
    assert {link["key"] for link in card["links"]} == {"followup", "ticket"}


def test_a_rep_outside_the_scope_sees_only_that_it_exists_and_who_holds_it(app, db, org):
    ring(db, org.rep, org.c_north, number="+8613700137000")
    card = only_card(login(app.test_client(), org.rep.username))
    assert card["kind"] == "hidden"
    assert card["record"] == "customer"
    assert card["record_id"] is None and card["name"] == "" and card["url"] == ""
    assert (card["holder_kind"], card["holder"]) == ("owner", org.rep_north.display_name)
    assert card["number"] == "137****7000"
    assert card["links"] == [] and card["followups"] == []
    assert card["tickets"] == {"count": 0, "items": []}
    html = card["html"]
    assert "北京华联商贸有限公司" not in html and "13700137000" not in html
    assert org.rep_north.display_name in text_of(html)


def test_a_pool_member_sees_the_pool_customer_masked(app, db, org):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    db.session.commit()
    ring(db, org.rep, org.c_pool, number="+862162345678")
    card = only_card(login(app.test_client(), org.rep.username))
    assert card["kind"] == "customer"
    assert card["name"] == "上海申达物流有限公司"
    assert (card["holder_kind"], card["holder"]) == ("pool", org.pool.name)
    assert card["number"] == POOL_MASKED
    assert card["url"] == f"/pool/show/{org.c_pool.id}"
    assert card["links"] == []  # claim first: no follow-up or ticket on a pool customer
    assert POOL_FULL not in card["html"]


def test_a_rep_outside_the_pool_sees_only_the_pool_name(app, db, org):
    ring(db, org.rep, org.c_pool, number="+862162345678")
    card = only_card(login(app.test_client(), org.rep.username))
    assert (card["kind"], card["holder_kind"], card["holder"]) == ("hidden", "pool",
                                                                   org.pool.name)
    assert card["number"] == POOL_MASKED
    assert "上海申达物流有限公司" not in card["html"]


def test_admin_sees_any_customer_in_full(app, db, org):
    ring(db, org.admin, org.c_north, number="+8613700137000")
    card = only_card(login(app.test_client(), org.admin.username))
    assert (card["kind"], card["name"], card["number"]) == ("customer", "北京华联商贸有限公司",
                                                            "13700137000")


def test_auditor_reads_the_card_with_the_number_masked_and_no_links(app, db, org):
    ring(db, org.auditor, org.c_rep)
    card = only_card(login(app.test_client(), org.auditor.username))
    assert (card["kind"], card["name"], card["number"]) == ("customer", "杭州云帆科技有限公司",
                                                            MASKED)
    assert card["links"] == []
    assert FULL not in card["html"]


def test_unknown_caller_gets_the_quick_lead_form_prefilled(app, db, org):
    ring(db, org.rep, None, number="+8615900159000")
    client = login(app.test_client(), org.rep.username)
    card = only_card(client)
    assert card["kind"] == "unknown" and card["number"] == "15900159000"
    assert card["links"] == [{"key": "lead", "label": card["links"][0]["label"],
                              "url": "/leads/add?mobile=15900159000"}]
    form = client.get("/leads/add?mobile=15900159000").get_data(as_text=True)
    assert re.search(r'name="mobile"[^>]*value="15900159000"|value="15900159000"[^>]*'
                     r'name="mobile"', form)


def test_a_lead_in_scope_and_out_of_it(app, db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep_north, {"company_name": "线索公司", "mobile": "13600136000"},
                             owner_id=org.rep_north.id)
    ring(db, org.rep_north, None, number="+8613600136000", lead=lead)
    card = only_card(login(app.test_client(), org.rep_north.username))
    assert (card["kind"], card["number"], card["url"]) == ("lead", "13600136000",
                                                           f"/leads/show/{lead.id}")
    ring(db, org.rep, None, number="+8613600136000", lead=lead)
    card = only_card(login(app.test_client(), org.rep.username))
    assert (card["kind"], card["record"], card["holder"]) == ("hidden", "lead",
                                                              org.rep_north.display_name)
    assert card["number"] == "136****6000" and "线索公司" not in card["html"]


# --- polling -------------------------------------------------------------------------------
def test_polling_returns_only_the_agents_recent_ringing_or_answered_calls(app, db, org):
    mine = ring(db, org.rep, org.c_rep)
    talking = ring(db, org.rep, org.c_rep, state="answered")
    ring(db, org.rep, org.c_rep, state="ended")
    ring(db, org.rep, org.c_rep, minutes_ago=3)          # too old
    ring(db, org.rep2, org.c_rep2, number="+8613900139000")  # another agent's
    client = login(app.test_client(), org.rep.username)
    body = pops(client)
    assert [p["call_id"] for p in body["pops"]] == [mine, talking]
    assert body["last"] == talking
    assert pops(client, since=mine)["pops"][0]["call_id"] == talking
    assert pops(client, since=talking) == {"pops": [], "last": talking}


@pytest.mark.parametrize("since", ["x", "-1", "1.5", "2147483648", "9" * 30])
def test_polling_refuses_a_bad_since_naming_it(app, org, since):
    resp = login(app.test_client(), org.rep.username).get(f"/cti/pops?since={since}")
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "invalid"
    assert "since" in resp.get_json()["fields"]


def test_polling_and_stream_need_a_sign_in(app, db):
    for path in ("/cti/pops", "/cti/pops/stream"):
        resp = app.test_client().get(path)
        assert resp.status_code == 302 and "/login/" in resp.headers["Location"]


# --- the stream (real Redis) -----------------------------------------------------------------
@pytest.fixture
def real_redis(redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable")
    return redis_url


def read_events(response, want: int, limit: int = 40) -> list[str]:
    """Up to `want` SSE events (blank-line separated) from a streamed response, reading at
    most `limit` chunks."""
    events, buffer = [], ""
    chunks = iter(response.response)
    for _ in range(limit):
        try:
            chunk = next(chunks)
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        except StopIteration:
            break
        while "\n\n" in buffer:
            event, buffer = buffer.split("\n\n", 1)
            events.append(event)
        if len(events) >= want:
            break
    return events


def test_the_stream_delivers_a_published_pop(app, db, org, real_redis):
    from app.models.cti import CtiCall
    from app.services import cti_pop

    call_id = ring(db, org.rep, org.c_rep)
    client = login(app.test_client(), org.rep.username)
    saved = {k: app.config[k] for k in ("CTI_SSE_MAX_SECONDS", "CTI_SSE_HEARTBEAT_SECONDS")}
    app.config.update(CTI_SSE_MAX_SECONDS=5, CTI_SSE_HEARTBEAT_SECONDS=15)
    try:
        response = client.get("/cti/pops/stream", buffered=False)
        try:
            assert response.status_code == 200
            assert response.mimetype == "text/event-stream"
            assert read_events(response, 1) == ["retry: 3000\n: connected"]
            # Subscribed before the first chunk: a pop published now is heard.
            assert cti_pop.publish_ringing(db.session.get(CtiCall, call_id)) is True
            events = read_events(response, 1)
            assert events == [f'event: pop\ndata: {{"call_id": {call_id}}}']
        finally:
            response.close()
    finally:
        app.config.update(saved)


def test_the_stream_hears_only_its_users_channel_and_ends_on_time(app, db, org, real_redis):
    from app.models.cti import CtiCall
    from app.services import cti_pop

    other = ring(db, org.rep2, org.c_rep2, number="+8613900139000")
    client = login(app.test_client(), org.rep.username)
    saved = {k: app.config[k] for k in ("CTI_SSE_MAX_SECONDS", "CTI_SSE_HEARTBEAT_SECONDS")}
    app.config.update(CTI_SSE_MAX_SECONDS=2, CTI_SSE_HEARTBEAT_SECONDS=0.5)
    try:
        response = client.get("/cti/pops/stream", buffered=False)
        try:
            assert read_events(response, 1) == ["retry: 3000\n: connected"]
            cti_pop.publish_ringing(db.session.get(CtiCall, other))
            rest = read_events(response, 10)
        finally:
            response.close()
    finally:
        app.config.update(saved)
    assert not any(e.startswith("event: pop") for e in rest)
    assert ": heartbeat" in rest
    assert rest[-1] == "event: bye\ndata: {}"


def test_without_redis_the_stream_says_unavailable_and_publish_does_not_raise(app, db, org,
                                                                              monkeypatch):
    import redis

    from app.models.cti import CtiCall
    from app.services import cti_pop

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr("app.views.cti_pop.get_redis", lambda: dead)
    monkeypatch.setattr("app.redis_conn.get_redis", lambda app=None: dead)
    call_id = ring(db, org.rep, org.c_rep)
    assert cti_pop.publish_ringing(db.session.get(CtiCall, call_id)) is False
    client = login(app.test_client(), org.rep.username)
    response = client.get("/cti/pops/stream", buffered=False)
    try:
        assert read_events(response, 5) == ["retry: 30000\nevent: unavailable\ndata: {}"]
    finally:
        response.close()
        dead.close()
    # The fallback still finds it.
    assert [p["call_id"] for p in pops(client)["pops"]] == [call_id]


def test_publish_carries_no_customer_data(app, db, org, real_redis):
    from app.models.cti import CtiCall
    from app.redis_conn import get_redis
    from app.services import cti_pop

    call_id = ring(db, org.rep, org.c_rep)
    client = get_redis()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(cti_pop.channel_of(org.rep.id, client))
        cti_pop.publish_ringing(db.session.get(CtiCall, call_id))
        message = None
        for _ in range(20):
            message = pubsub.get_message(timeout=0.25)
            if message:
                break
        assert json.loads(message["data"]) == {"call_id": call_id, "agent_id": org.rep.id}
    finally:
        pubsub.close()


def test_the_layout_loads_the_pop_script_for_signed_in_users_only(app, org):
    page = login(app.test_client(), org.rep.username).get("/workbench/").get_data(as_text=True)
    assert 'src="/static/guishu/cti.js' in page and 'data-stream="/cti/pops/stream"' in page
    assert "cti.js" not in app.test_client().get("/login/").get_data(as_text=True)


def test_the_pop_query_is_the_agents_own(db, org):
    """recent_pops: agent_id is the actor, whatever the customer."""
    from app.models.cti import CtiCall
    from app.services import cti_pop

    mine = ring(db, org.rep, org.c_north, number="+8613700137000")
    ring(db, org.rep_north, org.c_north, number="+8613700137000")
    assert [c.id for c in cti_pop.recent_pops(org.rep)] == [mine]
    assert db.session.execute(select(CtiCall.id)).all()
