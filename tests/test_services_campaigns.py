"""Campaigns (市场活动): create / edit / delete with a refusal naming each field, members by
hand (scope, duplicates, batch bound), launch (the segment frozen once, minus the members
added by hand, then queued), finish, and who may do what."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.models import AuditLog
from app.models.marketing import Campaign, CampaignMember, CampaignMessage
from app.services import campaigns
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from tests.campaign_fixtures import make_segment, marketing_user, queued, segment_of  # noqa: F401 (fixtures)


@pytest.fixture
def mkt(db, org):
    return marketing_user(db)


def _new(actor, **data):
    return campaigns.create(actor, dict({"name": "春季展会", "kind": "exhibition"}, **data))


def _members(db, campaign_id):
    db.session.expire_all()
    return sorted(((m.customer_id, m.lead_id, m.source) for m in db.session.execute(
        select(CampaignMember).where(CampaignMember.campaign_id == campaign_id)).scalars()),
        key=lambda row: (row[0] or 0, row[1] or 0))


# --- create / edit / delete ------------------------------------------------------------------
def test_marketing_creates_a_planned_campaign_it_owns_with_an_audit_row(db, org, mkt):
    c = _new(mkt, starts_on="2026-03-01", ends_on="2026-03-03", budget="50000",
             actual_cost="12,800.50", description="上海国际会展中心")
    assert (c.status, c.owner_id, c.created_by_id) == ("planned", mkt.id, mkt.id)
    assert (c.budget, c.actual_cost) == (Decimal("50000.00"), Decimal("12800.50"))
    row = db.session.execute(select(AuditLog).where(AuditLog.object_type == "campaign",
                                                    AuditLog.object_id == c.id)).scalar_one()
    assert row.action == "create" and row.changes["name"] == [None, "春季展会"]


@pytest.mark.parametrize("data, field, message", [
    ({"name": ""}, "name", "请填写活动名称"),
    ({"name": "x" * 201}, "name", "不能超过 200 个字符"),
    ({"name": "展\x00会"}, "name", None),
    ({"kind": "fax"}, "kind", "活动类型只能是：exhibition, online_ad, email, sms, seminar, "
                              "telemarketing"),
    ({"starts_on": "2026-13-01"}, "starts_on", "日期格式应为 YYYY-MM-DD"),
    ({"budget": "-1"}, "budget", "budget 必须在 0 到 999999999999.99 之间"),
    ({"budget": "1e13"}, "budget", "budget 必须在 0 到 999999999999.99 之间"),
    ({"actual_cost": "1.005"}, "actual_cost", "actual_cost 最多两位小数"),
    ({"actual_cost": "abc"}, "actual_cost", "actual_cost 必须是数字，例如 12800.00"),
    ({"actual_cost": "NaN"}, "actual_cost", "actual_cost 必须在 0 到 999999999999.99 之间"),
    ({"owner_id": 2147483648}, "owner_id", "owner_id 必须是 1 到 2147483647 之间的整数"),
    ({"owner_id": 999999}, "owner_id", "负责人必须是在职的有效用户"),
    ({"segment_id": 999999}, "segment_id", "分群不存在"),
    ({"status": "running"}, "status", "不能修改或不存在的字段"),
])
def test_each_bad_field_is_refused_by_name(org, mkt, data, field, message):
    with pytest.raises(ValidationFailed) as err:
        _new(mkt, **data)
    assert set(err.value.fields) == {field}
    if message:
        assert err.value.fields[field] == message


def test_the_end_date_cannot_precede_the_start(org, mkt):
    with pytest.raises(ValidationFailed) as err:
        _new(mkt, starts_on="2026-03-05", ends_on="2026-03-01")
    assert err.value.fields == {"ends_on": "结束日期不能早于开始日期"}
    c = _new(mkt, starts_on="2026-03-05")
    with pytest.raises(ValidationFailed) as err:  # checked against the stored start too
        campaigns.update(mkt, c.id, {"ends_on": "2026-03-04"})
    assert err.value.fields == {"ends_on": "结束日期不能早于开始日期"}


def test_a_departed_owner_is_refused(db, org, mkt):
    org.rep2.employment_status = "departed"
    db.session.commit()
    with pytest.raises(ValidationFailed) as err:
        _new(mkt, owner_id=org.rep2.id)
    assert err.value.fields == {"owner_id": "负责人必须是在职的有效用户"}
    assert _new(mkt, owner_id=org.rep.id).owner_id == org.rep.id


def test_names_are_unique(org, mkt):
    _new(mkt)
    with pytest.raises(ValidationFailed) as err:
        _new(mkt, kind="seminar")
    assert err.value.fields == {"name": "已有同名的市场活动"}
    other = _new(mkt, name="秋季研讨会")
    with pytest.raises(ValidationFailed) as err:
        campaigns.update(mkt, other.id, {"name": "春季展会"})
    assert err.value.fields == {"name": "已有同名的市场活动"}


@pytest.mark.parametrize("who", ["manager", "rep", "staff", "auditor"])
def test_only_marketing_and_admins_change_campaigns(org, mkt, who):
    c = _new(mkt)
    actor = getattr(org, who)
    for call in (lambda: _new(actor, name="别人的"), lambda: campaigns.update(actor, c.id, {
            "budget": "1"}), lambda: campaigns.delete(actor, c.id),
            lambda: campaigns.launch(c.id, actor), lambda: campaigns.finish(c.id, actor),
            lambda: campaigns.add_members(c.id, actor, customer_ids=[org.c_rep.id])):
        with pytest.raises(PermissionDenied) as err:
            call()
        assert err.value.message == "只有市场专员和管理员可以修改市场活动"
    assert campaigns.get_campaign(actor, c.id).id == c.id  # but they read it


def test_admins_manage_campaigns_too(org, mkt):
    c = _new(org.admin)
    assert campaigns.update(org.admin, c.id, {"actual_cost": "10"}).actual_cost == Decimal("10.00")


def test_an_edit_is_audited_field_by_field(db, org, mkt):
    c = _new(mkt, budget="100")
    campaigns.update(mkt, c.id, {"budget": "200", "kind": "seminar"})
    row = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "campaign", AuditLog.action == "update")).scalar_one()
    assert row.changes == {"budget": ["100.00", "200.00"], "kind": ["exhibition", "seminar"]}


def test_a_planned_campaign_is_deleted_a_launched_one_is_not(db, org, mkt, queued):
    planned = _new(mkt, name="取消的活动")
    campaigns.add_members(planned.id, mkt, customer_ids=[org.c_rep.id])
    campaigns.delete(mkt, planned.id)
    assert db.session.get(Campaign, planned.id) is None
    running = _new(mkt)
    campaigns.launch(running.id, mkt)
    with pytest.raises(Conflict) as err:
        campaigns.delete(mkt, running.id)
    assert err.value.code == "campaign_launched"
    assert err.value.message == "已启动的市场活动不能删除；请结束它"
    with pytest.raises(OutOfScope):
        campaigns.delete(mkt, 2147483647)


# --- members by hand -------------------------------------------------------------------------
def test_members_added_by_hand_skip_duplicates(db, org, mkt):
    from app.services import leads

    lead = leads.create_lead(org.staff, {"company_name": "展会线索公司"})
    c = _new(mkt)
    first = campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_pool.id],
                                  lead_ids=[lead.id])
    assert (first.added, first.skipped) == (3, 0)
    again = campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_north.id])
    assert (again.added, again.skipped) == (1, 1)
    assert set(_members(db, c.id)) == {
        (org.c_rep.id, None, "manual"), (org.c_pool.id, None, "manual"),
        (org.c_north.id, None, "manual"), (None, lead.id, "manual")}


def test_members_outside_the_scope_or_missing_refuse_the_call(db, org, mkt):
    c = _new(mkt)
    with pytest.raises(OutOfScope) as err:
        campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, 2147483647])
    assert err.value.details["customer_ids"] == [2147483647]
    with pytest.raises(OutOfScope) as err:
        campaigns.add_members(c.id, mkt, lead_ids=[2147483646])
    assert err.value.details["lead_ids"] == [2147483646]
    assert _members(db, c.id) == []


@pytest.mark.parametrize("kwargs, field, message", [
    ({}, "customer_ids", "请至少选择一个客户或线索"),
    ({"customer_ids": "1,2"}, "customer_ids", "customer_ids 必须是 id 列表"),
    ({"lead_ids": [0]}, "lead_ids", "lead_ids 必须是 1 到 2147483647 之间的整数列表"),
    ({"customer_ids": list(range(1, 400)), "lead_ids": list(range(1, 103))}, "customer_ids",
     "每次最多 500 个客户和线索"),
])
def test_member_ids_are_checked(org, mkt, kwargs, field, message):
    c = _new(mkt)
    with pytest.raises(ValidationFailed) as err:
        campaigns.add_members(c.id, mkt, **kwargs)
    assert err.value.fields == {field: message}


def test_a_member_is_removed_unless_contacted_or_finished(db, org, mkt, queued):
    c = _new(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_rep2.id])
    first, second = db.session.execute(select(CampaignMember.id).where(
        CampaignMember.campaign_id == c.id).order_by(CampaignMember.id)).scalars()
    db.session.add(CampaignMessage(campaign_id=c.id, member_id=second, channel="sms",
                                   address="+8613900139000", status="sent"))
    db.session.commit()
    with pytest.raises(Conflict) as err:
        campaigns.remove_member(c.id, mkt, second)
    assert err.value.code == "member_contacted"
    campaigns.remove_member(c.id, mkt, first)
    assert _members(db, c.id) == [(org.c_rep2.id, None, "manual")]
    with pytest.raises(OutOfScope):
        campaigns.remove_member(c.id, mkt, first)
    campaigns.launch(c.id, mkt)
    campaigns.finish(c.id, mkt)
    with pytest.raises(Conflict) as err:
        campaigns.add_members(c.id, mkt, customer_ids=[org.c_north.id])
    assert err.value.code == "campaign_finished"


# --- launch and finish -----------------------------------------------------------------------
def test_launch_freezes_the_segment_minus_hand_added_members_and_queues(db, org, mkt, queued,
                                                                         segment_of):
    segment = make_segment(db, mkt)
    segment_of([org.c_rep.id, org.c_rep2.id, org.c_north.id])
    c = _new(mkt, segment_id=segment.id)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id])
    launched = campaigns.launch(c.id, mkt)
    assert launched.to_dict() == {"campaign_id": c.id, "from_segment": 2, "manual": 1,
                                  "total": 3, "queued": 7}
    assert queued == [c.id]
    assert set(_members(db, c.id)) == {
        (org.c_rep.id, None, "manual"), (org.c_rep2.id, None, "segment"),
        (org.c_north.id, None, "segment")}
    db.session.expire_all()
    c = db.session.get(Campaign, c.id)
    assert (c.status, c.launched_by_id) == ("running", mkt.id) and c.launched_at is not None
    # A snapshot: a later change to the segment's result leaves the members alone.
    segment_of([org.c_pool.id])
    with pytest.raises(Conflict) as err:
        campaigns.launch(c.id, mkt)
    assert (err.value.code, err.value.message) == ("campaign_launched", "市场活动已经启动过了")
    assert queued == [c.id] and len(_members(db, c.id)) == 3
    with pytest.raises(Conflict) as err:  # the segment was frozen
        campaigns.update(mkt, c.id, {"segment_id": make_segment(db, mkt, "另一个").id})
    assert err.value.code == "campaign_launched"
    action = db.session.execute(select(AuditLog).where(AuditLog.action == "launch")).scalar_one()
    assert action.changes["members"] == [None, 3]


def test_launch_without_a_segment_keeps_the_hand_added_members(db, org, mkt, queued):
    c = _new(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_north.id])
    assert campaigns.launch(c.id, mkt).to_dict()["total"] == 1


def test_finish_only_a_running_campaign(db, org, mkt, queued):
    c = _new(mkt)
    with pytest.raises(Conflict) as err:
        campaigns.finish(c.id, mkt)
    assert (err.value.code, err.value.message) == ("campaign_not_running",
                                                   "只有进行中的市场活动可以结束")
    campaigns.launch(c.id, mkt)
    assert campaigns.finish(c.id, mkt).status == "finished"
    assert campaigns.update(mkt, c.id, {"actual_cost": "999"}).actual_cost == Decimal("999.00")
    with pytest.raises(Conflict):
        campaigns.finish(c.id, mkt)
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "finish")).scalar_one() == 1


# --- reading members -------------------------------------------------------------------------
@pytest.mark.parametrize("who, shown", [
    ("admin", {"c_rep": "13800138000", "c_rep2": "13900139000", "c_north": None}),
    ("manager", {"c_rep": "13800138000", "c_rep2": "13900139000"}),
    ("rep", {"c_rep": "13800138000"}),
    ("staff", {"c_rep": "13800138000", "c_rep2": "13900139000", "c_north": None}),
    ("auditor", {"c_rep": "138****8000", "c_rep2": "139****9000", "c_north": None}),
    ("marketing", {"c_rep": "138****8000", "c_rep2": "139****9000", "c_north": None}),
])
def test_members_are_read_in_the_readers_scope_masked(db, org, mkt, who, shown):
    c = _new(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_rep2.id,
                                                   org.c_north.id])
    reader = mkt if who == "marketing" else getattr(org, who)
    rows, next_after = campaigns.members_page(reader, c.id)
    got = {r["customer_id"]: r["mobile"] for r in rows}
    assert got == {getattr(org, k).id: v for k, v in shown.items()}
    assert next_after is None
    assert campaigns.member_counts(c.id) == {"segment": 0, "manual": 3, "total": 3}


def test_members_page_by_keyset(db, org, mkt):
    c = _new(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_rep2.id,
                                                   org.c_north.id])
    first, after = campaigns.members_page(mkt, c.id, page_size=2)
    rest, end = campaigns.members_page(mkt, c.id, after=after, page_size=2)
    assert len(first) == 2 and len(rest) == 1 and end is None
    assert {r["id"] for r in first} | {r["id"] for r in rest} == {
        m for m in db.session.execute(select(CampaignMember.id)).scalars()}


def test_launch_freezes_the_real_segment_in_its_creators_scope(db, org, mkt, queued):
    """app.services.marketing_segments.members_select: a segment of every customer, made by
    a rep, holds the rep's own customer only (the creator's scope), so only it is frozen."""
    from app.services import marketing_segments

    mine = marketing_segments.create_segment(mkt, {"name": "全部客户", "record_type": "customer",
                                                    "criteria": {}})
    narrow = make_segment(db, org.rep, "rep1 的客户")
    everyone = _new(mkt, name="全员活动", segment_id=mine.id)
    assert campaigns.launch(everyone.id, mkt).from_segment == 3  # owned ones, no pool
    assert {m[0] for m in _members(db, everyone.id)} == {org.c_rep.id, org.c_rep2.id,
                                                          org.c_north.id}
    theirs = _new(mkt, name="rep1 活动", segment_id=narrow.id)
    assert campaigns.launch(theirs.id, mkt).from_segment == 1
    assert _members(db, theirs.id) == [(org.c_rep.id, None, "segment")]


def test_launch_queues_the_members_messages_in_the_outbox(db, org, mkt):
    """Not stubbed: app.services.campaign_sending.queue_messages after the snapshot."""
    c = _new(mkt, kind="sms")
    c.sms_body = "{name} 春季展会邀请"  # the template is campaign_sending's field
    db.session.commit()
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_rep2.id])
    launched = campaigns.launch(c.id, mkt)
    rows = db.session.execute(select(CampaignMessage.address).where(
        CampaignMessage.campaign_id == c.id)).scalars().all()
    assert launched.queued == len(rows) == 2
    assert sorted(rows) == ["+8613800138000", "+8613900139000"]


# --- queued with the write that makes a message due --------------------------------------------
def _addresses(db, campaign_id):
    db.session.expire_all()
    return sorted(db.session.execute(select(CampaignMessage.address).where(
        CampaignMessage.campaign_id == campaign_id)).scalars())


def _sms_campaign(mkt, **data):
    from app.services import campaign_sending

    c = _new(mkt, kind="sms", **data)
    campaign_sending.set_templates(c.id, mkt, email_subject="", email_body="",
                                   sms_body="{name} 春季展会邀请")
    return c


def test_members_added_after_launch_are_queued_at_once(db, org, mkt):
    c = _sms_campaign(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id])
    assert campaigns.launch(c.id, mkt).queued == 1
    assert campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep2.id]).to_dict() == {
        "added": 1, "skipped": 0}
    assert _addresses(db, c.id) == ["+8613800138000", "+8613900139000"]
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep2.id])  # a duplicate: nothing new
    assert _addresses(db, c.id) == ["+8613800138000", "+8613900139000"]


def test_a_member_added_before_launch_waits_for_the_launch(db, org, mkt):
    c = _sms_campaign(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id])
    assert _addresses(db, c.id) == []


def test_an_add_whose_queueing_fails_adds_nobody(db, org, mkt, monkeypatch):
    from app.services import campaign_sending

    c = _sms_campaign(mkt)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id])
    campaigns.launch(c.id, mkt)

    def broken(campaign):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(campaign_sending, "queue_pending", broken)
    with pytest.raises(RuntimeError):
        campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep2.id])
    db.session.rollback()
    assert _members(db, c.id) == [(org.c_rep.id, None, "manual")]


def test_templates_written_after_launch_queue_their_channel(db, org, mkt):
    from app.services import campaign_sending

    c = _new(mkt, kind="sms")
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id, org.c_north.id])
    assert campaigns.launch(c.id, mkt).queued == 0  # no template yet
    campaign_sending.set_templates(c.id, mkt, email_subject="", email_body="",
                                   sms_body="{name}您好")
    assert _addresses(db, c.id) == ["+8613800138000"]
    campaign_sending.set_templates(c.id, mkt, email_subject="邀请", email_body="{name}您好",
                                   sms_body="{name}您好")
    assert _addresses(db, c.id) == ["+8613800138000", "contact@hualian.cn"]


def test_a_launch_whose_queueing_fails_leaves_the_campaign_planned(db, org, mkt, segment_of,
                                                                   monkeypatch):
    from app.services import campaign_sending

    segment_of([org.c_rep2.id])
    c = _sms_campaign(mkt, segment_id=make_segment(db, mkt).id)
    campaigns.add_members(c.id, mkt, customer_ids=[org.c_rep.id])
    real = campaign_sending.queue_pending

    def broken(campaign):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(campaign_sending, "queue_pending", broken)
    with pytest.raises(RuntimeError):
        campaigns.launch(c.id, mkt)
    db.session.expire_all()
    row = db.session.get(Campaign, c.id)
    assert (row.status, row.launched_at) == ("planned", None)
    assert _members(db, c.id) == [(org.c_rep.id, None, "manual")]  # no snapshot kept
    monkeypatch.setattr(campaign_sending, "queue_pending", real)
    launched = campaigns.launch(c.id, mkt)  # launched again, whole
    assert (launched.from_segment, launched.queued) == (1, 2)
    assert _addresses(db, c.id) == ["+8613800138000", "+8613900139000"]
