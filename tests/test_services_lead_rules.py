"""Assignment rules that place new leads (issue 15 §1): the rule's record type, its lead
conditions and lead pool, each strategy with exact owners, reps on leave and at the lead cap
passed over (the exact fallback note), the event's rule label, import by the rules, the
capture form left alone, the rule form, and the lead cap under concurrent placements."""
from __future__ import annotations

import datetime as dt
import sys
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.models import (Absence, AssignmentRule, ImportBatch, Lead, LeadEvent, LeadOwnership,
                        Policy, Pool, PoolMember, User)
from app.services import absences, customers, import_mapping, import_run, leads, rules
from app.services.caps import Room
from app.services.errors import ValidationFailed
from app.services.times import local_today
from tests.helpers import holder_of
from tests.test_lead_capture import GOOD, form, post  # noqa: F401 - the capture fixture

TODAY = local_today()  # set again for each test (_today)


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """TODAY is the business day when the test starts: a date taken once at import went
    stale when the suite ran across midnight in Shanghai (16:00 UTC)."""
    monkeypatch.setattr(sys.modules[__name__], "TODAY", local_today())


def add_rule(db, **kw):
    rule = AssignmentRule(**dict({"record_type": "lead"}, **kw))
    db.session.add(rule)
    db.session.commit()
    return rule


def add_lead_pool(db, name="展会线索池") -> Pool:
    pool = Pool(name=name, record_type="lead")
    db.session.add(pool)
    db.session.commit()
    return pool


def staff_lead(org, name, **data):
    return leads.create_lead(org.staff, dict({"company_name": name}, **data))


def holder(db, lead_id):
    o = db.session.get(LeadOwnership, lead_id)
    db.session.refresh(o)
    return o.owner_id, o.pool_id


def created_event(db, lead_id) -> LeadEvent:
    return db.session.execute(select(LeadEvent).where(
        LeadEvent.lead_id == lead_id, LeadEvent.kind == "created")).scalar_one()


def lead_cap(db, department, cap):
    db.session.add(Policy(scope="department", department_id=department.id, lead_max=cap))
    db.session.commit()


def on_leave(user):
    absences.create_absence(user, user.id, TODAY, TODAY + dt.timedelta(days=2), None)


# --- placement -------------------------------------------------------------------------------
def test_the_first_matching_lead_rule_places_a_staff_entered_lead(db, org):
    add_rule(db, name="浙江线索给 rep2", position=10, province="浙江", target_type="user",
             target_user_id=org.rep2.id)
    add_rule(db, name="浙江展会线索给华北", position=5, province="浙江", source="exhibition",
             target_type="user", target_user_id=org.rep_north.id)
    first = staff_lead(org, "宁波展会线索有限公司", province="浙江", source="exhibition")
    assert holder(db, first.id) == (org.rep_north.id, None)
    second = staff_lead(org, "杭州电话线索有限公司", province="浙江", source="phone")
    assert holder(db, second.id) == (org.rep2.id, None)
    event = created_event(db, second.id)
    assert (event.rule, event.to_owner_id, event.to_pool_id, event.reason) == (
        "rule:浙江线索给 rep2", org.rep2.id, None, "新建线索")
    assert db.session.get(LeadOwnership, second.id).acquired_how == "rule-assigned"
    third = staff_lead(org, "南京线索有限公司", province="江苏")
    assert holder(db, third.id) == (None, leads.default_lead_pool().id)  # no rule: as before
    assert created_event(db, third.id).rule is None


def test_lead_rules_and_customer_rules_keep_to_their_own_records(db, org):
    add_rule(db, name="线索：全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    add_rule(db, name="客户：全部给华北", record_type="customer", target_type="user",
             target_user_id=org.rep_north.id)
    lead = staff_lead(org, "只看线索规则有限公司")
    assert holder(db, lead.id) == (org.rep2.id, None)
    customer = customers.create_customer(org.staff, {"name": "只看客户规则有限公司"})
    assert holder_of(db, customer.id) == (org.rep_north.id, None)
    assert [r.name for r in rules.active_rules()] == ["客户：全部给华北"]
    assert [r.name for r in rules.active_rules("lead")] == ["线索：全部给 rep2"]


def test_a_rep_or_manager_entering_a_lead_keeps_it(db, org):
    add_rule(db, name="全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    mine = leads.create_lead(org.rep, {"company_name": "我自己找到的线索"})
    assert holder(db, mine.id) == (org.rep.id, None)
    managers = leads.create_lead(org.manager, {"company_name": "经理找到的线索"})
    assert holder(db, managers.id) == (org.manager.id, None)
    assert created_event(db, mine.id).rule is None


def test_staff_naming_a_pool_or_owner_is_not_overridden(db, org):
    add_rule(db, name="全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    pool = add_lead_pool(db)
    in_pool = leads.create_lead(org.staff, {"company_name": "指定公海线索"}, pool_id=pool.id)
    assert holder(db, in_pool.id) == (None, pool.id)
    named = leads.create_lead(org.staff, {"company_name": "指定负责人线索"}, owner_id=org.rep.id)
    assert holder(db, named.id) == (org.rep.id, None)


def test_a_pool_target_sends_the_lead_to_that_lead_pool(db, org):
    pool = add_lead_pool(db)
    add_rule(db, name="展会进展会池", source="exhibition", target_type="pool",
             target_pool_id=pool.id)
    lead = staff_lead(org, "展会来的线索有限公司", source="exhibition")
    assert holder(db, lead.id) == (None, pool.id)
    event = created_event(db, lead.id)
    assert (event.rule, event.to_pool_id) == ("rule:展会进展会池", pool.id)
    assert db.session.get(LeadOwnership, lead.id).acquired_how == "created"


def test_round_robin_over_the_departments_reps(db, org):
    add_rule(db, name="华东线索轮流", target_type="department", target_department_id=org.east.id,
             strategy="round_robin")
    got = [holder(db, staff_lead(org, f"轮流线索{i}有限公司").id)[0] for i in range(4)]
    assert got == [org.rep.id, org.rep2.id, org.rep.id, org.rep2.id]


def test_fewest_leads_first_counts_open_leads_not_customers(db, org):
    # rep holds one open lead, rep2 none; customers do not count (rep2 holds one, rep one).
    leads.create_lead(org.rep, {"company_name": "rep1 的线索"})
    add_rule(db, name="华东线索最少优先", target_type="department",
             target_department_id=org.east.id, strategy="least_loaded")
    got = [holder(db, staff_lead(org, f"最少优先{i}有限公司").id)[0] for i in range(3)]
    assert got == [org.rep2.id, org.rep.id, org.rep2.id]


def test_even_by_rule_counts_what_this_rule_gave_in_the_lead_log(db, org):
    add_rule(db, name="华东线索平均", target_type="department", target_department_id=org.east.id,
             strategy="even")
    on_leave(org.rep2)
    first = [holder(db, staff_lead(org, f"平均前{i}有限公司").id)[0] for i in range(2)]
    assert first == [org.rep.id, org.rep.id]
    for absence in db.session.execute(select(Absence)).scalars():
        absences.cancel_absence(org.rep2, absence.id)
    # The rule gave rep two leads (lead_event.rule), rep2 none: rep2 catches up first.
    got = [holder(db, staff_lead(org, f"平均后{i}有限公司").id)[0] for i in range(3)]
    assert got == [org.rep2.id, org.rep2.id, org.rep.id]


# --- passing over reps --------------------------------------------------------------------
def test_reps_on_leave_are_skipped_and_all_away_falls_back_saying_so(db, org):
    add_rule(db, name="华东线索轮流", target_type="department", target_department_id=org.east.id,
             strategy="round_robin")
    on_leave(org.rep)
    got = [holder(db, staff_lead(org, f"休假{i}有限公司").id)[0] for i in range(3)]
    assert got == [org.rep2.id] * 3
    on_leave(org.rep2)
    lead = staff_lead(org, "都在休假线索有限公司")
    assert holder(db, lead.id) == (None, leads.default_lead_pool().id)
    event = created_event(db, lead.id)
    assert (event.rule, event.reason) == ("rule:华东线索轮流", "部门内的销售都在休假")


def test_a_rule_naming_a_rep_on_leave_falls_back_to_its_lead_pool(db, org):
    pool = add_lead_pool(db)
    add_rule(db, name="给 rep1", target_type="user", target_user_id=org.rep.id,
             target_pool_id=pool.id)
    on_leave(org.rep)
    lead = staff_lead(org, "rep1 休假时的线索")
    assert holder(db, lead.id) == (None, pool.id)
    event = created_event(db, lead.id)
    assert event.rule == "rule:给 rep1" and event.reason.startswith("指定销售休假中（")


def test_reps_at_the_lead_cap_are_skipped_then_the_rule_falls_back(db, org):
    lead_cap(db, org.east, 1)
    leads.create_lead(org.rep, {"company_name": "rep1 已满"})
    add_rule(db, name="华东线索轮流", target_type="department", target_department_id=org.east.id,
             strategy="round_robin")
    to_rep2 = staff_lead(org, "给 rep2 的线索")
    assert holder(db, to_rep2.id) == (org.rep2.id, None)
    full = staff_lead(org, "都满了的线索")
    assert holder(db, full.id) == (None, leads.default_lead_pool().id)
    assert (created_event(db, full.id).rule, created_event(db, full.id).reason) == (
        "rule:华东线索轮流", "部门内没有可接收的销售")
    # customers do not count against the lead cap: both still take customers.
    assert leads.open_leads_of(org.rep.id) == leads.open_leads_of(org.rep2.id) == 1


def test_a_named_rep_at_the_lead_cap_falls_back_with_the_exact_note(db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, lead_max=0))
    db.session.commit()
    add_rule(db, name="给 rep1", target_type="user", target_user_id=org.rep.id)
    lead = staff_lead(org, "rep1 满了的线索")
    assert holder(db, lead.id) == (None, leads.default_lead_pool().id)
    assert created_event(db, lead.id).reason == "指定销售已达上限"


def test_the_count_under_the_reps_lock_wins_over_the_rules_earlier_read(db, org, monkeypatch):
    # The rules read the counts before the rep's row is locked; a claim landing in between
    # must not take the rep over the lead cap: re-counted under the lock, the lead falls back.
    db.session.add(Policy(scope="user", user_id=org.rep.id, lead_max=1))
    db.session.commit()
    leads.create_lead(org.rep, {"company_name": "rep1 已有一条"})
    pool = add_lead_pool(db)
    add_rule(db, name="给 rep1", target_type="user", target_user_id=org.rep.id,
             target_pool_id=pool.id)
    monkeypatch.setattr(rules, "room", lambda user_id, record_type="customer": Room(1, 0))
    lead = staff_lead(org, "锁内重数的线索")
    assert holder(db, lead.id) == (None, pool.id)
    assert (created_event(db, lead.id).rule, created_event(db, lead.id).reason) == (
        "rule:给 rep1", "指定销售已达线索上限（上限 1，已有 1）")
    assert leads.open_leads_of(org.rep.id) == 1


def test_a_batch_counts_what_it_gives_each_rep_against_the_lead_cap(db, org):
    lead_cap(db, org.east, 2)
    leads.create_lead(org.rep, {"company_name": "rep1 的一条"})
    add_rule(db, name="华东线索轮流", target_type="department", target_department_id=org.east.id,
             strategy="round_robin")
    placed = leads.place_by_rules([{"company_name": f"批量{i}"} for i in range(5)])
    default_id = leads.default_lead_pool().id
    assert [(p.owner_id, p.pool_id) for p in placed] == [
        (org.rep.id, None), (org.rep2.id, None), (org.rep2.id, None),
        (None, default_id), (None, default_id)]
    assert [p.reason for p in placed[3:]] == ["部门内没有可接收的销售"] * 2
    db.session.rollback()


# --- the rule's settings ----------------------------------------------------------------------
def refused(rule) -> dict:
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_rule(rule)
    return exc.value.fields


def test_a_lead_rules_pool_must_be_a_lead_pool_and_a_customer_rules_a_customer_pool(db, org):
    lead_pool = add_lead_pool(db)
    assert refused(AssignmentRule(name="x", record_type="lead", target_type="pool",
                                  target_pool_id=org.pool.id)) == {
        "target_pool": "线索规则的公海必须是线索公海"}
    assert refused(AssignmentRule(name="y", record_type="customer", target_type="pool",
                                  target_pool_id=lead_pool.id)) == {
        "target_pool": "客户规则的公海必须是客户公海"}
    rules.validate_rule(AssignmentRule(name="z", record_type="lead", target_type="pool",
                                       target_pool_id=lead_pool.id))


def test_a_lead_rule_matches_only_what_a_lead_has(db, org):
    fields = refused(AssignmentRule(name="x", record_type="lead", target_type="pool",
                                    grade="A", customer_type="company", product_line="软件",
                                    lifecycle="potential", source="飞鸽传书"))
    no_field = "线索没有此字段；线索规则只能按省份、城市、行业和来源匹配"
    assert fields == {"grade": no_field, "customer_type": no_field, "product_line": no_field,
                      "lifecycle": no_field, "source": (
                          "线索来源只能是：web_form, phone, exhibition, referral, advertising, "
                          "campaign, other")}
    labelled = AssignmentRule(name="y", record_type="lead", target_type="pool", source="展会",
                              province="浙江")
    rules.validate_rule(labelled)
    assert labelled.source == "exhibition"  # the label is stored as the lead's code
    assert refused(AssignmentRule(name="z", record_type="deal", target_type="pool")) == {
        "record_type": "规则只能分配客户或线索"}


def test_the_record_type_is_checked_by_the_schema(db, org):
    db.session.add(AssignmentRule(name="坏类型", record_type="deal", target_type="pool"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    rule = AssignmentRule(name="默认客户", target_type="pool")
    db.session.add(rule)
    db.session.commit()
    assert rule.record_type == "customer"


# --- the capture form ----------------------------------------------------------------------
def test_capture_form_leads_stay_in_the_forms_pool(app, db, org, form):  # noqa: F811
    add_rule(db, name="全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    assert post(app.test_client(), form.token, GOOD).status_code == 200
    db.session.commit()
    lead = db.session.execute(select(Lead).where(
        Lead.company_name == GOOD["company"])).scalar_one()
    assert holder(db, lead.id) == (None, form.pool)
    assert created_event(db, lead.id).rule is None


# --- import by the rules ----------------------------------------------------------------------
IMPORT = ("公司名称,城市,来源\n"
          "宁波一号有限公司,宁波,展会\n"
          "宁波二号有限公司,宁波,电话\n"
          "宁波三号有限公司,宁波,电话\n"
          "宁波四号有限公司,宁波,电话\n"
          "厦门五号有限公司,厦门,电话\n")


def import_by_rules(db, actor, pool_id=None):
    batch = import_mapping.upload(actor, "线索.csv", IMPORT.encode(), "lead")
    import_mapping.configure(actor, batch.id, batch.mapping, "rules", pool_id)
    return import_run.run(batch.id)


def lead_named(db, name) -> Lead:
    return db.session.execute(select(Lead).where(Lead.company_name == name)).scalar_one()


def test_import_by_the_rules_places_each_lead_within_the_lead_cap(db, org):
    lead_cap(db, org.east, 1)
    pool = add_lead_pool(db, "导入兜底池")
    add_rule(db, name="展会给华北", position=1, source="exhibition", target_type="user",
             target_user_id=org.rep_north.id)
    add_rule(db, name="宁波给华东", position=2, city="宁波", target_type="department",
             target_department_id=org.east.id, strategy="round_robin")
    batch = import_by_rules(db, org.staff, pool.id)
    assert (batch.status, batch.target, batch.inserted) == ("done", "rules", 5)
    got = {name: holder(db, lead_named(db, name).id) for name in
           ("宁波一号有限公司", "宁波二号有限公司", "宁波三号有限公司", "宁波四号有限公司",
            "厦门五号有限公司")}
    default_id = leads.default_lead_pool().id
    assert got == {"宁波一号有限公司": (org.rep_north.id, None),
                   "宁波二号有限公司": (org.rep.id, None),
                   "宁波三号有限公司": (org.rep2.id, None),
                   "宁波四号有限公司": (None, default_id),   # both full: the rule's fallback
                   "厦门五号有限公司": (None, pool.id)}      # no rule: the batch's pool
    rule_of = {name: created_event(db, lead_named(db, name).id).rule for name in got}
    assert rule_of == {"宁波一号有限公司": "rule:展会给华北", "宁波二号有限公司": "rule:宁波给华东",
                       "宁波三号有限公司": "rule:宁波给华东", "宁波四号有限公司": "rule:宁波给华东",
                       "厦门五号有限公司": None}


def test_import_by_the_rules_without_a_pool_uses_the_default_lead_pool(db, org):
    batch = import_by_rules(db, org.staff)
    assert batch.inserted == 5
    default_id = leads.default_lead_pool().id
    assert {holder(db, lead_named(db, "厦门五号有限公司").id)} == {(None, default_id)}
    assert db.session.get(ImportBatch, batch.id).pool_id is None


@pytest.mark.parametrize("role", ["manager"])
def test_only_staff_and_admins_import_leads_by_the_rules(db, org, role):
    # pool managers import into their lead pools, never by the rules
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, user_id=org.manager.id, is_admin=True))
    db.session.commit()
    batch = import_mapping.upload(org.manager, "线索.csv", IMPORT.encode(), "lead")
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.manager, batch.id, batch.mapping, "rules", pool.id)
    assert exc.value.fields == {"target": "只有后台人员和管理员可以按归属规则导入"}


# --- the rule form ----------------------------------------------------------------------------
def test_the_rule_form_takes_the_record_type_and_names_the_pool_field(clients, db, org):
    lead_pool = add_lead_pool(db)
    page = clients.admin.get("/assignment-rules/add").get_data(as_text=True)
    assert 'name="record_type"' in page and "分配对象" in page
    resp = clients.admin.post("/assignment-rules/add", data={
        "position": "1", "name": "线索进客户池", "record_type": "lead", "target_type": "pool",
        "target_pool": str(org.pool.id), "strategy": "even",
        "csrf_token": clients.admin.csrf}, follow_redirects=True)
    assert "线索规则的公海必须是线索公海" in resp.get_data(as_text=True)
    assert db.session.execute(select(AssignmentRule)).first() is None
    resp = clients.admin.post("/assignment-rules/add", data={
        "position": "1", "name": "线索进展会池", "record_type": "lead", "target_type": "pool",
        "target_pool": str(lead_pool.id), "strategy": "even", "source": "展会",
        "csrf_token": clients.admin.csrf})
    assert resp.status_code == 302
    rule = db.session.execute(select(AssignmentRule)).scalar_one()
    assert (rule.record_type, rule.target_pool_id, rule.source) == (
        "lead", lead_pool.id, "exhibition")
    listing = clients.admin.get("/assignment-rules/list/").get_data(as_text=True)
    assert "线索进展会池" in listing and "线索" in listing


# --- the lead cap under concurrent placements -------------------------------------------
CAP = 3


@pytest.mark.real_db
def test_concurrent_staff_entries_never_take_a_rep_over_the_lead_cap(app, db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, lead_max=CAP))
    db.session.commit()
    add_rule(db, name="全部给 rep1", target_type="user", target_user_id=org.rep.id)
    staff_id, rep_id = org.staff.id, org.rep.id
    pool_id = leads.default_lead_pool().id
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                for i in range(4):
                    me = tdb.session.get(User, staff_id)
                    leads.create_lead(me, {"company_name": f"并发线索{n}-{i}有限公司"})
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    db.session.expire_all()
    assert leads.open_leads_of(rep_id) == CAP
    made = db.session.execute(select(LeadOwnership).join(Lead).where(
        Lead.company_name.like("并发线索%"))).scalars().all()
    assert len(made) == 24
    assert sum(1 for o in made if o.owner_id == rep_id) == CAP
    assert all(o.pool_id == pool_id for o in made if o.owner_id is None)
    # every placement is in the log with the rule's label, and the log replays to the table
    events = db.session.execute(select(LeadEvent).where(
        LeadEvent.lead_id.in_([o.lead_id for o in made]))).scalars().all()
    assert {e.rule for e in events} == {"rule:全部给 rep1"}
    assert {(e.lead_id, e.to_owner_id, e.to_pool_id) for e in events} == {
        (o.lead_id, o.owner_id, o.pool_id) for o in made}
