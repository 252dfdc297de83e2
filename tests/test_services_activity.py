"""Follow-ups and won deals: who may log them, what they change (the reclaim clock, the
workbench stage, won), and the exact refusals."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import FollowUp, Notification, Ownership
from app.models.customer import utcnow
from app.services import customers, deals, followups, policies, workbench
from app.services.errors import GuishuError, ValidationFailed
from app.services.times import local_text


def own(db, cid) -> Ownership:
    db.session.expire_all()
    return db.session.get(Ownership, cid)


def test_followup_restarts_the_clock_and_moves_to_following(db, org):
    assert workbench.tab_counts(org.rep) == {"new": 1, "following": 0, "won": 0}
    when = utcnow() - dt.timedelta(hours=2)
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "电话沟通需求，约下周拜访",
        "happened_at": local_text(when),  # typed in business time, stored in UTC
        "next_contact_on": (utcnow() + dt.timedelta(days=7)).date().isoformat()})
    assert own(db, org.c_rep.id).last_followup_at == when.replace(second=0, microsecond=0)
    assert workbench.tab_counts(org.rep) == {"new": 0, "following": 1, "won": 0}
    # An older follow-up logged later does not move the clock back.
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "email", "content": "补记上周邮件",
        "happened_at": local_text(when - dt.timedelta(days=5))})
    assert own(db, org.c_rep.id).last_followup_at == when.replace(second=0, microsecond=0)


def test_followup_on_a_contact_counts_for_its_customer(db, org):
    contact = customers.add_contact(org.rep, org.c_rep.id, {"name": "王经理",
                                                            "mobile": "13800138001"})
    f = followups.log_followup(org.rep, org.c_rep.id, {"channel": "visit", "content": "上门拜访"},
                               contact_id=contact.id)
    assert f.contact_id == contact.id and own(db, org.c_rep.id).last_followup_at is not None
    other = customers.add_contact(org.rep2, org.c_rep2.id, {"name": "李总"})
    with pytest.raises(ValidationFailed) as exc:
        followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "x"},
                               contact_id=other.id)
    assert exc.value.fields == {"contact_id": "联系人不属于该客户"}


@pytest.mark.parametrize("data,field,message", [
    ({"channel": "fax", "content": "x"}, "channel", "跟进方式只能是：call（电话）、visit（拜访）、"
     "message（微信/短信）、email（邮件）、meeting（会议）"),
    ({"channel": "call", "content": "  "}, "content", "请填写跟进内容"),
    ({"channel": "call", "content": "x", "happened_at": "昨天"}, "happened_at",
     "时间格式应为 YYYY-MM-DD HH:MM"),
    ({"channel": "call", "content": "x", "happened_at": "2099-01-01 10:00"}, "happened_at",
     "跟进时间不能晚于现在"),
    ({"channel": "call", "content": "x", "next_contact_on": "2020-01-01"}, "next_contact_on",
     "下次联系日期不能早于本次跟进"),
])
def test_bad_followups_are_refused_and_change_nothing(db, org, data, field, message):
    with pytest.raises(ValidationFailed) as exc:
        followups.log_followup(org.rep, org.c_rep.id, data)
    assert exc.value.fields[field] == message
    db.session.rollback()
    assert db.session.execute(select(FollowUp)).first() is None
    assert own(db, org.c_rep.id).last_followup_at is None


@pytest.mark.parametrize("who,customer", [("rep", "c_rep2"), ("rep", "c_north"),
                                          ("manager", "c_north"), ("auditor", "c_rep")])
def test_followups_outside_scope_or_role_are_refused(db, org, who, customer):
    with pytest.raises(GuishuError) as exc:
        followups.log_followup(getattr(org, who), getattr(org, customer).id,
                               {"channel": "call", "content": "x"})
    assert exc.value.code == ("forbidden" if who == "auditor" else "out_of_scope")
    assert db.session.execute(select(FollowUp)).first() is None


def test_deal_marks_won_and_frees_the_cap(db, org):
    from app.services.caps import counted

    assert counted(org.rep.id, False) == 1
    d = deals.record_deal(org.rep, org.c_rep.id, {"amount": "12,800.5", "product_line": "CRM"})
    # "Today" is the business day (GUISHU_TIMEZONE), not the UTC one.
    assert d.amount == Decimal("12800.50") and d.won_on == followups.local_today()
    o = own(db, org.c_rep.id)
    assert (o.won, o.category) == (True, "active")
    assert counted(org.rep.id, False) == 0 and counted(org.rep.id, True) == 1
    assert workbench.tab_counts(org.rep)["won"] == 1
    assert workbench.days_left(o, policies.effective_policy(org.rep.id)) is None  # no reclaim


@pytest.mark.parametrize("data,field,message", [
    ({"amount": "abc"}, "amount", "成交金额必须是数字，例如 12800.00"),
    ({"amount": "0"}, "amount", "成交金额必须大于 0"),
    ({"amount": "-5"}, "amount", "成交金额必须大于 0"),
    ({}, "amount", "成交金额必须是数字，例如 12800.00"),
    ({"amount": "100", "won_on": "2099-01-01"}, "won_on", "成交日期不能晚于今天"),
])
def test_bad_deals_are_refused(db, org, data, field, message):
    with pytest.raises(ValidationFailed) as exc:
        deals.record_deal(org.rep, org.c_rep.id, data)
    assert exc.value.fields[field] == message
    assert own(db, org.c_rep.id).won is False


def test_no_deal_on_a_pool_customer(db, org):
    with pytest.raises(ValidationFailed) as exc:
        deals.record_deal(org.admin, org.c_pool.id, {"amount": "100"})
    assert exc.value.fields == {"customer": "公海客户不能登记成交，请先领取或分配"}


def test_reminders_due_today_and_overdue_and_cleared_by_a_newer_followup(db, org):
    today = followups.local_today()
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "报价",
        "happened_at": local_text(utcnow() - dt.timedelta(days=5)),
        "next_contact_on": (today - dt.timedelta(days=2)).isoformat()})
    followups.log_followup(org.rep2, org.c_rep2.id, {
        "channel": "call", "content": "演示",
        "happened_at": local_text(utcnow() - dt.timedelta(days=1)),
        "next_contact_on": today.isoformat()})
    due = followups.due_reminders(org.rep.id, today)
    assert [r["customer_id"] for r in due["overdue"]] == [org.c_rep.id]
    assert due["overdue"][0]["days_late"] == 2 and due["overdue"][0]["last"] == "报价"
    assert due["today"] == [] and due["counts"] == {"today": 0, "overdue": 1}
    assert [r["customer_id"] for r in followups.due_reminders(org.rep2.id, today)["today"]] == \
        [org.c_rep2.id]
    # The digest: one per owner per day.
    assert followups.send_digests(today) == 2
    note = db.session.execute(select(Notification).where(
        Notification.user_id == org.rep.id, Notification.kind == "followup_digest")).scalar_one()
    assert note.title == "今日待跟进 0 个，已逾期 1 个" and org.c_rep.name in note.body
    assert followups.send_digests(today) == 0
    # An older call logged afterwards is still the latest logged: its ask replaces the date.
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "补记",
        "happened_at": local_text(utcnow() - dt.timedelta(days=9)),
        "next_contact_on": (today - dt.timedelta(days=3)).isoformat()})
    assert followups.due_reminders(org.rep.id, today)["overdue"][0]["days_late"] == 3
    # A newer follow-up without a next date clears rep1's reminder.
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "已回电"})
    assert followups.due_reminders(org.rep.id, today) == {
        "today": [], "overdue": [], "counts": {"today": 0, "overdue": 0}}


def test_reminders_show_the_most_overdue_first_and_count_them_all(db, org):
    today = followups.local_today()
    ids = [org.c_rep.id]
    for i in range(4):
        ids.append(customers.create_customer(org.rep, {"name": f"提醒测试{i}号有限公司"}).id)
    for days, cid in zip((1, 7, 3, 0, 5), ids):
        followups.log_followup(org.rep, cid, {
            "channel": "call", "content": f"第{days}",
            "happened_at": local_text(utcnow() - dt.timedelta(days=10)),
            "next_contact_on": (today - dt.timedelta(days=days)).isoformat()})
    due = followups.due_reminders(org.rep.id, today, limit=2)
    assert [r["days_late"] for r in due["overdue"]] == [7, 5]
    assert [r["customer_id"] for r in due["today"]] == [ids[3]]
    assert due["counts"] == {"today": 1, "overdue": 4}


def test_a_merge_and_its_undo_keep_the_next_contact_of_the_latest_followup(db, org):
    from app.services import merge

    today = followups.local_today()
    other = customers.create_customer(org.rep, {"name": "云帆科技（杭州）有限公司"},
                                      confirm_duplicates=True)
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "旧", "next_contact_on": (today).isoformat()})
    followups.log_followup(org.rep, other.id, {
        "channel": "call", "content": "新",
        "next_contact_on": (today + dt.timedelta(days=4)).isoformat()})

    def next_on(cid):
        db.session.expire_all()
        return db.session.get(Ownership, cid).next_contact_on

    record = merge.merge(org.admin, org.c_rep.id, [other.id])[0]
    # The merged customer's follow-up is the survivor's latest now.
    assert next_on(org.c_rep.id) == today + dt.timedelta(days=4)
    merge.undo(org.admin, record.id)
    assert next_on(org.c_rep.id) == today and next_on(other.id) == today + dt.timedelta(days=4)
