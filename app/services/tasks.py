"""Tasks (待办): a user's to-dos with a due time, optionally about one record.

Who reaches a task: its owner; a sales manager for the tasks of the users in their data scope
(本部门及下属); admins every task. Auditors read every task and change none. A task is
given to oneself, or by a manager or admin to a user within their reach; its new owner is
notified when someone else gives it. A link names a record by type and id (customer now);
each record type registers one resolver here (customers, opportunities), which says whether the actor may read the
record and what it is called, so leads, tickets or calls add a resolver and nothing else.

Follow-ups with a next contact date open a task for the customer's owner (and a newer
follow-up closes the previous one); care reminders on the in-app channel open one too.
`remind_due` (a periodic job) tells each owner once when a task falls due.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import and_, case, func, select, true, union_all, update
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Customer, Ownership, Task, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.task import TASK_STATUSES
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP,
                          ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF, ROLE_SCOPES,
                          can_see_customer, has_role, visible_owner_ids)
from app.services import audit, limits, notifications
from app.services.errors import (N_, NO_SUCH_CUSTOMER, UNKNOWN_FIELD, Conflict, OutOfScope,
                                 PermissionDenied, ValidationFailed, tr)
from app.services.ids import check_paging, parse_id, parse_optional_id
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import (from_local, local_day_bounds, local_text, local_today,
                                parse_local, rfc3339)

SUBJECT = 200  # the subject column
DAY_HOUR = 9  # a task due "on a day" (a typed date, a follow-up's next contact) is due at 09:00
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SHOWN = 100  # per workbench list (overdue / today / upcoming)
UPCOMING_DAYS = 7  # the workbench's "upcoming": the next seven days after today
REMIND_BATCH = 1000
FIELDS = ("subject", "notes", "due_at", "owner_id", "record_type", "record_id")
EDITABLE = ("subject", "notes", "due_at", "owner_id")
NO_SUCH_TASK = N_("The task does not exist or is outside your data scope")  # msgid


# --- linked records -------------------------------------------------------------------------
@dataclass(frozen=True)
class Resolver:
    """What tasks need of one record type: may the actor read record `id` (else OutOfScope),
    the names of records by id (one statement), the name as a scalar subquery correlated on a
    record id column (to read it with the tasks), and the page of one record."""

    label: str
    require_readable: Callable[[User, int], None]
    names: Callable[[list[int]], dict[int, str]]
    name_of: Callable[[Any], Any]
    link: Callable[[int], str]


RESOLVERS: dict[str, Resolver] = {}


def register_record_type(record_type: str, resolver: Resolver) -> None:
    RESOLVERS[record_type] = resolver


def _require_customer(actor: User, customer_id: int) -> None:
    if not can_see_customer(actor, customer_id):
        raise OutOfScope(tr(NO_SUCH_CUSTOMER))


def _customer_names(ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(db.session.execute(select(Customer.id, Customer.name)
                                   .where(Customer.id.in_(sorted(set(ids))))).all())


def _customer_name_of(record_id_column):
    return select(Customer.name).where(Customer.id == record_id_column).scalar_subquery()


register_record_type("customer", Resolver("customer", _require_customer, _customer_names,
                                          _customer_name_of,
                                          lambda pk: f"/customers/show/{pk}"))


def _require_opportunity(actor: User, opportunity_id: int) -> None:
    from app.services import opportunities

    opportunities.get_opportunity(actor, opportunity_id)  # OutOfScope when not readable


def _opportunity_names(ids: list[int]) -> dict[int, str]:
    from app.models import Opportunity

    if not ids:
        return {}
    return dict(db.session.execute(select(Opportunity.id, Opportunity.title)
                                   .where(Opportunity.id.in_(sorted(set(ids))))).all())


def _opportunity_name_of(record_id_column):
    from app.models import Opportunity

    return select(Opportunity.title).where(Opportunity.id == record_id_column).scalar_subquery()


register_record_type("opportunity", Resolver("opportunity", _require_opportunity,
                                             _opportunity_names, _opportunity_name_of,
                                             lambda pk: f"/opportunities/show/{pk}"))


def _require_ticket(actor: User, ticket_id: int) -> None:
    from app.services import tickets

    tickets.get_ticket(actor, ticket_id)  # OutOfScope when not readable


def _ticket_names(ids: list[int]) -> dict[int, str]:
    from app.models import Ticket

    if not ids:
        return {}
    return {pk: f"#{pk} {subject}" for pk, subject in db.session.execute(
        select(Ticket.id, Ticket.subject).where(Ticket.id.in_(sorted(set(ids))))).all()}


def _ticket_name_of(record_id_column):
    from app.models import Ticket

    return select(Ticket.subject).where(Ticket.id == record_id_column).scalar_subquery()


# 工单: SLA escalations and low satisfaction scores open tasks about a ticket.
register_record_type("ticket", Resolver("ticket", _require_ticket, _ticket_names,
                                        _ticket_name_of, lambda pk: f"/tickets/show/{pk}"))


def _require_lead(actor: User, lead_id: int) -> None:
    from app.services import leads

    leads.get_lead(actor, lead_id)  # OutOfScope when not readable


def _lead_names(ids: list[int]) -> dict[int, str]:
    from app.models import Lead

    if not ids:
        return {}
    return {row.id: row.company_name or row.person_name or f"#{row.id}"
            for row in db.session.execute(select(Lead.id, Lead.company_name, Lead.person_name)
                                          .where(Lead.id.in_(sorted(set(ids))))).all()}


def _lead_name_of(record_id_column):
    from app.models import Lead

    return select(func.coalesce(Lead.company_name, Lead.person_name)) \
        .where(Lead.id == record_id_column).scalar_subquery()


# 线索: a missed call from a lead's number opens a call-back task about the lead.
register_record_type("lead", Resolver("lead", _require_lead, _lead_names, _lead_name_of,
                                      lambda pk: f"/leads/show/{pk}"))


def record_name_column(record_type_column=Task.record_type, record_id_column=Task.record_id):
    """The linked record's name as a column expression (a CASE over the registered types)."""
    return case(*((record_type_column == kind, resolver.name_of(record_id_column))
                  for kind, resolver in RESOLVERS.items()), else_=None)


def record_names(tasks: Iterable[Task]) -> dict[tuple[str, int], str]:
    """{(record_type, record_id): name} for the tasks' links: one statement per record type."""
    wanted: dict[str, list[int]] = {}
    for t in tasks:
        if t.record_type in RESOLVERS and t.record_id is not None:
            wanted.setdefault(t.record_type, []).append(t.record_id)
    out: dict[tuple[str, int], str] = {}
    for kind, ids in wanted.items():
        out.update({(kind, pk): name for pk, name in RESOLVERS[kind].names(ids).items()})
    return out


def record_link(task: Task) -> Optional[str]:
    resolver = RESOLVERS.get(task.record_type or "")
    return resolver.link(task.record_id) if resolver and task.record_id else None


# --- scope ----------------------------------------------------------------------------------
def reach(actor: Optional[User], write: bool = True) -> Optional[frozenset[int]]:
    """The owners whose tasks the actor may act on (write) or read; None means everyone's."""
    if actor is None:
        return frozenset()
    if has_role(actor, ROLE_ADMIN) or (not write and has_role(actor, ROLE_AUDITOR)):
        return None
    owners = {actor.id}
    if has_role(actor, ROLE_MANAGER):
        owners |= visible_owner_ids(actor, ROLE_SCOPES[ROLE_MANAGER])
    return frozenset(owners)


def scope_clause(actor: Optional[User], column=Task.owner_id, write: bool = False):
    """WHERE clause limiting tasks (by their owner column) to what the actor may read."""
    owners = reach(actor, write)
    return true() if owners is None else column.in_(sorted(owners))


def _require_writer(actor: Optional[User]) -> None:
    # 客服 too: SLA escalations and low satisfaction scores give them tasks to close.
    if actor is None or not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF,
                                     ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER):
        raise PermissionDenied(tr("Your role cannot change tasks"))


def get_task(actor: User, task_id: Any, write: bool = False) -> Task:
    """The task if the actor may read it (write: act on it); OutOfScope for missing and
    "not yours" alike."""
    if write:
        _require_writer(actor)
    task = db.session.get(Task, parse_id(task_id, "id"))
    owners = reach(actor, write)
    if task is None or (owners is not None and task.owner_id not in owners):
        raise OutOfScope(tr(NO_SUCH_TASK))
    return task


# --- validation -----------------------------------------------------------------------------
_DAY = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*")  # a date alone, as times.typed_period


def parse_due(value: Any, errors: dict) -> Optional[dt.datetime]:
    """A due time as typed (business time unless it names its offset); a date alone is due
    at DAY_HOUR that day. Stored as naive UTC."""
    if value in (None, ""):
        errors["due_at"] = tr("Please give the due time")
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return from_local(dt.datetime.combine(value, dt.time(DAY_HOUR)))
    if isinstance(value, str) and is_unclean(value):
        errors["due_at"] = str(UNCLEAN_MESSAGE)
        return None
    if isinstance(value, str) and len(value) > 40:
        errors["due_at"] = limits.too_long(value, 40)
        return None
    try:
        day = _DAY.fullmatch(value) if isinstance(value, str) else None
        if day:
            return from_local(dt.datetime.combine(
                dt.date(*(int(p) for p in day.groups())), dt.time(DAY_HOUR)))
        parsed = parse_local(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        parsed = None
    if parsed is None:
        errors["due_at"] = tr("A time is written YYYY-MM-DD HH:MM")
    return parsed


def _text(data: dict, field: str, limit: int, errors: dict, required: bool = False):
    value = data.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = tr("Must be text")
        return None
    value = value.strip()
    if is_unclean(value):
        errors[field] = str(UNCLEAN_MESSAGE)
    elif required and not value:
        errors[field] = tr("Please write the task's subject")
    else:
        limits.check_length(errors, field, value, limit)
    return value or None


def _active_user(user_id: int) -> Optional[User]:
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
        return None
    return user


def _check_owner(actor: User, owner_id: Any, errors: dict) -> Optional[int]:
    try:
        owner_id = parse_optional_id(owner_id, "owner_id")
    except ValidationFailed as exc:
        errors.update(exc.fields)
        return None
    if owner_id is None:
        return actor.id
    owners = reach(actor)
    if _active_user(owner_id) is None:
        errors["owner_id"] = tr("No such active user")
    elif owners is not None and owner_id not in owners:
        errors["owner_id"] = tr("You can give tasks only to yourself or to users in your "
                                "data scope")
    return owner_id


def clean(actor: User, data: Any, partial: bool = False) -> dict[str, Any]:
    """The task's fields from a form or a body, checked; ValidationFailed naming each bad
    field. `partial` (an update) reads only the fields given, and no link."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    allowed = EDITABLE if partial else FIELDS
    errors: dict[str, str] = {k: str(UNKNOWN_FIELD) for k in data if k not in allowed}
    out: dict[str, Any] = {}
    if not partial or "subject" in data:
        out["subject"] = _text(data, "subject", SUBJECT, errors, required=True)
    if not partial or "notes" in data:
        out["notes"] = _text(data, "notes", limits.NOTE, errors)
    if not partial or "due_at" in data:
        out["due_at"] = parse_due(data.get("due_at"), errors)
    if not partial or "owner_id" in data:
        out["owner_id"] = _check_owner(actor, data.get("owner_id"), errors)
    if not partial:
        kind, pk = data.get("record_type"), data.get("record_id")
        kind = None if kind in (None, "") else kind
        pk = None if pk in (None, "") else pk
        if (kind is None) != (pk is None):
            errors["record_type" if kind is None else "record_id"] = tr(
                "Give both the record type and the record id, or neither")
        elif kind is not None:
            if not isinstance(kind, str) or kind not in RESOLVERS:
                errors["record_type"] = tr("The record type can only be: %(choices)s",
                                           choices=tr(", ").join(RESOLVERS))
            try:
                pk = parse_id(pk, "record_id")
            except ValidationFailed as exc:
                errors.update(exc.fields)
        out["record_type"], out["record_id"] = kind, pk
    if errors:
        raise ValidationFailed(errors)
    return out


# --- writes ---------------------------------------------------------------------------------
def page_link(task_id: int) -> str:
    return f"/tasks/show/{task_id}"


def _tell_new_owner(actor: Optional[User], task: Task) -> None:
    if actor is not None and task.owner_id != actor.id:
        notifications.notify([task.owner_id], "task_assigned",
                             f"{actor.display_name} 给你安排了待办：{task.subject}",
                             f"到期：{local_text(task.due_at)}", link=page_link(task.id))


def create(actor: User, data: Any) -> Task:
    """A task from a form or the API (owner: the actor unless named)."""
    _require_writer(actor)
    values = clean(actor, data)
    if values["record_type"] is not None:
        RESOLVERS[values["record_type"]].require_readable(actor, values["record_id"])
    task = Task(created_by_id=actor.id, source="manual", status="open", created_at=utcnow(),
                **values)
    audit.record_new(actor.id, "task", task)
    _tell_new_owner(actor, task)
    db.session.commit()
    return task


def update_task(actor: User, task_id: Any, data: Any) -> Task:
    """Change an open task's subject, notes, due time or owner. A new due time is reminded
    again; a new owner is told."""
    task = get_task(actor, task_id, write=True)
    values = clean(actor, data, partial=True)
    if task.status != "open":
        raise Conflict(tr("Only an open task can be changed; reopen it first"), code="not_open")
    changes = audit.diff(task, values)
    if not changes:
        return task
    if "due_at" in changes:
        task.reminded_at = None
    for field, (_old, new) in changes.items():
        setattr(task, field, new)
    audit.record(actor.id, "update", "task", task.id, changes)
    if "owner_id" in changes:
        _tell_new_owner(actor, task)
    db.session.commit()
    return task


_MOVES = {  # verb: (from statuses, to status)
    "done": (("open",), "done"),
    "cancel": (("open",), "cancelled"),
    "reopen": (("done", "cancelled"), "open"),
}
_NOT_MOVABLE = {"done": N_("Only an open task can be marked done"),
                "cancel": N_("Only an open task can be cancelled"),
                "reopen": N_("Only a done or cancelled task can be reopened")}  # msgids


def _move(actor: Optional[User], task: Task, verb: str, now: dt.datetime) -> bool:
    """Move one task by `verb` if its status allows (a conditional UPDATE: of two clicks at
    once one wins); audited. False when the task was not in a state for it."""
    sources, target = _MOVES[verb]
    values: dict[str, Any] = {"status": target}
    if target == "done":
        values["done_at"] = now
    elif target == "open":
        values.update(done_at=None, reminded_at=None)
    moved = db.session.execute(
        update(Task).where(Task.id == task.id, Task.status.in_(sources)).values(**values)
        .execution_options(synchronize_session=False)).rowcount
    if moved:
        audit.record(actor.id if actor else None, verb, "task", task.id,
                     {"status": (task.status, target)})
        db.session.expire(task)
    return bool(moved)


def change_status(actor: User, task_id: Any, verb: str) -> Task:
    """done / cancel / reopen one task; Conflict (code not_open / not_closed) otherwise."""
    task = get_task(actor, task_id, write=True)
    if not _move(actor, task, verb, utcnow()):
        db.session.rollback()
        raise Conflict(tr(_NOT_MOVABLE[verb]),
                       code="not_closed" if verb == "reopen" else "not_open")
    db.session.commit()
    return task


def complete(actor: User, task_id: Any) -> Task:
    return change_status(actor, task_id, "done")


def cancel(actor: User, task_id: Any) -> Task:
    return change_status(actor, task_id, "cancel")


def reopen(actor: User, task_id: Any) -> Task:
    return change_status(actor, task_id, "reopen")


def change_many(actor: User, task_ids: Iterable[Any], verb: str) -> int:
    """The list's bulk done / cancel / reopen: the whole request is refused (OutOfScope) if
    any task is out of reach; tasks not in a state for it are left alone. Returns how many
    moved."""
    tasks = [get_task(actor, pk, write=True) for pk in task_ids]
    now = utcnow()
    moved = sum(_move(actor, t, verb, now) for t in tasks)
    db.session.commit()
    return moved


# --- tasks the system opens -----------------------------------------------------------------
def day_due(day: dt.date, hour: int = DAY_HOUR) -> dt.datetime:
    """A business day's due time (hour:00 business time) as stored."""
    return from_local(dt.datetime.combine(day, dt.time(hour)))


def followup_logged(actor: User, customer: Customer, next_contact_on: Optional[dt.date],
                    now: dt.datetime) -> Optional[Task]:
    """A follow-up was logged on `customer` (in the caller's transaction): the previous open
    follow-up task of the customer is done, and a next contact date opens one for the
    customer's owner ("跟进：<name>", due that day). Does not commit."""
    previous = db.session.execute(select(Task).where(
        Task.record_type == "customer", Task.record_id == customer.id,
        Task.source == "followup", Task.status == "open")).scalars().all()
    for task in previous:
        _move(actor, task, "done", now)
    owner_id = db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == customer.id)).scalar()
    if next_contact_on is None or owner_id is None:
        return None
    task = Task(owner_id=owner_id, created_by_id=actor.id, subject=f"跟进：{customer.name}"[:SUBJECT],
                due_at=day_due(next_contact_on), record_type="customer",
                record_id=customer.id, source="followup", status="open", created_at=now)
    audit.record_new(actor.id, "task", task)
    return task


def care_reminder(owner_id: Optional[int], customer_id: int, subject: str, notes: str,
                  day: dt.date, now: dt.datetime, hour: int = DAY_HOUR) -> Optional[Task]:
    """A care message on the in-app channel went out: its owner gets a task about the
    customer, due on the occasion's day. Does not commit (the delivery commits)."""
    if owner_id is None:
        return None
    task = Task(owner_id=owner_id, created_by_id=None, subject=(subject or "关怀提醒")[:SUBJECT],
                notes=notes or None, due_at=day_due(day, hour), record_type="customer",
                record_id=customer_id, source="care", status="open", created_at=now)
    audit.record_new(None, "task", task)
    return task


def open_call_back(owner_id: int, record_type: str, record_id: int, subject: str, notes: str,
                   due_at: dt.datetime, now: dt.datetime) -> Task:
    """A missed call: a call-back task (source 'call') about the caller's customer or lead
    for `owner_id`. Does not commit (the call's event commits)."""
    task = Task(owner_id=owner_id, created_by_id=None, subject=subject[:SUBJECT],
                notes=notes or None, due_at=due_at, record_type=record_type,
                record_id=record_id, source="call", status="open", created_at=now)
    audit.record_new(None, "task", task)
    return task


def open_call_backs(record_type: str, record_id: int) -> list[Task]:
    """The open call-back tasks about one customer or lead, oldest first."""
    return list(db.session.execute(select(Task).where(
        Task.record_type == record_type, Task.record_id == record_id, Task.source == "call",
        Task.status == "open").order_by(Task.id)).scalars())


def close_call_backs(record_type: str, record_id: int, now: dt.datetime) -> list[int]:
    """An answered call with the customer or lead: its open call-back tasks are done (audited,
    by the system). Does not commit. Returns the ids closed."""
    return [t.id for t in open_call_backs(record_type, record_id) if _move(None, t, "done", now)]


# --- reminders ------------------------------------------------------------------------------
def remind_due(now: Optional[dt.datetime] = None, batch: int = REMIND_BATCH) -> int:
    """Tell each owner once about their tasks that fell due: the due, open, unreminded tasks
    are marked reminded in one UPDATE per batch (a second run, or a run alongside, finds
    them marked and sends nothing), and each owner gets one notification per batch.
    Returns how many tasks were reminded."""
    now = now or utcnow()
    table = Task.__table__
    due = and_(table.c.status == "open", table.c.reminded_at.is_(None), table.c.due_at <= now)
    total = 0
    while True:
        ids = select(table.c.id).where(due).order_by(table.c.id).limit(batch).scalar_subquery()
        rows = db.session.execute(
            update(table).where(table.c.id.in_(ids), due).values(reminded_at=now)
            .returning(table.c.id, table.c.owner_id, table.c.subject)).all()
        by_owner: dict[int, list] = {}
        for row in rows:
            by_owner.setdefault(row.owner_id, []).append(row)
        for owner_id, mine in by_owner.items():
            mine.sort(key=lambda r: r.id)
            if len(mine) == 1:
                notifications.notify([owner_id], "task_due", f"待办到期：{mine[0].subject}",
                                     "", link=page_link(mine[0].id))
            else:
                names = "；".join(r.subject for r in mine[:5])
                notifications.notify([owner_id], "task_due", f"{len(mine)} 项待办到期",
                                     names, link="/tasks/list/")
        db.session.commit()
        total += len(rows)
        if len(rows) < batch:
            return total


# --- reading --------------------------------------------------------------------------------
def my_tasks(user_id: int, today: Optional[dt.date] = None, limit: int = SHOWN) -> dict:
    """The workbench's 我的待办: the user's open tasks overdue (due before today, most
    overdue first), due today, and upcoming (the next UPCOMING_DAYS days), at most `limit`
    of each, with how many each list holds ("counts"). One statement: the rows with the
    linked records' names and the counts riding on them (short ranges of the (owner, status,
    due) index)."""
    today = today or local_today()
    start, tomorrow = local_day_bounds(today)
    horizon = local_day_bounds(today + dt.timedelta(days=UPCOMING_DAYS))[1]
    mine = and_(Task.owner_id == user_id, Task.status == "open")
    buckets = {"overdue": Task.due_at < start,
               "today": and_(Task.due_at >= start, Task.due_at < tomorrow),
               "upcoming": and_(Task.due_at >= tomorrow, Task.due_at < horizon)}
    counts = select(*(func.count().filter(clause).label(name)
                      for name, clause in buckets.items())) \
        .where(mine, Task.due_at < horizon).subquery()
    pick = select(Task.id, Task.subject, Task.due_at, Task.record_type, Task.record_id,
                  record_name_column().label("record_name"))
    parts = [pick.where(mine, clause).order_by(Task.due_at, Task.id).limit(limit).subquery()
             for clause in buckets.values()]
    due = union_all(*(select(p) for p in parts)).subquery()
    rows = db.session.execute(
        select(due, *(counts.c[name].label(f"n_{name}") for name in buckets))
        .select_from(due.join(counts, true()))).all()
    out: dict[str, Any] = {name: [] for name in buckets}
    out["counts"] = ({name: getattr(rows[0], f"n_{name}") for name in buckets} if rows
                     else {name: 0 for name in buckets})
    for r in sorted(rows, key=lambda r: (r.due_at, r.id)):
        bucket = "overdue" if r.due_at < start else "today" if r.due_at < tomorrow \
            else "upcoming"
        resolver = RESOLVERS.get(r.record_type or "")
        out[bucket].append({"id": r.id, "subject": r.subject, "due_at": r.due_at,
                            "record": r.record_name,
                            "link": resolver.link(r.record_id) if resolver else None})
    return out


@dataclass
class Page:
    items: list[Task]
    total: int
    page: int
    page_size: int


def list_tasks(actor: User, status: Optional[str] = None, owner_id: Any = None,
               page: int = 0, page_size: int = PAGE_SIZE) -> Page:
    """One page of the tasks the actor may read, by due time (then id); `status` and
    `owner_id` narrow it."""
    check_paging(page, page_size, MAX_PAGE_SIZE)
    where = [scope_clause(actor)]
    if status is not None:
        if not isinstance(status, str) or status not in TASK_STATUSES:
            raise ValidationFailed({"status": tr("The status can only be: %(choices)s",
                                                 choices=tr(", ").join(TASK_STATUSES))})
        where.append(Task.status == status)
    if owner_id is not None:
        where.append(Task.owner_id == parse_id(owner_id, "owner_id"))
    total = db.session.execute(select(func.count()).select_from(Task).where(*where)).scalar_one()
    items = db.session.execute(select(Task).where(*where).order_by(Task.due_at, Task.id)
                               .offset(page * page_size).limit(page_size)).scalars().all()
    return Page(list(items), total, page, page_size)


def to_dict(task: Task, names: Optional[dict] = None) -> dict:
    names = names if names is not None else record_names([task])
    return {"id": task.id, "subject": task.subject, "notes": task.notes,
            "due_at": rfc3339(task.due_at), "owner_id": task.owner_id,
            "created_by_id": task.created_by_id, "record_type": task.record_type,
            "record_id": task.record_id,
            "record_name": names.get((task.record_type, task.record_id)),
            "source": task.source, "status": task.status, "done_at": rfc3339(task.done_at),
            "reminded_at": rfc3339(task.reminded_at), "created_at": rfc3339(task.created_at)}


def for_record(actor: User, record_type: str, record_id: int, limit: int = 50) -> list[Task]:
    """The tasks about one record that the actor may read (the customer page's tab): open
    ones first by due time, then the closed ones, newest due first; at most `limit`."""
    return list(db.session.execute(
        select(Task).where(Task.record_type == record_type, Task.record_id == record_id,
                           scope_clause(actor))
        .order_by((Task.status != "open"), Task.due_at, Task.id).limit(limit)
        .options(joinedload(Task.owner))).scalars())
