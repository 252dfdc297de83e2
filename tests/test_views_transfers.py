"""Transfer requests in the web UI: apply from the customer list, the inbox, approve / reject /
cancel, and who may see or decide what."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import Notification, TransferRequest
from app.services import transfers
from tests.conftest import _client
from tests.helpers import holder_of
from tests.test_services_transfers import add_requests
from tests.test_views_access import DENIED, flashes
from tests.test_views_ownership import action, post


def apply_form(to_owner, **extra):
    return {"to_owner_id": str(to_owner.id), "reason": "客户要求更换对接人",
            "trigger": "customer_request", "handover_note": "周五前回复报价", "keep_read_days": "7",
            **extra}


def test_rep_applies_from_the_customer_list(clients, db, org):
    resp = action(clients.rep, "/customers", "request_transfer", [org.c_rep.id])
    url = resp.headers["Location"]
    assert "/transfers/new" in url
    html = clients.rep.get(url).get_data(as_text=True)
    assert org.c_rep.name in html and "rep2" in html
    resp = post(clients.rep, url, apply_form(org.rep2))
    assert resp.status_code == 302
    t = db.session.execute(select(TransferRequest)).scalar_one()
    assert resp.headers["Location"].endswith(f"/transfers/{t.id}")
    assert (t.status, t.trigger, t.keep_read_days, t.handover_note) == (
        "pending", "customer_request", 7, "周五前回复报价")
    # The approver is told, with a link to the request's page.
    note = db.session.execute(select(Notification).where(
        Notification.user_id == org.manager.id)).scalar_one()
    assert note.link == f"/transfers/{t.id}"


@pytest.mark.parametrize("field,value,message", [
    ("reason", " ", "请填写转移原因"),
    ("keep_read_days", "400", "原负责人保留只读天数应在 0–365 之间"),
    ("keep_read_days", "abc", "原负责人保留只读天数应在 0–365 之间"),
    ("trigger", "whim", "触发原因只能是：departure、customer_request、org_change、poor_service、other"),
])
def test_bad_application_rerenders_with_the_reason(clients, db, org, field, value, message):
    resp = post(clients.rep, f"/transfers/new?ids={org.c_rep.id}",
                apply_form(org.rep2, **{field: value}))
    assert resp.status_code == 200
    assert flashes(resp.get_data(as_text=True)) == [message]
    assert db.session.execute(select(TransferRequest)).first() is None


def test_the_trigger_defaults_to_other_not_departure(clients, db, org):
    """An ordinary request opens on 其他; a browser submits the selected option."""
    html = clients.rep.get(f"/transfers/new?ids={org.c_rep.id}").get_data(as_text=True)
    selected = re.findall(r'<option value="(\w+)" selected>', html)
    assert selected == ["other"]
    form = apply_form(org.rep2)
    del form["trigger"]  # a client that sends none gets the same default
    resp = post(clients.rep, f"/transfers/new?ids={org.c_rep.id}", form)
    assert resp.status_code == 302
    t = db.session.execute(select(TransferRequest)).scalar_one()
    assert t.trigger == "other"


def test_rep_cannot_apply_for_another_reps_customer(clients, db, org):
    assert clients.rep.get(f"/transfers/new?ids={org.c_rep2.id}").status_code == 404
    assert post(clients.rep, f"/transfers/new?ids={org.c_rep2.id}",
                apply_form(org.rep)).status_code == 404
    assert db.session.execute(select(TransferRequest)).first() is None


def test_auditor_cannot_apply(clients, org):
    assert clients.auditor.get(f"/transfers/new?ids={org.c_rep.id}").status_code == 403


def test_manager_approves_from_the_inbox_and_customer_moves(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    html = clients.manager.get("/transfers/").get_data(as_text=True)
    awaiting = re.search(r'id="box-awaiting".*?</table>', html, re.S).group(0)
    assert f'data-id="{t.id}"' in awaiting
    show = clients.manager.get(f"/transfers/{t.id}").get_data(as_text=True)
    assert 'id="approve"' in show and org.c_rep.name in show
    resp = post(clients.manager, f"/transfers/{t.id}/approve", {"note": "同意"})
    assert resp.status_code == 302
    assert holder_of(db, org.c_rep.id) == (org.rep2.id, None)
    page = clients.manager.get(f"/transfers/{t.id}").get_data(as_text=True)
    assert '<span class="label label-default" id="status">已完成</span>' in page
    assert 'id="approve"' not in page
    # The applicant sees it among "my requests", finished.
    mine = clients.rep.get("/transfers/").get_data(as_text=True)
    assert f'data-id="{t.id}"' in re.search(r'id="box-mine".*?</table>', mine, re.S).group(0)


def test_reject_needs_a_note(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    resp = post(clients.manager, f"/transfers/{t.id}/reject", {"note": ""},
                follow_redirects=True)
    assert "请填写驳回原因" in flashes(resp.get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "pending"
    post(clients.manager, f"/transfers/{t.id}/reject", {"note": "客户关系稳定，暂不调整"})
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "rejected"
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)


def test_cross_department_needs_second_approval_in_the_ui(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep_north.id, "组织调整",
                                  "org_change")
    post(clients.manager, f"/transfers/{t.id}/approve", {})
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "approved"
    # The first approver may not approve again: no button, and a POST is refused by rule.
    assert 'id="approve"' not in clients.manager.get(f"/transfers/{t.id}").get_data(as_text=True)
    resp = post(clients.manager, f"/transfers/{t.id}/approve", {}, follow_redirects=True)
    assert flashes(resp.get_data(as_text=True)) == [
        "第二级审批须由管理员或接收部门经理完成，且不能与第一级审批人相同"]
    manager2 = _client(clients.admin.application, org.manager_north)
    post(manager2, f"/transfers/{t.id}/approve", {})
    assert holder_of(db, org.c_rep.id) == (org.rep_north.id, None)


def test_applicant_cancels(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    assert 'id="cancel"' in clients.rep.get(f"/transfers/{t.id}").get_data(as_text=True)
    post(clients.rep, f"/transfers/{t.id}/cancel", {})
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "cancelled"


def test_outsiders_get_404_and_reps_cannot_approve(clients, db, org, app):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    rep3 = _client(app, org.rep_north)
    assert rep3.get(f"/transfers/{t.id}").status_code == 404
    assert f'data-id="{t.id}"' not in rep3.get("/transfers/").get_data(as_text=True)
    manager2 = _client(app, org.manager_north)
    assert post(manager2, f"/transfers/{t.id}/approve", {}).status_code == 404
    assert post(manager2, f"/transfers/{t.id}/cancel", {}).status_code == 404
    # The receiver sees the request but has no approve permission.
    rep2 = _client(app, org.rep2)
    assert rep2.get(f"/transfers/{t.id}").status_code == 200
    assert post(rep2, f"/transfers/{t.id}/approve", {}).status_code == 403
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "pending"


def test_approve_without_csrf_is_refused(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    resp = clients.manager.post(f"/transfers/{t.id}/approve", data={})
    assert resp.status_code == 400 and "The CSRF token is missing." in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(TransferRequest, t.id).status == "pending"


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_every_role_reaches_the_transfer_pages_from_the_menu(clients, role):
    client = getattr(clients, role)
    assert 'href="/transfers/"' in client.get("/").get_data(as_text=True)
    assert client.get("/transfers/").status_code == 200
    assert DENIED not in flashes(client.get("/transfers/").get_data(as_text=True))


def box_ids(html, box):
    table = re.search(rf'id="box-{box}".*?</table>', html, re.S).group(0)
    return [int(i) for i in re.findall(r'data-id="(\d+)"', table)]


def test_the_page_finds_an_old_request_behind_500_newer_ones_and_pages(clients, db, org, app):
    mine = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    north = add_requests(db, 501, org.rep_north, org.rep_north, org.manager_north)
    assert box_ids(clients.rep.get("/transfers/").get_data(as_text=True), "mine") == [mine.id]
    html = clients.manager.get("/transfers/").get_data(as_text=True)
    assert box_ids(html, "awaiting") == [mine.id]
    # The north's rep pages through their own 501, 50 a page; the east's request is not there.
    rep3 = _client(app, org.rep_north)
    html = rep3.get("/transfers/").get_data(as_text=True)
    assert box_ids(html, "mine") == north[:50]
    assert 'id="count-mine">501<' in html
    assert 'href="/transfers/?awaiting_page=0&amp;mine_page=1&amp;others_page=0"' in html
    last = rep3.get("/transfers/?mine_page=10").get_data(as_text=True)
    assert box_ids(last, "mine") == north[500:]
    assert 'href="/transfers/?awaiting_page=0&amp;mine_page=9&amp;others_page=0"' in last
    assert "mine_page=11" not in last
    assert all(mine.id not in box_ids(page, box) for page in (html, last)
               for box in ("awaiting", "mine"))
    assert 'id="box-others"' not in html
