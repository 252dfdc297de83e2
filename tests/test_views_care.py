"""纪念日关怀 pages: templates and settings for admins (refusals beside the field, input
kept, audited), the outbox within each role's scope with retry / cancel, and contact
birthdays in the contact form."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, CareMessage, CareSettings, CareTemplate, Contact
from app.services import care, customers
from tests.test_views_access import DENIED, flashes
from tests.test_views_ownership import action, post

PLAN_DAY = dt.date(2027, 3, 10)


def template_form(**kw):
    return {"name": "生日短信", "occasion": "birthday", "holiday": "", "channel": "sms",
            "subject": "", "body": "{contact}，生日快乐！{owner}", "active": "y", **kw}


def test_admin_adds_a_template(clients, db, org):
    resp = post(clients.admin, "/care/templates/add", template_form())
    assert resp.status_code == 302
    row = db.session.execute(select(CareTemplate).where(
        CareTemplate.name == "生日短信")).scalar_one()
    assert (row.channel, row.holiday, row.active) == ("sms", None, True)
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "care_template", AuditLog.object_id == row.id,
        AuditLog.action == "create")).first() is not None


def test_a_bad_placeholder_is_shown_beside_the_field_and_the_input_kept(clients, db, org):
    before = db.session.execute(select(CareTemplate.id)).all()
    resp = post(clients.admin, "/care/templates/add",
                template_form(name="我的模板", body="{客户}您好"))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "未知占位符 {客户}；可用：{customer}" in html
    assert 'value="我的模板"' in html and "{客户}您好" in html
    assert db.session.execute(select(CareTemplate.id)).all() == before


def test_editing_a_template_validates_and_keeps_the_old_text_on_refusal(clients, db, org):
    row = db.session.execute(select(CareTemplate).where(
        CareTemplate.channel == "email", CareTemplate.occasion == "birthday")).scalar_one()
    resp = post(clients.admin, f"/care/templates/edit/{row.id}", template_form(
        name=row.name, channel="email", subject=""))
    assert resp.status_code == 200 and "邮件模板需要主题" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CareTemplate, row.id).subject == "{contact}，生日快乐！"
    resp = post(clients.admin, f"/care/templates/edit/{row.id}", template_form(
        name=row.name, channel="email", subject="祝{contact}生日快乐"))
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(CareTemplate, row.id).subject == "祝{contact}生日快乐"


def test_settings_form(clients, db, org):
    conf_id = care.settings().id
    db.session.commit()
    resp = post(clients.admin, f"/care/settings/edit/{conf_id}", {
        "days_ahead": "7", "send_hour": "10", "holidays": "春节，情人节", "max_attempts": "3"})
    assert resp.status_code == 200
    assert "未知节日：情人节" in resp.get_data(as_text=True)
    resp = post(clients.admin, f"/care/settings/edit/{conf_id}", {
        "days_ahead": "7", "send_hour": "10", "holidays": "国庆节，春节", "max_attempts": "3"})
    assert resp.status_code == 302
    db.session.expire_all()
    conf = db.session.get(CareSettings, conf_id)
    assert (conf.days_ahead, conf.send_hour, conf.holidays, conf.max_attempts) == (
        7, 10, "春节,国庆节", 3)
    assert clients.admin.get("/care/settings/add").status_code == 403  # one row only


@pytest.mark.parametrize("role", ["rep", "manager", "staff", "auditor"])
def test_only_admins_edit_templates_and_settings(clients, db, org, role):
    client = getattr(clients, role)
    row = db.session.execute(select(CareTemplate)).scalars().first()
    assert post(client, "/care/templates/add", template_form()).status_code == 403
    assert db.session.execute(select(CareTemplate).where(
        CareTemplate.name == "生日短信")).first() is None
    assert client.get(f"/care/templates/edit/{row.id}").status_code == 403
    assert client.get("/care/settings/edit/1").status_code == 403
    readable = client.get("/care/templates/list/").status_code
    assert readable == (200 if role in ("manager", "auditor") else 403)


@pytest.fixture
def outbox(db, org):
    """Planned greetings for rep's customer (e-mail) and rep_north's (e-mail)."""
    customers.create_customer(org.rep, {"name": "王芳", "customer_type": "person",
                                        "email": "wf@example.com", "birthday": "03-12"})
    customers.create_customer(org.rep_north, {"name": "赵雷", "customer_type": "person",
                                              "email": "zl@example.com", "birthday": "03-11"})
    db.session.execute(update(CareTemplate).where(CareTemplate.channel == "email")
                       .values(active=True))
    db.session.commit()
    care.plan(PLAN_DAY)
    rows = db.session.execute(select(CareMessage).where(CareMessage.channel == "email")
                              .order_by(CareMessage.id)).scalars().all()
    return {m.owner_id: m for m in rows}


def test_the_outbox_follows_the_data_scope(clients, db, org, outbox):
    mine, theirs = outbox[org.rep.id], outbox[org.rep_north.id]
    page = clients.rep.get("/care/outbox/list/").get_data(as_text=True)
    assert "wf@example.com" in page and "zl@example.com" not in page
    assert clients.rep.get(f"/care/outbox/show/{theirs.id}").status_code == 404
    mgr = clients.manager.get("/care/outbox/list/").get_data(as_text=True)
    assert "wf@example.com" in mgr and "zl@example.com" not in mgr
    for client in (clients.admin, clients.staff):
        page = client.get("/care/outbox/list/").get_data(as_text=True)
        assert "wf@example.com" in page and "zl@example.com" in page
    # Auditors read every message, the recipient masked (the contact details rule).
    page = clients.auditor.get("/care/outbox/list/").get_data(as_text=True)
    assert "w***@example.com" in page and "z***@example.com" in page
    assert "wf@example.com" not in page and "zl@example.com" not in page
    assert clients.rep.get(f"/care/outbox/show/{mine.id}").status_code == 200


def test_cancel_and_retry_from_the_outbox(clients, db, org, outbox):
    mine, theirs = outbox[org.rep.id], outbox[org.rep_north.id]
    # Another rep's message is outside the scope: the whole request is refused.
    assert action(clients.rep, "/care/outbox", "cancel", [theirs.id]).status_code == 404
    resp = action(clients.rep, "/care/outbox", "cancel", [mine.id])
    assert "已取消 1 条关怀消息。" in flashes(clients.rep.get(resp.headers["Location"])
                                     .get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(CareMessage, mine.id).status == "cancelled"
    assert db.session.get(CareMessage, theirs.id).status == "pending"
    action(clients.rep, "/care/outbox", "retry", [mine.id])
    db.session.expire_all()
    assert db.session.get(CareMessage, mine.id).status == "pending"
    # Auditors read only.
    resp = action(clients.auditor, "/care/outbox", "cancel", [mine.id])
    assert DENIED in flashes(clients.auditor.get(resp.headers["Location"]).get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(CareMessage, mine.id).status == "pending"


def test_outbox_rows_are_never_added_edited_or_deleted_by_hand(clients, db, org, outbox):
    mine = outbox[org.rep.id]
    for client in (clients.rep, clients.admin):
        assert client.get("/care/outbox/add").status_code == 403
        assert client.get(f"/care/outbox/edit/{mine.id}").status_code == 403
        assert post(client, f"/care/outbox/delete/{mine.id}", {}).status_code == 403
    assert db.session.get(CareMessage, mine.id) is not None


def test_contact_form_takes_a_lunar_birthday(clients, db, org):
    resp = post(clients.rep, "/contacts/add", {
        "customer": str(org.c_rep.id), "name": "周经理", "birthday": "1980-12-30",
        "birthday_lunar": "y", "is_primary": ""})
    assert resp.status_code == 302
    contact = db.session.execute(select(Contact).where(Contact.name == "周经理")).scalar_one()
    assert (contact.birth_year, contact.birth_month, contact.birth_day,
            contact.birthday_lunar) == (1980, 12, 30, True)
    assert "农历 1980-12-30" in clients.rep.get(f"/contacts/show/{contact.id}").get_data(
        as_text=True)
    resp = post(clients.rep, f"/contacts/edit/{contact.id}", {
        "name": "周经理", "birthday": "02-30", "birthday_lunar": ""})
    assert resp.status_code == 200 and "生日不是有效日期" in resp.get_data(as_text=True)
