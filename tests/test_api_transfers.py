"""/api/v1/transfers/ per role."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, update

from app.models import Ownership, Policy, TransferItem
from app.models.customer import utcnow
from app.services import transfers
from tests.test_services_transfers import add_requests
from tests.helpers import FAB_FORBIDDEN

NO_TRANSFER = {"code": "not_found", "message": "转移申请不存在"}


def test_apply_approve_over_the_api(api, db, org):
    rep, mgr = api("rep1"), api("manager1")
    resp = rep("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep2.id, "reason": "客户要求",
        "trigger": "customer_request", "handover_note": "合同在走流程"})
    assert resp.status_code == 200, resp.get_json()
    tid = resp.get_json()["id"]
    assert resp.get_json()["result"]["status"] == "pending"
    resp = rep("POST", f"/api/v1/transfers/{tid}/approve", json={})
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    other = api("rep3")
    resp = other("GET", f"/api/v1/transfers/{tid}")
    assert (resp.status_code, resp.get_json()) == (404, NO_TRANSFER)
    assert tid not in [t["id"] for t in other("GET", "/api/v1/transfers/").get_json()["result"]]
    assert tid in [t["id"] for t in api("auditor1")("GET", "/api/v1/transfers/").get_json()["result"]]
    wrong = api("manager2")("POST", f"/api/v1/transfers/{tid}/approve", json={})
    # Not an approver of this request: not visible either.
    assert (wrong.status_code, wrong.get_json()) == (404, NO_TRANSFER)
    done = mgr("POST", f"/api/v1/transfers/{tid}/approve", json={"note": "同意"})
    assert done.status_code == 200
    assert done.get_json()["result"]["status"] == "completed"
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).owner_id == org.rep2.id


def test_refusals_are_json_4xx(api, org):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/transfers/", json={"customer_ids": [org.c_rep.id],
                                                   "to_owner_id": org.rep2.id, "reason": ""})
    assert resp.status_code == 400
    assert resp.get_json()["fields"]["reason"] == "请填写转移原因"
    resp = rep("POST", "/api/v1/transfers/", json={"customer_ids": [org.c_rep.id]})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"to_owner_id": "请选择接收人"}
    resp = api("auditor1")("POST", "/api/v1/transfers/", json={})
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    resp = rep("POST", "/api/v1/transfers/999/cancel", json={})
    assert (resp.status_code, resp.get_json()) == (404, NO_TRANSFER)


def test_the_list_finds_an_old_request_behind_500_newer_ones_and_pages(api, db, org):
    mine = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    north = add_requests(db, 501, org.rep_north, org.rep_north, org.manager_north)
    body = api("rep1")("GET", "/api/v1/transfers/").get_json()
    assert (body["count"], [t["id"] for t in body["result"]]) == (1, [mine.id])
    assert body["result"][0]["status"] == "pending"
    rep3 = api("rep3")
    first = rep3("GET", "/api/v1/transfers/?q=(page:0,page_size:500)").get_json()
    second = rep3("GET", "/api/v1/transfers/?q=(page:1,page_size:500)").get_json()
    assert (first["count"], first["page"], first["page_size"]) == (501, 0, 500)
    assert [t["id"] for t in first["result"]] == north[:500]
    assert (second["count"], [t["id"] for t in second["result"]]) == (501, north[500:])
    default = rep3("GET", "/api/v1/transfers/").get_json()
    assert (default["page_size"], len(default["result"])) == (50, 50)
    assert mine.id not in [t["id"] for t in first["result"] + second["result"]]


@pytest.mark.parametrize("q,field,message", [
    ("(page_size:501)", "page_size", "page_size 应在 1–500 之间"),
    ("(page_size:0)", "page_size", "page_size 应在 1–500 之间"),
    ("(page:'x')", "page", "page 必须是不小于 0 的整数"),
])
def test_a_page_out_of_bounds_is_a_400(api, org, q, field, message):
    resp = api("rep1")("GET", f"/api/v1/transfers/?q={q}")
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {field: message}


def test_lock_cap_refusal_at_the_last_approval_is_a_409(api, db, org):
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(
        [org.c_rep.id, org.c_rep2.id])).values(locked=True))
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_locked=1))
    db.session.commit()
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    assert api("manager1")("POST", f"/api/v1/transfers/{t.id}/approve").status_code == 200
    resp = api("admin")("POST", f"/api/v1/transfers/{t.id}/approve", json={})
    assert (resp.status_code, resp.get_json()) == (409, {
        "code": "lock_cap_exceeded", "message": "超出锁定上限：上限 1，已锁定 1，本次转入 1",
        "cap": 1, "locked": 1, "adding": 1})
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).owner_id == org.rep.id


def test_a_read_only_share_cannot_apply_over_the_api_either(api, clients, db, org):
    """After handing c over with 7 days of read access, rep1 still sees c but may not apply
    to move it: the web form answers 404, and the API the same scope refusal."""
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other",
                                  keep_read_days=7)
    transfers.approve(org.manager, t.id)
    rep = api("rep1")
    assert rep("GET", f"/api/v1/customers/{org.c_rep.id}").status_code == 200
    assert clients.rep.get(f"/transfers/new?ids={org.c_rep.id}").status_code == 404
    resp = rep("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep.id, "reason": "想要回来"})
    assert (resp.status_code, resp.get_json()) == (404, {
        "code": "out_of_scope", "message": "客户不存在或不在您的数据权限内",
        "customer_ids": [org.c_rep.id]})
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(TransferItem).where(
        TransferItem.customer_id == org.c_rep.id)).scalar_one() == 1


@pytest.mark.real_db
def test_simultaneous_applications_for_one_customer_open_one_request(app, api, db, org,
                                                                     monkeypatch):
    """Four applications for one customer at once: one request opens, the other three are
    refused as a serial caller is (the schema lets one open request hold a customer).

    To be sure they overlap, each application waits, once it has found no open request and
    before it writes, until all four have got that far (the request's timestamp is taken
    there)."""
    callers = [api("rep1") for _ in range(4)]
    checked = threading.Barrier(len(callers))

    def all_checked():
        checked.wait(timeout=60)
        return utcnow()

    monkeypatch.setattr(transfers, "utcnow", all_checked)
    answers, errors = [], []
    customer_id, receiver_id = org.c_rep.id, org.rep2.id

    def apply(call):
        with app.app_context():
            from app.extensions import db as thread_db

            try:
                resp = call("POST", "/api/v1/transfers/", json={
                    "customer_ids": [customer_id], "to_owner_id": receiver_id,
                    "reason": "同时申请", "trigger": "other"})
                answers.append((resp.status_code, resp.get_json()))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
            finally:
                thread_db.session.remove()

    threads = [threading.Thread(target=apply, args=(call,)) for call in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409], answers
    refusal = {"code": "transfer_pending",
               "message": f"这些客户已有待处理的转移申请：{org.c_rep.name}"}
    assert [body for status, body in answers if status == 409] == [refusal] * 3
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(TransferItem).where(
        TransferItem.customer_id == org.c_rep.id)).scalar_one() == 1
