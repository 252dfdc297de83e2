"""Sales targets (业绩目标): validation with the exact field refused, who sets and reads whose
targets (every role), one target per holder and period, the actuals (won deals by the
recorder, new customers by acquisition events, a department's whole tree), 达成率, the
department's warning naming both numbers, and each read in one statement."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from app.models import AuditLog, Deal, OwnershipEvent, SalesTarget
from app.services import customers, org as org_service, targets
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from app.services.ids import MAX_PK

OCT = dt.date(2026, 10, 1)
Q3 = dt.date(2026, 7, 1)


def make(actor, holder, **data):
    key = "department_id" if hasattr(holder, "path") else "user_id"
    return targets.create_target(actor, {key: holder.id, "period_kind": "month",
                                         "period_start": "2026-10-01", **data})


def refused(fn, *args) -> dict:
    with pytest.raises(ValidationFailed) as info:
        fn(*args)
    return info.value.fields


def deal(db, user, customer, amount, day):
    db.session.add(Deal(customer_id=customer.id, user_id=user.id, amount=Decimal(amount),
                        won_on=day))


def acquired(db, user, customer_id, kind, when):
    db.session.add(OwnershipEvent(customer_id=customer_id, kind=kind, to_owner_id=user.id,
                                  created_at=when))


# --- periods --------------------------------------------------------------------------------
def test_periods_and_their_ends():
    assert targets.period_end("month", dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert targets.period_end("quarter", dt.date(2026, 10, 1)) == dt.date(2027, 1, 1)
    assert targets.period_end("quarter", Q3) == OCT
    assert targets.period_containing("quarter", dt.date(2026, 11, 30)) == OCT
    assert targets.period_containing("month", dt.date(2026, 11, 30)) == dt.date(2026, 11, 1)
    assert targets.period_label("quarter", OCT) == "2026 Q4"
    assert targets.period_label("month", OCT) == "2026-10"


@pytest.mark.parametrize("kind,typed,start", [
    ("month", "2026-10-01", OCT), ("month", "2026-10", OCT), ("quarter", "2026-Q4", OCT),
    ("quarter", "2026q3", Q3), ("quarter", "2026-07-01", Q3)])
def test_a_period_is_typed_as_a_day_a_month_or_a_quarter(kind, typed, start):
    assert targets.parse_period_start(kind, typed, {}) == start


# --- create and validate --------------------------------------------------------------------
def test_an_admin_sets_a_reps_target_audited(db, org):
    target = make(org.admin, org.rep, won_amount="500,000", new_customers=5)
    db.session.expire_all()
    target = db.session.get(SalesTarget, target.id)
    assert (target.user_id, target.department_id, target.period_kind, target.period_start,
            target.won_amount, target.new_customers, target.set_by_id) == (
        org.rep.id, None, "month", OCT, Decimal("500000.00"), 5, org.admin.id)
    log = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "sales_target", AuditLog.object_id == target.id)).scalar()
    assert log.action == "create" and log.actor_id == org.admin.id


@pytest.mark.parametrize("data,field", [
    ({"period_kind": "week"}, "period_kind"),
    ({"period_kind": None}, "period_kind"),
    ({"period_start": "2026-10-02"}, "period_start"),
    ({"period_start": ""}, "period_start"),
    ({"period_start": "1999-10-01"}, "period_start"),
    ({"period_start": "2026-13"}, "period_start"),
    ({"period_start": "a\x00b"}, "period_start"),
    ({"period_start": "2" * 300}, "period_start"),
    ({"period_kind": "quarter", "period_start": "2026-11-01"}, "period_start"),
    ({"won_amount": "-1"}, "won_amount"),
    ({"won_amount": "很多"}, "won_amount"),
    ({"won_amount": "NaN"}, "won_amount"),
    ({"won_amount": "1e20"}, "won_amount"),
    ({"won_amount": True}, "won_amount"),
    ({"new_customers": -3}, "new_customers"),
    ({"new_customers": 2.5}, "new_customers"),
    ({"new_customers": "10000000"}, "new_customers"),
    ({"user_id": MAX_PK + 1}, "user_id"),
    ({"user_id": "abc"}, "user_id"),
    ({"user_id": 999_999}, "user_id"),
    ({"colour": "red"}, "colour"),
])
def test_each_bad_field_is_refused_by_name(db, org, data, field):
    body = {"user_id": org.rep.id, "period_kind": "month", "period_start": "2026-10-01",
            "won_amount": "100", **data}
    assert field in refused(targets.create_target, org.admin, body)


def test_the_exact_refusals(db, org):
    base = {"period_kind": "month", "period_start": "2026-10-01", "won_amount": 1}
    assert refused(targets.create_target, org.admin, base) == {
        "user_id": "一个目标只属于一个用户或一个部门：user_id 与 department_id 必须且只能给出一个"}
    assert refused(targets.create_target, org.admin, {
        **base, "user_id": org.rep.id, "department_id": org.east.id}) == {
        "user_id": "一个目标只属于一个用户或一个部门：user_id 与 department_id 必须且只能给出一个"}
    assert refused(targets.create_target, org.admin, {
        "user_id": org.rep.id, "period_kind": "month", "period_start": "2026-10-01"}) == {
        "won_amount": "请设置目标成交金额、目标新增客户数，或两者都设置"}
    assert refused(targets.create_target, org.admin, {**base, "user_id": org.rep.id,
                                                      "period_start": "2026-10-15"}) == {
        "period_start": "月度目标从当月 1 日开始，不能是 2026-10-15"}
    assert refused(targets.create_target, org.admin, {
        **base, "user_id": org.rep.id, "period_kind": "quarter",
        "period_start": "2026-11-01"}) == {
        "period_start": "季度从 1 月 1 日、4 月 1 日、7 月 1 日或 10 月 1 日开始，不能是 2026-11-01"}


def test_one_target_per_holder_and_period(db, org):
    make(org.admin, org.rep, won_amount=100)
    with pytest.raises(Conflict) as info:
        make(org.manager, org.rep, new_customers=3)
    assert (info.value.code, info.value.message) == (
        "target_exists", "该对象在 2026-10 已有目标，请修改已有的目标")
    # Another period, another kind, another holder: all fine.
    make(org.admin, org.rep, won_amount=100, period_start="2026-11")
    make(org.admin, org.rep, won_amount=300, period_kind="quarter", period_start="2026-Q4")
    make(org.admin, org.rep2, won_amount=100)
    make(org.admin, org.east, won_amount=100)
    with pytest.raises(Conflict):
        make(org.admin, org.east, won_amount=5)


def test_the_schema_holds_one_holder_and_one_target_per_period(db, org):
    """The CHECK and the unique index without the service's look-up."""
    from sqlalchemy.exc import IntegrityError

    now = dt.datetime(2026, 10, 1)
    for row in (dict(user_id=org.rep.id, department_id=org.east.id, won_amount=1),
                dict(user_id=None, department_id=None, won_amount=1),
                dict(user_id=org.rep.id, won_amount=None, new_customers=None),
                dict(user_id=org.rep.id, won_amount=-1)):
        with db.session.begin_nested():
            db.session.add(SalesTarget(period_kind="month", period_start=OCT, created_at=now,
                                       updated_at=now, **row))
            with pytest.raises(IntegrityError):
                db.session.flush()
        db.session.expire_all()
    db.session.add(SalesTarget(user_id=org.rep.id, period_kind="month", period_start=OCT,
                               won_amount=1, created_at=now, updated_at=now))
    db.session.flush()
    with db.session.begin_nested():
        db.session.add(SalesTarget(user_id=org.rep.id, period_kind="month", period_start=OCT,
                                   new_customers=1, created_at=now, updated_at=now))
        with pytest.raises(IntegrityError):
            db.session.flush()


# --- who sets and reads whose targets -------------------------------------------------------
def test_a_manager_sets_his_tree_but_not_himself_nor_his_own_department(db, org):
    sub = org_service.create_department("华东一组", parent=org.east)
    make(org.manager, org.rep, won_amount=1)
    make(org.manager, sub, won_amount=1)
    mine = "你只能为本部门及下属部门的用户设置目标，不能为自己设置"
    assert refused(targets.create_target, org.manager, {
        "user_id": org.manager.id, "period_kind": "month", "period_start": OCT,
        "won_amount": 1}) == {"user_id": mine}
    assert refused(targets.create_target, org.manager, {
        "user_id": org.rep_north.id, "period_kind": "month", "period_start": OCT,
        "won_amount": 1}) == {"user_id": mine}
    below = "你只能为本部门的下属部门设置目标"
    for dept in (org.east, org.north, org.centre):
        assert refused(targets.create_target, org.manager, {
            "department_id": dept.id, "period_kind": "month", "period_start": OCT,
            "won_amount": 1}) == {"department_id": below}


@pytest.mark.parametrize("who", ["rep", "staff", "auditor"])
def test_reps_staff_and_auditors_set_no_target(db, org, who):
    with pytest.raises(PermissionDenied) as info:
        make(getattr(org, who), org.rep, won_amount=1)
    assert info.value.message == "只有管理员和销售经理可以设置业绩目标"
    target = make(org.admin, org.rep, won_amount=1)
    for fn, args in ((targets.update_target, (target.id, {"won_amount": 2})),
                     (targets.delete_target, (target.id,))):
        with pytest.raises(PermissionDenied):
            fn(getattr(org, who), *args)


def test_each_role_reads_exactly_its_reach(db, org):
    made = {name: make(org.admin, holder, won_amount=1).id for name, holder in (
        ("rep", org.rep), ("rep2", org.rep2), ("rep_north", org.rep_north),
        ("manager", org.manager), ("east", org.east), ("north", org.north),
        ("centre", org.centre))}
    reads = {"admin": set(made), "auditor": set(made), "staff": set(),
             "manager": {"rep", "rep2", "manager", "east"},
             "manager_north": {"rep_north", "north"}, "rep": {"rep"}, "rep2": {"rep2"}}
    for who, names in reads.items():
        actor = getattr(org, who)
        listed = {t.id for t in targets.list_targets(actor).items}
        assert listed == {made[n] for n in names}, who
        for name, pk in made.items():
            if name in names:
                assert targets.get_target(actor, pk).id == pk
            else:
                with pytest.raises(OutOfScope) as info:
                    targets.get_target(actor, pk)
                assert info.value.message == "业绩目标不存在或不在您的数据权限内"


def test_a_manager_changes_and_deletes_only_what_he_may_set(db, org):
    own = make(org.admin, org.manager, won_amount=1)
    dept = make(org.admin, org.east, won_amount=1)
    reps = make(org.admin, org.rep, won_amount=1)
    for pk in (own.id, dept.id):
        with pytest.raises(OutOfScope):
            targets.update_target(org.manager, pk, {"won_amount": 9})
        with pytest.raises(OutOfScope):
            targets.delete_target(org.manager, pk)
    changed = targets.update_target(org.manager, reps.id, {"won_amount": "800", "new_customers": 4})
    assert (changed.won_amount, changed.new_customers, changed.set_by_id) == (
        Decimal("800.00"), 4, org.manager.id)
    assert list(refused(targets.update_target, org.manager, reps.id,
                        {"period_kind": "quarter"})) == ["period_kind"]
    assert refused(targets.update_target, org.manager, reps.id,
                   {"won_amount": None, "new_customers": None}) == {
        "won_amount": "请设置目标成交金额、目标新增客户数，或两者都设置"}
    targets.delete_target(org.manager, reps.id)
    assert db.session.get(SalesTarget, reps.id) is None
    actions = [a.action for a in db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "sales_target", AuditLog.object_id == reps.id)
        .order_by(AuditLog.id)).scalars()]
    assert actions == ["create", "update", "delete"]


def test_the_list_pages_by_cursor_and_narrows(db, org):
    ids = [make(org.admin, org.rep, won_amount=1, period_start=f"2026-{m:02d}").id
           for m in range(1, 8)]
    first = targets.list_targets(org.admin, page_size=3)
    assert [t.id for t in first.items] == ids[::-1][:3] and first.next_after == ids[4]
    second = targets.list_targets(org.admin, after=first.next_after, page_size=3)
    assert [t.id for t in second.items] == ids[::-1][3:6]
    last = targets.list_targets(org.admin, after=second.next_after, page_size=3)
    assert [t.id for t in last.items] == ids[:1] and last.next_after is None
    only = targets.list_targets(org.admin, period_kind="month", period_start="2026-03")
    assert [t.id for t in only.items] == [ids[2]]
    for kwargs, field in (({"after": MAX_PK + 1}, "after"), ({"page_size": 0}, "page_size"),
                          ({"period_kind": "day"}, "period_kind"),
                          ({"user_id": "x"}, "user_id")):
        with pytest.raises(ValidationFailed) as info:
            targets.list_targets(org.admin, **kwargs)
        assert field in info.value.fields


# --- attainment -----------------------------------------------------------------------------
@pytest.fixture
def october(db, org):
    """Deals and acquisitions in and around October 2026 (business time, +08:00)."""
    deal(db, org.rep, org.c_rep, "30000", dt.date(2026, 10, 1))
    deal(db, org.rep, org.c_rep, "20000", dt.date(2026, 10, 31))
    deal(db, org.rep, org.c_rep, "99999", dt.date(2026, 9, 30))  # September
    deal(db, org.rep2, org.c_rep2, "10000", dt.date(2026, 10, 15))
    deal(db, org.rep_north, org.c_north, "7000", dt.date(2026, 10, 15))
    # 2026-10-01 00:30 +08:00 is 2026-09-30 16:30 UTC: October's first new customer.
    acquired(db, org.rep, 901, "created", dt.datetime(2026, 9, 30, 16, 30))
    acquired(db, org.rep, 901, "claimed", dt.datetime(2026, 10, 5))  # the same one: once
    acquired(db, org.rep, 902, "assigned", dt.datetime(2026, 10, 6))
    acquired(db, org.rep, 903, "rule-assigned", dt.datetime(2026, 10, 7))
    acquired(db, org.rep, 904, "transferred", dt.datetime(2026, 10, 8))  # no acquisition
    acquired(db, org.rep, 905, "claimed", dt.datetime(2026, 9, 30, 15, 59))  # September
    acquired(db, org.rep, 906, "claimed", dt.datetime(2026, 10, 31, 16, 0))  # November
    acquired(db, org.rep2, 902, "claimed", dt.datetime(2026, 10, 9))
    acquired(db, org.rep_north, 910, "claimed", dt.datetime(2026, 10, 9))
    db.session.commit()


def test_a_reps_attainment(db, org, october):
    make(org.admin, org.rep, won_amount="100000", new_customers=6)
    mine = targets.my_attainment(org.rep, "month", OCT)
    assert (mine["target_won"], mine["actual_won"], mine["rate_won"]) == (
        Decimal("100000.00"), Decimal("50000.00"), Decimal("0.5000"))
    assert (mine["target_new"], mine["actual_new"], mine["rate_new"]) == (6, 3, Decimal("0.5"))
    assert mine["label"] == "2026-10"
    nothing = targets.my_attainment(org.rep2, "month", OCT)
    assert (nothing["target_won"], nothing["actual_won"], nothing["rate_won"],
            nothing["actual_new"]) == (None, Decimal("10000.00"), None, 1)


def test_the_team_view_with_department_totals_and_the_warning(db, org, october):
    make(org.admin, org.east, won_amount="80000", new_customers=4)
    make(org.manager, org.rep, won_amount="50000", new_customers=3)
    make(org.manager, org.rep2, won_amount="20000")
    team = targets.team_attainment(org.manager, "month", OCT)
    users = {u["username"]: u for u in team.users}
    assert set(users) == {"manager1", "rep1", "rep2"}
    assert (users["rep1"]["actual_won"], users["rep1"]["rate_won"]) == (
        Decimal("50000.00"), Decimal("1.0000"))
    assert [d["name"] for d in team.departments] == ["华东大区"]
    east = team.departments[0]
    assert (east["target_won"], east["actual_won"], east["parts_won"]) == (
        Decimal("80000.00"), Decimal("60000.00"), Decimal("70000.00"))
    assert (east["target_new"], east["actual_new"], east["parts_new"]) == (4, 3, 3)
    assert east["rate_won"] == Decimal("0.7500")
    assert east["warnings"] == [
        "成交金额：部门目标为 80000.00，其成员与下级部门目标之和为 70000.00",
        "新增客户：部门目标为 4，其成员与下级部门目标之和为 3"]
    targets.update_target(org.admin, targets.list_targets(
        org.admin, department_id=org.east.id).items[0].id, {"won_amount": 70000,
                                                            "new_customers": 3})
    east = targets.team_attainment(org.manager, "month", OCT).departments[0]
    assert east["warnings"] == []


def test_a_parent_department_counts_its_whole_tree(db, org, october):
    make(org.admin, org.centre, won_amount="100000")
    make(org.admin, org.east, won_amount="60000")
    make(org.admin, org.north, won_amount="40000")
    team = targets.team_attainment(org.admin, "month", OCT)
    departments = {d["name"]: d for d in team.departments}
    centre = departments["销售中心"]
    assert (centre["actual_won"], centre["actual_new"], centre["parts_won"],
            centre["warnings"]) == (Decimal("67000.00"), 4, Decimal("100000.00"), [])
    assert departments["运营中心"]["target_won"] is None
    assert departments["华北大区"]["warnings"] == [
        "成交金额：部门目标为 40000.00，其成员与下级部门目标之和为 0.00"]


def test_a_quarter_sums_its_three_months(db, org):
    deal(db, org.rep, org.c_rep, "1000", dt.date(2026, 7, 1))
    deal(db, org.rep, org.c_rep, "2000", dt.date(2026, 9, 30))
    deal(db, org.rep, org.c_rep, "4000", dt.date(2026, 10, 1))
    db.session.commit()
    make(org.admin, org.rep, won_amount="6000", period_kind="quarter", period_start="2026-Q3")
    mine = targets.my_attainment(org.rep, "quarter", Q3)
    assert (mine["actual_won"], mine["rate_won"], mine["label"]) == (
        Decimal("3000.00"), Decimal("0.5000"), "2026 Q3")


def test_a_deal_counts_for_whoever_recorded_it(db, org):
    """record_deal keeps the recorder: a rep's own deal is his."""
    from app.services import deals, times

    today = times.local_today()
    deals.record_deal(org.rep, org.c_rep.id, {"amount": "888", "won_on": today.isoformat()})
    mine = targets.my_attainment(org.rep, "month")
    assert mine["actual_won"] >= Decimal("888.00")
    assert mine["start"] == targets.period_containing("month", today)


def test_the_api_payload_carries_attainment_for_mixed_periods(db, org, october):
    t1 = make(org.admin, org.rep, won_amount="100000")
    t2 = make(org.admin, org.east, won_amount="120000")
    t3 = make(org.admin, org.rep, won_amount="1", period_kind="quarter", period_start="2026-Q3")
    found = targets.actuals_of([t1, t2, t3])
    assert found[t1.id]["actual_won"] == Decimal("50000.00")
    assert found[t2.id]["actual_won"] == Decimal("60000.00")
    assert found[t3.id]["actual_won"] == Decimal("99999.00")
    body = targets.to_dict(t2, found[t2.id])
    assert body["attainment"] == {"won_amount": "60000.00", "new_customers": 3,
                                  "won_amount_rate": 0.5, "new_customers_rate": None,
                                  "warnings": [
                                      "成交金额：部门目标为 120000.00，其成员与下级部门目标之和为 100000.00"]}
    assert (body["period_start"], body["period_end"], body["period_label"]) == (
        "2026-10-01", "2026-11-01", "2026-10")


def test_a_teams_attainment_is_one_statement_whatever_its_size(db, org, october):
    for i in range(12):
        customers.create_customer(org.rep, {"name": f"目标测试客户{i:02d}有限公司"})
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    reach = targets.reach(org.admin)
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        targets.attainment_rows(reach.users, reach.departments, "month", OCT)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements


def test_the_team_view_lists_the_sellers_and_anyone_given_a_target(db, org):
    listed = {u["username"] for u in targets.team_attainment(org.admin, "month", OCT).users}
    assert listed == {"manager1", "manager2", "rep1", "rep2", "rep3"}
    make(org.admin, org.staff, new_customers=1)
    listed = {u["username"] for u in targets.team_attainment(org.admin, "month", OCT).users}
    assert listed == {"manager1", "manager2", "rep1", "rep2", "rep3", "staff1"}
    assert "staff1" not in {u["username"] for u in targets.team_attainment(
        org.admin, "month", dt.date(2026, 11, 1)).users}
