"""Tasks (待办): validation with the exact field refused, who reaches whose tasks (every role),
assignment within the scope and the new owner told, links to readable customers only, done /
cancel / reopen audited and race-safe, reminders once per task (also with two runs at
once), the workbench lists, follow-up and care reminders opening tasks."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from app.models import AuditLog, Notification, Task
from app.services import care, followups, tasks
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from app.services.ids import MAX_PK

DUE = "2026-12-01 15:00"  # business time (Asia/Shanghai)
DUE_UTC = dt.datetime(2026, 12, 1, 7, 0)


def make(actor, **data):
    return tasks.create(actor, {"subject": "回访报价", "due_at": DUE, **data})


def notes_of(db, user_id, kind):
    db.session.expire_all()
    return list(db.session.execute(select(Notification).where(
        Notification.user_id == user_id, Notification.kind == kind)
        .order_by(Notification.id)).scalars())


def audit_of(db, task_id):
    return [(a.action, a.changes) for a in db.session.execute(
        select(AuditLog).where(AuditLog.object_type == "task", AuditLog.object_id == task_id)
        .order_by(AuditLog.id)).scalars()]


# --- create and validate --------------------------------------------------------------------
def test_a_rep_adds_a_task_for_themselves_due_in_business_time(db, org):
    task = make(org.rep, notes="带上新报价单", record_type="customer", record_id=org.c_rep.id)
    db.session.expire_all()
    task = db.session.get(Task, task.id)
    assert (task.owner_id, task.created_by_id, task.subject, task.notes) == (
        org.rep.id, org.rep.id, "回访报价", "带上新报价单")
    assert (task.due_at, task.status, task.source, task.done_at, task.reminded_at) == (
        DUE_UTC, "open", "manual", None, None)
    assert (task.record_type, task.record_id, task.customer.id) == (
        "customer", org.c_rep.id, org.c_rep.id)
    assert audit_of(db, task.id)[0][0] == "create"
    assert notes_of(db, org.rep.id, "task_assigned") == []  # nobody else gave it


def test_a_date_alone_is_due_at_nine_and_an_offset_is_kept(db, org):
    assert make(org.rep, due_at="2026-12-01").due_at == dt.datetime(2026, 12, 1, 1, 0)
    assert make(org.rep, due_at="2026-12-01T15:00:00+00:00").due_at == \
        dt.datetime(2026, 12, 1, 15, 0)


@pytest.mark.parametrize("data,field", [
    ({"subject": "", "due_at": DUE}, "subject"),
    ({"subject": "   ", "due_at": DUE}, "subject"),
    ({"subject": "x" * 201, "due_at": DUE}, "subject"),
    ({"subject": "a\x00b", "due_at": DUE}, "subject"),
    ({"subject": 5, "due_at": DUE}, "subject"),
    ({"subject": "s", "due_at": DUE, "notes": "n" * 10_001}, "notes"),
    ({"subject": "s"}, "due_at"),
    ({"subject": "s", "due_at": "明天"}, "due_at"),
    ({"subject": "s", "due_at": "2026-13-01"}, "due_at"),
    ({"subject": "s", "due_at": "2" * 41}, "due_at"),
    ({"subject": "s", "due_at": DUE, "owner_id": MAX_PK + 1}, "owner_id"),
    ({"subject": "s", "due_at": DUE, "owner_id": "abc"}, "owner_id"),
    ({"subject": "s", "due_at": DUE, "owner_id": 999_999}, "owner_id"),
    ({"subject": "s", "due_at": DUE, "record_type": "customer"}, "record_id"),
    ({"subject": "s", "due_at": DUE, "record_id": 1}, "record_type"),
    ({"subject": "s", "due_at": DUE, "record_type": "contract", "record_id": 1}, "record_type"),
    ({"subject": "s", "due_at": DUE, "record_type": "customer", "record_id": "1.5"},
     "record_id"),
    ({"subject": "s", "due_at": DUE, "colour": "red"}, "colour"),
])
def test_bad_input_is_refused_naming_the_field(db, org, data, field):
    with pytest.raises(ValidationFailed) as exc:
        tasks.create(org.rep, data)
    assert set(exc.value.fields) == {field}
    assert db.session.execute(select(Task.id)).first() is None


def test_refusal_texts(db, org):
    with pytest.raises(ValidationFailed) as exc:
        tasks.create(org.rep, {"record_type": "customer"})
    assert exc.value.fields == {"subject": "请填写待办事项", "due_at": "请填写到期时间",
                                "record_id": "记录类型和记录编号要么都填，要么都不填"}


@pytest.mark.parametrize("actor,owner,allowed", [
    ("rep", "rep", True), ("rep", "rep2", False), ("rep", "manager", False),
    ("manager", "rep", True), ("manager", "rep2", True), ("manager", "rep_north", False),
    ("manager_north", "rep_north", True), ("manager_north", "rep", False),
    ("admin", "rep_north", True), ("admin", "staff", True),
    ("staff", "staff", True), ("staff", "rep", False),
])
def test_a_task_is_given_only_within_the_scope(db, org, actor, owner, allowed):
    who, owner_user = getattr(org, actor), getattr(org, owner)
    if not allowed:
        with pytest.raises(ValidationFailed) as exc:
            make(who, owner_id=owner_user.id)
        assert exc.value.fields == {"owner_id": "只能给自己或数据范围内的用户安排待办"}
        return
    task = make(who, owner_id=owner_user.id)
    assert task.owner_id == owner_user.id
    told = notes_of(db, owner_user.id, "task_assigned")
    if owner_user.id == who.id:
        assert told == []
    else:
        assert len(told) == 1 and told[0].link == f"/tasks/show/{task.id}"
        assert told[0].title.endswith("给你安排了待办：回访报价")


def test_auditors_change_no_task(db, org):
    with pytest.raises(PermissionDenied) as exc:
        make(org.auditor)
    assert exc.value.code == "forbidden"
    theirs = make(org.rep)
    assert tasks.get_task(org.auditor, theirs.id).id == theirs.id  # they read it
    for verb in (tasks.complete, tasks.cancel):
        with pytest.raises(PermissionDenied):
            verb(org.auditor, theirs.id)


@pytest.mark.parametrize("actor,customer,allowed", [
    ("rep", "c_rep", True), ("rep", "c_rep2", False), ("rep", "c_pool", False),
    ("manager", "c_rep2", True), ("manager", "c_north", False),
    ("staff", "c_north", True), ("admin", "c_pool", True),
])
def test_a_linked_customer_must_be_readable_by_the_actor(db, org, actor, customer, allowed):
    who, target = getattr(org, actor), getattr(org, customer)
    if allowed:
        assert make(who, record_type="customer", record_id=target.id).record_id == target.id
        return
    with pytest.raises(OutOfScope) as exc:
        make(who, record_type="customer", record_id=target.id)
    assert exc.value.code == "out_of_scope"
    with pytest.raises(OutOfScope):
        make(who, record_type="customer", record_id=MAX_PK)  # missing: the same answer


# --- who reaches whose tasks ----------------------------------------------------------------
@pytest.fixture
def owned(db, org):
    """One task owned by each of rep, rep2, rep_north, manager and staff."""
    out = {}
    for name in ("rep", "rep2", "rep_north", "manager", "staff"):
        out[name] = make(org.admin, owner_id=getattr(org, name).id, subject=f"{name} 的待办").id
    return out


READS = {"admin": {"rep", "rep2", "rep_north", "manager", "staff"},
         "auditor": {"rep", "rep2", "rep_north", "manager", "staff"},
         "manager": {"rep", "rep2", "manager"}, "manager_north": {"rep_north"},
         "rep": {"rep"}, "rep2": {"rep2"}, "staff": {"staff"}}
WRITES = dict(READS, auditor=set())


@pytest.mark.parametrize("role", sorted(READS))
def test_each_role_reads_exactly_its_reach(db, org, owned, role):
    actor = getattr(org, role)
    page = tasks.list_tasks(actor, page_size=500)
    assert {t.id for t in page.items} == {owned[n] for n in READS[role]}
    assert page.total == len(READS[role])
    for name, task_id in owned.items():
        if name in READS[role]:
            assert tasks.get_task(actor, task_id).id == task_id
        else:
            with pytest.raises(OutOfScope):
                tasks.get_task(actor, task_id)


@pytest.mark.parametrize("role", sorted(WRITES))
def test_each_role_completes_exactly_the_tasks_it_acts_on(db, org, owned, role):
    actor = getattr(org, role)
    for name, task_id in owned.items():
        if name in WRITES[role]:
            assert tasks.complete(actor, task_id).status == "done"
        else:
            with pytest.raises((OutOfScope, PermissionDenied)):
                tasks.complete(actor, task_id)
    db.session.expire_all()
    done = set(db.session.execute(select(Task.id).where(Task.status == "done")).scalars())
    assert done == {owned[n] for n in WRITES[role]}


def test_list_filters_and_pages(db, org, owned):
    tasks.complete(org.admin, owned["rep"])
    assert [t.id for t in tasks.list_tasks(org.manager, status="open").items] == [
        owned["rep2"], owned["manager"]]
    assert [t.id for t in tasks.list_tasks(org.manager, owner_id=org.rep2.id).items] == [
        owned["rep2"]]
    with pytest.raises(ValidationFailed) as exc:
        tasks.list_tasks(org.rep, status="closed")
    assert set(exc.value.fields) == {"status"}
    with pytest.raises(ValidationFailed) as exc:
        tasks.list_tasks(org.rep, page=-1, page_size=0)
    assert set(exc.value.fields) == {"page", "page_size"}


# --- status changes -------------------------------------------------------------------------
def test_done_cancel_reopen_move_only_from_their_states_and_are_audited(db, org):
    task = make(org.rep)
    done = tasks.complete(org.rep, task.id)
    assert done.status == "done" and done.done_at is not None
    with pytest.raises(Conflict) as exc:
        tasks.complete(org.rep, task.id)
    assert (exc.value.code, exc.value.status) == ("not_open", 409)
    with pytest.raises(Conflict) as exc:
        tasks.cancel(org.rep, task.id)
    assert exc.value.code == "not_open"
    with pytest.raises(Conflict) as exc:
        tasks.update_task(org.rep, task.id, {"subject": "改"})
    assert exc.value.code == "not_open"
    again = tasks.reopen(org.rep, task.id)
    assert (again.status, again.done_at, again.reminded_at) == ("open", None, None)
    with pytest.raises(Conflict) as exc:
        tasks.reopen(org.rep, task.id)
    assert exc.value.code == "not_closed"
    assert tasks.cancel(org.rep, task.id).status == "cancelled"
    assert [a for a, _ in audit_of(db, task.id)] == ["create", "done", "reopen", "cancel"]
    assert audit_of(db, task.id)[1][1] == {"status": ["open", "done"]}


def test_update_changes_fields_reminds_again_and_tells_a_new_owner(db, org):
    task = make(org.manager, owner_id=org.rep.id)
    tasks.remind_due(now=DUE_UTC + dt.timedelta(minutes=1))
    db.session.expire_all()
    assert db.session.get(Task, task.id).reminded_at is not None
    changed = tasks.update_task(org.manager, task.id, {"due_at": "2026-12-03 10:00",
                                                       "owner_id": org.rep2.id,
                                                       "notes": "客户改期"})
    assert (changed.due_at, changed.owner_id, changed.reminded_at, changed.notes) == (
        dt.datetime(2026, 12, 3, 2, 0), org.rep2.id, None, "客户改期")
    assert len(notes_of(db, org.rep2.id, "task_assigned")) == 1
    assert audit_of(db, task.id)[-1][0] == "update"
    with pytest.raises(ValidationFailed) as exc:
        tasks.update_task(org.manager, task.id, {"record_id": 1, "subject": ""})
    assert set(exc.value.fields) == {"record_id", "subject"}
    # The rep who lost it no longer reaches it.
    with pytest.raises(OutOfScope):
        tasks.update_task(org.rep, task.id, {"subject": "x"})


def test_a_bulk_change_with_one_task_out_of_reach_changes_nothing(db, org):
    mine, theirs = make(org.rep).id, make(org.rep2).id
    with pytest.raises(OutOfScope):
        tasks.change_many(org.rep, [mine, theirs], "done")
    db.session.expire_all()
    assert {t.status for t in db.session.execute(select(Task)).scalars()} == {"open"}
    assert tasks.change_many(org.rep, [mine], "done") == 1
    assert tasks.change_many(org.rep, [mine], "done") == 0  # already done: left alone


@pytest.mark.real_db
def test_two_people_closing_one_task_at_once_close_it_once(app, db, org):
    task_id, rep_id, manager_id = make(org.rep).id, org.rep.id, org.manager.id
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def close(user_id, verb):
        with app.app_context():
            from app.extensions import db as tdb
            from app.models import User

            try:
                user = tdb.session.get(User, user_id)
                barrier.wait(timeout=30)
                tasks.change_status(user, task_id, verb)
                outcomes.append("ok")
            except Conflict as exc:
                outcomes.append(exc.code)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=close, args=(rep_id, "done")),
               threading.Thread(target=close, args=(manager_id, "cancel"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["not_open", "ok"]
    db.session.expire_all()
    assert len([a for a, _ in audit_of(db, task_id) if a in ("done", "cancel")]) == 1


# --- reminders ------------------------------------------------------------------------------
def test_each_due_task_is_reminded_once_one_notification_per_owner(db, org):
    now = DUE_UTC + dt.timedelta(minutes=1)
    a = make(org.rep, subject="甲")
    b = make(org.rep, subject="乙", due_at="2026-12-01 14:00")
    c = make(org.manager, owner_id=org.rep2.id, subject="丙")
    later = make(org.rep, subject="丁", due_at="2026-12-02 09:00")
    closed = make(org.rep, subject="戊")
    tasks.complete(org.rep, closed.id)
    assert tasks.remind_due(now=now) == 3
    rep_notes = notes_of(db, org.rep.id, "task_due")
    assert [(n.title, n.body, n.link) for n in rep_notes] == [
        ("2 项待办到期", "甲；乙", "/tasks/list/")]
    assert [(n.title, n.link) for n in notes_of(db, org.rep2.id, "task_due")] == [
        ("待办到期：丙", f"/tasks/show/{c.id}")]
    reminded = dict(db.session.execute(select(Task.id, Task.reminded_at)).all())
    assert reminded[a.id] == reminded[b.id] == reminded[c.id] == now
    assert reminded[later.id] is None and reminded[closed.id] is None
    assert tasks.remind_due(now=now + dt.timedelta(minutes=5)) == 0  # idempotent
    assert len(notes_of(db, org.rep.id, "task_due")) == 1


def test_reminders_go_out_in_batches(db, org):
    for i in range(5):
        make(org.rep, subject=f"第{i}项")
    assert tasks.remind_due(now=DUE_UTC, batch=2) == 5
    assert [n.title for n in notes_of(db, org.rep.id, "task_due")] == [
        "2 项待办到期", "2 项待办到期", "待办到期：第4项"]


@pytest.mark.real_db
def test_two_reminder_runs_at_once_remind_each_task_once(app, db, org):
    for i in range(40):
        make(org.admin, owner_id=(org.rep.id, org.rep2.id)[i % 2], subject=f"并发{i}")
    now = DUE_UTC + dt.timedelta(minutes=1)
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run():
        with app.app_context():
            from app.extensions import db as tdb

            try:
                barrier.wait(timeout=30)
                counts.append(tasks.remind_due(now=now, batch=7))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(counts) == 40
    db.session.expire_all()
    assert db.session.execute(select(Task.id).where(Task.reminded_at.is_(None))).first() is None
    titles = [n.title for n in notes_of(db, org.rep.id, "task_due") +
              notes_of(db, org.rep2.id, "task_due")]
    reminded = sum(int(t.split(" ")[0]) if " 项" in t else 1 for t in titles)
    assert reminded == 40  # every task in exactly one notification


# --- the workbench --------------------------------------------------------------------------
def test_my_tasks_are_overdue_today_and_upcoming_with_counts(db, org):
    today = dt.date(2026, 12, 1)
    make(org.rep, subject="上周", due_at="2026-11-24 10:00")
    make(org.rep, subject="昨天", due_at="2026-11-30 23:59")
    make(org.rep, subject="今早", due_at="2026-12-01 00:00", record_type="customer",
         record_id=org.c_rep.id)
    make(org.rep, subject="今晚", due_at="2026-12-01 23:59")
    make(org.rep, subject="明天", due_at="2026-12-02 08:00")
    make(org.rep, subject="七天后", due_at="2026-12-08 23:00")
    make(org.rep, subject="太远", due_at="2026-12-09 00:00")
    tasks.complete(org.rep, make(org.rep, subject="做完了", due_at="2026-11-30 10:00").id)
    make(org.rep2, subject="别人的", due_at="2026-12-01 10:00")
    out = tasks.my_tasks(org.rep.id, today)
    assert [t["subject"] for t in out["overdue"]] == ["上周", "昨天"]
    assert [t["subject"] for t in out["today"]] == ["今早", "今晚"]
    assert [t["subject"] for t in out["upcoming"]] == ["明天", "七天后"]
    assert out["counts"] == {"overdue": 2, "today": 2, "upcoming": 2}
    first = out["today"][0]
    assert (first["record"], first["link"]) == (org.c_rep.name, f"/customers/show/{org.c_rep.id}")
    bounded = tasks.my_tasks(org.rep.id, today, limit=1)
    assert [t["subject"] for t in bounded["overdue"]] == ["上周"]
    assert bounded["counts"] == {"overdue": 2, "today": 2, "upcoming": 2}
    assert tasks.my_tasks(org.staff.id, today) == {
        "overdue": [], "today": [], "upcoming": [],
        "counts": {"overdue": 0, "today": 0, "upcoming": 0}}


# --- follow-ups and care open tasks ---------------------------------------------------------
def followup_tasks(db, customer_id):
    db.session.expire_all()
    return list(db.session.execute(select(Task).where(
        Task.record_type == "customer", Task.record_id == customer_id,
        Task.source == "followup").order_by(Task.id)).scalars())


def test_a_next_contact_date_opens_a_task_and_a_newer_follow_up_closes_it(db, org):
    followups.log_followup(org.staff, org.c_rep.id, {
        "channel": "call", "content": "约下周演示", "next_contact_on": "2026-12-10"})
    (first,) = followup_tasks(db, org.c_rep.id)
    assert (first.owner_id, first.created_by_id, first.subject, first.due_at, first.status) == (
        org.rep.id, org.staff.id, f"跟进：{org.c_rep.name}", dt.datetime(2026, 12, 10, 1, 0),
        "open")
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "visit", "content": "演示完成", "next_contact_on": "2026-12-20"})
    first_now, second = followup_tasks(db, org.c_rep.id)
    assert (first_now.status, first_now.done_at is not None) == ("done", True)
    assert (second.status, second.due_at) == ("open", dt.datetime(2026, 12, 20, 1, 0))
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "已签约"})
    assert [t.status for t in followup_tasks(db, org.c_rep.id)] == ["done", "done"]
    # A task added by hand about the customer is left alone by follow-ups.
    manual = make(org.rep, record_type="customer", record_id=org.c_rep.id)
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "再联系"})
    db.session.expire_all()
    assert db.session.get(Task, manual.id).status == "open"
    # The 待跟进 panel still reads the ownership row.
    followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "明天再打", "next_contact_on": followups.local_today()})
    assert [r["customer_id"] for r in followups.due_reminders(
        org.rep.id, followups.local_today())["today"]] == [org.c_rep.id]


def test_a_pool_customer_follow_up_opens_no_task(db, org):
    followups.log_followup(org.admin, org.c_pool.id, {
        "channel": "call", "content": "公海客户", "next_contact_on": "2026-12-10"})
    assert followup_tasks(db, org.c_pool.id) == []


def test_care_on_the_task_channel_opens_a_task_for_the_owner(db, org):
    care.plan(dt.date(2027, 2, 3))  # 春节 in three days; only the owners' tasks are active
    care.deliver(now=dt.datetime(2027, 2, 2, 23, 0))  # 07:00 on 2027-02-03 in Beijing
    db.session.expire_all()
    made = list(db.session.execute(select(Task).where(Task.source == "care")
                                   .order_by(Task.record_id)).scalars())
    assert {(t.owner_id, t.record_id) for t in made} == {
        (org.rep.id, org.c_rep.id), (org.rep2.id, org.c_rep2.id),
        (org.rep_north.id, org.c_north.id)}
    rep_task = next(t for t in made if t.owner_id == org.rep.id)
    assert rep_task.subject.startswith("春节") and rep_task.subject.endswith(org.c_rep.name)
    assert rep_task.due_at == dt.datetime(2027, 2, 6, 1, 0)  # 09:00 on the holiday
    assert rep_task.status == "open" and rep_task.record_type == "customer"
    # Delivering again opens nothing more.
    care.deliver(now=dt.datetime(2027, 2, 3, 0, 0))
    assert db.session.execute(select(Task.id).where(Task.source == "care")).all().__len__() == 3
