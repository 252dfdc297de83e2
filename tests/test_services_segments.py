"""Reclaim rules by segment (issue 15 section 4): the resolution order at every level with and
without segments (exact values, the "applied" label, Python and SQL agreeing), the tie rule,
caps refused on segment policies, the sweeps taking exactly the due customers and leads, the
dry run equal to the sweep at the same instant, warnings by segment."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import (Customer, LeadEvent, LeadOwnership, Ownership, OwnershipEvent,
                        Policy)
from app.services import customers, due_soon, leads, policies, policy_config, reclaim, segments
from app.services.errors import NotFound, ValidationFailed
from tests.helpers import holder_of

NOW = dt.datetime(2026, 11, 23, 12, 0)
DAY = dt.timedelta(days=1)
NF = "reclaim_no_followup_days"


def owned(db, owner, name, days_ago, grade=None, product_line=None, source=None,
          followup_days_ago=None, category="potential"):
    c = customers.create_customer(owner, {"name": name})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id).values(
        acquired_at=NOW - days_ago * DAY, grade=grade, category=category,
        last_followup_at=NOW - followup_days_ago * DAY if followup_days_ago is not None
        else None))
    db.session.execute(update(Customer).where(Customer.id == c.id).values(
        product_line=product_line, source=source))
    db.session.commit()
    return c.id


def owned_lead(db, owner, name, days_ago, source=None):
    lead = leads.create_lead(owner, {"company_name": name, "source": source})
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == lead.id).values(
        acquired_at=NOW - days_ago * DAY))
    db.session.commit()
    return lead.id


def add(org, **values):
    return policy_config.create_policy(org.admin, values)


def sql_days(db, customer_id, field=NF):
    """The sweep's own per-row value for one customer."""
    rule = reclaim.customer_rule(NOW)
    expr = {NF: rule.no_followup_days, "reclaim_no_deal_days": rule.no_deal_days,
            "warn_before_days": rule.warn_before_days}[field]
    return db.session.execute(select(expr).where(
        *rule.joins, Ownership.__table__.c.customer_id == customer_id)).scalar_one()


def applied(owner, grade="A", product_line="云服务", source="官网", field=NF):
    return segments.resolve_for_record(owner.id, "customer", {
        "grade": grade, "category": "potential", "product_line": product_line,
        "source": source})[field]


@pytest.fixture(autouse=True)
def fresh_book(db, org):
    """The org fixture's customers and leads held a day: never due in these tests."""
    db.session.execute(update(Ownership).where(Ownership.owner_id.is_not(None))
                       .values(acquired_at=NOW - DAY))
    db.session.commit()


def test_every_level_in_order_with_and_without_segments(db, org):
    a = owned(db, org.rep, "A级客户", 1, grade="A", product_line="云服务", source="官网")
    b = owned(db, org.rep, "B级客户", 1, grade="B", product_line="云服务", source="官网")
    steps = [
        (dict(scope="global", segment_grade="A", reclaim_no_followup_days=100), 100,
         "全局默认，细分：等级 A"),
        (dict(scope="department", department_id=org.centre.id, reclaim_no_followup_days=40), 40,
         "部门：销售中心"),
        (dict(scope="department", department_id=org.centre.id, segment_grade="A",
              reclaim_no_followup_days=110), 110, "部门：销售中心，细分：等级 A"),
        (dict(scope="department", department_id=org.east.id, reclaim_no_followup_days=50), 50,
         "部门：华东大区"),
        (dict(scope="department", department_id=org.east.id, segment_grade="A",
              reclaim_no_followup_days=120), 120, "部门：华东大区，细分：等级 A"),
        (dict(scope="department", department_id=org.east.id, segment_grade="A",
              segment_product_line="云服务", reclaim_no_followup_days=125), 125,
         "部门：华东大区，细分：等级 A、产品线 云服务"),
        (dict(scope="user", user_id=org.rep.id, reclaim_no_followup_days=60), 60,
         "个人设置"),
        (dict(scope="user", user_id=org.rep.id, segment_grade="A", segment_source="官网",
              reclaim_no_followup_days=130), 130, "个人设置，细分：等级 A、来源 官网"),
    ]
    # Global only: the seeded global row.
    assert (applied(org.rep).value, applied(org.rep).label) == (30, "全局默认")
    assert sql_days(db, a) == 30
    plain_b = [30, 30, 40, 40, 50, 50, 50, 60, 60]
    for i, (values, expected, label) in enumerate(steps, start=1):
        policy = add(org, **values)
        got = applied(org.rep)
        assert (got.value, got.label, got.policy_id) == (expected, label, policy.id), values
        assert sql_days(db, a) == expected, values
        # The grade-B customer never matches a grade-A segment: the plain value.
        assert applied(org.rep, grade="B").value == sql_days(db, b) == plain_b[i], values
        # Caps and the plain effective policy ignore segment policies.
        assert policies.effective_policy(org.rep.id)[NF].value == plain_b[i]
    # Another rep of the same department: no user policies, the department's.
    c = owned(db, org.rep2, "同部门A级", 1, grade="A", product_line="云服务")
    assert sql_days(db, c) == applied(org.rep2).value == 125
    # The other department's rep: only the centre's and global's apply.
    n = owned(db, org.rep_north, "华北A级", 1, grade="A")
    assert sql_days(db, n) == applied(org.rep_north, product_line=None).value == 110


def test_tie_at_one_level_more_conditions_then_lowest_id(db, org):
    a = owned(db, org.rep, "并列", 1, grade="A", category="silent", source="展会")
    first = add(org, scope="global", segment_grade="A", reclaim_no_followup_days=70)
    add(org, scope="global", segment_category="silent", reclaim_no_followup_days=80)
    got = segments.resolve_for_record(org.rep.id, "customer",
                                      {"grade": "A", "category": "silent", "source": "展会"})
    # One condition each: the lower id.
    assert (sql_days(db, a), got[NF].value, got[NF].policy_id) == (70, 70, first.id)
    both = add(org, scope="global", segment_grade="A", segment_category="silent",
               reclaim_no_followup_days=90)
    assert sql_days(db, a) == 90
    got = segments.resolve_for_record(org.rep.id, "customer",
                                      {"grade": "A", "category": "silent", "source": "展会"})
    assert (got[NF].value, got[NF].policy_id) == (90, both.id)


def test_fields_resolve_independently(db, org):
    a = owned(db, org.rep, "分字段", 1, grade="A")
    add(org, scope="global", segment_grade="A", reclaim_no_deal_days=365)
    add(org, scope="department", department_id=org.east.id, warn_before_days=7)
    assert (sql_days(db, a), sql_days(db, a, "reclaim_no_deal_days"),
            sql_days(db, a, "warn_before_days")) == (30, 365, 7)
    got = segments.resolve_for_record(org.rep.id, "customer", {"grade": "A"})
    assert [got[f].source for f in ("reclaim_no_followup_days", "reclaim_no_deal_days",
                                    "warn_before_days")] == ["global", "global",
                                                             "department:华东大区"]
    assert got["reclaim_no_deal_days"].segment == "等级 A"


@pytest.mark.parametrize("field", ["max_customers", "max_locked", "daily_claim_limit",
                                   "cooldown_days", "lead_max", "lead_daily_claim_limit"])
def test_caps_and_claim_limits_are_refused_on_a_segment_policy(db, org, field):
    with pytest.raises(ValidationFailed) as err:
        add(org, scope="department", department_id=org.east.id, segment_grade="A",
            reclaim_no_followup_days=100, **{field: 5})
    assert err.value.fields == {field: (
        f"细分策略只能设置回收期限和预警天数；{field} 只能按用户、部门或全局设置（不带细分条件的策略）")}


def test_count_won_is_refused_on_a_segment_policy_and_an_update_cannot_sneak_a_cap_in(db, org):
    with pytest.raises(ValidationFailed) as err:
        add(org, scope="global", segment_source="官网", count_won=True)
    assert set(err.value.fields) == {"count_won"}
    policy = add(org, scope="global", segment_source="官网", reclaim_no_followup_days=20)
    with pytest.raises(ValidationFailed) as err:
        policy_config.update_policy(org.admin, policy.id, {"max_customers": 3})
    assert set(err.value.fields) == {"max_customers"}
    # A plain policy turned into a segment policy keeps no caps either.
    plain = add(org, scope="user", user_id=org.rep.id, max_customers=5)
    with pytest.raises(ValidationFailed) as err:
        policy_config.update_policy(org.admin, plain.id, {"segment_grade": "B"})
    assert set(err.value.fields) == {"max_customers"}


@pytest.mark.parametrize("values, field, message", [
    (dict(segment_grade="D", reclaim_no_followup_days=5), "segment_grade",
     "等级只能是 A、B 或 C"),
    (dict(segment_category="vip", reclaim_no_followup_days=5), "segment_category",
     "分类只能是潜在、活跃或沉默"),
    (dict(segment_record_type="deal", reclaim_no_followup_days=5), "segment_record_type",
     "记录类型只能是客户或线索"),
    (dict(segment_record_type="lead", segment_grade="A", lead_reclaim_no_followup_days=5),
     "segment_grade", "线索没有等级、分类或产品线；此条件只适用于客户细分"),
    (dict(segment_record_type="lead", reclaim_no_followup_days=5), "reclaim_no_followup_days",
     "reclaim_no_followup_days 适用于客户，但此细分只匹配线索"),
    (dict(segment_grade="A", lead_reclaim_no_followup_days=5),
     "lead_reclaim_no_followup_days",
     "lead_reclaim_no_followup_days 适用于线索，但此细分只匹配客户"),
    (dict(segment_source="x" * 101, reclaim_no_followup_days=5), "segment_source",
     "segment_source 必须为 1 到 100 个字符"),
    (dict(segment_source=7, reclaim_no_followup_days=5), "segment_source",
     "segment_source 必须是文本或留空"),
])
def test_segment_conditions_are_validated(db, org, values, field, message):
    with pytest.raises(ValidationFailed) as err:
        add(org, scope="global", **values)
    assert err.value.fields == {field: message}


def test_one_policy_per_target_and_segment(db, org):
    add(org, scope="user", user_id=org.rep.id, segment_grade="A", reclaim_no_followup_days=9)
    add(org, scope="user", user_id=org.rep.id, segment_grade="B", reclaim_no_followup_days=9)
    # Blank text is no condition: this is the grade-A segment again.
    with pytest.raises(ValidationFailed) as err:
        add(org, scope="user", user_id=org.rep.id, segment_grade="A", segment_source="  ",
            reclaim_no_followup_days=10)
    assert err.value.fields == {"scope": "该对象已有策略，请修改原策略"}


def test_the_sweep_takes_exactly_the_due_customers_under_segment_policies(db, org):
    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=180,
        reclaim_no_deal_days=365)
    add(org, scope="department", department_id=org.east.id, segment_product_line="硬件",
        reclaim_no_followup_days=10)
    add(org, scope="user", user_id=org.rep2.id, reclaim_no_followup_days=45)
    ids = {
        "a_100": owned(db, org.rep, "A级100天", 100, grade="A"),           # 180: kept
        "a_200": owned(db, org.rep, "A级200天", 200, grade="A"),           # 180: due
        "b_40": owned(db, org.rep, "B级40天", 40, grade="B"),              # 30: due
        "b_20": owned(db, org.rep, "B级20天", 20, grade="B"),              # kept
        "hw_11": owned(db, org.rep, "硬件11天", 11, product_line="硬件"),  # 10: due
        "hw_9": owned(db, org.rep, "硬件9天", 9, product_line="硬件"),     # kept
        "rep2_40": owned(db, org.rep2, "rep2的40天", 40, product_line="硬件"),  # user 45: kept
        "rep2_46": owned(db, org.rep2, "rep2的46天", 46),                  # due
        "north_hw_11": owned(db, org.rep_north, "华北硬件11天", 11, product_line="硬件"),  # kept
    }
    due = {"a_200", "b_40", "hw_11", "rep2_46"}
    planned = {r.customer_id: r for r in db.session.execute(reclaim.due_customers(NOW))}
    assert set(planned) == {ids[k] for k in due}
    result = reclaim.sweep(now=NOW)
    assert result.reclaimed == 4
    for key, cid in ids.items():
        assert (holder_of(db, cid)[0] is None) == (key in due), key
    reasons = dict(db.session.execute(select(OwnershipEvent.customer_id, OwnershipEvent.reason)
                                      .where(OwnershipEvent.kind == "reclaimed")).all())
    assert reasons == {ids["a_200"]: "超过 180 天未跟进，自动回收",
                       ids["b_40"]: "超过 30 天未跟进，自动回收",
                       ids["hw_11"]: "超过 10 天未跟进，自动回收",
                       ids["rep2_46"]: "超过 45 天未跟进，自动回收"}
    rules = set(db.session.execute(select(OwnershipEvent.rule)
                                   .where(OwnershipEvent.kind == "reclaimed")).scalars())
    assert rules == {"reclaim:no_followup:180d", "reclaim:no_followup:30d",
                     "reclaim:no_followup:10d", "reclaim:no_followup:45d"}


def test_no_deal_days_by_segment_and_the_rule_named(db, org):
    add(org, scope="global", segment_category="active", reclaim_no_deal_days=20)
    active = owned(db, org.rep, "活跃21天", 21, category="active", followup_days_ago=1)
    quiet = owned(db, org.rep, "潜在21天", 21, followup_days_ago=1)
    reclaim.sweep(now=NOW)
    assert holder_of(db, active)[0] is None and holder_of(db, quiet)[0] == org.rep.id
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == active, OwnershipEvent.kind == "reclaimed")).scalar_one()
    assert (ev.rule, ev.reason) == ("reclaim:no_deal:20d", "领取后超过 20 天未成交，自动回收")


def test_the_lead_sweep_by_source(db, org):
    add(org, scope="global", segment_record_type="lead", segment_source="web_form",
        lead_reclaim_no_followup_days=5)
    add(org, scope="user", user_id=org.rep2.id, segment_source="phone",
        lead_reclaim_no_followup_days=3)
    ids = {
        "web_6": owned_lead(db, org.rep, "官网6天", 6, "web_form"),       # 5: due
        "web_4": owned_lead(db, org.rep, "官网4天", 4, "web_form"),       # kept
        "phone_6": owned_lead(db, org.rep, "电话6天", 6, "phone"),        # 14: kept
        "rep2_phone_4": owned_lead(db, org.rep2, "rep2电话4天", 4, "phone"),  # 3: due
        "rep2_fair_4": owned_lead(db, org.rep2, "rep2展会4天", 4, "exhibition"),  # kept
    }
    due = {"web_6", "rep2_phone_4"}
    planned = {r.lead_id for r in db.session.execute(leads.due_leads(NOW))}
    assert planned == {ids[k] for k in due}
    assert leads.reclaim_sweep(now=NOW).reclaimed == 2
    for key, lid in ids.items():
        assert (db.session.get(LeadOwnership, lid).owner_id is None) == (key in due), key
    reasons = dict(db.session.execute(select(LeadEvent.lead_id, LeadEvent.reason).where(
        LeadEvent.kind == "reclaimed")).all())
    assert reasons == {ids["web_6"]: "5 天未跟进，自动回收",
                       ids["rep2_phone_4"]: "3 天未跟进，自动回收"}


def test_lead_warnings_name_the_period_of_the_segment_that_applies(db, org):
    """The pre-reclaim warning of a lead reads the sweep's own rule: a website lead under a
    5-day segment is warned about on day 4 (warn 2 days ahead) and told 5 days, while a
    phone lead of the same age under the global 30 days is not warned at all."""
    from app.models import Notification
    from app.services import lead_warnings

    policy = db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one()
    policy.lead_reclaim_no_followup_days, policy.warn_before_days = 30, 2
    db.session.commit()
    add(org, scope="global", segment_record_type="lead", segment_source="web_form",
        lead_reclaim_no_followup_days=5)
    web = owned_lead(db, org.rep, "官网4天", 4, "web_form")
    owned_lead(db, org.rep, "电话4天", 4, "phone")
    owned_lead(db, org.rep, "官网6天", 6, "web_form")  # overdue: the sweep's, not warned
    assert lead_warnings.warn(now=NOW) == 1
    [note] = db.session.execute(select(Notification).where(
        Notification.kind == "lead_reclaim_warning")).scalars().all()
    assert note.user_id == org.rep.id and note.link == f"/leads/show/{web}"
    assert note.title == "线索「官网4天」将于 2026-11-24 被自动回收"
    assert note.body == "超过 5 天未跟进：请跟进，或转化、标记无效。"
    assert lead_warnings.warn(now=NOW) == 0  # once per cycle


def test_a_segment_set_to_zero_turns_the_lead_sweep_off_for_it(db, org):
    add(org, scope="global", segment_source="referral", lead_reclaim_no_followup_days=0)
    kept = owned_lead(db, org.rep, "转介绍100天", 100, "referral")
    gone = owned_lead(db, org.rep, "广告100天", 100, "advertising")
    leads.reclaim_sweep(now=NOW)
    assert db.session.get(LeadOwnership, kept).owner_id == org.rep.id
    assert db.session.get(LeadOwnership, gone).owner_id is None


def test_dry_run_equals_the_sweep_at_the_same_instant(db, org):
    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=60)
    add(org, scope="department", department_id=org.centre.id, segment_source="展会",
        reclaim_no_deal_days=25, lead_reclaim_no_followup_days=2)
    for i in range(12):
        owned(db, org.rep if i % 2 else org.rep_north, f"客户{i}", 5 * i + 3,
              grade="A" if i % 3 == 0 else "B", source="展会" if i % 4 == 0 else None,
              followup_days_ago=i if i % 5 == 0 else None)
        owned_lead(db, org.rep, f"线索{i}", i, "exhibition" if i % 2 else "web_form")
    later = NOW + 7 * DAY
    page = due_soon.due_soon(org.admin, days=7, now=NOW)
    expected_customers = {r.customer_id for r in db.session.execute(
        reclaim.due_customers(later))}
    expected_leads = {r.lead_id for r in db.session.execute(leads.due_leads(later))}
    assert expected_customers and expected_leads
    assert sum(o["customers"] for o in page.owners) == len(expected_customers)
    assert sum(o["leads"] for o in page.owners) == len(expected_leads)
    dry = {r["customer_id"] for r in reclaim.sweep(dry_run=True, now=later).due}
    assert dry == expected_customers
    assert leads.reclaim_sweep(dry_run=True, now=later).reclaimed == len(expected_leads)
    before = db.session.execute(select(Ownership.customer_id)
                                .where(Ownership.owner_id.is_(None))).scalars().all()
    assert reclaim.sweep(now=later).reclaimed == len(expected_customers)
    after = set(db.session.execute(select(Ownership.customer_id)
                                   .where(Ownership.owner_id.is_(None))).scalars())
    assert after - set(before) == expected_customers
    assert leads.reclaim_sweep(now=later).reclaimed == len(expected_leads)
    gone = set(db.session.execute(select(LeadOwnership.lead_id).where(
        LeadOwnership.owner_id.is_(None), LeadOwnership.lead_id.in_(expected_leads)))
        .scalars())
    assert gone == expected_leads


def test_warnings_use_the_segments_warning_days(db, org):
    add(org, scope="global", segment_grade="A", warn_before_days=10)
    a = owned(db, org.rep, "A级22天", 22, grade="A")   # due in 8 days: within 10
    b = owned(db, org.rep, "B级22天", 22, grade="B")   # due in 8 days: not within 3
    assert reclaim.warn(now=NOW) == 1
    from app.models import ReclaimWarning

    assert db.session.execute(select(ReclaimWarning.customer_id)).scalars().all() == [a]
    assert b not in db.session.execute(select(ReclaimWarning.customer_id)).scalars().all()


def test_due_soon_is_scoped_per_role(db, org):
    mine = owned(db, org.rep, "rep1将到期", 28)
    theirs = owned(db, org.rep2, "rep2将到期", 28)
    north = owned(db, org.rep_north, "华北将到期", 28)
    lead = owned_lead(db, org.rep, "rep1线索", 10, "web_form")

    def owners(user):
        return {o["owner_id"]: (o["customers"], o["leads"])
                for o in due_soon.due_soon(user, days=7, now=NOW).owners}

    assert owners(org.rep) == {org.rep.id: (1, 1)}
    assert owners(org.manager) == {org.rep.id: (1, 1), org.rep2.id: (1, 0)}
    assert owners(org.admin) == {org.rep.id: (1, 1), org.rep2.id: (1, 0),
                                 org.rep_north.id: (1, 0)}
    page = due_soon.due_soon(org.manager, days=7, owner_id=org.rep2.id, now=NOW)
    assert [r["id"] for r in page.customers] == [theirs]
    assert page.customers[0]["days_left"] == 2 and page.customers[0]["days"] == 30
    with pytest.raises(NotFound):
        due_soon.due_soon(org.manager, days=7, owner_id=org.rep_north.id, now=NOW)
    with pytest.raises(NotFound):
        due_soon.due_soon(org.rep, days=7, owner_id=org.rep2.id, now=NOW)
    page = due_soon.due_soon(org.rep, days=7, now=NOW)
    assert [r["id"] for r in page.customers] == [mine] and [r["id"] for r in page.leads] == [lead]
    assert north not in [r["id"] for r in page.customers]
    # Nothing changed hands: a dry run.
    assert holder_of(db, mine)[0] == org.rep.id


@pytest.mark.parametrize("days", [0, -1, 91, "x", "7\x00", 2**40, None])
def test_due_soon_days_are_bounded(db, org, days):
    if days is None:
        assert due_soon.due_soon(org.rep, now=NOW).days == 7
        return
    with pytest.raises(ValidationFailed) as err:
        due_soon.due_soon(org.rep, days=days, now=NOW)
    assert err.value.fields == {"days": "days 必须是 1 到 90 之间的整数"}


def test_due_soon_pages_by_keyset(db, org):
    ids = sorted(owned(db, org.rep, f"到期{i}", 40) for i in range(5))
    first = due_soon.due_soon(org.rep, days=1, owner_id=org.rep.id, now=NOW, page_size=2)
    assert [r["id"] for r in first.customers] == ids[:2] and first.next_after == ids[1]
    second = due_soon.due_soon(org.rep, days=1, owner_id=org.rep.id, now=NOW, page_size=2,
                               after=first.next_after)
    assert [r["id"] for r in second.customers] == ids[2:4]


def test_the_workbench_and_the_customer_page_count_days_by_segment(db, org):
    from app.models import Customer as CustomerModel
    from app.services import customer_page, workbench

    import math

    from app.models.customer import utcnow

    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=180,
        reclaim_no_deal_days=365)
    a = owned(db, org.rep, "A级100天", 100, grade="A")   # 80 days left under its segment
    b = owned(db, org.rep, "B级28天", 28, grade="B")     # 2 days left under the plain 30
    rows = {r["id"]: r["days_left"] for r in workbench.my_customers(org.rep, "new")}
    shift = (utcnow() - NOW) / DAY  # my_customers counts from the real clock

    assert (rows[a], rows[b]) == (math.ceil(80 - shift), math.ceil(2 - shift))
    soon = [r["id"] for r in workbench.about_to_be_reclaimed(org.rep, now=NOW)]
    assert soon == [b]
    page = customer_page.reclaim_of(db.session.get(CustomerModel, a).ownership)
    assert page.days_left == math.ceil(80 - shift) and not page.warned
    # Without segment policies for rep2, the plain rule as before.
    c = owned(db, org.rep2, "rep2的28天", 28, grade="A")
    policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep2.id,
                                            "reclaim_no_followup_days": 30})
    assert [r["id"] for r in workbench.about_to_be_reclaimed(org.rep2, now=NOW)] == [c]


def test_the_workbench_picks_the_soonest_by_segment_whatever_the_limit(db, org):
    """Under segment policies the workbench's list is the `limit` customers the sweep takes
    soonest, each by its own periods, picked by the database (a rep with tens of thousands
    due read them all before)."""
    from app.services import workbench

    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=40,
        warn_before_days=10)
    a = [owned(db, org.rep, f"A级{d}天", d, grade="A") for d in (31, 35, 33)]  # 9, 5, 7 left
    b = [owned(db, org.rep, f"B级{d}天", d, grade="B") for d in (28, 29)]       # 2, 1 left
    full = workbench.about_to_be_reclaimed(org.rep, now=NOW)
    assert [(r["id"], r["days_left"]) for r in full] == [
        (b[1], 1), (b[0], 2), (a[1], 5), (a[2], 7), (a[0], 9)]
    for n in range(1, 5):
        assert workbench.about_to_be_reclaimed(org.rep, limit=n, now=NOW) == full[:n]

    # An opportunity at a protecting stage, updated 28 days ago, holds b[1] until 30 days
    # after it (B's plain no-follow-up days): 2 days left, as b[0] (then by id).
    from app.models import Opportunity, OpportunityStage

    stage = db.session.execute(select(OpportunityStage).where(
        OpportunityStage.name == "方案报价")).scalar_one()
    db.session.add(Opportunity(customer_id=b[1], title="保护中的商机", amount=1000,
                               stage_id=stage.id, status="open", created_at=NOW - 28 * DAY,
                               updated_at=NOW - 28 * DAY))
    db.session.flush()
    full = workbench.about_to_be_reclaimed(org.rep, now=NOW)
    assert [(r["id"], r["days_left"]) for r in full] == [
        (b[0], 2), (b[1], 2), (a[1], 5), (a[2], 7), (a[0], 9)]
    # The database orders without the protection and keeps one more row per protected
    # customer: b[1], first without it, does not crowd b[0] out of a list of one.
    for n in range(1, 5):
        assert workbench.about_to_be_reclaimed(org.rep, limit=n, now=NOW) == full[:n]


def test_a_customer_protected_past_the_window_is_not_listed_and_takes_no_place(db, org):
    """An opportunity updated yesterday protects b[1], the soonest without it, past the
    warning window: it is not about to be reclaimed. The database keeps the soonest without
    the protection and asks it of those rows alone: every list still holds `limit` of the
    others."""
    from app.models import Opportunity, OpportunityStage
    from app.services import workbench

    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=40,
        warn_before_days=10)
    a = [owned(db, org.rep, f"A级{d}天", d, grade="A") for d in (31, 35, 33)]  # 9, 5, 7 left
    b = [owned(db, org.rep, f"B级{d}天", d, grade="B") for d in (28, 29)]       # 2, 1 left
    stage = db.session.execute(select(OpportunityStage).where(
        OpportunityStage.name == "方案报价")).scalar_one()
    db.session.add(Opportunity(customer_id=b[1], title="刚更新的商机", amount=1000,
                               stage_id=stage.id, status="open", created_at=NOW - DAY,
                               updated_at=NOW - DAY))
    db.session.flush()
    full = workbench.about_to_be_reclaimed(org.rep, now=NOW)
    assert [(r["id"], r["days_left"]) for r in full] == [
        (b[0], 2), (a[1], 5), (a[2], 7), (a[0], 9)]
    for n in range(1, 5):
        assert workbench.about_to_be_reclaimed(org.rep, limit=n, now=NOW) == full[:n]


def test_the_plain_global_policy_cannot_become_a_segment_policy(db, org):
    """Clearing its caps and adding a grade would leave no plain global policy: every cap and
    limit would fall back to the built-in defaults. Refused, naming the condition; a segment
    of the global level is a policy of its own."""
    plain = db.session.execute(select(Policy).where(
        Policy.scope == "global", Policy.segment_key == "")).scalar_one()
    cleared = {k: None for k in ("max_customers", "count_won", "max_locked",
                                 "daily_claim_limit", "cooldown_days", "lead_max",
                                 "lead_daily_claim_limit", "lead_reclaim_no_followup_days",
                                 "call_min_talk_seconds")}
    with pytest.raises(ValidationFailed) as exc:
        policy_config.update_policy(org.admin, plain.id, dict(cleared, segment_grade="A"))
    assert exc.value.fields == {"segment_grade": "全局默认策略不能设置分群条件；请为该分群另建一条全局策略"}
    db.session.expire_all()
    again = db.session.get(Policy, plain.id)
    assert (again.segment_key, again.segment_grade) == ("", None)
    assert again.max_customers is not None
    assert policies.effective_policy(org.rep.id)["max_customers"].source != "built-in"
    made = add(org, scope="global", segment_grade="A", reclaim_no_followup_days=60)
    assert made.segment_key == "grade=A"


def _opportunity_meanwhile(db, org, cid):
    from app.models import Opportunity, OpportunityStage

    stage = db.session.execute(select(OpportunityStage).where(
        OpportunityStage.name == "方案报价")).scalar_one()  # protects from reclaim
    db.session.add(Opportunity(customer_id=cid, title="新商机", amount=1000, stage_id=stage.id,
                               status="open", created_at=NOW, updated_at=NOW))


def _transfer_meanwhile(db, org, cid):
    db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                       .values(owner_id=org.rep2.id))  # acquired_at left as it was


MEANWHILE = {
    # a segment attribute on the ownership row: grade A is 180 days
    "grade": lambda db, org, cid: db.session.execute(
        update(Ownership).where(Ownership.customer_id == cid).values(grade="A")),
    # a segment attribute on the customer row: the east department's 硬件 is 60 days
    "product_line": lambda db, org, cid: db.session.execute(
        update(Customer).where(Customer.id == cid).values(product_line="硬件")),
    # the owner's own policy, set after the scan: 60 days
    "policy": lambda db, org, cid: add(org, scope="user", user_id=org.rep.id,
                                       reclaim_no_followup_days=60),
    "opportunity": _opportunity_meanwhile,
    "transfer": _transfer_meanwhile,
    "follow_up": lambda db, org, cid: db.session.execute(
        update(Ownership).where(Ownership.customer_id == cid).values(
            last_followup_at=NOW - DAY)),
}


@pytest.mark.parametrize("change", sorted(MEANWHILE))
def test_a_change_between_the_scan_and_the_update_keeps_the_customer(db, org, monkeypatch,
                                                                      change):
    """The sweep's UPDATE re-checks the rule with the periods its scan resolved: a change
    to what they were resolved from (segment attributes, policies), or to the ownership
    (follow-up, transfer), or a protecting opportunity, landing between the scan and the
    UPDATE keeps the customer; the other due customer of the same chunk goes, logged with
    the period it was resolved under."""
    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=180,
        reclaim_no_deal_days=365)
    add(org, scope="department", department_id=org.east.id, segment_product_line="硬件",
        reclaim_no_followup_days=60)
    kept = owned(db, org.rep, "扫描后变化", 40, grade="B", product_line="软件")
    goes = owned(db, org.rep2, "照常回收", 40, grade="B", product_line="软件")
    original, calls = reclaim._lock_sweep, {"n": 0}

    def change_meanwhile():
        calls["n"] += 1
        if calls["n"] == 1:
            MEANWHILE[change](db, org, kept)
            db.session.commit()
        original()
    monkeypatch.setattr(reclaim, "_lock_sweep", change_meanwhile)
    result = reclaim.sweep(now=NOW)
    assert calls["n"] == 1
    assert result.reclaimed == 1
    assert holder_of(db, kept)[0] == (org.rep2.id if change == "transfer" else org.rep.id)
    assert holder_of(db, goes) == (None, org.pool.id)
    events = db.session.execute(select(OwnershipEvent.customer_id, OwnershipEvent.rule,
                                       OwnershipEvent.from_owner_id)
                                .where(OwnershipEvent.kind == "reclaimed")).all()
    assert [tuple(e) for e in events] == [(goes, "reclaim:no_followup:30d", org.rep2.id)]


def test_the_rule_named_by_the_event_is_the_one_due_at_the_update(db, org, monkeypatch):
    """Due by both rules at the scan, followed up before the UPDATE: still due by the no-deal
    days, so it goes, and its event names the no-deal rule."""
    cid = owned(db, org.rep, "两条规则", 100)
    original = reclaim._lock_sweep

    def follow_up_meanwhile():
        db.session.execute(update(Ownership).where(Ownership.customer_id == cid).values(
            last_followup_at=NOW - DAY))
        db.session.commit()
        original()
    monkeypatch.setattr(reclaim, "_lock_sweep", follow_up_meanwhile)
    result = reclaim.sweep(now=NOW)
    assert (result.reclaimed, dict(result.by_rule)) == (1, {"no_deal": 1})
    assert db.session.execute(select(OwnershipEvent.rule, OwnershipEvent.reason).where(
        OwnershipEvent.customer_id == cid, OwnershipEvent.kind == "reclaimed")).one() == (
        "reclaim:no_deal:90d", "领取后超过 90 天未成交，自动回收")


def test_a_statement_joins_the_record_only_for_a_condition_that_can_apply(db, org):
    """A lead policy on the source does not make the customers' rule join the customer table
    (that join was 70 ms of a rep's due list at 1M customers), nor a customer policy the
    leads'; a customer policy on the product line does."""
    lead_policy = add(org, scope="global", segment_record_type="lead", segment_source="web_form",
                      lead_reclaim_no_followup_days=5)
    snap = segments.snapshot()
    assert not segments.needs_columns(snap, ("product_line", "source"), reclaim.CUSTOMER_FIELDS)
    assert segments.needs_columns(snap, ("source",), ("lead_reclaim_no_followup_days",))
    db.session.delete(lead_policy)
    db.session.commit()
    add(org, scope="global", segment_product_line="硬件", reclaim_no_followup_days=20)
    snap = segments.snapshot()
    assert segments.needs_columns(snap, ("product_line", "source"), reclaim.CUSTOMER_FIELDS)
    assert not segments.needs_columns(snap, ("source",), ("lead_reclaim_no_followup_days",))
    rule = str(reclaim.customer_rule(NOW).due.compile())
    assert "customer.product_line" in rule


def test_the_workbench_cut_is_by_the_exact_deadline_whatever_else_is_protected(db, org):
    """Two customers both "3 days left" (2.1 and 2.9 days): a list of one shows the sooner,
    and a protecting opportunity on an unrelated customer (one more row read past the cut)
    does not change that."""
    from app.models import Opportunity, OpportunityStage
    from app.services import workbench

    add(org, scope="global", segment_grade="A", reclaim_no_followup_days=40,
        warn_before_days=10)
    later = owned(db, org.rep, "B级27.1天", 27.1, grade="B")    # 2.9 days left
    sooner = owned(db, org.rep, "B级27.9天", 27.9, grade="B")   # 2.1 days left
    assert later < sooner  # the id alone would pick `later`
    first = workbench.about_to_be_reclaimed(org.rep, limit=1, now=NOW)
    assert [(r["id"], r["days_left"]) for r in first] == [(sooner, 3)]
    assert [r["id"] for r in workbench.about_to_be_reclaimed(org.rep, now=NOW)] == [
        sooner, later]
    elsewhere = owned(db, org.rep, "A级5天", 5, grade="A")      # not due at all
    stage = db.session.execute(select(OpportunityStage).where(
        OpportunityStage.name == "方案报价")).scalar_one()
    db.session.add(Opportunity(customer_id=elsewhere, title="无关的商机", amount=1000,
                               stage_id=stage.id, status="open", created_at=NOW - DAY,
                               updated_at=NOW - DAY))
    db.session.flush()
    assert workbench.about_to_be_reclaimed(org.rep, limit=1, now=NOW) == first
