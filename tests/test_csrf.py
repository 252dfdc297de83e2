"""CSRF on the customer pages: every state-changing POST needs the form's csrf_token.

Flask-WTF's CSRFProtect answers a refused token with its CSRFError, a 400 whose page names the
reason ("The CSRF token is missing." / "... is invalid." / "The CSRF tokens do not match.").
GET never changes anything: FAB refuses a GET delete when CSRF is on (flash + redirect), and
the single-row action route accepts POST only. The JWT API is exempt by design (bearer
tokens are not sent by browsers) but accepts only a JSON object body.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tests.conftest import api_token
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
    # The API is CSRF-exempt and also accepts the browser session (allow_browser_login), so
    # what protects it is that a write needs a JSON body, which no cross-site form can send.
    before = customers_now(db)
    resp = rep.post("/api/v1/customers/", data=body, content_type=content_type)
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"body": "请求体必须是 JSON 对象"}
    resp = rep.put(f"/api/v1/customers/{k.c_rep}", data=body, content_type=content_type)
    assert resp.status_code == 400
    assert customers_now(db) == before
