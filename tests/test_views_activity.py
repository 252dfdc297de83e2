"""Follow-up and deal pages: add through the form (the service's refusals beside their fields),
lists within the scope, no edit or delete, every role."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Deal, FollowUp, Ownership
from app.services import customers, deals, followups
from tests.test_views_ownership import post


def test_rep_logs_a_followup_from_the_form(clients, db, org):
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "channel": "call", "content": "电话确认需求",
        "happened_at": "", "next_contact_on": ""})
    assert resp.status_code == 302
    f = db.session.execute(select(FollowUp)).scalar_one()
    assert (f.customer_id, f.user_id, f.channel) == (org.c_rep.id, org.rep.id, "call")
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).last_followup_at is not None


def test_form_shows_the_services_refusal_beside_the_field(clients, db, org):
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "channel": "call", "content": "x",
        "happened_at": "2099-01-01 09:00"})
    assert resp.status_code == 200 and "跟进时间不能晚于现在" in resp.get_data(as_text=True)
    assert db.session.execute(select(FollowUp)).first() is None


def test_rep_cannot_log_on_another_reps_customer(clients, db, org):
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep2.id), "channel": "call", "content": "x"})
    assert resp.status_code == 200  # the form again: that customer is not a choice
    assert db.session.execute(select(FollowUp)).first() is None
    assert org.c_rep2.name not in clients.rep.get("/followups/add").get_data(as_text=True)


@pytest.fixture
def two_own_customers(db, org):
    """rep1 owns two customers, each with a contact."""
    other = customers.create_customer(org.rep, {"name": "无锡新材料科技"})
    mine = customers.add_contact(org.rep, org.c_rep.id, {"name": "王经理"})
    theirs = customers.add_contact(org.rep, other.id, {"name": "赵主任"})
    return other, mine, theirs


def test_followup_opened_for_a_customer_offers_only_its_contacts(clients, db, org,
                                                                  two_own_customers):
    other, mine, theirs = two_own_customers
    html = clients.rep.get(f"/followups/add?_flt_0_customer={org.c_rep.id}"
                           f"&next=/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "王经理" in html and "赵主任" not in html
    # Opened from the menu (no customer given): every writable customer's contacts.
    html = clients.rep.get("/followups/add").get_data(as_text=True)
    assert "王经理" in html and "赵主任" in html
    # Posting another customer's contact on the preselected form: not a choice, nothing saved.
    resp = post(clients.rep, f"/followups/add?_flt_0_customer={org.c_rep.id}", {
        "customer": str(org.c_rep.id), "contact": str(theirs.id), "channel": "call",
        "content": "x"})
    assert resp.status_code == 200
    assert db.session.execute(select(FollowUp)).first() is None


def test_the_service_refuses_a_contact_of_another_own_customer(clients, db, org,
                                                               two_own_customers):
    """From the unfiltered form both contacts are choices: the service decides."""
    other, mine, theirs = two_own_customers
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "contact": str(theirs.id), "channel": "call",
        "content": "x"})
    assert resp.status_code == 200 and "联系人不属于该客户" in resp.get_data(as_text=True)
    assert db.session.execute(select(FollowUp)).first() is None
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "contact": str(mine.id), "channel": "call",
        "content": "x"})
    assert resp.status_code == 302
    assert db.session.execute(select(FollowUp.contact_id)).scalar_one() == mine.id


def test_lists_follow_the_customer_scope(clients, db, org):
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "rep1 的跟进"})
    followups.log_followup(org.rep_north, org.c_north.id, {"channel": "visit",
                                                           "content": "rep3 的跟进"})
    rep_page = clients.rep.get("/followups/list/").get_data(as_text=True)
    assert "rep1 的跟进" in rep_page and "rep3 的跟进" not in rep_page
    mgr_page = clients.manager.get("/followups/list/").get_data(as_text=True)
    assert "rep1 的跟进" in mgr_page and "rep3 的跟进" not in mgr_page
    audit_page = clients.auditor.get("/followups/list/").get_data(as_text=True)
    assert "rep1 的跟进" in audit_page and "rep3 的跟进" in audit_page
    other = db.session.execute(select(FollowUp).where(
        FollowUp.customer_id == org.c_north.id)).scalar_one()
    assert clients.rep.get(f"/followups/show/{other.id}").status_code == 404


def test_history_is_not_edited_or_deleted(clients, db, org):
    f = followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "记录"})
    for client in (clients.rep, clients.manager, clients.staff, clients.admin):
        assert client.get(f"/followups/edit/{f.id}").status_code == 403
        assert post(client, f"/followups/delete/{f.id}", {}).status_code == 403
        assert f"/followups/edit/{f.id}" not in client.get("/followups/list/").get_data(
            as_text=True)
    assert db.session.execute(select(FollowUp)).scalar_one().content == "记录"


def test_auditor_reads_but_does_not_log(clients, db, org):
    assert clients.auditor.get("/followups/list/").status_code == 200
    assert clients.auditor.get("/followups/add").status_code == 403
    assert clients.auditor.get("/deals/add").status_code == 403


def test_deal_form_marks_the_customer_won(clients, db, org):
    resp = post(clients.rep, "/deals/add", {"customer": str(org.c_rep.id), "amount": "12800",
                                            "won_on": "", "product_line": "CRM", "notes": ""})
    assert resp.status_code == 302
    assert db.session.execute(select(Deal)).scalar_one().product_line == "CRM"
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).won is True
    resp = post(clients.rep, "/deals/add", {"customer": str(org.c_rep.id), "amount": "abc"})
    assert "成交金额必须是数字，例如 12800.00" in resp.get_data(as_text=True)


def test_customer_page_shows_followups_and_deals(clients, db, org):
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "visit", "content": "上门演示"})
    deals.record_deal(org.rep, org.c_rep.id, {"amount": "5000"})
    html = clients.rep.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    # On the customer page's timeline (tests/test_views_customer_page.py has the rest).
    assert "拜访：上门演示" in html and "成交 5,000.00 元" in html
    # The related list's add link pre-selects the customer.
    add = clients.rep.get(f"/followups/add?_flt_0_customer={org.c_rep.id}").get_data(as_text=True)
    assert f'<option selected value="{org.c_rep.id}">杭州云帆科技有限公司</option>' in add


def test_add_without_csrf_is_refused(clients, db, org):
    resp = clients.rep.post("/followups/add", data={"customer": str(org.c_rep.id),
                                                    "channel": "call", "content": "x"})
    assert resp.status_code == 400 and "The CSRF token is missing." in resp.get_data(as_text=True)
    assert db.session.execute(select(FollowUp)).first() is None


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_menus(clients, role):
    html = getattr(clients, role).get("/").get_data(as_text=True)
    assert 'href="/followups/list/"' in html and 'href="/deals/list/"' in html
