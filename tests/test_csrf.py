"""CSRF on the customer pages: every state-changing POST needs the form's csrf_token.

Flask-WTF's CSRFProtect answers a refused token with its CSRFError, a 400 whose page names the
reason ("The CSRF token is missing." / "... is invalid." / "The CSRF tokens do not match.").
GET never changes anything: FAB refuses a GET delete when CSRF is on (flash + redirect), and
the single-row action route accepts POST only.

The JSON API allows browser login, so a state-changing /api/ call signed by the session
cookie must carry the token in the X-CSRFToken header (400 {"code": "csrf"} otherwise); calls
with a JWT need none (bearer tokens are not sent by browsers). The session cookie is
SameSite=Lax and HttpOnly, and Secure when GUISHU_HTTPS says the app is served over HTTPS.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from tests.conftest import PASSWORD, api_token, csrf_token, login
from tests.helpers import customers_now

MISSING = "The CSRF token is missing."
INVALID = "The CSRF token is invalid."
MISMATCH = "The CSRF tokens do not match."
REFRESH_JOB = "jobs.customers.refresh_normalised_keys"


@pytest.fixture
def admin(admin_client):
    return admin_client


@pytest.fixture
def rep(rep_client):
    return rep_client


@pytest.fixture
def k(org):
    return SimpleNamespace(c_rep=org.c_rep.id, c_rep2=org.c_rep2.id, c_pool=org.c_pool.id,
                           name_rep=org.c_rep.name, pool=org.pool.id, rep=org.rep.id)


def edit_data(db, cid, **changes) -> dict:
    from app.models import Customer

    db.session.commit()
    c = db.session.get(Customer, cid)
    data = {"name": c.name, "customer_type": c.customer_type, "industry": c.industry or "",
            "province": c.province or "", "city": c.city or "", "address": c.address or "",
            "mobile": c.mobile or "", "phone": c.phone or "", "email": c.email or "",
            "source": c.source or "", "product_line": c.product_line or "", "birthday": "",
            "notes": c.notes or ""}
    data.update(changes)
    return data


def refused(resp, reason=MISSING) -> bool:
    assert resp.status_code == 400, resp.status_code
    assert reason in resp.get_data(as_text=True)
    return True


@pytest.fixture
def jobs_probe(app, redis_url):
    from app.queue import get_queue

    if redis_url is None:
        pytest.skip("no Redis reachable: the refresh_keys action cannot queue its job")
    created = []

    def snapshot():
        return {j.id for j in get_queue().jobs if j.func_name == REFRESH_JOB}

    def new(before):
        jobs = [j for j in get_queue().jobs if j.func_name == REFRESH_JOB and j.id not in before]
        created.extend(jobs)
        return [j.args for j in jobs]

    yield SimpleNamespace(snapshot=snapshot, new=new)
    for job in created:
        job.delete()


# --- add ---------------------------------------------------------------------------------------
def test_add_without_token_is_refused(admin, db):
    before = customers_now(db)
    resp = admin.post("/customers/add", data={"name": "无令牌新建", "customer_type": "company"})
    assert refused(resp)
    assert customers_now(db) == before


def test_add_with_a_forged_token_is_refused(admin, db):
    before = customers_now(db)
    resp = admin.post("/customers/add", data={"csrf_token": "forged", "name": "伪造令牌",
                                              "customer_type": "company"})
    assert refused(resp, INVALID)
    assert customers_now(db) == before


def test_add_with_another_sessions_token_is_refused(admin, rep, db):
    before = customers_now(db)
    resp = admin.post("/customers/add", data={"csrf_token": rep.csrf, "name": "别人的令牌",
                                              "customer_type": "company"})
    assert refused(resp, MISMATCH)
    assert customers_now(db) == before


def test_add_with_token_works(admin, db, k):
    before = customers_now(db)
    resp = admin.post("/customers/add", data={"csrf_token": admin.csrf, "name": "有令牌新建",
                                              "customer_type": "company"})
    assert resp.status_code == 302
    after = customers_now(db)
    (new_id,) = set(after) - set(before)
    assert after[new_id] == "有令牌新建"


# --- edit --------------------------------------------------------------------------------------
def test_edit_without_token_is_refused(admin, db, k):
    before = customers_now(db)
    resp = admin.post(f"/customers/edit/{k.c_rep}", data=edit_data(db, k.c_rep, name="无令牌改名"))
    assert refused(resp)
    assert customers_now(db) == before


def test_edit_with_token_works(admin, db, k):
    before = customers_now(db)
    resp = admin.post(f"/customers/edit/{k.c_rep}",
                      data={"csrf_token": admin.csrf, **edit_data(db, k.c_rep, name="有令牌改名")})
    assert resp.status_code == 302
    assert customers_now(db) == {**before, k.c_rep: "有令牌改名"}


# --- delete ------------------------------------------------------------------------------------
def test_delete_without_token_is_refused(admin, db, k):
    before = customers_now(db)
    assert refused(admin.post(f"/customers/delete/{k.c_rep}"))
    assert refused(admin.post(f"/customers/delete/{k.c_rep}", data={"csrf_token": ""}))
    assert customers_now(db) == before


def test_delete_with_token_works(admin, db, k):
    before = customers_now(db)
    resp = admin.post(f"/customers/delete/{k.c_rep}", data={"csrf_token": admin.csrf})
    assert resp.status_code == 302
    assert customers_now(db) == {i: n for i, n in before.items() if i != k.c_rep}


def test_delete_by_get_does_not_delete(admin, db, k):
    before = customers_now(db)
    admin.get("/customers/list/")  # FAB sends a refused GET back to the page it came from
    resp = admin.get(f"/customers/delete/{k.c_rep}")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/customers/list/")
    assert "访问被拒绝" in admin.get("/customers/list/").get_data(as_text=True)
    assert customers_now(db) == before


def test_delete_by_get_with_a_token_in_the_query_does_not_delete(admin, db, k):
    before = customers_now(db)
    resp = admin.get(f"/customers/delete/{k.c_rep}", query_string={"csrf_token": admin.csrf})
    assert resp.status_code == 302
    assert customers_now(db) == before


# --- actions -----------------------------------------------------------------------------------
def test_action_post_without_token_is_refused(admin, db, k, jobs_probe):
    before = jobs_probe.snapshot()
    resp = admin.post("/customers/action_post",
                      data={"action": "refresh_keys", "rowid": [str(k.c_rep)]})
    assert refused(resp)
    assert jobs_probe.new(before) == []


def test_action_post_with_token_works(admin, db, k, jobs_probe):
    before = jobs_probe.snapshot()
    resp = admin.post("/customers/action_post", data={
        "csrf_token": admin.csrf, "action": "refresh_keys", "rowid": [str(k.c_rep)]})
    assert resp.status_code == 302
    assert jobs_probe.new(before) == [([k.c_rep],)]


def test_single_row_action_without_token_is_refused(admin, k, jobs_probe):
    before = jobs_probe.snapshot()
    assert refused(admin.post(f"/customers/action/refresh_keys/{k.c_rep}"))
    assert jobs_probe.new(before) == []


def test_single_row_action_by_get_is_not_allowed(admin, k, jobs_probe):
    before = jobs_probe.snapshot()
    resp = admin.get(f"/customers/action/refresh_keys/{k.c_rep}",
                     query_string={"csrf_token": admin.csrf})
    assert resp.status_code == 405
    assert jobs_probe.new(before) == []


# --- the same rule on contacts and on the login form -----------------------------------------
def test_contact_add_without_token_is_refused(rep, db, k):
    from app.models import Contact

    resp = rep.post("/contacts/add", data={"customer": str(k.c_rep), "name": "无令牌联系人",
                                           "is_primary": "y"})
    assert refused(resp)
    db.session.commit()
    assert db.session.execute(select(Contact.id)).first() is None


def test_login_without_token_is_refused(app, org):
    client = app.test_client()
    resp = client.post("/login/", data={"username": "admin", "password": "Test-pass-123"})
    assert refused(resp)
    # ... and the client is still anonymous
    assert client.get("/customers/list/").status_code == 302


# --- the JSON API ------------------------------------------------------------------------------
def test_jwt_api_needs_no_csrf_token(app, org, db):
    client = app.test_client()
    token = api_token(client, "rep1")
    before = customers_now(db)
    resp = client.post("/api/v1/customers/", json={"name": "接口无需令牌"},
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201
    assert customers_now(db) == {**before, resp.get_json()["id"]: "接口无需令牌"}


@pytest.mark.parametrize("content_type,body", [
    ("application/x-www-form-urlencoded", "name=cross-site"),
    ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="name"'
                                        '\r\n\r\ncross-site\r\n--x--\r\n'),
    ("text/plain", '{"name": "cross-site"}'),
])
def test_session_cookie_api_write_refuses_what_a_cross_site_form_can_send(
        content_type, body, rep, db, k):
    # Even with the token, a write needs a JSON body, which no cross-site form can send.
    token = {"X-CSRFToken": rep.csrf}
    before = customers_now(db)
    resp = rep.post("/api/v1/customers/", data=body, content_type=content_type, headers=token)
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"body": "请求体必须是 JSON 对象"}
    resp = rep.put(f"/api/v1/customers/{k.c_rep}", data=body, content_type=content_type,
                   headers=token)
    assert resp.status_code == 400
    assert customers_now(db) == before


# --- the JSON API signed by the session cookie --------------------------------------------------
CSRF_REFUSED = {"code": "csrf", "message": (
    "缺少或无效的 CSRF 令牌：以浏览器登录会话调用接口修改数据时，须在 X-CSRFToken 请求头中带上"
    "页面的 csrf_token；程序调用请使用 JWT（Authorization: Bearer）")}
CROSS_SITE = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}
# FAB's JWT login and refresh: no session signs them in. The webhooks authenticate by API
# key only and never read the session (test_a_cross_site_post_to_a_webhook_is_no_key).
NO_SESSION = {"SecurityApi.login", "SecurityApi.refresh", "HooksApi.sms_reply", "SmsApi.inbound",
              "TicketMailApi.inbound_mail", "CtiEventsApi.events", "CtiEventsApi.tinet",
              "CtiEventsApi.tencent"}


def mutating_api_routes(app, pk: int) -> list[tuple[str, str]]:
    """(method, path) of every state-changing /api/ route, path parameters filled with pk."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.endpoint not in NO_SESSION:
            path = re.sub(r"<[^>]+>", str(pk), rule.rule)
            out += [(method, path) for method in sorted(rule.methods & {"POST", "PUT", "PATCH",
                                                                        "DELETE"})]
    return sorted(out)


def audit_rows(db) -> int:
    from app.models import AuditLog

    db.session.commit()
    return db.session.execute(select(func.count(AuditLog.id))).scalar_one()


def test_the_route_list_holds_every_write_of_the_api(app, k):
    routes = mutating_api_routes(app, k.c_rep)
    assert {("POST", f"/api/v1/transfers/{k.c_rep}/approve"),
            ("POST", f"/api/v1/transfers/{k.c_rep}/cancel"), ("POST", "/api/v1/pool/claim"),
            ("DELETE", f"/api/v1/customers/{k.c_rep}"), ("PUT", f"/api/v1/policies/{k.c_rep}"),
            ("POST", "/api/v1/dedupe/check")} <= set(routes)
    assert not any("/security/" in path for _, path in routes)


def test_a_cross_site_post_with_the_session_cookie_only_is_refused_everywhere(admin, app, db, k):
    routes = mutating_api_routes(app, k.c_rep)
    customers, audits = customers_now(db), audit_rows(db)
    answers = {}
    for method, path in routes:
        resp = admin.open(path, method=method, data={"customer_ids": str(k.c_rep)},
                          headers=CROSS_SITE)
        answers[(method, path)] = (resp.status_code, resp.get_json(silent=True))
    assert answers == {route: (400, CSRF_REFUSED) for route in routes}
    assert (customers_now(db), audit_rows(db)) == (customers, audits)


def test_a_cross_site_post_to_a_webhook_is_no_key(admin, db):
    """The session cookie carries no authority on a webhook: refused 401 as with no cookie
    (the refused use is audited), nothing else written."""
    from app.models import Notification

    resp = admin.post("/api/v1/hooks/sms-reply", json={"from": "13800138000", "text": "x"},
                      headers=CROSS_SITE)
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    db.session.commit()
    assert db.session.execute(select(func.count(Notification.id))).scalar_one() == 0


def test_a_cross_site_post_to_the_inbound_mail_webhook_is_no_key(admin, db):
    """The mail bridge's webhook takes an API key only: the admin's session cookie opens no
    ticket."""
    from app.models import Ticket

    resp = admin.post("/api/v1/tickets/inbound-mail",
                      json={"from": "a@b.cn", "to": "help@x.cn", "subject": "x", "text": "x",
                            "message_id": "<m1@b.cn>"}, headers=CROSS_SITE)
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    db.session.commit()
    assert db.session.execute(select(func.count(Ticket.id))).scalar_one() == 0


@pytest.mark.parametrize("path", ["/api/v1/cti/events", "/api/v1/cti/vendors/tinet",
                                  "/api/v1/cti/vendors/tencent?action=cdr"])
def test_a_cross_site_post_of_a_call_event_is_no_key(admin, db, path):
    """The call events take an API key (and a signature) only: the admin's session cookie
    records no call."""
    from app.models import CtiEvent

    resp = admin.post(path, json={"event_id": "x", "vendor": "acme", "type": "ringing",
                                  "call_id": "c", "occurred_at": 1764460800},
                      headers=CROSS_SITE)
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    db.session.commit()
    assert db.session.execute(select(func.count(CtiEvent.id))).scalar_one() == 0


def test_a_forged_or_another_sessions_token_is_refused(admin, rep, k):
    for token in ("forged", rep.csrf):
        resp = admin.post("/api/v1/pool/claim", json={"customer_ids": [k.c_pool]},
                          headers={"X-CSRFToken": token})
        assert (resp.status_code, resp.get_json()) == (400, CSRF_REFUSED)


def test_with_the_token_no_session_call_is_refused_for_csrf(admin, app, k):
    for method, path in mutating_api_routes(app, k.c_rep):
        resp = admin.open(path, method=method, json={}, headers={"X-CSRFToken": admin.csrf})
        assert (resp.get_json(silent=True) or {}).get("code") != "csrf", (method, path)


def test_jwt_calls_need_no_token_on_any_route(app, api, k):
    call = api("admin")
    for method, path in mutating_api_routes(app, k.c_rep):
        resp = call(method, path, json={})
        assert (resp.get_json(silent=True) or {}).get("code") != "csrf", (method, path)


@pytest.mark.parametrize("action, status", [("approve", "completed"), ("cancel", "cancelled")])
def test_a_cross_site_page_cannot_decide_a_transfer(action, status, app, org, db, k):
    from app.models import TransferRequest
    from app.services import transfers

    tid = transfers.create_transfer(org.rep, [k.c_rep], org.rep2.id, "客户要求", "other").id
    db.session.commit()
    client = login(app.test_client(), "manager1" if action == "approve" else "rep1")

    def status_now():
        db.session.commit()
        return db.session.get(TransferRequest, tid, populate_existing=True).status

    for data in ({}, {"note": "同意"}):
        resp = client.post(f"/api/v1/transfers/{tid}/{action}", data=data, headers=CROSS_SITE)
        assert (resp.status_code, resp.get_json()) == (400, CSRF_REFUSED)
    assert status_now() == "pending"
    resp = client.post(f"/api/v1/transfers/{tid}/{action}", json={},
                       headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 200, resp.get_json()
    assert status_now() == status


# --- the session cookie -------------------------------------------------------------------------
def test_the_session_cookie_is_lax_and_http_only(app, org):
    client = app.test_client()
    resp = client.post("/login/", data={"username": "rep1", "password": PASSWORD,
                                        "csrf_token": csrf_token(client)})
    assert resp.status_code == 302
    (cookie,) = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session=")]
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert attributes["samesite"].strip() == "SameSite=Lax" and "httponly" in attributes
    assert "secure" not in attributes  # the tests run over plain HTTP


@pytest.mark.parametrize("setting, secure", [("1", True), ("", False)])
def test_cookies_are_secure_when_the_app_is_served_over_https(setting, secure, tmp_path):
    code = ("import config; c = config.Config; print(c.SESSION_COOKIE_SECURE, "
            "c.REMEMBER_COOKIE_SECURE, c.SESSION_COOKIE_SAMESITE, c.REMEMBER_COOKIE_SAMESITE, "
            "c.SESSION_COOKIE_HTTPONLY, c.REMEMBER_COOKIE_HTTPONLY)")
    env = {**os.environ, "GUISHU_HTTPS": setting, "GUISHU_INSTANCE_DIR": str(tmp_path),
           "SECRET_KEY": "x"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout
    assert out.split() == [str(secure), str(secure), "Lax", "Lax", "True", "True"]


# The public lead capture form (/forms/<token>) needs no login but is served with a CSRF token:
# a cross-site POST (no token, or a token of another visitor's session) makes no lead.
def test_the_public_capture_form_refuses_a_post_without_its_token(app, org, db):
    from app.models import Lead
    from app.services import lead_capture, leads

    form = lead_capture.create_form(org.admin, {
        "name": "CSRF 表单", "pool_id": leads.default_lead_pool().id, "policy_text": "t",
        "policy_version": "1"})
    path = f"/forms/{form.token}"
    data = {"name": "跨站", "mobile": "13900007777", "consent": "y"}
    count = lambda: db.session.execute(select(func.count()).select_from(Lead)).scalar_one()
    db.session.commit()
    before = count()
    visitor, other = app.test_client(), app.test_client()
    assert refused(visitor.post(path, data=data))
    csrf_token(visitor, path)
    assert refused(visitor.post(path, data=dict(data, csrf_token="forged")), INVALID)
    assert refused(visitor.post(path, data=dict(data, csrf_token=csrf_token(other, path))),
                   MISMATCH)
    db.session.commit()
    assert count() == before
    resp = visitor.post(path, data=dict(data, csrf_token=csrf_token(visitor, path)))
    assert resp.status_code == 200
    db.session.commit()
    assert count() == before + 1
