"""Junk in URLs and query strings gets a clear 4xx (or a redirect with a message), never 500."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("path,status", [
    ("/customers/show/abc", 404),
    ("/customers/edit/abc", 404),
    ("/customers/show/99999999999999999999", 404),
    ("/customers/show/-1", 404),
    ("/contacts/show/abc", 404),
    ("/ownership-events/show/abc", 404),
    ("/customers/download/secret.txt", 404),
    ("/customers/list/?page_CustomerView=abc", 302),
    ("/customers/list/?psize_CustomerView=-5", 302),
    ("/customers/list/?_oc_CustomerView=password&_od_CustomerView=asc", 302),
    ("/customers/list/?_flt_0_created_at=notadate", 200),
    ("/customers/list/?_flt_7_created_at=x", 302),
    ("/customers/list/?psize_CustomerView=%C2%B2", 302),
    ("/customers/list/?endpoint=x&psize_CustomerView=25", 400),  # url_for's own name
    ("/pool/list/?_method=POST", 400),
])
@pytest.mark.parametrize("role", ["admin", "rep"])
def test_web_junk_is_refused_cleanly(clients, role, path, status):
    resp = getattr(clients, role).get(path)
    assert resp.status_code == status
    if status == 302:
        assert resp.headers["Location"].endswith("/customers/list/")


@pytest.mark.parametrize("path,status", [
    ("/customers/count/?page_CustomerView=abc", 400),
    ("/customers/count/?psize_CustomerView=-5", 400),
    ("/customers/count/?_oc_CustomerView=password&_od_CustomerView=asc", 400),
    ("/customers/count/?_flt_0_created_at=notadate", 200),
    ("/customers/count/?_flt_0_name=a%00b", 400),
    ("/customers/count/?after_CustomerView=%00%01", 400),
    ("/customers/count/?_flt_2_name=" + "长" * 5000, 200),
    ("/pool/count/?search=%ff%fe", 200),  # undecodable bytes: replaced, nothing found
    ("/customers/count/?_flt_7_created_at=x", 400),  # no eighth filter on that column
    ("/customers/count/?psize_CustomerView=%C2%B2", 400),  # "²" is a digit to isdigit()
    ("/ownership-events/count/?_flt_0_customer_id=99999999999999999999", 400),
    ("/audit/count/?_flt_0_object_id=99999999999999999999", {"admin": 400, "rep": 403}),
    ("/ownership-events/count/?_flt_0_customer_id=abc", 400),
    ("/customers/count/?_flt_2_name=a", 200),  # refused by the filter: nothing found
    # Numbered pages (no keyset) have no count: 404, or 403 for a rep, who may not read
    # departments at all.
    ("/departments/count/", {"admin": 404, "rep": 403}),
])
@pytest.mark.parametrize("role", ["admin", "rep"])
def test_count_junk_is_refused_cleanly(clients, role, path, status):
    status = status[role] if isinstance(status, dict) else status
    resp = getattr(clients, role).get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    if status == 400 and resp.is_json:
        # Names the argument (or the search's problem): 列表参数无效：<argument>
        error = resp.get_json()["error"]
        assert error.startswith("列表参数无效：") or "搜索" in error, error
        if error.startswith("列表参数无效："):
            assert error.split("：", 1)[1] in path


@pytest.mark.parametrize("q,status,message", [
    ("(((", 400, "q 参数不是有效的 rison"),
    ("(page:-1)", 400, "page 不能为负数"),
    ("(page_size:-3)", 400, "page_size 不能为负数"),
    ("(page_size:abc)", 400, None),
    ("(order_column:password,order_direction:asc)", 400, None),
    ("(filters:!((col:password,opr:eq,value:1)))", 400, None),
])
def test_api_junk_query_is_400(api, q, status, message):
    resp = api("rep1")("GET", f"/api/v1/customers/?q={q}")
    assert resp.status_code == status
    if message:
        assert resp.get_json() == {"code": "invalid", "message": message}


@pytest.mark.parametrize("pk,get_status", [
    # Every method of /customers/<pk> takes any segment; one that is no id is not found.
    ("abc", 404), ("-1", 404), ("1.5", 404), ("99999999999999999999", 404),
])
def test_api_junk_ids(api, pk, get_status):
    call = api("admin")
    assert call("GET", f"/api/v1/customers/{pk}").status_code == get_status
    assert call("PUT", f"/api/v1/customers/{pk}", json={"city": "x"}).status_code == 404
    assert call("DELETE", f"/api/v1/customers/{pk}").status_code == 404


# -- one bounded id parser: ids past INTEGER, floats and digit strings never reach a query ----

BAD_IDS = [2147483648, 1e308, int("9" * 40), 1.5]
BAD_SEGMENTS = ["2147483648", "1e308", "9" * 40, "1.5"]


def _id_bodies(org):
    """(path, body builder, the field the 400 must name) for every JSON body carrying ids."""
    rep = org.rep.id
    return [
        ("/api/v1/pool/claim", lambda bad: {"customer_ids": [bad]}, "customer_ids"),
        ("/api/v1/pool/claim", lambda bad: {"customer_ids": [1], "pool_id": bad}, "pool_id"),
        ("/api/v1/pool/release", lambda bad: {"customer_ids": [bad], "reason": "r"},
         "customer_ids"),
        ("/api/v1/ownership/lock", lambda bad: {"customer_ids": [bad]}, "customer_ids"),
        ("/api/v1/ownership/unlock", lambda bad: {"customer_ids": [bad]}, "customer_ids"),
        ("/api/v1/ownership/assign", lambda bad: {"customer_ids": [bad], "owner_id": rep},
         "customer_ids"),
        ("/api/v1/ownership/assign", lambda bad: {"customer_ids": [1], "owner_id": bad},
         "owner_id"),
        ("/api/v1/ownership/distribute", lambda bad: {"customer_ids": [bad], "owner_ids": [rep]},
         "customer_ids"),
        ("/api/v1/ownership/move-pool", lambda bad: {"customer_ids": [bad], "pool_id": 1},
         "customer_ids"),
        ("/api/v1/ownership/move-pool", lambda bad: {"customer_ids": [1], "pool_id": bad},
         "pool_id"),
        ("/api/v1/ownership/departure", lambda bad: {"user_id": bad, "mode": "pool"}, "user_id"),
        ("/api/v1/ownership/departure",
         lambda bad: {"user_id": rep, "mode": "team", "owner_ids": [bad]}, "owner_ids"),
        ("/api/v1/transfers/", lambda bad: {"customer_ids": [1], "to_owner_id": bad,
                                            "reason": "r"}, "to_owner_id"),
        ("/api/v1/customers/", lambda bad: {"name": "甲公司", "owner_id": bad}, "owner_id"),
        ("/api/v1/tasks/", lambda bad: {"subject": "s", "due_at": "2026-12-01",
                                        "owner_id": bad}, "owner_id"),
        ("/api/v1/tasks/", lambda bad: {"subject": "s", "due_at": "2026-12-01",
                                        "record_type": "customer", "record_id": bad},
         "record_id"),
        ("/api/v1/targets/", lambda bad: {"user_id": bad, "period_kind": "month",
                                          "period_start": "2026-10", "won_amount": 1},
         "user_id"),
        ("/api/v1/targets/", lambda bad: {"department_id": bad, "period_kind": "month",
                                          "period_start": "2026-10", "won_amount": 1},
         "department_id"),
    ]


@pytest.mark.parametrize("bad", BAD_IDS, ids=["int4+1", "1e308", "40 nines", "1.5"])
def test_api_bodies_refuse_ids_that_are_no_ids(api, org, bad):
    call = api("admin")
    for path, body, field in _id_bodies(org):
        resp = call("POST", path, json=body(bad))
        assert resp.status_code == 400, (path, resp.get_data(as_text=True))
        out = resp.get_json()
        assert out["code"] == "invalid", path
        assert list(out["fields"]) == [field], path


def test_lock_refuses_a_float_like_claim(api, org):
    call = api("rep1")
    for path, customer in (("/api/v1/pool/claim", org.c_pool), ("/api/v1/ownership/lock",
                                                                 org.c_rep)):
        resp = call("POST", path, json={"customer_ids": [customer.id + 0.5]})
        assert resp.status_code == 400
        assert resp.get_json()["fields"] == {"customer_ids": "客户编号必须是正整数列表"}


@pytest.mark.parametrize("segment", BAD_SEGMENTS, ids=["int4+1", "1e308", "40 nines", "1.5"])
@pytest.mark.parametrize("method,template", [
    ("GET", "/api/v1/transfers/{}"),
    ("POST", "/api/v1/transfers/{}/approve"),
    ("POST", "/api/v1/transfers/{}/reject"),
    ("POST", "/api/v1/transfers/{}/cancel"),
    ("GET", "/api/v1/policies/{}"),
    ("PUT", "/api/v1/policies/{}"),
    ("DELETE", "/api/v1/policies/{}"),
    ("GET", "/api/v1/policies/effective/{}"),
    ("GET", "/api/v1/tasks/{}"),
    ("PUT", "/api/v1/tasks/{}"),
    ("POST", "/api/v1/tasks/{}/done"),
    ("POST", "/api/v1/tasks/{}/cancel"),
    ("POST", "/api/v1/tasks/{}/reopen"),
    ("GET", "/api/v1/targets/{}"),
    ("PUT", "/api/v1/targets/{}"),
    ("DELETE", "/api/v1/targets/{}"),
])
def test_api_paths_past_the_keys_are_json_404(api, method, template, segment):
    resp = api("admin")(method, template.format(segment), json={})
    assert resp.status_code == 404
    assert resp.get_json() == {"code": "not_found", "message": "资源不存在"}


@pytest.mark.parametrize("segment", BAD_SEGMENTS, ids=["int4+1", "1e308", "40 nines", "1.5"])
@pytest.mark.parametrize("template,status", [
    ("/transfers/{}", 404),
    ("/transfers/new?ids={}", 404),
    ("/transfers/new?ids=1,{}", 404),
    ("/ownership/distribute?ids={}", 404),
    ("/ownership/release?ids={}", 404),
    ("/ownership/departure/{}", 404),
    ("/imports/{}/", 404),
    ("/imports/{}/status", 404),
    ("/dedupe-review/{}", 404),
    ("/followups/add?_flt_0_customer={}", 200),  # the form, with no customer chosen
    ("/tasks/show/{}", 404),
    ("/tasks/edit/{}", 404),
    ("/tasks/add?customer_id={}", 200),  # the form, with no customer filled in
    ("/targets/show/{}", 404),
    ("/targets/edit/{}", 404),
    ("/targets/attainment?start={}", 404),
])
def test_pages_refuse_ids_past_the_keys(clients, template, status, segment):
    assert clients.admin.get(template.format(segment)).status_code == status


def test_api_page_past_the_keys_is_400_naming_page(api):
    resp = api("admin")("GET", "/api/v1/customers/?q=(page:9223372036854775807,page_size:10)")
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "invalid"
    assert list(resp.get_json()["fields"]) == ["page"]


# -- FAB's own endpoints ------------------------------------------------------------------------

def test_api_login_without_provider_is_400(app, org):
    resp = app.test_client().post("/api/v1/security/login",
                                  json={"username": "admin", "password": "x"})
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "invalid"
    assert list(resp.get_json()["fields"]) == ["provider"]


def test_fab_login_refusal_keeps_its_message_and_gains_a_code(app, org):
    resp = app.test_client().post("/api/v1/security/login", json={
        "username": "admin", "password": "wrong", "provider": "db"})
    assert (resp.status_code, resp.get_json()) == (
        401, {"code": "unauthorized", "message": "Not authorized"})


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/menu/"),
                                          ("POST", "/api/v1/security/refresh"),
                                          ("GET", "/api/v1/customers/")])
def test_a_missing_token_answers_our_error_shape(app, org, method, path):
    resp = app.test_client().open(path, method=method)
    assert (resp.status_code, resp.get_json()) == (401, {
        "code": "unauthorized", "message": "Missing Authorization Header",
        "msg": "Missing Authorization Header"})


@pytest.mark.parametrize("path", ["/users/download/x", "/roles/download/x",
                                  "/groups/download/x"])
def test_security_views_have_no_file_download(clients, path):
    assert clients.admin.get(path).status_code == 404


# -- text that cannot be stored is refused at the boundary, naming the field -------------------

UNCLEAN = ["a\x00b", "a\udcffb"]


@pytest.mark.parametrize("text", UNCLEAN, ids=["NUL", "lone surrogate"])
def test_api_refuses_unclean_text_naming_the_field(api, org, text):
    call = api("admin")
    for method, path, body, field in [
        ("POST", "/api/v1/customers/", {"name": text, "city": "杭州"}, "name"),
        ("POST", "/api/v1/customers/", {"name": "甲公司", "city": text}, "city"),
        ("PUT", f"/api/v1/customers/{org.c_rep.id}", {"address": text}, "address"),
        ("POST", "/api/v1/pool/release", {"customer_ids": [org.c_rep.id], "reason": text},
         "reason"),
    ]:
        resp = call(method, path, json=body)
        assert resp.status_code == 400, (path, field)
        assert resp.get_json()["code"] == "invalid"
        assert list(resp.get_json()["fields"]) == [field], (path, field)


def test_api_list_filter_with_nul_is_400(api):
    resp = api("admin")("GET", "/api/v1/customers/?q=(filters:!((col:name,opr:ct,value:'a%00b')))")
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"q": "q 含有不允许的字符（NUL 或不成对的代理字符）"}


def test_web_list_filter_and_login_with_nul_are_400(app, clients, org):
    assert clients.admin.get("/customers/list/?_flt_0_name=a%00b").status_code == 400
    client = app.test_client()
    from tests.conftest import csrf_token

    token = csrf_token(client)
    resp = client.post("/login/", data={"username": "admin\x00", "password": "x",
                                        "csrf_token": token})
    assert resp.status_code == 400
    assert "username" in resp.get_data(as_text=True)


def test_service_refuses_unclean_text_from_other_paths(org):
    from app.services.customers import clean_customer_data
    from app.services.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        clean_customer_data({"name": "甲\udcff公司"})
    assert err.value.fields == {"name": "含有不允许的字符（NUL 或不成对的代理字符）"}


# -- the limits of app/services/limits.py, alike for every path --------------------------------

def test_api_refuses_texts_past_their_limit(api, org):
    rep = api("rep1")
    cases = [
        ("POST", "/api/v1/customers/", {"name": "甲" * 201}, "name", 200),
        ("POST", "/api/v1/customers/", {"name": "甲公司", "notes": "x" * 10_001}, "notes",
         10_000),
        ("PUT", f"/api/v1/customers/{org.c_rep.id}", {"notes": "x" * 2_000_000}, "notes",
         10_000),
        ("POST", "/api/v1/pool/release", {"customer_ids": [org.c_rep.id],
                                          "reason": "x" * 2_001}, "reason", 2_000),
        ("POST", "/api/v1/transfers/", {"customer_ids": [org.c_rep.id],
                                        "to_owner_id": org.rep2.id, "reason": "x" * 500_000},
         "reason", 2_000),
        ("POST", "/api/v1/transfers/", {"customer_ids": [org.c_rep.id],
                                        "to_owner_id": org.rep2.id, "reason": "r",
                                        "handover_note": "x" * 2_001}, "handover_note", 2_000),
    ]
    for method, path, body, field, limit in cases:
        resp = rep(method, path, json=body)
        assert resp.status_code == 400, (path, field)
        assert resp.get_json()["code"] == "invalid"
        assert resp.get_json()["fields"] == {field: f"不能超过 {limit} 个字符"}, (path, field)


def test_followup_content_past_the_limit_is_refused(org):
    import datetime as dt

    from app.services.errors import ValidationFailed
    from app.services.followups import clean_followup

    with pytest.raises(ValidationFailed) as err:
        clean_followup({"channel": "call", "content": "x" * 10_001},
                       dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert err.value.fields == {"content": "不能超过 10000 个字符"}


@pytest.mark.parametrize("field,value,message", [
    ("max_customers", 100_001, "不能大于 100000"),
    ("max_locked", 2147483648, "不能大于 100000"),
    ("daily_claim_limit", 100_001, "不能大于 100000"),
    ("cooldown_days", 3_651, "不能大于 3650"),
    ("warn_before_days", 10**12, "不能大于 3650"),
])
def test_policy_numbers_have_domain_maxima(api, org, field, value, message):
    resp = api("admin")("POST", "/api/v1/policies/", json={"scope": "user",
                                                           "user_id": org.rep.id, field: value})
    assert resp.status_code == 400
    assert resp.get_json()["code"] == "invalid"
    assert resp.get_json()["fields"] == {field: message}


def test_policy_target_past_the_keys_is_400(api, org):
    resp = api("admin")("POST", "/api/v1/policies/", json={"scope": "user",
                                                           "user_id": 2147483648})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"user_id": "user_id 必须是 1 到 2147483647 之间的整数"}


@pytest.mark.parametrize("path", ["/transfers/?awaiting_page={}", "/transfers/?mine_page={}",
                                  "/dedupe-review/?page={}"])
@pytest.mark.parametrize("page", ["9" * 40, "-3", "1.5", "abc"])
def test_web_page_numbers_past_the_keys_show_the_first_page(clients, path, page):
    assert clients.admin.get(path.format(page)).status_code == 200


def test_contact_name_is_bounded_by_its_column(org):
    from app.services.customers import clean_contact_data
    from app.services.errors import ValidationFailed

    assert clean_contact_data({"name": "张" * 100})["name"] == "张" * 100
    with pytest.raises(ValidationFailed) as err:
        clean_contact_data({"name": "张" * 101})
    assert err.value.fields == {"name": "不能超过 100 个字符"}


# --- issue 15's pages: tampered cursors, redirect targets, the import mapping's ids -----------
def _cursor(order, direction, values) -> str:
    import base64
    import json

    body = json.dumps({"o": order, "d": direction, "v": values}).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


@pytest.mark.parametrize("path, view, order, values", [
    ("/lead-pool/list/", "LeadPoolView", "priority_score", ["abc", 1]),
    ("/lead-pool/list/", "LeadPoolView", "priority_score", [{"dt": "2026-01-01T00:00:00"}, 1]),
    ("/leads/list/", "LeadView", "priority_score", ["abc", 1]),
    ("/targets/list/", "SalesTargetView", "period_start", ["abc", 1]),
    ("/targets/list/", "SalesTargetView", "period_start", [5, 1]),
    ("/capture-forms/list/", "CaptureFormView", "name", [5, 1]),
    ("/customers/list/", "CustomerView", "name", [{"n": "1.5"}, 1]),
])
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_a_cursor_of_the_wrong_type_is_no_cursor(clients, path, view, order, values, direction):
    """A hand-made cursor whose value does not fit the sort column shows the first page (the
    database would refuse to compare an integer with text)."""
    query = (f"?_oc_{view}={order}&_od_{view}={direction}"
             f"&after_{view}={_cursor(order, direction, values)}")
    first = clients.admin.get(f"{path}?_oc_{view}={order}&_od_{view}={direction}")
    resp = clients.admin.get(path + query)
    assert resp.status_code == 200 == first.status_code


def test_cursor_values_are_checked_against_the_column_type():
    import datetime as dt
    from decimal import Decimal

    from app.models import Customer, Lead, SalesTarget
    from app.paging import _fits

    assert _fits(Lead.priority_score, 3) and not _fits(Lead.priority_score, "3")
    assert not _fits(Lead.priority_score, 2**63) and not _fits(Lead.priority_score, True)
    assert _fits(SalesTarget.period_start, dt.date(2026, 11, 1))
    assert not _fits(SalesTarget.period_start, dt.datetime(2026, 11, 1))
    assert _fits(Customer.created_at, dt.datetime(2026, 11, 1)) and not _fits(
        Customer.created_at, "2026-11-01")
    assert _fits(Customer.name, "甲") and not _fits(Customer.name, Decimal(1))
    assert _fits(Customer.name, None)


@pytest.mark.parametrize("target", ["/%09/evil.com", "/%0a/evil.com", "/%0d%0aX:1",
                                    "//evil.com", "/\\evil.com", "/ok%20/x"])
def test_a_redirect_target_with_whitespace_or_control_characters_stays_on_site(clients, org,
                                                                               target):
    """?next= after saving an opportunity: a tab or newline ("/\\t/evil.com" is
    "//evil.com" to a browser) is refused like "//evil.com", and never a 500."""
    resp = clients.rep.post(f"/opportunities/add?next={target}", data={
        "csrf_token": clients.rep.csrf, "customer_id": org.c_rep.id, "title": "重定向",
        "amount": "5"})
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert "evil.com" not in location and "\n" not in location and "\t" not in location


def test_local_path_refuses_whitespace_and_control_characters():
    from app.views.base import local_path

    assert local_path("/opportunities/kanban?owner_id=3") == "/opportunities/kanban?owner_id=3"
    for bad in ("/\t/evil.com", "/\n/evil.com", "/a b", "/\x7f", "//evil.com", "/\\evil",
                "http://evil.com", "", None):
        assert local_path(bad) is None, repr(bad)


@pytest.mark.parametrize("field, value", [("owner_id", "²"), ("owner_id", "9" * 25),
                                          ("pool_id", "²"), ("pool_id", "9" * 25)])
def test_import_mapping_ids_not_in_range_are_a_form_error(clients, org, db, field, value):
    from app.models import ImportBatch
    from app.services import import_mapping

    batch = import_mapping.upload(org.admin, "线索.csv",
                                  "公司,联系人,手机\n甲公司,张三,13800000001\n".encode(), "lead")
    client = clients.admin
    resp = client.post(f"/imports/{batch.id}/mapping", data={
        "csrf_token": client.csrf, "target": "owner" if field == "owner_id" else "pool",
        field: value, "map_company_name": "公司"})
    assert resp.status_code in (200, 400)
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).status == "mapping"  # nothing started
