"""Absences (休假): who may record whose leave, the exact refusals (dates, length, overlap,
scope), cancelling, and the effects - pickers pass over users on leave today, and reclaim
warnings for an owner on leave go to their superior (else their department's manager)."""
from __future__ import annotations

import datetime as dt
import sys
import threading

import pytest
from sqlalchemy import func, select, update

from app.models import Absence, AssignmentRule, AuditLog, Notification, Ownership
from app.services import absences, assignment, customers, reclaim, workbench
from app.services.errors import (Conflict, OutOfScope, PermissionDenied, ValidationFailed)
from app.services.times import local_today
from tests.helpers import holder_of

TODAY = local_today()  # set again for each test (_today)


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """TODAY is the business day when the test starts: a date taken once at import went
    stale when the suite ran across midnight in Shanghai (16:00 UTC)."""
    monkeypatch.setattr(sys.modules[__name__], "TODAY", local_today())
DAY = dt.timedelta(days=1)


def _refusal(err_type, call):
    with pytest.raises(err_type) as err:
        call()
    return err.value


def away(actor, user, start=None, end=None, reason=None):
    """Leave from `start` (default today) to `end` (default the day after tomorrow)."""
    start = TODAY if start is None else start
    end = TODAY + 2 * DAY if end is None else end
    return absences.create_absence(actor, user.id, start, end, reason)


# --- who may ---------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_everyone_records_their_own_leave_audited(db, org, role):
    user = getattr(org, role)
    made = absences.create_absence(user, user.id, TODAY.isoformat(),
                                   (TODAY + DAY).isoformat(), " 年假 ")
    assert (made.user_id, made.starts_on, made.ends_on, made.reason, made.created_by_id) == (
        user.id, TODAY, TODAY + DAY, "年假", user.id)
    entry = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "absence", AuditLog.object_id == made.id)).scalar_one()
    assert (entry.action, entry.actor_id) == ("create", user.id)
    assert entry.changes["starts_on"] == [None, TODAY.isoformat()]


def test_a_manager_records_leave_for_their_team_and_an_admin_for_anyone(db, org):
    assert away(org.manager, org.rep2).user_id == org.rep2.id
    assert away(org.admin, org.rep_north).user_id == org.rep_north.id


@pytest.mark.parametrize("actor,target,error,code,message", [
    ("manager", "rep_north", OutOfScope, "out_of_scope", "用户不存在或不在您的数据权限内"),
    ("rep", "rep2", OutOfScope, "out_of_scope", "用户不存在或不在您的数据权限内"),
    ("staff", "rep", PermissionDenied, "forbidden",
     "您只能登记自己的休假；经理可登记其团队成员的休假，管理员可登记任何人的休假"),
    ("auditor", "rep", PermissionDenied, "forbidden",
     "您只能登记自己的休假；经理可登记其团队成员的休假，管理员可登记任何人的休假"),
])
def test_others_leave_is_refused_outside_the_rule(db, org, actor, target, error, code, message):
    err = _refusal(error, lambda: away(getattr(org, actor), getattr(org, target)))
    assert (err.code, err.message) == (code, message)
    assert db.session.execute(select(func.count()).select_from(Absence)).scalar_one() == 0


def test_an_unknown_user_is_out_of_scope(db, org):
    err = _refusal(OutOfScope, lambda: absences.create_absence(org.admin, 2**31 - 1, TODAY,
                                                               TODAY))
    assert err.message == "用户不存在或不在您的数据权限内"


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end,reason,fields", [
    (TODAY, TODAY - DAY, None, {"ends_on": "结束日期不能早于开始日期"}),
    (TODAY, TODAY + 366 * DAY, None, {"ends_on": "一次休假不能超过 366 天"}),
    ("", None, None, {"starts_on": "必填", "ends_on": "必填"}),
    ("2026-13-01", "12/01/2026", None, {"starts_on": "starts_on 必须是日期，格式 YYYY-MM-DD",
                                        "ends_on": "ends_on 必须是日期，格式 YYYY-MM-DD"}),
    (TODAY, TODAY, "假" * 201, {"reason": "不能超过 200 个字符"}),
    (TODAY, TODAY, "年\x00假", {"reason": "reason 含有不允许的字符（NUL 或不成对的代理字符）"}),
    (TODAY, TODAY, 7, {"reason": "必须是文本"}),
])
def test_bad_input_names_the_field(db, org, start, end, reason, fields):
    err = _refusal(ValidationFailed, lambda: absences.create_absence(
        org.rep, org.rep.id, start, end, reason))
    assert err.fields == fields


def test_366_days_both_ends_counted_is_the_longest(db, org):
    made = away(org.rep, org.rep, TODAY, TODAY + 365 * DAY)
    assert (made.ends_on - made.starts_on).days + 1 == 366


def test_overlapping_leave_of_one_user_is_refused_naming_the_dates(db, org):
    first = away(org.rep, org.rep, TODAY, TODAY + 4 * DAY)
    for start, end in ((TODAY + 4 * DAY, TODAY + 6 * DAY), (TODAY - DAY, TODAY),
                       (TODAY + DAY, TODAY + 2 * DAY), (TODAY - DAY, TODAY + 9 * DAY)):
        err = _refusal(Conflict, lambda: away(org.manager, org.rep, start, end))
        assert (err.code, err.message) == (
            "absence_overlap",
            f"测试rep1 已有休假 {TODAY}–{TODAY + 4 * DAY}，与此日期重叠")
        assert err.to_dict()["absence_id"] == first.id
    # The day after, another user, or once cancelled: accepted.
    away(org.rep, org.rep, TODAY + 5 * DAY, TODAY + 6 * DAY)
    away(org.rep2, org.rep2, TODAY, TODAY + 4 * DAY)
    absences.cancel_absence(org.rep, first.id)
    away(org.rep, org.rep, TODAY, TODAY + DAY)


@pytest.mark.real_db
def test_simultaneous_overlapping_requests_record_one(app, db, org):
    """Four requests for the same days at once: the user's row lock lets one in; the others
    see it and are refused as a serial caller is."""
    rep_id, admin_id = org.rep.id, org.admin.id
    start = threading.Barrier(4)
    answers, errors = [], []

    def request():
        with app.app_context():
            from app.extensions import db as thread_db
            from app.models import User

            try:
                actor = thread_db.session.get(User, admin_id)
                start.wait(timeout=60)
                absences.create_absence(actor, rep_id, TODAY, TODAY + DAY)
                answers.append("ok")
            except Conflict as exc:
                answers.append(exc.code)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                thread_db.session.remove()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(answers) == ["absence_overlap"] * 3 + ["ok"]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(Absence).where(
        Absence.user_id == rep_id)).scalar_one() == 1


# --- cancelling ------------------------------------------------------------------------------
def test_cancel_keeps_the_row_audited_and_refuses_twice(db, org):
    made = away(org.manager, org.rep)
    absences.cancel_absence(org.rep, made.id)
    db.session.expire_all()
    row = db.session.get(Absence, made.id)
    assert row.cancelled_by_id == org.rep.id and row.cancelled_at is not None
    assert absences.status_of(row) == absences.CANCELLED
    assert db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "absence", AuditLog.object_id == made.id)
        .order_by(AuditLog.id)).scalars().all() == ["create", "cancel"]
    err = _refusal(Conflict, lambda: absences.cancel_absence(org.rep, made.id))
    assert (err.code, err.message) == ("already_cancelled", "该休假已取消")


@pytest.mark.parametrize("actor,error,message", [
    ("rep2", "not_found", "休假记录不存在或不在您的数据权限内"),
    ("manager_north", "not_found", "休假记录不存在或不在您的数据权限内"),
    ("staff", "forbidden",
     "您只能登记自己的休假；经理可登记其团队成员的休假，管理员可登记任何人的休假"),
])
def test_cancelling_someone_elses_leave_is_refused(db, org, actor, error, message):
    made = away(org.rep, org.rep)
    with pytest.raises(Exception) as err:
        absences.cancel_absence(getattr(org, actor), made.id)
    assert (err.value.code, err.value.message) == (error, message)
    db.session.expire_all()
    assert db.session.get(Absence, made.id).cancelled_at is None


# --- who is away -----------------------------------------------------------------------------
def test_absent_user_ids_is_today_inclusive_without_cancelled(db, org):
    away(org.rep, org.rep, TODAY - DAY, TODAY)
    away(org.rep2, org.rep2, TODAY + DAY, TODAY + 3 * DAY)
    gone = away(org.rep_north, org.rep_north, TODAY, TODAY)
    absences.cancel_absence(org.rep_north, gone.id)
    assert absences.absent_user_ids() == {org.rep.id}
    assert absences.absent_user_ids(TODAY + 3 * DAY) == {org.rep2.id}
    assert absences.current_absences([org.rep.id, org.rep2.id]) == {
        org.rep.id: (TODAY - DAY, TODAY)}
    assert absences.current_absences([]) == {}


# --- effects: the pickers --------------------------------------------------------------------
def _pool_customers(db, org, n):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    return [org.c_pool.id] + [customers.create_customer(org.staff, {"name": f"公海客户{i}"}).id
                              for i in range(n - 1)]


def test_even_distribution_skips_a_rep_on_leave(db, org):
    ids = _pool_customers(db, org, 4)
    away(org.rep, org.rep, TODAY, TODAY + DAY)
    plan = assignment.distribute(org.manager, ids, [org.rep.id, org.rep2.id], dry_run=False)
    assert [(l.owner_id, len(l.customer_ids)) for l in plan.lines] == [(org.rep2.id, 4)]
    assert plan.skipped == [{"owner_id": org.rep.id, "username": "rep1",
                             "reason": f"休假中 {TODAY}–{TODAY + DAY}"}]
    assert all(holder_of(db, i) == (org.rep2.id, None) for i in ids)


def test_distribution_to_reps_all_on_leave_leaves_everyone_in_the_pool(db, org):
    ids = _pool_customers(db, org, 2)
    away(org.rep, org.rep)
    away(org.rep2, org.rep2)
    plan = assignment.distribute(org.manager, ids, [org.rep.id, org.rep2.id], dry_run=False)
    assert plan.lines == [] and plan.unassigned == ids
    assert [s["reason"] for s in plan.skipped] == [f"休假中 {TODAY}–{TODAY + 2 * DAY}"] * 2
    assert all(holder_of(db, i) == (None, org.pool.id) for i in ids)


def test_assigning_to_a_rep_on_leave_is_refused(db, org):
    ids = _pool_customers(db, org, 1)
    away(org.rep, org.rep, TODAY, TODAY + DAY)
    err = _refusal(Conflict, lambda: assignment.assign(org.manager, ids, org.rep.id))
    assert (err.code, err.message) == (
        "absent", f"测试rep1 休假中（{TODAY}–{TODAY + DAY}），不能接收客户")
    assert holder_of(db, ids[0]) == (None, org.pool.id)
    # Leave that starts tomorrow does not stop today's assignment.
    away(org.rep2, org.rep2, TODAY + DAY, TODAY + 2 * DAY)
    assignment.assign(org.manager, ids, org.rep2.id)
    assert holder_of(db, ids[0]) == (org.rep2.id, None)


def _rule(db, **kw):
    rule = AssignmentRule(**kw)
    db.session.add(rule)
    db.session.commit()
    return rule


def test_rules_pass_over_a_rep_on_leave(db, org):
    from app.models import OwnershipEvent

    _rule(db, name="华东轮流", target_type="department", target_department_id=org.east.id,
          strategy="round_robin")
    away(org.rep, org.rep)
    got = [holder_of(db, customers.create_customer(org.staff, {"name": f"规则{i}"}).id)[0]
           for i in range(3)]
    assert got == [org.rep2.id] * 3
    away(org.rep2, org.rep2)
    c = customers.create_customer(org.staff, {"name": "都在休假"})
    assert holder_of(db, c.id) == (None, org.pool.id)
    event = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == c.id)).scalar_one()
    assert (event.kind, event.rule) == ("created", "rule:华东轮流")


def test_a_rule_naming_a_rep_on_leave_falls_back_to_the_pool_saying_so(db, org):
    from app.services import rules

    rule = _rule(db, name="全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    away(org.rep2, org.rep2, TODAY, TODAY + DAY)
    placed = rules.place(rule, rules._Loads())
    assert (placed.owner_id, placed.pool_id, placed.note) == (
        None, org.pool.id, f"指定销售休假中（{TODAY}–{TODAY + DAY}）")
    dept = _rule(db, name="华东", target_type="department", target_department_id=org.east.id)
    away(org.rep, org.rep)
    placed = rules.place(dept, rules._Loads())
    assert (placed.owner_id, placed.note) == (None, "部门内的销售都在休假")


def test_departure_handover_to_a_team_skips_who_is_on_leave(db, org):
    from app.services import departure

    away(org.rep2, org.rep2)
    plan = departure.handover(org.admin, org.rep.id, "team",
                              owner_ids=[org.rep2.id, org.manager.id], dry_run=True)
    assert [a["owner_id"] for a in plan["assignments"]] == [org.manager.id]
    assert plan["skipped"][0]["reason"] == f"休假中 {TODAY}–{TODAY + 2 * DAY}"


# --- effects: reclaim warnings and the team view ----------------------------------------------
NOW = dt.datetime(2026, 11, 23, 12, 0)


def _about_to_go(db, org):
    c = customers.create_customer(org.rep, {"name": "快到期"})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id).values(
        acquired_at=NOW - 28 * DAY, last_followup_at=None))
    db.session.commit()
    return c.id


@pytest.mark.parametrize("superior", [True, False])
def test_reclaim_warnings_of_an_owner_on_leave_go_to_the_stand_in(db, org, superior):
    from app.models import User

    if not superior:  # no superior: the department's manager (manager2 runs 华东 for this)
        db.session.execute(update(User).where(User.id == org.rep.id).values(superior_id=None))
        org.east.manager_id = org.manager_north.id
        db.session.commit()
    stand_in = org.manager.id if superior else org.manager_north.id
    cid = _about_to_go(db, org)
    absences.create_absence(org.rep, org.rep.id, dt.date(2026, 11, 20), dt.date(2026, 11, 25))
    assert reclaim.warn(now=NOW) >= 1
    note = db.session.execute(select(Notification).where(
        Notification.kind == "reclaim_warning",
        Notification.link == f"/customers/show/{cid}")).scalar_one()
    assert note.user_id == stand_in
    assert note.title == (f"（rep1 休假中，代为提醒）客户「快到期」将于 "
                          f"{(NOW + 2 * DAY):%Y-%m-%d} 被自动回收")
    assert note.body.startswith("负责人 rep1 休假中（2026-11-20–2026-11-25），此提醒发给您代为处理。")


def test_reclaim_warnings_of_an_owner_back_from_leave_go_to_the_owner(db, org):
    cid = _about_to_go(db, org)
    absences.create_absence(org.rep, org.rep.id, dt.date(2026, 11, 20), dt.date(2026, 11, 22))
    reclaim.warn(now=NOW)
    note = db.session.execute(select(Notification).where(
        Notification.link == f"/customers/show/{cid}")).scalar_one()
    assert note.user_id == org.rep.id and "休假" not in note.title


def test_the_team_view_says_who_is_on_leave(db, org):
    away(org.rep, org.rep, TODAY, TODAY + DAY)
    members = {m["username"]: m for m in workbench.team(org.manager)}
    assert members["rep1"]["absence"] == f"休假中 {TODAY}–{TODAY + DAY}"
    assert members["rep2"]["absence"] == ""
    assert workbench.my_absence(org.rep) == f"休假中 {TODAY}–{TODAY + DAY}"
    assert workbench.my_absence(org.rep2) == ""
