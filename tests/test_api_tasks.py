"""/api/v1/tasks/ per role: list within the reach, show, add, change, done, cancel, reopen;
refusals as the Error shape with the field or code; timestamps with their offset."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Task
from app.services import tasks
from tests.helpers import FAB_FORBIDDEN

NO_TASK = {"code": "out_of_scope", "message": "待办不存在或不在您的数据权限内"}
DUE = "2026-12-01 15:00"


@pytest.fixture
def owned(db, org):
    out = {}
    for name in ("rep", "rep2", "rep_north", "staff"):
        out[name] = tasks.create(org.admin, {"subject": f"{name} 的待办", "due_at": DUE,
                                             "owner_id": getattr(org, name).id}).id
    return out


LISTED = {"admin1": {"rep", "rep2", "rep_north", "staff"},
          "auditor1": {"rep", "rep2", "rep_north", "staff"},
          "manager1": {"rep", "rep2"}, "manager2": {"rep_north"}, "rep1": {"rep"},
          "staff1": {"staff"}}


@pytest.mark.parametrize("username", sorted(LISTED))
def test_each_role_lists_and_reads_exactly_its_reach(api, org, owned, username):
    call = api("admin" if username == "admin1" else username)
    body = call("GET", "/api/v1/tasks/").get_json()
    assert {t["id"] for t in body["result"]} == {owned[n] for n in LISTED[username]}
    assert body["count"] == len(LISTED[username])
    for name, task_id in owned.items():
        resp = call("GET", f"/api/v1/tasks/{task_id}")
        if name in LISTED[username]:
            assert resp.status_code == 200 and resp.get_json()["result"]["id"] == task_id
        else:
            assert (resp.status_code, resp.get_json()) == (404, NO_TASK)


def test_add_change_done_reopen_cancel_over_the_api(api, db, org):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/tasks/", json={
        "subject": "寄样品", "due_at": DUE, "notes": "顺丰", "record_type": "customer",
        "record_id": org.c_rep.id})
    assert resp.status_code == 200, resp.get_json()
    made = resp.get_json()["result"]
    task_id = made["id"]
    assert made == {
        "id": task_id, "subject": "寄样品", "notes": "顺丰", "due_at": "2026-12-01T15:00:00+08:00",
        "owner_id": org.rep.id, "created_by_id": org.rep.id, "record_type": "customer",
        "record_id": org.c_rep.id, "record_name": org.c_rep.name, "source": "manual",
        "status": "open", "done_at": None, "reminded_at": None,
        "created_at": made["created_at"]}
    assert made["created_at"].endswith("+08:00")
    resp = rep("PUT", f"/api/v1/tasks/{task_id}", json={"due_at": "2026-12-02 10:00"})
    assert resp.status_code == 200
    assert resp.get_json()["result"]["due_at"] == "2026-12-02T10:00:00+08:00"
    done = rep("POST", f"/api/v1/tasks/{task_id}/done")
    assert done.status_code == 200 and done.get_json()["result"]["status"] == "done"
    assert done.get_json()["result"]["done_at"].endswith("+08:00")
    again = rep("POST", f"/api/v1/tasks/{task_id}/done")
    assert (again.status_code, again.get_json()["code"]) == (409, "not_open")
    assert rep("PUT", f"/api/v1/tasks/{task_id}", json={"subject": "x"}).status_code == 409
    assert rep("POST", f"/api/v1/tasks/{task_id}/reopen").get_json()["result"]["status"] == "open"
    assert rep("POST", f"/api/v1/tasks/{task_id}/cancel").get_json()["result"]["status"] == \
        "cancelled"
    listed = rep("GET", "/api/v1/tasks/?q=(status:cancelled)").get_json()
    assert [t["id"] for t in listed["result"]] == [task_id]
    assert rep("GET", "/api/v1/tasks/?q=(status:open)").get_json()["count"] == 0


def test_refusals_name_the_field_or_the_code(api, db, org, owned):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "", "due_at": "明天"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"subject": "请填写待办事项",
                                         "due_at": "时间格式应为 YYYY-MM-DD HH:MM"}
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "s", "due_at": DUE,
                                               "owner_id": org.rep2.id})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"owner_id": "只能给自己或数据范围内的用户安排待办"}
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "s", "due_at": DUE,
                                               "record_type": "customer",
                                               "record_id": org.c_rep2.id})
    assert (resp.status_code, resp.get_json()["code"]) == (404, "out_of_scope")
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "s", "due_at": DUE,
                                               "record_type": "contract", "record_id": 1})
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"record_type"}
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "s" * 201, "due_at": DUE})
    assert resp.get_json()["fields"] == {"subject": "不能超过 200 个字符"}
    resp = rep("POST", "/api/v1/tasks/", json={"subject": "a\x00b", "due_at": DUE})
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"subject"}
    resp = rep("PUT", f"/api/v1/tasks/{owned['rep2']}", json={"subject": "改别人的"})
    assert (resp.status_code, resp.get_json()) == (404, NO_TASK)
    resp = rep("POST", f"/api/v1/tasks/{owned['rep2']}/done")
    assert (resp.status_code, resp.get_json()) == (404, NO_TASK)
    resp = rep("GET", "/api/v1/tasks/2147483648")
    assert resp.status_code == 404
    resp = rep("GET", "/api/v1/tasks/?q=(status:closed)")
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"status"}
    resp = rep("GET", "/api/v1/tasks/?q=(owner_id:0)")
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"owner_id"}
    auditor = api("auditor1")
    for method, path in (("POST", "/api/v1/tasks/"), ("PUT", f"/api/v1/tasks/{owned['rep']}"),
                         ("POST", f"/api/v1/tasks/{owned['rep']}/done"),
                         ("POST", f"/api/v1/tasks/{owned['rep']}/cancel")):
        resp = auditor(method, path, json={"subject": "s", "due_at": DUE})
        assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN), path
    db.session.expire_all()
    assert {t.status for t in db.session.execute(select(Task)).scalars()} == {"open"}


def test_a_manager_assigns_within_the_department_and_the_rep_is_told(api, db, org):
    resp = api("manager1")("POST", "/api/v1/tasks/", json={
        "subject": "拜访客户", "due_at": DUE, "owner_id": org.rep2.id,
        "record_type": "customer", "record_id": org.c_rep2.id})
    assert resp.status_code == 200
    rep2 = api("rep2")
    mine = rep2("GET", "/api/v1/tasks/").get_json()["result"]
    assert [t["subject"] for t in mine] == ["拜访客户"]
    resp = api("manager1")("POST", "/api/v1/tasks/", json={
        "subject": "越权", "due_at": DUE, "owner_id": org.rep_north.id})
    assert resp.status_code == 400 and set(resp.get_json()["fields"]) == {"owner_id"}
