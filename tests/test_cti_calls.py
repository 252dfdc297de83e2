"""通话记录 (issue 18): which calls each role reads (log page, REST list and show, timeline),
the number masked by the contact details rule, the recording link only for readers of the
customer and only before its expiry, the per-rep table, the agent number and call queue
forms, bad input. Calls are written directly (the event ingest is another part's)."""
from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.models import Task, User
from app.models.cti import CtiCall
from app.models.customer import utcnow
from app.services import cti_calls, timeline
from app.services.errors import PermissionDenied, ValidationFailed
from tests.conftest import login

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing", "agent",
         "service_manager")
NOW = utcnow().replace(microsecond=0)
UNKNOWN = "+8613111112222"
FUTURE, PAST = NOW + dt.timedelta(days=30), NOW - dt.timedelta(days=1)


def _call(db, n, **kw) -> CtiCall:
    kw.setdefault("direction", "in")
    kw.setdefault("state", "ended")
    kw.setdefault("started_at", NOW - dt.timedelta(minutes=100 - n))
    call = CtiCall(vendor="test", call_id=f"c{n}", **kw)
    db.session.add(call)
    db.session.flush()
    return call


@pytest.fixture
def calls(db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep, {"person_name": "线索甲", "mobile": "13655556666"})
    c = SimpleNamespace(lead=lead.id)
    c.rep = _call(db, 1, customer_id=org.c_rep.id, number_e164="+8613800138000",
                  agent_id=org.rep.id, result="answered", talk_seconds=125,
                  recording_url="https://rec.example/1.mp3", recording_expires_at=FUTURE).id
    c.rep2 = _call(db, 2, customer_id=org.c_rep2.id, number_e164="+8613900139000",
                   agent_id=org.rep2.id, result="answered", talk_seconds=30).id
    c.north = _call(db, 3, customer_id=org.c_north.id, number_e164="+8613500135000",
                    agent_id=org.rep_north.id, result="answered", talk_seconds=60,
                    recording_url="https://rec.example/3.mp3").id
    c.pool = _call(db, 4, customer_id=org.c_pool.id, number_e164="+862162345678",
                   agent_id=org.agent.id, result="missed").id
    c.unknown_rep = _call(db, 5, number_e164=UNKNOWN, agent_id=org.rep.id,
                          result="missed").id
    c.unknown_north = _call(db, 6, number_e164="+8613122223333", agent_id=org.rep_north.id,
                            result="answered", talk_seconds=10).id
    c.lead_call = _call(db, 7, lead_id=lead.id, number_e164="+8613655556666",
                        direction="out", dialed_by_id=org.rep.id, agent_id=org.rep.id,
                        result="answered", talk_seconds=40).id
    c.expired = _call(db, 8, customer_id=org.c_rep.id, number_e164="+8613800138000",
                      agent_id=org.rep.id, result="answered", talk_seconds=5,
                      recording_url="https://rec.example/8.mp3", recording_expires_at=PAST).id
    db.session.commit()
    return c


ALL = {"rep", "rep2", "north", "pool", "unknown_rep", "unknown_north", "lead_call", "expired"}
VISIBLE = {
    "admin": ALL, "staff": ALL, "auditor": ALL,
    # 华东: rep and rep2's customers, rep's lead, the unknown number rep took
    "manager": {"rep", "rep2", "unknown_rep", "lead_call", "expired"},
    "rep": {"rep", "unknown_rep", "lead_call", "expired"},
    "marketing": set(),
    "agent": {"pool"},            # took it (the customer is not its ticket's)
    "service_manager": set(),
}


def names_of(calls, ids) -> set[str]:
    by_id = {v: k for k, v in vars(calls).items() if k != "lead"}
    return {by_id[i] for i in ids}


@pytest.mark.parametrize("role", ROLES)
def test_scope_clause_per_role(db, org, calls, role):
    actor = getattr(org, role)
    ids = db.session.execute(select(CtiCall.id).where(cti_calls.scope_clause(actor))
                             ).scalars().all()
    assert names_of(calls, ids) == VISIBLE[role]


def test_scope_clause_of_nobody_is_nothing(db, calls):
    assert db.session.execute(select(CtiCall.id).where(cti_calls.scope_clause(None))
                              ).first() is None


def test_a_read_share_shows_the_customers_calls(db, org, calls):
    from app.models import CustomerShare

    db.session.add(CustomerShare(customer_id=org.c_north.id, user_id=org.rep.id))
    db.session.commit()
    ids = db.session.execute(select(CtiCall.id).where(cti_calls.scope_clause(org.rep))
                             ).scalars().all()
    assert "north" in names_of(calls, ids)


# --- masking -------------------------------------------------------------------------------
M_REP, M_UNKNOWN, M_POOL, M_LEAD = "138****8000", "131****2222", "021****5678", "136****6666"
SHOWN = {  # role: {call: number as shown}
    "admin": {"rep": "13800138000", "unknown_rep": "13111112222", "pool": "02162345678",
              "lead_call": "13655556666"},
    "staff": {"rep": "13800138000", "unknown_rep": "13111112222", "pool": "02162345678",
              "lead_call": "13655556666"},
    "auditor": {"rep": M_REP, "unknown_rep": M_UNKNOWN, "pool": M_POOL, "lead_call": M_LEAD},
    "manager": {"rep": "13800138000", "unknown_rep": M_UNKNOWN, "pool": M_POOL,
                "lead_call": "13655556666"},
    "rep": {"rep": "13800138000", "unknown_rep": "13111112222", "pool": M_POOL,
            "lead_call": "13655556666"},
    "marketing": {"rep": M_REP, "unknown_rep": M_UNKNOWN, "pool": M_POOL, "lead_call": M_LEAD},
    "agent": {"rep": M_REP, "unknown_rep": M_UNKNOWN, "pool": M_POOL, "lead_call": M_LEAD},
}


@pytest.mark.parametrize("role", sorted(SHOWN))
def test_number_shown_per_role(db, org, calls, role):
    actor = getattr(org, role)
    for name, expected in SHOWN[role].items():
        call = db.session.get(CtiCall, getattr(calls, name))
        assert cti_calls.number_shown(actor, call) == expected, (role, name)


def test_the_agent_who_took_an_unknown_call_sees_it_and_a_rep_of_a_pool_customer_not(
        db, org, calls):
    call = db.session.get(CtiCall, calls.unknown_north)
    assert cti_calls.number_shown(org.rep_north, call) == "13122223333"
    assert cti_calls.number_shown(org.rep, call) == "131****3333"


def test_a_raw_number_that_did_not_normalise_is_masked_too(db, org):
    call = _call(db, 20, caller="95555123", agent_id=org.admin.id)
    assert cti_calls.number_shown(org.auditor, call) == "955****5123"
    assert cti_calls.number_shown(org.staff, call) == "95555123"


# --- recordings ----------------------------------------------------------------------------
def test_recording_link_only_to_readers_of_the_customer_and_before_expiry(db, org, calls):
    rows = [db.session.get(CtiCall, getattr(calls, n)) for n in ("rep", "north", "expired")]
    assert list(cti_calls.recording_links(org.rep, rows).values()) == [
        "https://rec.example/1.mp3", None, None]
    assert list(cti_calls.recording_links(org.auditor, rows).values()) == [
        "https://rec.example/1.mp3", "https://rec.example/3.mp3", None]
    assert list(cti_calls.recording_links(org.rep_north, rows).values()) == [
        None, "https://rec.example/3.mp3", None]
    assert list(cti_calls.recording_links(org.marketing, rows).values()) == [
        "https://rec.example/1.mp3", "https://rec.example/3.mp3", None]  # reads customers
    # the expiry passing: gone for everyone
    later = FUTURE + dt.timedelta(seconds=1)
    assert cti_calls.recording_link(org.admin, rows[0], now=later) is None
    # a value that is no web link is no link
    rows[1].recording_url = "javascript:alert(1)"
    assert cti_calls.recording_link(org.admin, rows[1]) is None


# --- the REST list ---------------------------------------------------------------------------
API = "/api/v1/cti/calls"
API_STATUS = {r: 200 for r in ROLES} | {"marketing": 403}


@pytest.mark.parametrize("role", ROLES)
def test_api_list_per_role(db, org, calls, api, role):
    resp = api(getattr(org, role).username)("GET", API)
    assert resp.status_code == API_STATUS[role]
    if resp.status_code == 200:
        body = resp.get_json()
        assert names_of(calls, [r["id"] for r in body["result"]]) == VISIBLE[role]
        assert body["next_cursor"] is None
        for row in body["result"]:
            expected = SHOWN.get(role, {}).get(names_of(calls, [row["id"]]).pop())
            if expected:
                assert row["number"] == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["rep", "north", "unknown_north", "pool"])
def test_api_show_per_role(db, org, calls, api, role, name):
    resp = api(getattr(org, role).username)("GET", f"{API}/{getattr(calls, name)}")
    expected = 403 if role == "marketing" else 200 if name in VISIBLE[role] else 404
    assert resp.status_code == expected, (role, name)
    if expected == 404:
        assert resp.get_json()["code"] == "not_found"


def test_api_row_shape(db, org, calls, api):
    row = api("rep1")("GET", f"{API}/{calls.rep}").get_json()
    assert row == {
        "id": calls.rep, "direction": "in", "state": "ended", "result": "answered",
        "number": "13800138000", "customer_id": org.c_rep.id, "contact_id": None,
        "lead_id": None, "agent_no": None, "agent_id": org.rep.id, "dialed_by_id": None,
        "queue": None, "started_at": row["started_at"], "answered_at": None, "ended_at": None,
        "talk_seconds": 125, "recording_url": "https://rec.example/1.mp3",
        "recording_expires_at": row["recording_expires_at"], "followup_id": None,
        "callback_task_id": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", row["started_at"])


def test_api_keyset_pages_and_filters(db, org, calls, api):
    call = api("admin")
    seen, cursor = [], None
    for _ in range(10):
        resp = call("GET", API, query_string={"page_size": 3, **({"cursor": cursor}
                                                                  if cursor else {})})
        body = resp.get_json()
        seen += [r["id"] for r in body["result"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [calls.expired, calls.lead_call, calls.unknown_north, calls.unknown_rep,
                    calls.pool, calls.north, calls.rep2, calls.rep]

    def ids(**params):
        resp = call("GET", API, query_string=params)
        assert resp.status_code == 200, resp.get_json()
        return names_of(calls, [r["id"] for r in resp.get_json()["result"]])

    assert ids(customer_id=org.c_rep.id) == {"rep", "expired"}
    assert ids(agent=org.rep.id) == {"rep", "unknown_rep", "lead_call", "expired"}
    assert ids(result="missed") == {"pool", "unknown_rep"}
    assert ids(direction="out") == {"lead_call"}
    today = NOW + dt.timedelta(hours=8)  # business day of the calls (Asia/Shanghai)
    assert ids(start=str(today.date() + dt.timedelta(days=1))) == set()
    assert ids(end=str(today.date() - dt.timedelta(days=2))) == set()


def test_api_filters_do_not_widen_the_scope(db, org, calls, api):
    call = api("rep1")
    body = call("GET", API, query_string={"customer_id": org.c_north.id}).get_json()
    assert body["result"] == []
    body = call("GET", API, query_string={"agent": org.rep_north.id}).get_json()
    assert body["result"] == []


@pytest.mark.parametrize("params, field", [
    ({"page_size": "0"}, "page_size"), ({"page_size": "101"}, "page_size"),
    ({"page_size": "x"}, "page_size"), ({"customer_id": "abc"}, "customer_id"),
    ({"customer_id": "99999999999"}, "customer_id"), ({"agent": "-1"}, "agent"),
    ({"start": "2026-13-01"}, "start"), ({"end": "yesterday"}, "end"),
    ({"start": "2026-12-02", "end": "2026-12-01"}, "start"),
    ({"result": "lost"}, "result"), ({"direction": "sideways"}, "direction"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"nope": "1"}, "nope"),
    ({"result": "a\x00b"}, "result"), ({"customer_id": "1" * 5000}, "customer_id"),
])
def test_api_bad_input_names_the_field(db, org, calls, api, params, field):
    resp = api("admin")("GET", API, query_string=params)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid" and field in body["fields"], body


def test_api_show_of_ids_beyond_int4_is_404(db, org, api):
    assert api("admin")("GET", f"{API}/99999999999").status_code == 404


def test_api_list_without_a_token_is_401(app, db):
    assert app.test_client().get(API).status_code == 401


# --- the log page --------------------------------------------------------------------------
PAGE_STATUS = {r: 200 for r in ROLES} | {"marketing": 403}


@pytest.mark.parametrize("role", ROLES)
def test_log_page_per_role(app, db, org, calls, role):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get("/calls/list/")
    assert resp.status_code == PAGE_STATUS[role]
    if resp.status_code != 200:
        return
    html = resp.get_data(as_text=True)
    linked = {int(x) for x in re.findall(r'href="/calls/show/(\d+)"', html)}
    assert names_of(calls, linked) == VISIBLE[role]
    for name, shown in SHOWN.get(role, {}).items():
        if name in VISIBLE[role]:
            assert shown in html, (role, name)
    if role == "auditor":
        assert "13800138000" not in html and "13111112222" not in html
    assert ("https://rec.example/1.mp3" in html) == ("rep" in VISIBLE[role])
    assert "https://rec.example/8.mp3" not in html   # expired


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["rep", "north", "unknown_rep"])
def test_log_show_per_role(app, db, org, calls, role, name):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get(f"/calls/show/{getattr(calls, name)}")
    expected = 403 if role == "marketing" else 200 if name in VISIBLE[role] else 404
    assert resp.status_code == expected, (role, name)


@pytest.mark.parametrize("path", ["/calls/add", "/calls/edit/{id}", "/calls/delete/{id}"])
def test_calls_are_never_written_from_the_log(app, db, org, calls, path):
    client = login(app.test_client(), "admin")
    url = path.format(id=calls.rep)
    assert client.get(url).status_code in (403, 404)
    assert client.post(url, data={"csrf_token": client.csrf}).status_code in (403, 404)
    assert db.session.get(CtiCall, calls.rep) is not None


def test_log_page_bad_arguments_fall_back(app, db, org, calls):
    client = login(app.test_client(), "admin")
    assert client.get("/calls/list/?psize_CallLogView=abc").status_code == 302
    assert client.get("/calls/list/?after_CallLogView=garbage").status_code == 200
    assert client.get("/calls/show/abc").status_code == 404
    assert client.get("/calls/show/99999999999").status_code == 404


# --- the timeline --------------------------------------------------------------------------
def _calls_on_timeline(actor, customer_id):
    from flask import current_app

    with current_app.test_request_context():
        return [e for e in timeline.page_of(actor, customer_id, size=50).entries
                if e.kind == "call"]


def test_calls_on_the_customers_timeline(db, org, calls):
    entries = _calls_on_timeline(org.rep, org.c_rep.id)
    assert len(entries) == 2
    assert entries[0].link is None  # the expired recording
    assert entries[1].link == "https://rec.example/1.mp3"
    assert "13800138000" in entries[1].summary and "2:05" in entries[1].summary
    auditor = _calls_on_timeline(org.auditor, org.c_rep.id)
    assert "138****8000" in auditor[1].summary


def test_a_pool_members_timeline_masks_and_links_nothing(db, org, calls):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    db.session.commit()
    pool_call = db.session.get(CtiCall, calls.pool)
    pool_call.agent_id = org.rep.id  # a call rep took: on the timeline rep reads
    pool_call.recording_url = "https://rec.example/4.mp3"
    db.session.commit()
    entries = _calls_on_timeline(org.rep, org.c_pool.id)
    assert len(entries) == 1
    assert [e.link for e in entries] == [None] * len(entries)
    for e in entries:
        assert "02162345678" not in e.summary


# --- the per-rep table -----------------------------------------------------------------------
def test_rep_stats_numbers(db, org, calls):
    # rep's missed unknown call is called back 10 minutes later
    missed = db.session.get(CtiCall, calls.unknown_rep)
    _call(db, 30, number_e164=UNKNOWN, direction="out", dialed_by_id=org.rep.id,
          agent_id=org.rep.id, result="no_answer", started_at=missed.started_at
          + dt.timedelta(minutes=10))
    # the pool's missed call: its call-back task done 30 minutes later
    task = Task(owner_id=org.agent.id, subject="回电", due_at=NOW, source="call",
                status="done", done_at=db.session.get(CtiCall, calls.pool).started_at
                + dt.timedelta(minutes=30))
    db.session.add(task)
    db.session.flush()
    db.session.get(CtiCall, calls.pool).callback_task_id = task.id
    db.session.commit()
    stats = cti_calls.rep_stats(org.admin)
    by_user = {r.user_id: r for r in stats.totals}
    rep = by_user[org.rep.id]
    assert (rep.calls, rep.inbound, rep.outbound, rep.answered, rep.missed) == (5, 3, 2, 3, 1)
    assert rep.answered_rate == 60.0
    assert rep.average_talk == round((125 + 40 + 5) / 3)
    assert rep.average_callback == 600
    assert by_user[org.agent.id].average_callback == 1800
    assert by_user[org.rep_north.id].average_callback is None
    assert sum(r.calls for r in stats.days) == sum(r.calls for r in stats.totals)
    # a manager: their team only
    team = {r.user_id for r in cti_calls.rep_stats(org.manager).totals}
    assert team == {org.rep.id, org.rep2.id}
    for role in ("rep", "staff", "auditor", "marketing", "agent", "service_manager"):
        with pytest.raises(PermissionDenied):
            cti_calls.rep_stats(getattr(org, role))
    with pytest.raises(ValidationFailed) as err:
        cti_calls.rep_stats(org.admin, "2026-12-05", "2026-12-01")
    assert set(err.value.fields) == {"start"}


STATS_STATUS = {r: 403 for r in ROLES} | {"admin": 200, "manager": 200}


@pytest.mark.parametrize("role", ROLES)
def test_stats_page_per_role(app, db, org, calls, role):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get("/call-stats/")
    assert resp.status_code == STATS_STATUS[role]
    if role == "manager":
        html = resp.get_data(as_text=True)
        assert org.rep.display_name in html and org.rep_north.display_name not in html
    bad = client.get("/call-stats/?start=2026-99-01")
    assert bad.status_code == STATS_STATUS[role]


@pytest.mark.parametrize("role", ROLES)
def test_menu_entries_per_role(app, db, org, role):
    client = login(app.test_client(), getattr(org, role).username)
    html = client.get("/calls/list/" if role != "marketing" else "/customers/list/"
                      ).get_data(as_text=True)
    assert ('href="/calls/list/"' in html) == (role != "marketing")
    assert ('href="/call-stats/"' in html) == (role in ("admin", "manager"))


# --- agent number and call queue forms --------------------------------------------------------
def user_form(client, user: User, **changes) -> dict:
    form = {"first_name": user.first_name, "last_name": user.last_name,
            "username": user.username, "email": user.email, "phone": user.phone or "",
            "roles": [str(r.id) for r in user.roles],
            "department": str(user.department_id or ""), "superior": str(user.superior_id or ""),
            "active": "y", "agent_no": user.agent_no or "", "csrf_token": client.csrf}
    form.update(changes)
    return form


def _agent_no(db, user_id):
    db.session.expire_all()
    return db.session.get(User, user_id).agent_no


def test_agent_number_on_the_user_form(app, db, org):
    client = login(app.test_client(), "admin")
    url = f"/users/edit/{org.rep.id}"
    assert 'name="agent_no"' in client.get(url).get_data(as_text=True)
    assert client.post(url, data=user_form(client, org.rep, agent_no=" 8101 ")
                       ).status_code == 302
    assert _agent_no(db, org.rep.id) == "8101"
    for bad in ("81 01", "工号", "x" * 33):
        resp = client.post(url, data=user_form(client, org.rep, agent_no=bad))
        assert resp.status_code == 200, bad
        assert _agent_no(db, org.rep.id) == "8101"
    # another user's number
    url2 = f"/users/edit/{org.rep2.id}"
    resp = client.post(url2, data=user_form(client, org.rep2, agent_no="8101"))
    assert resp.status_code == 200
    assert _agent_no(db, org.rep2.id) is None
    # blank clears it (stored NULL, so many users may have none)
    rep = db.session.get(User, org.rep.id)
    assert client.post(url, data=user_form(client, rep, agent_no="")).status_code == 302
    assert _agent_no(db, org.rep.id) is None
    org.rep.agent_status = "busy"
    db.session.commit()
    html = client.get(f"/users/show/{org.rep.id}").get_data(as_text=True)
    assert "忙碌" in html or "Busy" in html


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_edit_agent_numbers(app, db, org, role):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.post(f"/users/edit/{org.rep.id}",
                       data=user_form(client, org.rep, agent_no="9999"))
    assert resp.status_code in (302, 403)
    assert _agent_no(db, org.rep.id) is None


def test_call_queue_on_the_department_form(app, db, org):
    from app.models import Department

    client = login(app.test_client(), "admin")
    url = f"/departments/edit/{org.east.id}"
    assert 'name="cti_queue"' in client.get(url).get_data(as_text=True)
    form = {"name": org.east.name, "parent": str(org.centre.id), "manager": str(org.manager.id),
            "csrf_token": client.csrf}
    assert client.post(url, data=dict(form, cti_queue="east-sales")).status_code == 302
    db.session.expire_all()
    assert db.session.get(Department, org.east.id).cti_queue == "east-sales"
    resp = client.post(url, data=dict(form, cti_queue="east sales!"))
    assert resp.status_code == 200
    db.session.expire_all()
    assert db.session.get(Department, org.east.id).cti_queue == "east-sales"
    assert client.post(url, data=dict(form, cti_queue="")).status_code == 302
    db.session.expire_all()
    assert db.session.get(Department, org.east.id).cti_queue is None


# --- the log's cost: a fixed number of statements whatever the page size ---------------------
@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor", "agent"])
def test_the_log_page_is_at_most_8_statements_whatever_its_size(app, db, org, calls, role):
    from tests.test_list_paging import _count_statements

    for n in range(40, 160):  # more than a page of each size: several customers and numbers
        _call(db, n, customer_id=(org.c_rep if n % 2 else org.c_rep2).id,
              number_e164=f"+86138{n:08d}", agent_id=org.rep.id, result="answered",
              recording_url=f"https://rec.example/{n}.mp3", recording_expires_at=FUTURE)
    db.session.commit()
    client = login(app.test_client(), getattr(org, role).username)
    client.get("/calls/list/")
    small, seen_small = _count_statements(client, "/calls/list/?psize_CallLogView=25")
    large, seen_large = _count_statements(client, "/calls/list/?psize_CallLogView=100")
    assert small.status_code == large.status_code == 200
    assert len(seen_small) <= 8, (role, seen_small)
    assert len(seen_large) == len(seen_small), (role, seen_small, seen_large)


def test_a_call_taken_for_another_reps_customer_shows_no_name(app, db, org):
    """rep1 took a call of c_north (rep_north's, another department): it is in rep1's log,
    but like the screen pop it names no customer rep1 may not read."""
    call = _call(db, 40, customer_id=org.c_north.id, number_e164="+8613500135000",
                 agent_id=org.rep.id, result="answered", talk_seconds=20)
    client = login(app.test_client(), org.rep.username)
    for path in ("/calls/list/", f"/calls/show/{call.id}"):
        html = client.get(path).get_data(as_text=True)
        assert org.c_north.name not in html, path
        assert "（不在你的数据范围）" in html, path
    # The owner's side still names it.
    html = login(app.test_client(), org.rep_north.username).get(
        f"/calls/show/{call.id}").get_data(as_text=True)
    assert org.c_north.name in html
