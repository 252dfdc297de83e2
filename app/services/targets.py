"""Sales targets (业绩目标) and their attainment (达成率).

A target belongs to one user or one department, for one month or quarter (by its first day),
and sets a won amount and / or a number of new customers. One per holder and period (two
unique indexes; a second insert of the same loses with `target_exists`, also under a race).

Who does what:
- admins set, change and delete every target;
- a sales manager sets the targets of the users of his department tree (本部门及下属) except
  his own, and of the departments *below* his own — his own target and his own department's
  are set by whoever sits above him (an admin), so nobody grades his own homework;
- a manager reads the targets of his tree (his own and his department's included), a rep
  reads his own, an auditor reads every target; back-office staff have no part in targets.

What counts (the actuals of a period [start, end), business dates):
- won amount: the deals (成交) with `won_on` in the period, counted for the deal's `user_id` —
  the user who recorded the deal, who is the customer's owner or someone acting in their
  scope (a deal is recorded on a customer the recorder may write);
- new customers: the distinct customers that became the user's in the period by creation,
  claim, assignment or an assignment rule (ownership events created / claimed / assigned /
  rule-assigned, whose time falls in the period's business days). A handover (transferred)
  or a merge is not an acquisition; a customer taken twice in a period counts once;
- a department's actuals: those of the users whose department is in its tree (now), its
  new customers counted once per department.
- 达成率 = actual / target (None where the target is not set or is 0).

A department's targets should be split over its parts: the sum of its direct members' targets
and its direct sub-departments' targets. Where that sum differs from the department's own
target, the department shows a warning that names both numbers.

Every read of attainment is one statement whatever the team's size: per user and department
the targets and actuals are correlated sub-selects of one UNION ALL.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from flask_appbuilder.security.sqla.models import Role, assoc_user_role
from sqlalchemy import (Numeric, cast, distinct, func, literal_column, null, or_, select, true,
                        union_all)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload

from app.extensions import db
from app.models import Deal, Department, OwnershipEvent, SalesTarget, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.target import PERIOD_KINDS
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP, Scope, has_role,
                          visible_owner_ids)
from app.services import audit
from app.services.errors import (N_, UNKNOWN_FIELD, Conflict, OutOfScope, PermissionDenied,
                                 ValidationFailed, tr)
from app.services.ids import parse_id, parse_optional_id
from app.services.times import local_day_bounds, local_today, rfc3339

MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)
MAX_COUNT = 1_000_000
PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# How a customer becomes a user's new customer (ownership event kinds).
ACQUIRED = ("created", "claimed", "assigned", "rule-assigned")
FIELDS = ("user_id", "department_id", "period_kind", "period_start", "won_amount",
          "new_customers")
EDITABLE = ("won_amount", "new_customers")
MEASURES = ("won_amount", "new_customers")
SELLERS = (ROLE_REP, ROLE_MANAGER)  # the users the team views list (besides any with a target)
NO_SUCH_TARGET = N_("The sales target does not exist or is outside your data scope")  # msgid


# --- periods --------------------------------------------------------------------------------
def period_end(kind: str, start: dt.date) -> dt.date:
    """The first day after the month or quarter that starts on `start`."""
    months = start.month - 1 + (3 if kind == "quarter" else 1)
    return dt.date(start.year + months // 12, months % 12 + 1, 1)


def period_containing(kind: str, day: Optional[dt.date] = None) -> dt.date:
    """The first day of the month or quarter `day` (default: today, business time) is in."""
    day = day or local_today()
    month = day.month if kind == "month" else (day.month - 1) // 3 * 3 + 1
    return dt.date(day.year, month, 1)


def period_label(kind: str, start: dt.date) -> str:
    return (f"{start.year} Q{(start.month - 1) // 3 + 1}" if kind == "quarter"
            else f"{start.year}-{start.month:02d}")


_MONTH = re.compile(r"\s*(\d{4})-(\d{1,2})\s*")
_QUARTER = re.compile(r"\s*(\d{4})-?Q([1-4])\s*", re.IGNORECASE)


def parse_period_start(kind: Optional[str], value: Any, errors: dict,
                       field: str = "period_start") -> Optional[dt.date]:
    """A period's first day as typed: 2026-11-01, 2026-11 (a month), 2026-Q4 (a quarter).
    A date must be the first day of a month (of a quarter: January, April, July, October)."""
    if value in (None, ""):
        errors[field] = tr("Please give the period's first day, e.g. %(example)s",
                           example="2026-10-01")
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    start: Optional[dt.date] = None
    if isinstance(value, dt.date):
        start = value
    elif isinstance(value, str) and len(value) <= 20 and "\x00" not in value:
        try:
            if m := _QUARTER.fullmatch(value):
                start = dt.date(int(m.group(1)), int(m.group(2)) * 3 - 2, 1)
            elif m := _MONTH.fullmatch(value):
                start = dt.date(int(m.group(1)), int(m.group(2)), 1)
            else:
                start = dt.date.fromisoformat(value.strip())
        except ValueError:
            start = None
    if start is None or not 2000 <= start.year <= 2100:
        errors[field] = tr("A period is written YYYY-MM-DD (its first day), YYYY-MM or "
                           "YYYY-Qn, in the years 2000 to 2100")
        return None
    if kind == "quarter" and (start.day != 1 or start.month not in (1, 4, 7, 10)):
        errors[field] = tr("A quarter starts on 1 January, 1 April, 1 July or 1 October, "
                           "not on %(day)s", day=start.isoformat())
        return None
    if kind == "month" and start.day != 1:
        errors[field] = tr("A month's target starts on the month's first day, not on "
                           "%(day)s", day=start.isoformat())
        return None
    return start


def parse_kind(value: Any, errors: dict, field: str = "period_kind") -> Optional[str]:
    if not isinstance(value, str) or value not in PERIOD_KINDS:
        errors[field] = tr("The period can only be: %(choices)s",
                           choices=tr(", ").join(PERIOD_KINDS))
        return None
    return value


def read_period(kind: Any = None, start: Any = None) -> tuple[str, dt.date]:
    """A page's or a caller's period: the kind (default month) and its first day (default:
    the one today is in); ValidationFailed naming the argument."""
    errors: dict[str, str] = {}
    kind = parse_kind(kind or "month", errors)
    if kind is not None and start not in (None, ""):
        start = parse_period_start(kind, start, errors)
    if errors:
        raise ValidationFailed(errors)
    return kind, start or period_containing(kind)


# --- who reaches which targets --------------------------------------------------------------
@dataclass(frozen=True)
class Reach:
    """The holders an actor reaches: user ids and department ids; None means all of them."""

    users: Optional[frozenset[int]]
    departments: Optional[frozenset[int]]


NOTHING = Reach(frozenset(), frozenset())


def _department_tree(department_id: int, include_self: bool) -> frozenset[int]:
    mine = select(Department.path).where(Department.id == department_id).scalar_subquery()
    q = select(Department.id).where(Department.path.startswith(mine, autoescape=False))
    if not include_self:
        q = q.where(Department.id != department_id)
    return frozenset(db.session.execute(q).scalars())


def reach(actor: Optional[User], write: bool = False) -> Reach:
    """Whose targets the actor may set (write) or read."""
    if actor is None:
        return NOTHING
    if has_role(actor, ROLE_ADMIN) or (not write and has_role(actor, ROLE_AUDITOR)):
        return Reach(None, None)
    if has_role(actor, ROLE_MANAGER):
        users = visible_owner_ids(actor, Scope.DEPARTMENT_TREE)
        departments = (_department_tree(actor.department_id, include_self=not write)
                       if actor.department_id else frozenset())
        return Reach(users - {actor.id} if write else users, departments)
    if not write and has_role(actor, ROLE_REP):
        return Reach(frozenset({actor.id}), frozenset())
    return NOTHING


def scope_clause(actor: Optional[User], write: bool = False):
    """WHERE clause limiting targets to those the actor reaches."""
    r = reach(actor, write)
    if r.users is None:
        return true()
    return or_(SalesTarget.user_id.in_(sorted(r.users)),
               SalesTarget.department_id.in_(sorted(r.departments)))


def _require_setter(actor: Optional[User]) -> None:
    if actor is None or not has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        raise PermissionDenied(tr("Only admins and sales managers set sales targets"))


def get_target(actor: Optional[User], target_id: Any, write: bool = False) -> SalesTarget:
    """The target if the actor reaches it; OutOfScope for missing and "not yours" alike."""
    if write:
        _require_setter(actor)
    target = db.session.get(SalesTarget, parse_id(target_id, "id"))
    r = reach(actor, write)
    if target is None or (r.users is not None and target.user_id not in r.users
                          and target.department_id not in r.departments):
        raise OutOfScope(tr(NO_SUCH_TARGET))
    return target


# --- validation -----------------------------------------------------------------------------
def _amount(value: Any, errors: dict) -> Optional[Decimal]:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, str) and len(value) > 40):
            raise InvalidOperation
        amount = Decimal(str(value).strip().replace(",", ""))
        if not amount.is_finite():
            raise InvalidOperation
        amount = amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError, TypeError):
        errors["won_amount"] = tr("The target amount must be a number, e.g. 500000.00")
        return None
    if not Decimal(0) <= amount <= MAX_AMOUNT:
        errors["won_amount"] = tr("The target amount must be from 0 to %(max)s",
                                  max=MAX_AMOUNT)
        return None
    return amount


def _count(value: Any, errors: dict) -> Optional[int]:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        value = "x"
    text = str(int(value)) if isinstance(value, float) else str(value).strip()
    if not re.fullmatch(r"\d{1,7}", text) or int(text) > MAX_COUNT:
        errors["new_customers"] = tr("The number of new customers must be a whole number "
                                     "from 0 to %(max)s", max=MAX_COUNT)
        return None
    return int(text)


def _holder(actor: User, data: dict, errors: dict) -> tuple[Optional[int], Optional[int]]:
    ids = {}
    for field in ("user_id", "department_id"):
        try:
            ids[field] = parse_optional_id(data.get(field), field)
        except ValidationFailed as exc:
            errors.update(exc.fields)
            ids[field] = None
    user_id, department_id = ids["user_id"], ids["department_id"]
    if "user_id" in errors or "department_id" in errors:
        return user_id, department_id
    if (user_id is None) == (department_id is None):
        errors["user_id"] = tr("A target is for one user or for one department: give "
                               "exactly one of user_id and department_id")
        return None, None
    r = reach(actor, write=True)
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
            errors["user_id"] = tr("No such active user")
        elif r.users is not None and user_id not in r.users:
            errors["user_id"] = tr("You can set targets only for the users of your department "
                                   "tree, not for yourself")
    else:
        if db.session.get(Department, department_id) is None:
            errors["department_id"] = tr("No such department")
        elif r.departments is not None and department_id not in r.departments:
            errors["department_id"] = tr("You can set targets only for the departments below "
                                         "your own")
    return user_id, department_id


def clean(actor: User, data: Any, partial: bool = False) -> dict[str, Any]:
    """A target's fields from a form or a body, checked; ValidationFailed naming each bad
    field. An update (`partial`) changes only the measures: holder and period stay."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    allowed = EDITABLE if partial else FIELDS
    errors: dict[str, str] = {k: str(UNKNOWN_FIELD) for k in data if k not in allowed}
    out: dict[str, Any] = {}
    if not partial:
        out["user_id"], out["department_id"] = _holder(actor, data, errors)
        out["period_kind"] = parse_kind(data.get("period_kind"), errors)
        if out["period_kind"] is not None:
            out["period_start"] = parse_period_start(out["period_kind"],
                                                     data.get("period_start"), errors)
    if not partial or "won_amount" in data:
        out["won_amount"] = _amount(data.get("won_amount"), errors)
    if not partial or "new_customers" in data:
        out["new_customers"] = _count(data.get("new_customers"), errors)
    if errors:
        raise ValidationFailed(errors)
    return out


def _require_a_measure(target_values: dict) -> None:
    if target_values.get("won_amount") is None and target_values.get("new_customers") is None:
        raise ValidationFailed({"won_amount": tr(
            "Set the target won amount, the target number of new customers, or both")})


# --- writes ---------------------------------------------------------------------------------
def _existing(values: dict) -> Optional[SalesTarget]:
    holder = (SalesTarget.user_id == values["user_id"] if values["user_id"] is not None
              else SalesTarget.department_id == values["department_id"])
    return db.session.execute(select(SalesTarget).where(
        holder, SalesTarget.period_kind == values["period_kind"],
        SalesTarget.period_start == values["period_start"])).scalar()


def _already_set(values: dict) -> Conflict:
    label = period_label(values["period_kind"], values["period_start"])
    return Conflict(tr("This holder already has a target for %(period)s; change that one",
                       period=label), code="target_exists")


def create_target(actor: User, data: Any) -> SalesTarget:
    """A new target. A second target for the same holder and period is refused
    (`target_exists`): by the look-up, and under a race by the unique index."""
    _require_setter(actor)
    values = clean(actor, data)
    _require_a_measure(values)
    if _existing(values) is not None:
        raise _already_set(values)
    now = utcnow()
    target = SalesTarget(set_by_id=actor.id, created_at=now, updated_at=now, **values)
    try:
        audit.record_new(actor.id, "sales_target", target)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise _already_set(values) from None
    return target


def update_target(actor: User, target_id: Any, data: Any) -> SalesTarget:
    """Change a target's won amount and / or new customers (holder and period stay)."""
    target = get_target(actor, target_id, write=True)
    values = clean(actor, data, partial=True)
    _require_a_measure({m: values.get(m, getattr(target, m)) for m in MEASURES})
    changes = audit.diff(target, values)
    if not changes:
        return target
    for field, (_old, new) in changes.items():
        setattr(target, field, new)
    target.set_by_id, target.updated_at = actor.id, utcnow()
    audit.record(actor.id, "update", "sales_target", target.id, changes)
    db.session.commit()
    return target


def delete_target(actor: User, target_id: Any) -> int:
    target = get_target(actor, target_id, write=True)
    audit.record(actor.id, "delete", "sales_target", target.id,
                 {f: (getattr(target, f), None) for f in FIELDS})
    db.session.delete(target)
    db.session.commit()
    return int(target_id)


# --- actuals --------------------------------------------------------------------------------
def _bounds(kind: str, start: dt.date) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    end = period_end(kind, start)
    return start, end, local_day_bounds(start)[0], local_day_bounds(end)[0]


def _user_won(user_col, start: dt.date, end: dt.date):
    return select(func.coalesce(func.sum(Deal.amount), 0)).where(
        Deal.user_id == user_col, Deal.won_on >= start, Deal.won_on < end).scalar_subquery()


def _user_new(user_col, since: dt.datetime, until: dt.datetime):
    return select(func.count(distinct(OwnershipEvent.customer_id))).where(
        OwnershipEvent.to_owner_id == user_col, OwnershipEvent.kind.in_(ACQUIRED),
        OwnershipEvent.created_at >= since, OwnershipEvent.created_at < until) \
        .scalar_subquery()


def _tree_members(path_col):
    """The users whose department is in the tree of the department with path `path_col`."""
    sub = aliased(Department)
    return select(User.id).join(sub, sub.id == User.department_id).where(
        sub.path.startswith(path_col, autoescape=False)).correlate(Department)


def _department_won(path_col, start: dt.date, end: dt.date):
    return select(func.coalesce(func.sum(Deal.amount), 0)).where(
        Deal.user_id.in_(_tree_members(path_col)), Deal.won_on >= start,
        Deal.won_on < end).scalar_subquery()


def _department_new(path_col, since: dt.datetime, until: dt.datetime):
    return select(func.count(distinct(OwnershipEvent.customer_id))).where(
        OwnershipEvent.to_owner_id.in_(_tree_members(path_col)),
        OwnershipEvent.kind.in_(ACQUIRED), OwnershipEvent.created_at >= since,
        OwnershipEvent.created_at < until).scalar_subquery()


def _target_of(holder_filter, kind: str, start: dt.date, measure: str):
    return select(getattr(SalesTarget, measure)).where(
        holder_filter, SalesTarget.period_kind == kind,
        SalesTarget.period_start == start).scalar_subquery()


def _parts_sum(department_col, kind: str, start: dt.date, measure: str):
    """The sum of a department's parts' targets: its direct members' and its direct
    sub-departments' (None when no part has this measure set)."""
    member = aliased(User)
    child = aliased(Department)
    column = getattr(SalesTarget, measure)
    return select(func.sum(column)).where(
        SalesTarget.period_kind == kind, SalesTarget.period_start == start,
        or_(SalesTarget.user_id.in_(select(member.id).where(
            member.department_id == department_col).correlate(Department)),
            SalesTarget.department_id.in_(select(child.id).where(
                child.parent_id == department_col).correlate(Department)))).scalar_subquery()


def _users_part(user_ids: Optional[Iterable[int]], kind: str, start: dt.date,
                active_only: bool = True):
    s, e, since, until = _bounds(kind, start)
    q = select(literal_column("'user'").label("holder"), User.id.label("id"),
               User.username.label("username"), User.first_name.label("first_name"),
               User.last_name.label("last_name"), User.department_id.label("department_id"),
               _target_of(SalesTarget.user_id == User.id, kind, start, "won_amount")
               .label("target_won"),
               _target_of(SalesTarget.user_id == User.id, kind, start, "new_customers")
               .label("target_new"),
               _user_won(User.id, s, e).label("actual_won"),
               _user_new(User.id, since, until).label("actual_new"),
               cast(null(), Numeric(16, 2)).label("parts_won"),
               cast(null(), Numeric(16, 2)).label("parts_new"))
    if user_ids is not None:
        q = q.where(User.id.in_(sorted(user_ids)))
    if not active_only:
        return q
    # The sellers (reps and managers), and anyone else who was given a target for the period.
    sellers = select(assoc_user_role.c.user_id).join(
        Role, Role.id == assoc_user_role.c.role_id).where(Role.name.in_(SELLERS))
    targeted = select(SalesTarget.user_id).where(
        SalesTarget.user_id.isnot(None), SalesTarget.period_kind == kind,
        SalesTarget.period_start == start)
    return q.where(User.employment_status == EMPLOYMENT_ACTIVE,
                   or_(User.id.in_(sellers), User.id.in_(targeted)))


def _departments_part(department_ids: Optional[Iterable[int]], kind: str, start: dt.date):
    # The same columns as _users_part: a department's name rides in `username`, its parent
    # in `department_id`.
    s, e, since, until = _bounds(kind, start)
    q = select(literal_column("'department'").label("holder"), Department.id.label("id"),
               Department.name.label("username"), null().label("first_name"),
               null().label("last_name"), Department.parent_id.label("department_id"),
               _target_of(SalesTarget.department_id == Department.id, kind, start,
                          "won_amount").label("target_won"),
               _target_of(SalesTarget.department_id == Department.id, kind, start,
                          "new_customers").label("target_new"),
               _department_won(Department.path, s, e).label("actual_won"),
               _department_new(Department.path, since, until).label("actual_new"),
               _parts_sum(Department.id, kind, start, "won_amount").label("parts_won"),
               _parts_sum(Department.id, kind, start, "new_customers").label("parts_new"))
    if department_ids is not None:
        q = q.where(Department.id.in_(sorted(department_ids)))
    return q


def _money(value: Any) -> Optional[Decimal]:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _rate(actual: Any, target: Any) -> Optional[Decimal]:
    """达成率 as a fraction (1 = 100 %), to four places; None without a positive target."""
    if target is None or Decimal(str(target)) == 0:
        return None
    return (Decimal(str(actual or 0)) / Decimal(str(target))).quantize(Decimal("0.0001"))


def _row(r) -> dict:
    is_user = r.holder == "user"
    name = (f"{r.last_name or ''}{r.first_name or ''}".strip() or r.username) if is_user \
        else r.username
    out = {"holder": r.holder, "id": r.id, "name": name,
           "username": r.username if is_user else None,
           "department_id": r.department_id if is_user else None,
           "parent_id": None if is_user else r.department_id,
           "target_won": _money(r.target_won),
           "target_new": int(r.target_new) if r.target_new is not None else None,
           "actual_won": _money(r.actual_won) or Decimal("0.00"),
           "actual_new": int(r.actual_new or 0)}
    out["rate_won"] = _rate(out["actual_won"], out["target_won"])
    out["rate_new"] = _rate(out["actual_new"], out["target_new"])
    warnings = []
    if not is_user:
        parts_won = _money(r.parts_won) or Decimal("0.00")
        parts_new = int(r.parts_new or 0)
        out["parts_won"], out["parts_new"] = parts_won, parts_new
        if out["target_won"] is not None and parts_won != out["target_won"]:
            warnings.append(tr("Won amount: the department's target is %(own)s, its members' "
                               "and sub-departments' targets add up to %(parts)s",
                               own=out["target_won"], parts=parts_won))
        if out["target_new"] is not None and parts_new != out["target_new"]:
            warnings.append(tr("New customers: the department's target is %(own)s, its "
                               "members' and sub-departments' targets add up to %(parts)s",
                               own=out["target_new"], parts=parts_new))
    out["warnings"] = warnings
    return out


def attainment_rows(user_ids: Optional[Iterable[int]], department_ids: Optional[Iterable[int]],
                    kind: str, start: dt.date) -> list[dict]:
    """Targets, actuals and 达成率 of the users and departments named (None: all of them;
    an empty list: none), in one statement."""
    parts = []
    if user_ids is None or list(user_ids):
        parts.append(_users_part(user_ids, kind, start))
    if department_ids is None or list(department_ids):
        parts.append(_departments_part(department_ids, kind, start))
    if not parts:
        return []
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    rows = [_row(r) for r in db.session.execute(statement)]
    return sorted(rows, key=lambda r: (r["holder"] != "department", r["name"] or "", r["id"]))


@dataclass
class Attainment:
    kind: str
    start: dt.date
    end: dt.date
    users: list[dict]
    departments: list[dict]

    @property
    def label(self) -> str:
        return period_label(self.kind, self.start)


def team_attainment(actor: User, kind: str, start: dt.date) -> Attainment:
    """The manager's team view (an admin's: everyone, an auditor's: everyone): each active
    user and each department the actor reads, with targets, actuals, 达成率 and the
    departments' warnings. One statement."""
    r = reach(actor)
    rows = attainment_rows(r.users, r.departments, kind, start)
    return Attainment(kind, start, period_end(kind, start),
                      [x for x in rows if x["holder"] == "user"],
                      [x for x in rows if x["holder"] == "department"])


def my_attainment(user: User, kind: str, start: Optional[dt.date] = None) -> dict:
    """The workbench's panel: the user's own target and actuals for the period. One
    statement."""
    start = start or period_containing(kind)
    rows = attainment_rows([user.id], [], kind, start)
    row = rows[0] if rows else _row_empty(user)
    row.update(kind=kind, start=start, label=period_label(kind, start))
    return row


def _row_empty(user: User) -> dict:
    return {"holder": "user", "id": user.id, "name": user.display_name,
            "username": user.username, "department_id": user.department_id, "parent_id": None,
            "target_won": None, "target_new": None, "actual_won": Decimal("0.00"),
            "actual_new": 0, "rate_won": None, "rate_new": None, "warnings": []}


def actuals_of(targets: list[SalesTarget]) -> dict[int, dict]:
    """{target id: its attainment row} for targets of any periods: one statement (a UNION
    ALL of one part per distinct period and kind of holder)."""
    by_period: dict[tuple[str, dt.date], tuple[list[int], list[int]]] = {}
    for t in targets:
        users, departments = by_period.setdefault((t.period_kind, t.period_start), ([], []))
        (users if t.user_id is not None else departments).append(
            t.user_id if t.user_id is not None else t.department_id)
    parts = []
    for (kind, start), (users, departments) in by_period.items():
        # Both values were checked (a kind, a date): safe as a literal.
        tag = literal_column(f"'{kind}|{start.isoformat()}'").label("period")
        if users:
            parts.append(_users_part(users, kind, start, active_only=False).add_columns(tag))
        if departments:
            parts.append(_departments_part(departments, kind, start).add_columns(tag))
    if not parts:
        return {}
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    found = {}
    for r in db.session.execute(statement):
        found[(r.period, r.holder, r.id)] = _row(r)
    out = {}
    for t in targets:
        key = (f"{t.period_kind}|{t.period_start.isoformat()}",
               "user" if t.user_id is not None else "department",
               t.user_id if t.user_id is not None else t.department_id)
        out[t.id] = found.get(key)
    return out


# --- reading --------------------------------------------------------------------------------
@dataclass
class Page:
    items: list[SalesTarget]
    next_after: Optional[int]


def list_targets(actor: User, period_kind: Any = None, period_start: Any = None,
                 user_id: Any = None, department_id: Any = None, after: Any = None,
                 page_size: int = PAGE_SIZE) -> Page:
    """The targets the actor reads, newest first, keyset pages by id (`after`: the previous
    page's next_after); narrowed by period and holder."""
    errors: dict[str, str] = {}
    where = [scope_clause(actor)]
    kind = None
    if period_kind is not None:
        kind = parse_kind(period_kind, errors)
        where.append(SalesTarget.period_kind == kind)
    if period_start is not None:
        start = parse_period_start(kind, period_start, errors)
        where.append(SalesTarget.period_start == start)
    for field, column, value in (("user_id", SalesTarget.user_id, user_id),
                                 ("department_id", SalesTarget.department_id, department_id),
                                 ("after", SalesTarget.id, after)):
        if value is None:
            continue
        try:
            pk = parse_id(value, field)
        except ValidationFailed as exc:
            errors.update(exc.fields)
            continue
        where.append(column < pk if field == "after" else column == pk)
    if not isinstance(page_size, int) or isinstance(page_size, bool) \
            or not 1 <= page_size <= MAX_PAGE_SIZE:
        errors["page_size"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                 field="page_size", min=1, max=MAX_PAGE_SIZE)
    if errors:
        raise ValidationFailed(errors)
    rows = list(db.session.execute(
        select(SalesTarget).where(*where).order_by(SalesTarget.id.desc()).limit(page_size + 1)
        .options(joinedload(SalesTarget.user), joinedload(SalesTarget.department))).scalars())
    more = len(rows) > page_size
    rows = rows[:page_size]
    return Page(rows, rows[-1].id if more and rows else None)


def _text_money(value: Optional[Decimal]) -> Optional[str]:
    return None if value is None else f"{value:.2f}"


def to_dict(target: SalesTarget, actual: Optional[dict] = None) -> dict:
    """A target as the API answers it, with its attainment (actuals and 达成率 so far)."""
    actual = actual if actual is not None else actuals_of([target]).get(target.id)
    actual = actual or {"actual_won": Decimal("0.00"), "actual_new": 0, "rate_won": None,
                        "rate_new": None, "warnings": []}
    return {
        "id": target.id, "user_id": target.user_id, "department_id": target.department_id,
        "holder_name": target.holder_label, "period_kind": target.period_kind,
        "period_start": target.period_start.isoformat(),
        "period_end": period_end(target.period_kind, target.period_start).isoformat(),
        "period_label": period_label(target.period_kind, target.period_start),
        "won_amount": _text_money(target.won_amount), "new_customers": target.new_customers,
        "set_by_id": target.set_by_id, "created_at": rfc3339(target.created_at),
        "updated_at": rfc3339(target.updated_at),
        "attainment": {
            "won_amount": _text_money(actual["actual_won"]),
            "new_customers": actual["actual_new"],
            "won_amount_rate": None if actual["rate_won"] is None else float(actual["rate_won"]),
            "new_customers_rate": None if actual["rate_new"] is None
            else float(actual["rate_new"]),
            "warnings": list(actual["warnings"])}}

