"""Role x endpoint matrix for the REST API /api/v1/customers/ with JWT bearer tokens.

Observed FAB 5.3 behaviour asserted here:
  * a method the role lacks (auditor writes, anyone but admin deleting): 403
    {"code": "forbidden", "message": "Forbidden"}
    from FAB's @protect, before the data scope is looked at;
  * GET of a row outside the scope: FAB's own 404 {"code": "not_found", "message": "Not found"};
  * PUT / DELETE outside the scope (or of a missing id): the service's 404
    {"code": "out_of_scope", "message": ...};
  * no token: 401 {"msg": "Missing Authorization Header"} from flask-jwt-extended.
"""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from tests.helpers import FAB_FORBIDDEN, FAB_NOT_FOUND, customers_now, holder_of


ROLES = ("admin", "manager", "rep", "staff", "auditor")
CUSTOMERS = ("c_rep", "c_rep2", "c_north", "c_pool")
USERNAME = {"admin": "admin", "manager": "manager1", "rep": "rep1", "staff": "staff1",
            "auditor": "auditor1"}
VISIBLE = {
    "admin": set(CUSTOMERS),
    "manager": {"c_rep", "c_rep2"},
    "rep": {"c_rep"},
    "staff": set(CUSTOMERS),
    "auditor": set(CUSTOMERS),
}
WRITERS = {"admin", "manager", "rep", "staff"}
URL = "/api/v1/customers/"
FORBIDDEN = FAB_FORBIDDEN
NOT_FOUND = FAB_NOT_FOUND
OUT_OF_SCOPE = {"code": "out_of_scope", "message": "客户不存在或不在您的数据权限内"}
OWNERSHIP_KEYS = {"owner", "pool", "locked", "won", "category", "grade", "acquired_at"}


@pytest.fixture
def as_role(api):
    return lambda role: api(USERNAME[role])


@pytest.fixture
def k(org):
    return SimpleNamespace(
        ids={c: getattr(org, c).id for c in CUSTOMERS},
        names={c: getattr(org, c).name for c in CUSTOMERS},
        rep=org.rep.id, rep2=org.rep2.id, rep_north=org.rep_north.id, manager=org.manager.id,
        staff=org.staff.id, admin=org.admin.id, auditor=org.auditor.id, pool=org.pool.id,
        pool_name=org.pool.name,
    )


def expected_holder(k, c):
    """The owner / pool part of the API item for each conftest customer."""
    owner = {"c_rep": (k.rep, "rep1"), "c_rep2": (k.rep2, "rep2"),
             "c_north": (k.rep_north, "rep3")}.get(c)
    return {
        "owner": {"id": owner[0], "username": owner[1]} if owner else None,
        "pool": None if owner else {"id": k.pool, "name": "默认公海"},
        "locked": False, "won": False, "category": "potential", "grade": None,
    }


# --- database helpers ------------------------------------------------------------------------
def customer_row(db, cid) -> dict:
    from app.models import Customer

    db.session.commit()
    c = db.session.get(Customer, cid)
    return {"name": c.name, "email": c.email, "created_by_id": c.created_by_id, "notes": c.notes}


def events_of(db, cid) -> list[tuple]:
    from app.models import OwnershipEvent

    db.session.commit()
    return [tuple(r) for r in db.session.execute(
        select(OwnershipEvent.kind, OwnershipEvent.from_owner_id, OwnershipEvent.from_pool_id,
               OwnershipEvent.to_owner_id, OwnershipEvent.to_pool_id, OwnershipEvent.actor_id)
        .where(OwnershipEvent.customer_id == cid).order_by(OwnershipEvent.id)).all()]


# ============================================================================================
# reads
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
def test_list_returns_exactly_the_scope(role, as_role, k):
    resp = as_role(role)("GET", URL)
    assert resp.status_code == 200
    body = resp.get_json()
    want = {k.ids[c] for c in VISIBLE[role]}
    assert body["count"] == len(want)
    assert set(body["ids"]) == want
    assert {item["id"] for item in body["result"]} == want
    by_id = {item["id"]: item for item in body["result"]}
    for c in VISIBLE[role]:
        item = by_id[k.ids[c]]
        assert item["name"] == k.names[c]
        assert OWNERSHIP_KEYS <= set(item)
        assert {key: item[key] for key in expected_holder(k, c)} == expected_holder(k, c)
        assert isinstance(item["acquired_at"], str)


@pytest.mark.parametrize("role", ROLES)
def test_list_search_cannot_reach_outside_the_scope(role, as_role, k):
    # Filtering by the exact name of rep3's customer finds it only where it is in scope.
    resp = as_role(role)("GET", URL, query_string={
        "q": f"(filters:!((col:name,opr:eq,value:'{k.names['c_north']}')))"})
    assert resp.status_code == 200
    want = [k.ids["c_north"]] if "c_north" in VISIBLE[role] else []
    assert resp.get_json()["ids"] == want


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_get_one(role, target, as_role, k):
    resp = as_role(role)("GET", f"{URL}{k.ids[target]}")
    if target in VISIBLE[role]:
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["id"] == k.ids[target]
        assert body["result"]["name"] == k.names[target]
        holder = expected_holder(k, target)
        assert {key: body["result"][key] for key in holder} == holder
    else:
        assert resp.status_code == 404
        assert resp.get_json() == NOT_FOUND


def test_get_fields_of_the_first_customer(as_role, k):
    item = as_role("rep")("GET", f"{URL}{k.ids['c_rep']}").get_json()["result"]
    assert (item["mobile"], item["mobile_e164"], item["city"], item["province"]) == (
        "13800138000", "+8613800138000", "杭州", "浙江")


def test_missing_token_is_401(app, org):
    resp = app.test_client().get(URL)
    assert resp.status_code == 401
    assert resp.get_json() == {"code": "unauthorized", "message": "Missing Authorization Header",
                               "msg": "Missing Authorization Header"}


def test_garbage_token_is_refused_with_422(app, org):
    # flask-jwt-extended answers a token it cannot decode with 422, not 401.
    resp = app.test_client().get(URL, headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status_code == 422
    assert "ids" not in (resp.get_json() or {})


# ============================================================================================
# PUT
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_put(role, target, as_role, k, db):
    before = customers_now(db)
    cid = k.ids[target]
    resp = as_role(role)("PUT", f"{URL}{cid}", json={"name": "接口改名", "notes": "via api"})
    after = customers_now(db)
    if role not in WRITERS:
        assert resp.status_code == 403
        assert resp.get_json() == FORBIDDEN
        assert after == before
    elif target not in VISIBLE[role]:
        assert resp.status_code == 404
        assert resp.get_json() == OUT_OF_SCOPE
        assert after == before
    else:
        assert resp.status_code == 200
        body = resp.get_json()
        assert (body["id"], body["result"]["name"], body["result"]["notes"]) == (
            cid, "接口改名", "via api")
        assert after == {**before, cid: "接口改名"}
        assert customer_row(db, cid)["notes"] == "via api"


def test_rep_put_on_rep2s_customer_is_out_of_scope_and_unchanged(as_role, k, db):
    cid = k.ids["c_rep2"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}", json={"name": "抢过来", "email": "x@y.cn"})
    assert resp.status_code == 404
    assert resp.get_json()["code"] == "out_of_scope"
    assert customer_row(db, cid) == before
    assert holder_of(db, cid) == (k.rep2, None)


def test_put_of_a_non_editable_field_is_400(as_role, k, db):
    cid = k.ids["c_rep"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}", json={"created_by_id": k.rep2})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid"
    assert body["fields"] == {"created_by_id": "不能修改或不存在的字段"}
    assert customer_row(db, cid) == before


@pytest.mark.parametrize("field,value", [("owner_id", "rep2"), ("id", 999), ("norm_version", 9),
                                         ("email_norm", "a@b.cn")])
def test_put_cannot_touch_ownership_or_derived_columns(field, value, as_role, k, db):
    cid = k.ids["c_rep"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}",
                          json={field: k.rep2 if value == "rep2" else value, "name": "不该生效"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {field: "不能修改或不存在的字段"}
    assert customer_row(db, cid) == before
    assert holder_of(db, cid) == (k.rep, None)


def test_put_with_a_bad_email_is_400_and_unchanged(as_role, k, db):
    cid = k.ids["c_rep"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}", json={"email": "not-an-email", "name": "X"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"email": "无效的邮箱地址：not-an-email"}
    assert customer_row(db, cid) == before


@pytest.mark.parametrize("kwargs", [
    {"data": "name=x", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"json": ["name", "x"]},
    {"data": '{"name": "x"}', "content_type": "text/plain"},
], ids=["form", "malformed", "array", "text-plain"])
def test_put_without_a_json_object_is_400(kwargs, as_role, k, db):
    cid = k.ids["c_rep"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}", **kwargs)
    assert resp.status_code == 400
    assert resp.get_json() == {"code": "invalid", "fields": {"body": "请求体必须是 JSON 对象"},
                               "message": "请求体必须是 JSON 对象"}
    assert customer_row(db, cid) == before


def test_put_with_a_non_numeric_id_is_out_of_scope(as_role):
    resp = as_role("admin")("PUT", f"{URL}abc", json={"name": "x"})
    assert resp.status_code == 404
    assert resp.get_json() == OUT_OF_SCOPE


# ============================================================================================
# DELETE
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_delete(role, target, as_role, k, db):
    before = customers_now(db)
    cid = k.ids[target]
    resp = as_role(role)("DELETE", f"{URL}{cid}")
    after = customers_now(db)
    if role == "admin":  # admins see every customer
        assert resp.status_code == 200
        assert resp.get_json() == {"message": "OK", "id": cid}
        assert after == {i: n for i, n in before.items() if i != cid}
        holder = holder_of(db, cid)
        assert holder is None
        owner = {"c_rep": k.rep, "c_rep2": k.rep2, "c_north": k.rep_north}.get(target)
        assert events_of(db, cid)[-1] == ("deleted", owner, None if owner else k.pool,
                                          None, None, k.admin)
    else:
        assert resp.status_code == 403
        assert resp.get_json() == FORBIDDEN
        assert after == before


def test_admin_delete_of_a_missing_id_is_out_of_scope(as_role, db):
    before = customers_now(db)
    resp = as_role("admin")("DELETE", f"{URL}999999")
    assert resp.status_code == 404
    assert resp.get_json() == OUT_OF_SCOPE
    assert customers_now(db) == before


def test_deleted_customer_is_gone_from_get_and_list(as_role, k):
    admin = as_role("admin")
    assert admin("DELETE", f"{URL}{k.ids['c_north']}").status_code == 200
    assert admin("GET", f"{URL}{k.ids['c_north']}").status_code == 404
    assert set(admin("GET", URL).get_json()["ids"]) == {
        k.ids["c_rep"], k.ids["c_rep2"], k.ids["c_pool"]}


# ============================================================================================
# POST
# ============================================================================================
@pytest.mark.parametrize("role,expect", [("rep", "self"), ("manager", "self"),
                                         ("staff", "pool"), ("admin", "pool")])
def test_post_places_the_new_customer(role, expect, as_role, k, db):
    actor = getattr(k, role)
    resp = as_role(role)("POST", URL, json={"name": f"{role} 接口新建", "mobile": "137 0013 7000",
                                            "email": " Buyer@Example.COM "})
    assert resp.status_code == 201
    body = resp.get_json()
    cid = body["id"]
    assert body["result"]["id"] == cid
    assert (body["result"]["mobile_e164"], body["result"]["email_norm"]) == (
        "+8613700137000", "buyer@example.com")
    assert customers_now(db)[cid] == f"{role} 接口新建"
    if expect == "self":
        assert body["result"]["owner"] == {"id": actor, "username": USERNAME[role]}
        assert body["result"]["pool"] is None
        assert holder_of(db, cid) == (actor, None)
        assert events_of(db, cid) == [("created", None, None, actor, None, actor)]
    else:
        assert body["result"]["owner"] is None
        assert body["result"]["pool"] == {"id": k.pool, "name": "默认公海"}
        assert holder_of(db, cid) == (None, k.pool)
        assert events_of(db, cid) == [("created", None, None, None, k.pool, actor)]
    assert customer_row(db, cid)["created_by_id"] == actor


def test_rep_post_creates_owned_by_rep_with_event(as_role, k, db):
    resp = as_role("rep")("POST", URL, json={"name": "温州正泰"})
    assert resp.status_code == 201
    cid = resp.get_json()["id"]
    assert resp.get_json()["result"]["owner"] == {"id": k.rep, "username": "rep1"}
    assert holder_of(db, cid) == (k.rep, None)
    assert events_of(db, cid) == [("created", None, None, k.rep, None, k.rep)]
    # ... and it is now in the rep's list
    assert k.ids["c_rep"] in as_role("rep")("GET", URL).get_json()["ids"]
    assert cid in as_role("rep")("GET", URL).get_json()["ids"]


def test_post_with_an_invalid_email_is_400(as_role, db):
    before = customers_now(db)
    resp = as_role("rep")("POST", URL, json={"name": "坏邮箱", "email": "not-an-email"})
    assert resp.status_code == 400
    assert resp.get_json() == {"code": "invalid",
                               "fields": {"email": "无效的邮箱地址：not-an-email"},
                               "message": "无效的邮箱地址：not-an-email"}
    assert customers_now(db) == before


def test_post_reports_every_bad_field(as_role, db):
    before = customers_now(db)
    resp = as_role("rep")("POST", URL, json={"name": "", "mobile": "12345", "customer_type": "x",
                                             "colour": "red"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {
        "name": "客户名称不能为空", "mobile": "无效的电话号码：12345",
        "customer_type": "客户类型只能是 company（企业）或 person（个人）",
        "colour": "不能修改或不存在的字段"}
    assert customers_now(db) == before


def test_rep_naming_another_owner_is_400(as_role, k, db):
    before = customers_now(db)
    resp = as_role("rep")("POST", URL, json={"name": "给rep2的", "owner_id": k.rep2})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid"
    assert body["fields"] == {"owner": "销售代表新建的客户归自己所有，不能指定他人"}
    assert customers_now(db) == before


def test_manager_naming_an_owner_outside_scope_is_400(as_role, k, db):
    before = customers_now(db)
    resp = as_role("manager")("POST", URL, json={"name": "给rep3的", "owner_id": k.rep_north})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"owner": "只能指定您数据权限内的负责人"}
    assert customers_now(db) == before


def test_manager_naming_an_owner_in_scope_is_201(as_role, k, db):
    resp = as_role("manager")("POST", URL, json={"name": "给rep2的", "owner_id": k.rep2})
    assert resp.status_code == 201
    cid = resp.get_json()["id"]
    assert holder_of(db, cid) == (k.rep2, None)
    assert events_of(db, cid) == [("created", None, None, k.rep2, None, k.manager)]


def test_non_integer_owner_id_is_400(as_role, db):
    before = customers_now(db)
    resp = as_role("staff")("POST", URL, json={"name": "x", "owner_id": "rep2"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {
        "owner_id": "owner_id 必须是 1 到 2147483647 之间的整数"}
    assert customers_now(db) == before


def test_post_of_a_non_editable_field_is_400(as_role, k, db):
    before = customers_now(db)
    resp = as_role("rep")("POST", URL, json={"name": "伪造创建人", "created_by_id": k.rep2})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"created_by_id": "不能修改或不存在的字段"}
    assert customers_now(db) == before


@pytest.mark.parametrize("kwargs", [
    {"data": "name=x", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"json": ["name", "x"]},
    {"json": "name"},
    {"data": '{"name": "x"}', "content_type": "text/plain"},
    {},
], ids=["form", "malformed", "array", "string", "text-plain", "no-body"])
def test_post_without_a_json_object_is_400_not_500(kwargs, as_role, db):
    before = customers_now(db)
    resp = as_role("rep")("POST", URL, **kwargs)
    assert resp.status_code == 400
    assert resp.get_json() == {"code": "invalid", "fields": {"body": "请求体必须是 JSON 对象"},
                               "message": "请求体必须是 JSON 对象"}
    assert customers_now(db) == before


def test_post_with_a_non_string_name_is_400(as_role, db):
    before = customers_now(db)
    # Used to be stored as the Python repr "['x']"; every text field must now be text.
    resp = as_role("rep")("POST", URL, json={"name": ["x"], "city": {"a": 1}, "notes": True,
                                             "province": 12})
    assert customers_now(db) == before
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"name": "必须是文本", "city": "必须是文本",
                                         "notes": "必须是文本"}


def test_put_with_a_non_string_value_is_400_and_unchanged(as_role, k, db):
    cid = k.ids["c_rep"]
    before = customer_row(db, cid)
    resp = as_role("rep")("PUT", f"{URL}{cid}", json={"name": {"zh": "x"}})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"name": "必须是文本"}
    assert customer_row(db, cid) == before


def test_auditor_post_is_403_and_creates_nothing(as_role, db):
    before = customers_now(db)
    resp = as_role("auditor")("POST", URL, json={"name": "审计员新建"})
    assert resp.status_code == 403
    assert resp.get_json() == FORBIDDEN
    assert customers_now(db) == before


# ============================================================================================
# shares
# ============================================================================================
@pytest.fixture
def share_rep2_with_rep(db, k):
    from app.models import CustomerShare
    from app.models.customer import utcnow

    db.session.add(CustomerShare(customer_id=k.ids["c_rep2"], user_id=k.rep,
                                 expires_at=utcnow() + dt.timedelta(days=3)))
    db.session.add(CustomerShare(customer_id=k.ids["c_north"], user_id=k.rep,
                                 expires_at=utcnow() - dt.timedelta(seconds=1)))
    db.session.commit()


def test_rep_lists_and_reads_an_active_share_only(as_role, k, share_rep2_with_rep):
    rep = as_role("rep")
    assert set(rep("GET", URL).get_json()["ids"]) == {k.ids["c_rep"], k.ids["c_rep2"]}
    assert rep("GET", f"{URL}{k.ids['c_rep2']}").status_code == 200
    resp = rep("GET", f"{URL}{k.ids['c_north']}")
    assert (resp.status_code, resp.get_json()) == (404, FAB_NOT_FOUND)


def test_a_read_share_does_not_allow_put(as_role, k, db, share_rep2_with_rep):
    cid = k.ids["c_rep2"]
    before = customer_row(db, cid)
    # A share is read access: writing through it answers like an id outside the scope.
    resp = as_role("rep")("PUT", f"{URL}{cid}", json={"name": "借共享改名"})
    assert customer_row(db, cid) == before
    assert resp.status_code == 404
    assert resp.get_json() == OUT_OF_SCOPE


def test_a_read_share_does_not_allow_delete(as_role, k, db, share_rep2_with_rep):
    before = customers_now(db)
    resp = as_role("rep")("DELETE", f"{URL}{k.ids['c_rep2']}")
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    assert customers_now(db) == before


def test_info_and_list_describe_columns_not_the_catalogue_header(api, org):
    """FAB translates a missing column description as gettext(""): the .po header leaked."""
    call = api("admin")
    for path in ("/api/v1/customers/_info", "/api/v1/customers/"):
        body = call("GET", path).get_data(as_text=True)
        assert "Project-Id-Version" not in body
    info = call("GET", "/api/v1/customers/_info").get_json()
    described = {c["name"]: c["description"] for c in info["add_columns"]}
    assert described["customer_type"] == "company | person"
