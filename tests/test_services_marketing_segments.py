"""Segments (app.services.marketing_segments): criteria validation, members as one SELECT in
the creator's data scope (every role), pool records only when asked, INSERT ... SELECT into a
campaign, count and a masked preview."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert, literal, select, update

from app.models import LeadOwnership, Ownership
from app.models.customer import utcnow
from app.models.marketing import Campaign, CampaignMember, RecordTag, Segment, Tag
from app.services import leads, marketing_segments as ms
from app.services.errors import ValidationFailed


@pytest.fixture
def records(db, org):
    """A lead owned by rep, one in the default lead pool, one invalid lead of rep's."""
    mine = leads.create_lead(org.rep, {"company_name": "宁波海曙贸易有限公司", "province": "浙江",
                                       "mobile": "13700137000", "source": "exhibition"})
    pooled = leads.create_lead(org.staff, {"company_name": "温州鹿城电器有限公司",
                                           "province": "浙江"})
    junk = leads.create_lead(org.rep, {"company_name": "无效测试有限公司"})
    leads.mark_invalid(org.rep, junk.id, "空号")
    return {"lead": mine.id, "pool_lead": pooled.id, "junk": junk.id}


def segment(db, creator, record_type="both", include_pool=False, **criteria):
    row = Segment(name=f"分群{utcnow().timestamp()}{id(criteria)}", record_type=record_type,
                  criteria=json.dumps(criteria), include_pool=include_pool,
                  created_by_id=creator.id if creator else None)
    db.session.add(row)
    db.session.commit()
    return row


def members(seg) -> set[tuple]:
    from app.extensions import db

    return {(("c", c) if c is not None else ("l", lead_id))
            for c, lead_id in db.session.execute(ms.members_select(seg)).all()}


def fields(exc) -> dict:
    return exc.value.fields


# --- validation ---------------------------------------------------------------------------
def test_criteria_are_cleaned(db, org):
    tag = Tag(name="展会客户")
    db.session.add(tag)
    db.session.commit()
    out = ms.validate_criteria({"provinces": [" 浙江 ", "浙江", ""], "grades": ["B", "A"],
                                "categories": ["silent"], "tag_ids": [str(tag.id)],
                                "min_days_since_followup": "30", "won": "no", "cities": [],
                                "sources": None})
    assert out == {"provinces": ["浙江"], "grades": ["A", "B"], "categories": ["silent"],
                   "tag_ids": [tag.id], "min_days_since_followup": 30, "won": "no"}
    assert ms.validate_criteria({}) == {}


def test_every_bad_field_is_named(db, org):
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria({"provinces": "浙江", "cities": ["杭" * 51], "industries": [1],
                              "sources": ["a\x00b"], "grades": ["D"], "categories": ["vip"],
                              "tag_ids": [0], "min_days_since_followup": -1, "won": True,
                              "owner_id": 1})
    assert fields(exc) == {
        "provinces": "必须是列表", "cities": "不能超过 50 个字符", "industries": "必须是文本",
        "sources": fields(exc)["sources"], "grades": "等级只能是 A、B 或 C",
        "categories": "生命周期只能是 potential、active 或 silent",
        "tag_ids": "标签编号必须是正整数列表", "min_days_since_followup": "必须是 0 到 36500 之间的整数",
        "won": "只能是 yes 或 no", "owner_id": "未知条件"}
    assert "NUL" in fields(exc)["sources"]


def test_lists_are_bounded_and_tags_must_exist(db, org):
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria({"cities": [f"城{i}" for i in range(201)], "tag_ids": [2**31],
                              "min_days_since_followup": 36501})
    assert fields(exc) == {"cities": "最多 200 个值", "tag_ids": "标签编号必须是正整数列表",
                           "min_days_since_followup": "必须是 0 到 36500 之间的整数"}
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria({"tag_ids": [987654]})
    assert fields(exc) == {"tag_ids": "未知标签：987654"}
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria({"tag_ids": list(range(1, 52))})
    assert fields(exc) == {"tag_ids": "最多 50 个值"}
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria(["provinces"])
    assert fields(exc) == {"criteria": "必须是对象"}


def test_a_segment_of_leads_refuses_customer_only_criteria(db, org):
    with pytest.raises(ValidationFailed) as exc:
        ms.validate_criteria({"grades": ["A"], "categories": ["active"]}, "lead")
    assert set(fields(exc)) == {"grades", "categories"}
    assert ms.validate_criteria({"grades": ["A"]}, "both") == {"grades": ["A"]}


# --- scope --------------------------------------------------------------------------------
def test_marketing_and_admin_segments_hold_everyone_owned(db, org, records):
    owned = {("c", org.c_rep.id), ("c", org.c_rep2.id), ("c", org.c_north.id),
             ("l", records["lead"])}
    for creator in (org.marketing, org.admin, org.staff, org.auditor):
        assert members(segment(db, creator)) == owned, creator.username
        with_pool = members(segment(db, creator, include_pool=True))
        assert with_pool == owned | {("c", org.c_pool.id), ("l", records["pool_lead"])}


def test_a_reps_segment_is_their_own_records(db, org, records):
    assert members(segment(db, org.rep)) == {("c", org.c_rep.id), ("l", records["lead"])}
    assert members(segment(db, org.rep, "customer")) == {("c", org.c_rep.id)}
    assert members(segment(db, org.rep, "lead")) == {("l", records["lead"])}
    assert members(segment(db, org.rep2)) == {("c", org.c_rep2.id)}


def test_a_managers_segment_is_their_tree(db, org, records):
    assert members(segment(db, org.manager)) == {("c", org.c_rep.id), ("c", org.c_rep2.id),
                                                 ("l", records["lead"])}
    assert members(segment(db, org.manager_north)) == {("c", org.c_north.id)}


def test_pool_records_only_for_pools_the_creator_belongs_to(db, org, records):
    from app.models import PoolMember

    assert members(segment(db, org.rep, include_pool=True)) == {("c", org.c_rep.id),
                                                               ("l", records["lead"])}
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    db.session.add(PoolMember(pool_id=leads.default_lead_pool().id, department_id=org.east.id))
    db.session.commit()
    assert members(segment(db, org.rep, include_pool=True)) == {
        ("c", org.c_rep.id), ("c", org.c_pool.id), ("l", records["lead"]),
        ("l", records["pool_lead"])}
    assert members(segment(db, org.rep, include_pool=False)) == {("c", org.c_rep.id),
                                                                ("l", records["lead"])}


def test_a_gone_or_inactive_creator_speaks_for_nobody(db, org, records):
    seg = segment(db, org.marketing, include_pool=True)
    assert len(members(seg)) == 6
    org.marketing.active = False
    db.session.commit()
    assert members(seg) == set() and ms.count(seg) == 0
    assert members(segment(db, None, include_pool=True)) == set()


# --- criteria -----------------------------------------------------------------------------
def test_region_industry_and_source(db, org, records):
    from app.services import customers

    customers.update_customer(org.admin, org.c_north.id, {"industry": "零售", "source": "展会"})
    assert members(segment(db, org.admin, provinces=["浙江"])) == {("c", org.c_rep.id),
                                                                  ("l", records["lead"])}
    assert members(segment(db, org.admin, cities=["杭州"])) == {("c", org.c_rep.id)}
    assert members(segment(db, org.admin, industries=["零售"])) == {("c", org.c_north.id)}
    assert members(segment(db, org.admin, sources=["展会", "exhibition"])) == {
        ("c", org.c_north.id), ("l", records["lead"])}


def test_tags_match_any(db, org, records):
    vip, fair, other = Tag(name="VIP"), Tag(name="展会"), Tag(name="其他")
    db.session.add_all([vip, fair, other])
    db.session.flush()
    db.session.add_all([RecordTag(tag_id=vip.id, customer_id=org.c_rep2.id),
                        RecordTag(tag_id=fair.id, lead_id=records["lead"]),
                        RecordTag(tag_id=other.id, customer_id=org.c_north.id)])
    db.session.commit()
    seg = segment(db, org.marketing, tag_ids=[vip.id, fair.id])
    assert members(seg) == {("c", org.c_rep2.id), ("l", records["lead"])}
    db.session.delete(vip)
    db.session.delete(fair)
    db.session.commit()
    assert members(seg) == set()  # every tag it named is gone: nobody, not everybody


def test_won_grade_category_and_followup_days(db, org, records):
    now = utcnow()
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id).values(
        won=True, grade="A", category="active", last_followup_at=now - dt.timedelta(days=3)))
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep2.id).values(
        last_followup_at=now - dt.timedelta(days=40)))
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == records["lead"])
                       .values(last_followup_at=now - dt.timedelta(days=1)))
    db.session.commit()
    others = {("c", org.c_rep2.id), ("c", org.c_north.id)}
    assert members(segment(db, org.admin, "customer", won="yes")) == {("c", org.c_rep.id)}
    assert members(segment(db, org.admin, "customer", won="no")) == others
    assert members(segment(db, org.admin, grades=["A"])) == {("c", org.c_rep.id)}
    assert members(segment(db, org.admin, categories=["potential"])) == others
    # None ever counts as long ago; 40 days ago is at least 30.
    assert members(segment(db, org.admin, min_days_since_followup=30)) == others
    assert members(segment(db, org.admin, min_days_since_followup=0)) == others | {
        ("c", org.c_rep.id), ("l", records["lead"])}
    customer_id = leads.convert_lead(org.rep, records["lead"])["customer_id"]
    # A converted lead is its customer: never a member itself, whatever `won` asks.
    assert members(segment(db, org.admin, "lead", won="yes")) == set()
    assert members(segment(db, org.admin, "lead", won="no")) == set()
    assert members(segment(db, org.admin, "lead")) == set()
    both = members(segment(db, org.admin, "both"))
    assert ("c", customer_id) in both and ("l", records["lead"]) not in both


def test_invalid_leads_are_never_members(db, org, records):
    assert ("l", records["junk"]) not in members(segment(db, org.rep, "lead", True))
    assert ("l", records["junk"]) not in members(segment(db, org.admin, "lead", True))


# --- use ----------------------------------------------------------------------------------
def test_members_freeze_into_a_campaign_with_one_insert(db, org, records):
    seg = segment(db, org.marketing, include_pool=True, provinces=["浙江"])
    campaign = Campaign(name="春季展会", kind="exhibition", segment_id=seg.id)
    db.session.add(campaign)
    db.session.flush()
    sub = ms.members_select(seg).subquery()
    db.session.execute(insert(CampaignMember).from_select(
        ["campaign_id", "customer_id", "lead_id", "source"],
        select(literal(campaign.id), sub.c.customer_id, sub.c.lead_id, literal("segment"))))
    db.session.commit()
    assert ms.count(seg) == 3
    rows = {(m.customer_id, m.lead_id) for m in db.session.execute(
        select(CampaignMember).where(CampaignMember.campaign_id == campaign.id)).scalars()}
    assert rows == {(org.c_rep.id, None), (None, records["lead"]),
                    (None, records["pool_lead"])}


def test_one_statement_for_members_and_count(db, org, records):
    from sqlalchemy import event

    seg = segment(db, org.rep, include_pool=True, provinces=["浙江"], won="no")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert ms.count(seg) == 2  # c_rep and rep's lead, both in 浙江
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    # The creator, their team and pools are read first (small look-ups); the records are read
    # by one statement.
    assert sum("customer_ownership" in s or "lead_ownership" in s for s in statements) == 1
    assert len(statements) <= 8


def test_preview_is_masked_for_marketing_and_full_for_admins(db, org, records):
    seg = segment(db, org.marketing, include_pool=True, provinces=["浙江"])
    assert ms.count(seg) == 3
    seen = ms.preview(seg, org.marketing)
    assert [(r["record_type"], r["id"]) for r in seen] == [
        ("customer", org.c_rep.id), ("lead", records["lead"]), ("lead", records["pool_lead"])]
    assert seen[0]["mobile"] == "138****8000" and seen[1]["mobile"] == "137****7000"
    full = ms.preview(seg, org.admin)
    assert full[0]["mobile"] == "13800138000" and full[1]["mobile"] == "13700137000"
    assert [r["id"] for r in ms.preview(seg, org.marketing, limit=1)] == [org.c_rep.id]
    # A viewer sees only what their own scope reads (a rep previewing marketing's segment).
    assert [(r["record_type"], r["id"]) for r in ms.preview(seg, org.rep)] == [
        ("customer", org.c_rep.id), ("lead", records["lead"])]
    assert ms.preview(seg, org.rep)[0]["mobile"] == "13800138000"  # the owner's own


# --- saved segments -----------------------------------------------------------------------
@pytest.mark.parametrize("role, allowed", [("admin", True), ("marketing", True),
                                           ("manager", False), ("rep", False),
                                           ("staff", False), ("auditor", False)])
def test_only_admins_and_marketing_keep_segments(db, org, role, allowed):
    from app.services.errors import PermissionDenied

    actor = getattr(org, role)
    if not allowed:
        with pytest.raises(PermissionDenied) as exc:
            ms.create_segment(actor, {"name": "浙江客户"})
        assert exc.value.message == "只有管理员和市场专员可以维护客户分群"
        return
    row = ms.create_segment(actor, {"name": "浙江客户", "record_type": "both",
                                    "include_pool": True,
                                    "criteria": {"provinces": ["浙江"], "won": "no"}})
    assert (row.created_by_id, row.record_type, row.include_pool) == (actor.id, "both", True)
    assert json.loads(row.criteria) == {"provinces": ["浙江"], "won": "no"}
    row = ms.update_segment(actor, row.id, {"criteria": {"grades": ["A"]}})
    assert json.loads(row.criteria) == {"grades": ["A"]} and row.include_pool is True
    ms.delete_segment(actor, row.id)
    assert db.session.get(Segment, row.id) is None


def test_segment_input_names_each_field(db, org):
    from app.services.errors import NotFound

    with pytest.raises(ValidationFailed) as exc:
        ms.create_segment(org.marketing, {"name": "", "record_type": "all", "include_pool": "1",
                                          "criteria": {"won": "maybe"}, "owner": 1})
    assert exc.value.fields == {"name": "分群需要名称",
                                "record_type": "对象只能是 customer（客户）、lead（线索）或 both（两者）",
                                "include_pool": "必须是 true 或 false",
                                "criteria.won": "只能是 yes 或 no",
                                "owner": "不能修改或不存在的字段"}
    row = ms.create_segment(org.marketing, {"name": "A 级客户", "criteria": {"grades": ["A"]}})
    with pytest.raises(ValidationFailed) as exc:
        ms.update_segment(org.marketing, row.id, {"record_type": "lead"})
    assert exc.value.fields == {"criteria.grades": "线索没有等级和生命周期：线索分群不能按它筛选"}
    with pytest.raises(ValidationFailed) as exc:
        ms.create_segment(org.admin, {"name": "a 级客户"})
    assert exc.value.fields == {"name": "已有同名分群"}
    with pytest.raises(NotFound):
        ms.get_segment(org.marketing, 2**31)


def test_a_segment_in_use_by_a_live_campaign_is_kept(db, org):
    from app.services.errors import Conflict

    row = ms.create_segment(org.marketing, {"name": "展会邀约"})
    campaign = Campaign(name="秋季展会", kind="exhibition", segment_id=row.id, status="running")
    db.session.add(campaign)
    db.session.commit()
    with pytest.raises(Conflict) as exc:
        ms.delete_segment(org.marketing, row.id)
    assert exc.value.message == "仍有市场活动使用该分群：秋季展会"
    campaign.status = "finished"
    db.session.commit()
    ms.delete_segment(org.marketing, row.id)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).segment_id is None


def test_segment_changes_are_audited(db, org):
    from app.models import AuditLog

    row = ms.create_segment(org.marketing, {"name": "沉默客户", "criteria": {
        "categories": ["silent"]}})
    ms.update_segment(org.marketing, row.id, {"name": "沉默客户（半年）"})
    ms.delete_segment(org.admin, row.id)
    rows = db.session.execute(select(AuditLog.action, AuditLog.actor_id).where(
        AuditLog.object_type == "segment", AuditLog.object_id == row.id)
        .order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [("create", org.marketing.id),
                                        ("update", org.marketing.id), ("delete", org.admin.id)]
