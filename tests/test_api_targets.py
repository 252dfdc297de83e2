"""/api/v1/targets/ per role: list within the reach (keyset by id), get, post, put, delete and
the team's attainment; refusals as the Error shape with the field or code."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from app.models import Deal, SalesTarget
from app.services import targets
from tests.helpers import FAB_FORBIDDEN

NO_TARGET = {"code": "out_of_scope", "message": "业绩目标不存在或不在您的数据权限内"}
HOLDERS = ("rep", "rep2", "rep_north", "manager", "east", "north")


@pytest.fixture
def held(db, org):
    out = {}
    for name in HOLDERS:
        key = "department_id" if name in ("east", "north") else "user_id"
        out[name] = targets.create_target(org.admin, {
            key: getattr(org, name).id, "period_kind": "month", "period_start": "2026-10",
            "won_amount": "1000"}).id
    return out


LISTED = {"admin": set(HOLDERS), "auditor1": set(HOLDERS),
          "manager1": {"rep", "rep2", "manager", "east"}, "manager2": {"rep_north", "north"},
          "rep1": {"rep"}}


@pytest.mark.parametrize("username", sorted(LISTED))
def test_each_role_lists_and_reads_exactly_its_reach(api, held, username):
    call = api(username)
    body = call("GET", "/api/v1/targets/").get_json()
    assert {t["id"] for t in body["result"]} == {held[n] for n in LISTED[username]}
    assert body["count"] == len(LISTED[username]) and body["next_after"] is None
    for name, pk in held.items():
        resp = call("GET", f"/api/v1/targets/{pk}")
        if name in LISTED[username]:
            assert resp.status_code == 200 and resp.get_json()["result"]["id"] == pk
        else:
            assert (resp.status_code, resp.get_json()) == (404, NO_TARGET)


def test_staff_have_no_part_in_targets(api, held):
    call = api("staff1")
    assert (call("GET", "/api/v1/targets/").status_code,
            call("GET", "/api/v1/targets/").get_json()) == (403, FAB_FORBIDDEN)
    assert call("GET", "/api/v1/targets/attainment").status_code == 403
    assert call("POST", "/api/v1/targets/", json={}).status_code == 403


def test_the_list_pages_by_cursor(api, db, org):
    for month in range(1, 6):
        targets.create_target(org.admin, {"user_id": org.rep.id, "period_kind": "month",
                                          "period_start": f"2026-{month:02d}",
                                          "new_customers": month})
    call = api("admin")
    first = call("GET", "/api/v1/targets/?page_size=2").get_json()
    second = call("GET", f"/api/v1/targets/?page_size=2&after={first['next_after']}").get_json()
    third = call("GET", f"/api/v1/targets/?page_size=2&after={second['next_after']}").get_json()
    seen = [t["new_customers"] for t in first["result"] + second["result"] + third["result"]]
    assert seen == [5, 4, 3, 2, 1] and third["next_after"] is None
    narrowed = call("GET", "/api/v1/targets/?period_kind=month&period_start=2026-03").get_json()
    assert [t["new_customers"] for t in narrowed["result"]] == [3]


@pytest.mark.parametrize("query,field", [
    ("after=0", "after"), ("after=2147483648", "after"), ("page_size=0", "page_size"),
    ("page_size=101", "page_size"), ("period_kind=week", "period_kind"),
    ("period_start=2026-10-05&period_kind=month", "period_start"), ("colour=red", "colour"),
    ("user_id=x", "user_id")])
def test_bad_list_arguments_are_refused_by_name(api, query, field):
    resp = api("admin")("GET", f"/api/v1/targets/?{query}")
    assert resp.status_code == 400 and field in resp.get_json()["fields"], resp.get_json()


def test_set_change_delete_over_the_api_with_attainment(api, db, org):
    db.session.add(Deal(customer_id=org.c_rep.id, user_id=org.rep.id, amount=Decimal("2500"),
                        won_on=dt.date(2026, 10, 20)))
    db.session.commit()
    manager = api("manager1")
    resp = manager("POST", "/api/v1/targets/", json={
        "user_id": org.rep.id, "period_kind": "month", "period_start": "2026-10",
        "won_amount": 10000, "new_customers": 2})
    assert resp.status_code == 200, resp.get_json()
    made = resp.get_json()["result"]
    assert made == {
        "id": made["id"], "user_id": org.rep.id, "department_id": None,
        "holder_name": org.rep.display_name, "period_kind": "month",
        "period_start": "2026-10-01", "period_end": "2026-11-01", "period_label": "2026-10",
        "won_amount": "10000.00", "new_customers": 2, "set_by_id": org.manager.id,
        "created_at": made["created_at"], "updated_at": made["updated_at"],
        "attainment": {"won_amount": "2500.00", "new_customers": 0, "won_amount_rate": 0.25,
                       "new_customers_rate": 0.0, "warnings": []}}
    assert made["created_at"].endswith("+08:00")
    again = manager("POST", "/api/v1/targets/", json={
        "user_id": org.rep.id, "period_kind": "month", "period_start": "2026-10-01",
        "won_amount": 1})
    assert (again.status_code, again.get_json()) == (409, {
        "code": "target_exists", "message": "该对象在 2026-10 已有目标，请修改已有的目标"})
    changed = manager("PUT", f"/api/v1/targets/{made['id']}", json={"won_amount": "5000"})
    assert changed.status_code == 200
    assert changed.get_json()["result"]["attainment"]["won_amount_rate"] == 0.5
    refused = manager("PUT", f"/api/v1/targets/{made['id']}", json={"period_kind": "quarter"})
    assert refused.status_code == 400 and "period_kind" in refused.get_json()["fields"]
    gone = manager("DELETE", f"/api/v1/targets/{made['id']}")
    assert (gone.status_code, gone.get_json()) == (200, {"id": made["id"]})
    assert db.session.get(SalesTarget, made["id"]) is None


def test_a_manager_is_refused_his_own_and_his_departments_target(api, org):
    manager = api("manager1")
    resp = manager("POST", "/api/v1/targets/", json={
        "user_id": org.manager.id, "period_kind": "month", "period_start": "2026-10",
        "won_amount": 1})
    assert (resp.status_code, resp.get_json()["fields"]) == (400, {
        "user_id": "你只能为本部门及下属部门的用户设置目标，不能为自己设置"})
    resp = manager("POST", "/api/v1/targets/", json={
        "department_id": org.east.id, "period_kind": "month", "period_start": "2026-10",
        "won_amount": 1})
    assert (resp.status_code, resp.get_json()["fields"]) == (400, {
        "department_id": "你只能为本部门的下属部门设置目标"})


@pytest.mark.parametrize("username", ["rep1", "auditor1"])
def test_readers_write_nothing(api, held, username):
    call = api(username)
    assert call("POST", "/api/v1/targets/", json={
        "user_id": 1, "period_kind": "month", "period_start": "2026-10",
        "won_amount": 1}).status_code == 403
    assert call("PUT", f"/api/v1/targets/{held['rep']}", json={"won_amount": 1}).status_code \
        == 403
    assert call("DELETE", f"/api/v1/targets/{held['rep']}").status_code == 403


def test_the_team_attainment_with_the_warning(api, db, org, held):
    body = api("manager1")("GET", "/api/v1/targets/attainment?period_kind=month"
                                  "&period_start=2026-10").get_json()
    assert (body["period_kind"], body["period_start"], body["period_end"],
            body["period_label"]) == ("month", "2026-10-01", "2026-11-01", "2026-10")
    assert {u["username"] for u in body["users"]} == {"manager1", "rep1", "rep2"}
    (east,) = body["departments"]
    assert (east["name"], east["target_won"], east["parts_won"]) == (
        "华东大区", "1000.00", "3000.00")
    assert east["warnings"] == ["成交金额：部门目标为 1000.00，其成员与下级部门目标之和为 3000.00"]
    rep = api("rep1")("GET", "/api/v1/targets/attainment").get_json()
    assert [u["username"] for u in rep["users"]] == ["rep1"] and rep["departments"] == []
    bad = api("rep1")("GET", "/api/v1/targets/attainment?period_kind=quarter"
                             "&period_start=2026-11-01")
    assert bad.status_code == 400 and "period_start" in bad.get_json()["fields"]
