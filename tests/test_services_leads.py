"""Leads (app.services.leads): entry with dedupe, lead pools, claim / release / assign under the
lead cap and daily limit, follow-ups, invalidation, the reclaim sweep, scope and masking,
and that customer pool code never sees a lead pool."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from app.models import Lead, LeadEvent, LeadOwnership, Policy, PoolMember
from app.models.customer import utcnow
from app.services import leads, ownership, pool as pool_service, pool_admin
from app.services.errors import (CapExceeded, Conflict, DailyLimitReached, Duplicate,
                                 DuplicateWarning, NotInPool, OutOfScope, PermissionDenied,
                                 ValidationFailed)


@pytest.fixture
def lead_pool(db, org):
    """The default lead pool, with the sales centre (every sales department) as members."""
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    return pool


def pool_lead(org, name="宁波海曙贸易有限公司", **data):
    return leads.create_lead(org.staff, dict({"company_name": name}, **data))


def events(lead_id):
    from app.extensions import db

    return [e.kind for e in db.session.execute(select(LeadEvent).where(
        LeadEvent.lead_id == lead_id).order_by(LeadEvent.id)).scalars()]


def holder(lead_id):
    from app.extensions import db

    o = db.session.get(LeadOwnership, lead_id)
    db.session.refresh(o)
    return o.owner_id, o.pool_id


def user_policy(db, user, **values):
    db.session.add(Policy(scope="user", user_id=user.id, **values))
    db.session.commit()


# --- pools --------------------------------------------------------------------------------
def test_each_record_type_has_its_own_default_pool(db, org):
    customer_default = ownership.default_pool()
    lead_default = leads.default_lead_pool()
    assert customer_default.record_type == "customer" and lead_default.record_type == "lead"
    assert customer_default.id != lead_default.id


def test_customer_code_never_sees_a_lead_pool(db, org):
    lead_pool_id = leads.default_lead_pool().id
    db.session.add(PoolMember(pool_id=lead_pool_id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    assert lead_pool_id not in pool_service.member_pool_ids(org.admin)
    assert lead_pool_id not in pool_service.member_pool_ids(org.rep)
    assert lead_pool_id not in pool_service.browsable_pool_ids(org.staff)
    assert lead_pool_id not in pool_admin.admin_pool_ids(org.rep)
    assert lead_pool_id in pool_admin.admin_pool_ids(org.rep, "lead")
    with pytest.raises(ValidationFailed) as exc:
        pool_service.release_to_pool(org.rep, [org.c_rep.id], "不跟了", lead_pool_id)
    assert "pool_id" in exc.value.fields
    with pytest.raises(ValidationFailed):
        pool_admin.move_to_pool(org.admin, [org.c_pool.id], lead_pool_id)
    from app.services import customers

    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.admin, {"name": "错放客户有限公司"}, pool_id=lead_pool_id)
    assert "pool" in exc.value.fields


def test_lead_code_never_takes_a_customer_pool(db, org):
    with pytest.raises(ValidationFailed) as exc:
        leads.create_lead(org.staff, {"company_name": "错放线索"}, pool_id=org.pool.id)
    assert exc.value.fields == {"pool_id": "线索公海不存在"}


def test_a_new_default_lead_pool_leaves_the_customer_default_alone(db, org):
    new = pool_admin.create_pool(org.admin, {"name": "华东线索池", "record_type": "lead",
                                             "is_default": True})
    assert leads.default_lead_pool().id == new.id
    assert ownership.default_pool().id == org.pool.id


def test_a_pool_holding_leads_keeps_its_record_type(db, org, lead_pool):
    other = pool_admin.create_pool(org.admin, {"name": "展会线索", "record_type": "lead"})
    leads.create_lead(org.staff, {"company_name": "展会客户"}, pool_id=other.id)
    with pytest.raises(ValidationFailed) as exc:
        pool_admin.update_pool(org.admin, other.id, {"record_type": "customer"})
    assert "record_type" in exc.value.fields
    with pytest.raises(Conflict) as exc:
        pool_admin.delete_pool(org.admin, other.id)
    assert exc.value.code == "pool_not_empty"


# --- create -------------------------------------------------------------------------------
def test_a_rep_owns_the_lead_they_create(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "王五", "mobile": "13700137000",
                                       "source": "exhibition"})
    assert holder(lead.id) == (org.rep.id, None)
    assert (lead.status, lead.mobile_e164, lead.source) == ("new", "+8613700137000",
                                                            "exhibition")
    assert events(lead.id) == ["created"]


def test_staff_put_a_lead_in_the_default_lead_pool(db, org):
    lead = pool_lead(org)
    assert holder(lead.id) == (None, leads.default_lead_pool().id)


def test_a_rep_cannot_name_another_owner(db, org):
    with pytest.raises(ValidationFailed) as exc:
        leads.create_lead(org.rep, {"person_name": "王五"}, owner_id=org.rep2.id)
    assert "owner_id" in exc.value.fields


def test_a_manager_names_an_owner_in_scope_only(db, org):
    lead = leads.create_lead(org.manager, {"person_name": "赵六"}, owner_id=org.rep.id)
    assert holder(lead.id) == (org.rep.id, None)
    with pytest.raises(ValidationFailed):
        leads.create_lead(org.manager, {"person_name": "赵七"}, owner_id=org.rep_north.id)


def test_the_auditor_cannot_create(db, org):
    with pytest.raises(PermissionDenied):
        leads.create_lead(org.auditor, {"person_name": "王五"})


@pytest.mark.parametrize("data, field", [
    ({}, "person_name"),
    ({"person_name": "王五", "source": "tv"}, "source"),
    ({"person_name": "王五", "mobile": "12"}, "mobile"),
    ({"person_name": "王五", "mobile": "138****8000"}, "mobile"),
    ({"person_name": "王\x00五"}, "person_name"),
    ({"person_name": "王" * 101}, "person_name"),
    ({"person_name": "王五", "owner": 3}, "owner"),
    ({"person_name": ["王五"]}, "person_name"),
])
def test_bad_input_names_the_field(db, org, data, field):
    with pytest.raises(ValidationFailed) as exc:
        leads.create_lead(org.rep, data)
    assert field in exc.value.fields


def test_creating_over_the_lead_cap_is_refused_with_the_numbers(db, org):
    user_policy(db, org.rep, lead_max=1)
    leads.create_lead(org.rep, {"person_name": "甲"})
    with pytest.raises(CapExceeded) as exc:
        leads.create_lead(org.rep, {"person_name": "乙"})
    assert exc.value.code == "cap_exceeded"
    assert (exc.value.details["cap"], exc.value.details["owned"],
            exc.value.details["adding"]) == (1, 1, 1)
    assert exc.value.message == "超出线索上限：上限 1，已持有 1，本次新增 1"


# --- dedupe -------------------------------------------------------------------------------
def test_a_lead_with_a_customers_mobile_is_blocked_naming_the_holder(db, org):
    with pytest.raises(Duplicate) as exc:
        leads.create_lead(org.rep2, {"person_name": "李四", "mobile": "138-0013-8000"})
    match = exc.value.details["matches"][0]
    assert (match["record"], match["id"], match["rule"]) == ("customer", org.c_rep.id, "mobile")
    assert "杭州云帆科技有限公司" in exc.value.message and "测试" in exc.value.message
    assert "13800138000" not in exc.value.message


def test_a_lead_with_another_leads_mobile_is_blocked(db, org, lead_pool):
    first = pool_lead(org, mobile="13600136000")
    with pytest.raises(Duplicate) as exc:
        leads.create_lead(org.rep, {"person_name": "钱七", "mobile": "13600136000"})
    match = exc.value.details["matches"][0]
    assert (match["record"], match["id"]) == ("lead", first.id)
    assert "线索公海" in match["holder"]


def test_a_similar_company_warns_and_saves_when_confirmed(db, org):
    with pytest.raises(DuplicateWarning):
        leads.create_lead(org.rep2, {"company_name": "杭州云帆科技有限公司"})
    lead = leads.create_lead(org.rep2, {"company_name": "杭州云帆科技有限公司"},
                             confirm_duplicates=True)
    assert holder(lead.id) == (org.rep2.id, None)


# --- claim --------------------------------------------------------------------------------
def test_a_member_claims_a_pool_lead(db, org, lead_pool):
    lead = pool_lead(org)
    assert leads.claim_leads(org.rep, [lead.id]) == [lead.id]
    assert holder(lead.id) == (org.rep.id, None)
    assert events(lead.id) == ["created", "claimed"]


def test_a_non_member_cannot_claim(db, org):
    lead = pool_lead(org)
    with pytest.raises(OutOfScope) as exc:
        leads.claim_leads(org.rep, [lead.id])
    assert exc.value.code == "not_pool_member"


def test_staff_and_auditors_do_not_claim(db, org, lead_pool):
    lead = pool_lead(org)
    for user in (org.staff, org.auditor):
        with pytest.raises(PermissionDenied):
            leads.claim_leads(user, [lead.id])


def test_an_owned_lead_is_not_in_the_pool(db, org, lead_pool):
    lead = leads.create_lead(org.rep2, {"person_name": "已有人"})
    with pytest.raises(NotInPool) as exc:
        leads.claim_leads(org.rep, [lead.id])
    assert exc.value.code == "not_in_pool" and exc.value.details["lead_ids"] == [lead.id]


def test_the_lead_daily_claim_limit(db, org, lead_pool):
    user_policy(db, org.rep, lead_daily_claim_limit=1)
    a, b = pool_lead(org, "甲公司"), pool_lead(org, "乙公司")
    leads.claim_leads(org.rep, [a.id])
    with pytest.raises(DailyLimitReached) as exc:
        leads.claim_leads(org.rep, [b.id])
    assert exc.value.code == "daily_limit"
    assert exc.value.message == "超出每日线索领取上限：上限 1，今日已领取 1，本次领取 1"
    assert holder(b.id)[0] is None


def test_the_lead_cap_on_claim_is_all_or_nothing(db, org, lead_pool):
    user_policy(db, org.rep, lead_max=1)
    a, b = pool_lead(org, "甲公司"), pool_lead(org, "乙公司")
    with pytest.raises(CapExceeded) as exc:
        leads.claim_leads(org.rep, [a.id, b.id])
    assert exc.value.message == "超出线索上限：上限 1，已持有 0，本次领取 2"
    assert holder(a.id)[0] is None and holder(b.id)[0] is None


def test_the_lead_policy_inherits_from_the_department(db, org):
    db.session.add(Policy(scope="department", department_id=org.east.id, lead_max=7))
    db.session.commit()
    from app.services.policies import effective_policy

    policy = effective_policy(org.rep.id)
    assert policy["lead_max"].value == 7 and policy["lead_max"].source.startswith("department")
    assert policy["lead_daily_claim_limit"].value == 50


# --- release and assign -------------------------------------------------------------------
def test_release_returns_the_lead_to_the_pool_it_came_from(db, org, lead_pool):
    other = pool_admin.create_pool(org.admin, {"name": "展会线索", "record_type": "lead"})
    db.session.add(PoolMember(pool_id=other.id, user_id=org.rep.id))
    db.session.commit()
    lead = leads.create_lead(org.staff, {"company_name": "展会客户"}, pool_id=other.id)
    leads.claim_leads(org.rep, [lead.id])
    leads.release_leads(org.rep, [lead.id], "不是目标客户")
    assert holder(lead.id) == (None, other.id)
    assert events(lead.id) == ["created", "claimed", "released"]


def test_release_needs_a_reason_and_the_owner_or_their_manager(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "孙八"})
    with pytest.raises(ValidationFailed) as exc:
        leads.release_leads(org.rep, [lead.id], "  ")
    assert "reason" in exc.value.fields
    with pytest.raises(OutOfScope):
        leads.release_leads(org.rep2, [lead.id], "抢过来")
    with pytest.raises(OutOfScope):
        leads.release_leads(org.manager_north, [lead.id], "别人的")
    leads.release_leads(org.manager, [lead.id], "团队调整")
    assert holder(lead.id) == (None, leads.default_lead_pool().id)


def test_assign_by_a_manager_within_scope_and_the_cap(db, org, lead_pool):
    lead = pool_lead(org)
    with pytest.raises(PermissionDenied):
        leads.assign_leads(org.rep, [lead.id], org.rep2.id)
    with pytest.raises(ValidationFailed):
        leads.assign_leads(org.manager, [lead.id], org.rep_north.id)
    user_policy(db, org.rep2, lead_max=0)
    with pytest.raises(CapExceeded) as exc:
        leads.assign_leads(org.manager, [lead.id], org.rep2.id)
    assert exc.value.message == "超出线索上限：上限 0，已持有 0，本次分配 1"
    leads.assign_leads(org.manager, [lead.id], org.rep.id)
    assert holder(lead.id) == (org.rep.id, None)
    leads.assign_leads(org.admin, [lead.id], org.rep_north.id, "跨区支援")
    assert holder(lead.id) == (org.rep_north.id, None)
    assert events(lead.id) == ["created", "assigned", "assigned"]


def test_a_manager_cannot_assign_a_lead_of_another_team(db, org):
    lead = leads.create_lead(org.rep_north, {"person_name": "北方线索"})
    with pytest.raises(OutOfScope):
        leads.assign_leads(org.manager, [lead.id], org.rep.id)


# --- follow-up, invalid, edit -------------------------------------------------------------
def test_a_follow_up_moves_a_new_lead_to_working_and_restarts_the_clock(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "周九"})
    leads.log_lead_followup(org.rep, lead.id, {"channel": "call", "content": "有意向"})
    db.session.refresh(lead)
    assert lead.status == "working" and lead.ownership.last_followup_at is not None
    with pytest.raises(OutOfScope):
        leads.log_lead_followup(org.rep2, lead.id, {"channel": "call", "content": "x"})
    with pytest.raises(ValidationFailed) as exc:
        leads.log_lead_followup(org.rep, lead.id, {"channel": "fax", "content": ""})
    assert set(exc.value.fields) == {"channel", "content"}


def test_invalid_needs_a_reason_and_frees_the_cap(db, org):
    user_policy(db, org.rep, lead_max=1)
    lead = leads.create_lead(org.rep, {"person_name": "吴十"})
    with pytest.raises(ValidationFailed):
        leads.mark_invalid(org.rep, lead.id, "")
    leads.mark_invalid(org.rep, lead.id, "空号")
    db.session.refresh(lead)
    assert (lead.status, lead.invalid_reason) == ("invalid", "空号")
    assert events(lead.id) == ["created", "invalidated"]
    leads.create_lead(org.rep, {"person_name": "郑十一"})  # the invalid one is not counted
    with pytest.raises(Conflict) as exc:
        leads.log_lead_followup(org.rep, lead.id, {"channel": "call", "content": "再试"})
    assert exc.value.code == "lead_closed"


def test_edit_keeps_a_name_and_rechecks_duplicates(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "冯十二", "company_name": "冯氏商行"})
    leads.update_lead(org.rep, lead.id, {"person_name": None, "city": "宁波"})
    with pytest.raises(ValidationFailed):
        leads.update_lead(org.rep, lead.id, {"company_name": ""})
    with pytest.raises(Duplicate):
        leads.update_lead(org.rep, lead.id, {"mobile": "13800138000"})
    with pytest.raises(PermissionDenied):
        leads.update_lead(org.auditor, lead.id, {"city": "杭州"})
    with pytest.raises(OutOfScope):
        leads.update_lead(org.rep2, lead.id, {"city": "杭州"})


# --- scope and masking --------------------------------------------------------------------
def _visible(user):
    from app.extensions import db

    return set(db.session.execute(select(Lead.id).where(leads.lead_scope_clause(user)))
               .scalars())


def test_scope_follows_the_owner_like_customers(db, org, lead_pool):
    mine = leads.create_lead(org.rep, {"person_name": "本人"})
    team = leads.create_lead(org.rep2, {"person_name": "同组"})
    north = leads.create_lead(org.rep_north, {"person_name": "华北"})
    pooled = pool_lead(org)
    assert _visible(org.rep) == {mine.id, pooled.id}
    assert _visible(org.manager) == {mine.id, team.id, pooled.id}
    for user in (org.admin, org.staff, org.auditor):
        assert _visible(user) == {mine.id, team.id, north.id, pooled.id}
    with pytest.raises(OutOfScope):
        leads.get_lead(org.rep, north.id)


def test_pool_leads_are_invisible_to_non_members(db, org):
    pooled = pool_lead(org)
    assert pooled.id not in _visible(org.rep)


def test_contact_details_are_masked_for_pool_browsers_and_auditors(db, org, lead_pool):
    lead = pool_lead(org, mobile="13500135000", email="zhang@qq.com")
    rep_rule, auditor_rule = leads.contact_rule(org.rep), leads.contact_rule(org.auditor)
    assert leads.shown_field(lead, "mobile", rep_rule) == "135****5000"
    assert leads.shown_field(lead, "email", auditor_rule) == "z***@qq.com"
    assert leads.shown_field(lead, "mobile", leads.contact_rule(org.staff)) == "13500135000"
    leads.claim_leads(org.rep, [lead.id])
    db.session.refresh(lead)
    assert leads.shown_field(lead, "mobile", leads.contact_rule(org.rep)) == "13500135000"
    assert leads.shown_field(lead, "mobile", leads.contact_rule(org.manager)) == "13500135000"


# --- reclaim ------------------------------------------------------------------------------
def test_the_sweep_returns_neglected_leads_to_their_pool(db, org, lead_pool):
    user_policy(db, org.rep, lead_reclaim_no_followup_days=10)
    old = leads.create_lead(org.rep, {"person_name": "久未跟进"})
    fresh = leads.create_lead(org.rep, {"person_name": "刚跟进"})
    followed = leads.create_lead(org.rep, {"person_name": "跟进过"})
    closed = leads.create_lead(org.rep, {"person_name": "无效的"})
    long_ago = utcnow() - dt.timedelta(days=11)
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id.in_(
        [old.id, followed.id, closed.id])).values(acquired_at=long_ago))
    db.session.commit()
    leads.log_lead_followup(org.rep, followed.id, {"channel": "call", "content": "联系上了"})
    leads.mark_invalid(org.rep, closed.id, "重复")
    preview = leads.reclaim_sweep(dry_run=True)
    assert preview.reclaimed == 1 and holder(old.id) == (org.rep.id, None)
    result = leads.reclaim_sweep()
    assert result.summary() == {"dry_run": False, "reclaimed": 1, "owners": 1}
    assert holder(old.id) == (None, leads.default_lead_pool().id)
    assert holder(fresh.id) == holder(followed.id) == holder(closed.id) == (org.rep.id, None)
    assert events(old.id) == ["created", "reclaimed"]
    assert leads.reclaim_sweep().reclaimed == 0  # idempotent


# --- conversion ---------------------------------------------------------------------------
def test_convert_creates_a_customer_and_contact_owned_by_the_leads_owner(db, org):
    lead = leads.create_lead(org.rep, {"company_name": "温州瓯江机械有限公司",
                                       "person_name": "林经理", "mobile": "13300133000",
                                       "source": "referral"})
    result = leads.convert_lead(org.rep, lead.id)
    assert result["outcome"] == "created"
    from app.models import Contact, Customer

    customer = db.session.get(Customer, result["customer_id"])
    assert (customer.name, customer.ownership.owner_id) == ("温州瓯江机械有限公司", org.rep.id)
    contact = db.session.execute(select(Contact).where(
        Contact.customer_id == customer.id)).scalar_one()
    assert (contact.name, contact.mobile_e164) == ("林经理", "+8613300133000")
    db.session.refresh(lead)
    assert (lead.status, lead.converted_customer_id, lead.converted_by_id) == (
        "converted", customer.id, org.rep.id)
    assert events(lead.id)[-1] == "converted"
    with pytest.raises(Conflict) as exc:
        leads.convert_lead(org.rep, lead.id)
    assert exc.value.code == "already_converted"


def test_convert_over_the_customer_cap_is_refused_or_goes_to_a_pool(db, org):
    user_policy(db, org.rep, max_customers=1)  # rep already holds c_rep
    lead = leads.create_lead(org.rep, {"person_name": "陈一", "mobile": "13100131000"})
    with pytest.raises(CapExceeded) as exc:
        leads.convert_lead(org.rep, lead.id)
    assert exc.value.code == "cap_exceeded"
    assert (exc.value.details["cap"], exc.value.details["owned"]) == (1, 1)
    db.session.refresh(lead)
    assert lead.status == "new"
    result = leads.convert_lead(org.rep, lead.id, into_pool=True)
    assert result["outcome"] == "created_in_pool"
    from app.models import Customer

    assert db.session.get(Customer, result["customer_id"]).ownership.pool_id == org.pool.id


def test_convert_links_to_another_reps_customer_and_tells_them(db, org):
    lead = leads.create_lead(org.rep2, {"company_name": "杭州云帆科技有限公司"},
                             confirm_duplicates=True)
    with pytest.raises(DuplicateWarning):
        leads.convert_lead(org.rep2, lead.id)
    # A blocking match (the customer's mobile on the lead) links instead.
    db.session.execute(update(Lead).where(Lead.id == lead.id).values(
        mobile="13800138000", mobile_e164="+8613800138000"))
    db.session.commit()
    result = leads.convert_lead(org.rep2, lead.id)
    assert (result["outcome"], result["customer_id"]) == ("linked_other", org.c_rep.id)
    from app.models import Notification

    assert db.session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == org.rep.id, Notification.kind == "lead_linked")).scalar() == 1
    db.session.refresh(org.c_rep)
    assert org.c_rep.ownership.owner_id == org.rep.id  # nothing changed hands


def test_convert_claims_a_pool_customer_under_the_claim_rules(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    lead = leads.create_lead(org.rep, {"person_name": "物流对接人", "phone": "021-62345679"})
    db.session.execute(update(Lead).where(Lead.id == lead.id).values(
        phone="021-62345678", phone_e164="+862162345678"))
    db.session.commit()
    result = leads.convert_lead(org.rep, lead.id)
    assert (result["outcome"], result["customer_id"]) == ("claimed", org.c_pool.id)
    db.session.refresh(org.c_pool)
    assert org.c_pool.ownership.owner_id == org.rep.id


def test_convert_links_the_converters_own_customer(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "自己的", "email": "x@y.cn"})
    db.session.execute(update(Lead).where(Lead.id == lead.id).values(
        mobile="13800138000", mobile_e164="+8613800138000"))
    db.session.commit()
    assert leads.convert_lead(org.rep, lead.id)["outcome"] == "linked"


def test_only_writers_in_scope_convert(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "范二"})
    for user in (org.rep2, org.manager_north):
        with pytest.raises(OutOfScope):
            leads.convert_lead(user, lead.id)
    with pytest.raises(PermissionDenied):
        leads.convert_lead(org.auditor, lead.id)


# --- marketing never owns a lead -----------------------------------------------------------------
def _marketing_refusal(org) -> dict:
    return {"owner": f"{org.marketing.username} 是市场专员，不能负责客户或线索"}


def test_a_lead_is_never_created_for_a_marketing_owner(db, org, api):
    with pytest.raises(ValidationFailed) as exc:
        leads.create_lead(org.admin, {"person_name": "赵六", "mobile": "13711114444"},
                          owner_id=org.marketing.id)
    assert exc.value.fields == _marketing_refusal(org)
    db.session.rollback()
    for who, mobile in (("admin", "13711114445"), ("staff1", "13711114446")):
        resp = api(who)("POST", "/api/v1/leads/", json={
            "person_name": "孙八", "mobile": mobile, "owner_id": org.marketing.id})
        assert resp.status_code == 400, (who, resp.get_data(as_text=True))
        assert resp.get_json()["fields"] == _marketing_refusal(org)
    assert db.session.execute(select(func.count()).select_from(LeadOwnership).where(
        LeadOwnership.owner_id == org.marketing.id)).scalar_one() == 0


def test_leads_are_never_assigned_or_handed_to_marketing(db, org):
    lead = leads.create_lead(org.admin, {"person_name": "钱七", "mobile": "13711113333"},
                             pool_id=leads.default_lead_pool().id)
    with pytest.raises(ValidationFailed) as exc:
        leads.assign_leads(org.admin, [lead.id], org.marketing.id, "市场跟进")
    assert exc.value.fields == _marketing_refusal(org)
    db.session.rollback()
    db.session.expire_all()
    own = db.session.get(LeadOwnership, lead.id)
    assert (own.owner_id, own.pool_id) == (None, leads.default_lead_pool().id)


def test_leads_are_never_imported_to_marketing(db, org):
    from app.extensions import appbuilder
    from app.security import ROLE_MARKETING, ROLE_REP
    from app.services import import_mapping, import_run

    data = "公司名称,联系人,手机\n宁波甬江机械有限公司,陈一,13600136101\n".encode()
    batch = import_mapping.upload(org.staff, "线索.csv", data, "lead")
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.staff, batch.id, batch.mapping, "owner", None,
                                 org.marketing.id)
    assert exc.value.fields == {"owner": f"{org.marketing.display_name} 是市场专员，不能负责客户或线索"}
    # A rep configured as the owner who moves to marketing before the run: the run's lock
    # refuses, nothing lands with them.
    rep = org.rep2
    import_mapping.configure(org.staff, batch.id, batch.mapping, "owner", None, rep.id)
    rep.roles = [appbuilder.sm.find_role(ROLE_MARKETING)]
    db.session.commit()
    with pytest.raises(ValidationFailed) as exc:
        import_run.run(batch.id)
    assert exc.value.fields == {"owner": "rep2 是市场专员，不能负责客户或线索"}
    db.session.expire_all()
    done = db.session.get(type(batch), batch.id)
    assert (done.status, done.inserted) == ("failed", 0) and "是市场专员" in done.error
    assert db.session.execute(select(func.count()).select_from(LeadOwnership).where(
        LeadOwnership.owner_id == rep.id)).scalar_one() == 0
    rep.roles = [appbuilder.sm.find_role(ROLE_REP)]
    db.session.commit()
