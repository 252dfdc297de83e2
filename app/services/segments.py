"""Reclaim rules by segment (issue 15 section 4): a policy's optional segment conditions
(record type, grade, category, product line, source) and the per-field resolution order

    user + segment, user, nearest department + segment, department, ... up the tree ...,
    global + segment, global, built-in default

in two equivalent forms: `resolve_for_record` (Python, one owner and one record, for the
pages that say which policy applied) and `resolved_days` (SQL, a per-row expression for the
sweep, its dry run and the warnings). Several segment policies at one level that all match:
the one with more conditions wins, then the lowest id.

The SQL form is set-based: `owner_periods()` resolves every user's plain (segment-free)
value and the level it came from in one subquery over the policy table; the segment
policies, a handful of rows, become the branches of one CASE evaluated per record. A segment
branch is taken only when its level is at least as specific as the owner's plain source,
which is exactly the order above.
"""
from __future__ import annotations

import functools

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import String, and_, case, cast, func, literal, or_, select

from app.extensions import db
from app.models import Department, Policy, User
from app.models.policy import SEGMENT_CONDITIONS, SEGMENT_FIELDS
from app.services.errors import tr

RECORD_TYPES = ("customer", "lead")
CATEGORIES = ("potential", "active", "silent")
GRADES = ("A", "B", "C")
# The record type each segment field belongs to.
FIELD_RECORD = {"reclaim_no_followup_days": "customer", "reclaim_no_deal_days": "customer",
                "warn_before_days": "customer", "lead_reclaim_no_followup_days": "lead"}
CUSTOMER_ONLY = ("segment_grade", "segment_category", "segment_product_line")
# Rank of a plain policy's level for one owner: user above every department (a department's
# rank is the length of its materialised path, so nearer is higher), global 0, built-in -1.
USER_RANK = 1_000_000
BUILT_IN_RANK = -1


def conditions_of(row) -> dict[str, Any]:
    """The segment conditions a policy (or a row with those columns) sets."""
    return {c: getattr(row, c) for c in SEGMENT_CONDITIONS if getattr(row, c) is not None}


def segment_key(values: dict[str, Any]) -> str:
    """The canonical string of a set of conditions; '' for none (a plain policy)."""
    return ";".join(f"{c[len('segment_'):]}={values[c]}" for c in SEGMENT_CONDITIONS
                    if values.get(c) is not None)


def segment_text(row) -> str:
    """'Grade A, source 官网表单, customers' — how a segment is named on pages."""
    cond = conditions_of(row)
    parts = []
    if "segment_record_type" in cond:
        parts.append(tr("Customers") if cond["segment_record_type"] == "customer"
                     else tr("Leads"))
    if "segment_grade" in cond:
        parts.append(tr("grade %(grade)s", grade=cond["segment_grade"]))
    if "segment_category" in cond:
        parts.append(tr("category %(category)s", category=category_label(
            cond["segment_category"])))
    if "segment_product_line" in cond:
        parts.append(tr("product line %(value)s", value=cond["segment_product_line"]))
    if "segment_source" in cond:
        parts.append(tr("source %(value)s", value=cond["segment_source"]))
    return tr(", ").join(parts)


def key_text(key: Optional[str]) -> str:
    """segment_text of a stored segment_key ('grade=A;source=官网')."""
    if not key:
        return ""
    values = dict(part.split("=", 1) for part in key.split(";") if "=" in part)

    class _Row:
        pass

    row = _Row()
    for c in SEGMENT_CONDITIONS:
        setattr(row, c, values.get(c[len("segment_"):]))
    return segment_text(row)


def category_label(code: str) -> str:
    return {"potential": tr("Potential customer"), "active": tr("Active customer"),
            "silent": tr("Silent customer")}.get(code, code)


def validate_segment(policy, errors: dict[str, str]) -> None:
    """Adds to `errors`: conditions out of their domain, and any field a segment policy may
    not set (caps and claim limits stay per user / department / global)."""
    cond = conditions_of(policy)
    if not cond:
        return
    rt = cond.get("segment_record_type")
    if rt is not None and rt not in RECORD_TYPES:
        errors["segment_record_type"] = tr("The record type can only be customer or lead")
    if cond.get("segment_grade") is not None and cond["segment_grade"] not in GRADES:
        errors["segment_grade"] = tr("The grade can only be A, B or C")
    if cond.get("segment_category") is not None and cond["segment_category"] not in CATEGORIES:
        errors["segment_category"] = tr("The category can only be potential, active or "
                                        "silent")
    customer_only = [c for c in CUSTOMER_ONLY if c in cond]
    if rt == "lead" and customer_only:
        errors[customer_only[0]] = tr("Leads have no grade, category or product line; this "
                                      "condition only fits a customer segment")
    for name in ("segment_product_line", "segment_source"):
        value = cond.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()
                                  or len(value) > 100):
            errors[name] = tr("%(field)s must be 1 to 100 characters", field=name)
    from app.models.policy import POLICY_FIELDS

    for field in POLICY_FIELDS:
        if getattr(policy, field) is None:
            continue
        if field not in SEGMENT_FIELDS:
            errors[field] = tr(
                "A segment policy can only set reclaim periods and warning days; %(field)s "
                "stays per user, department or global (a policy without segment conditions)",
                field=field)
        elif FIELD_RECORD[field] == "lead" and (rt == "customer"
                                                or customer_only and rt != "lead"):
            errors[field] = tr("%(field)s applies to leads, but this segment only matches "
                               "customers", field=field)
        elif FIELD_RECORD[field] == "customer" and rt == "lead":
            errors[field] = tr("%(field)s applies to customers, but this segment only matches "
                               "leads", field=field)


# --- Python resolution -----------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    """The value a field takes for one record, and the policy it came from."""
    value: Any
    source: str  # as policies.EffectiveValue: "user", "department:<name>", "global", "built-in"
    policy_id: Optional[int] = None
    segment: str = ""  # the segment's text when a segment policy applied

    @property
    def label(self) -> str:
        return source_label(self.source, self.segment)


def source_label(source: str, segment: str = "") -> str:
    if source.startswith("department:"):
        text = tr("Department: %(name)s", name=source.split(":", 1)[1])
    else:
        text = {"user": tr("This user's own setting"), "global": tr("Global default"),
                "built-in": tr("Built-in default")}.get(source, source)
    return tr("%(level)s, segment: %(segment)s", level=text, segment=segment) if segment \
        else text


def matches(row, record_type: str, attrs: dict[str, Any]) -> bool:
    """Whether a segment policy's conditions all hold for a record of `record_type` with
    `attrs` (grade, category, product_line, source)."""
    for cond, want in conditions_of(row).items():
        if cond == "segment_record_type":
            if want != record_type:
                return False
        elif cond in CUSTOMER_ONLY and record_type != "customer":
            return False
        elif attrs.get(cond[len("segment_"):]) != want:
            return False
    return True


def priority(row) -> tuple:
    """Order among segment policies of one level: more conditions first, then lowest id."""
    return (-len(conditions_of(row)), row.id)


def ordered_layers(rows, chain: list[int]) -> list[tuple[str, Any]]:
    """The policy rows that apply to a user (policies.layer_rows), plain and segment, in
    resolution order, each with its source ("user", "department:<name>", "global")."""

    def level(rows_of_level, source):
        seg = sorted((r for r in rows_of_level if r.segment_key), key=priority)
        return [(source, r) for r in seg + [r for r in rows_of_level if not r.segment_key]]

    rows = [r for r in rows if r.scope is not None]
    out = level([r for r in rows if r.scope == "user"], "user")
    for d in chain:
        here = [r for r in rows if r.scope == "department" and r.department_id == d]
        if here:
            out += level(here, f"department:{here[0].department_name}")
    out += level([r for r in rows if r.scope == "global"], "global")
    return out


def _layers(user_id: int, cached: bool = False) -> list[tuple[str, Any]]:
    from app.security import request_cache
    from app.services import policies

    cache = request_cache() if cached else None
    hit = cache.get(("policy_layers", user_id)) if cache is not None else None
    return ordered_layers(*(hit or policies.layer_rows(user_id)))


def resolve_for_record(user_id: int, record_type: Optional[str] = None,
                       attrs: Optional[dict[str, Any]] = None,
                       fields: Iterable[str] = SEGMENT_FIELDS) -> dict[str, Applied]:
    """Each field's value for a record of `record_type` with `attrs` owned by the user, and
    the policy that set it; without a record type, segment policies are left out (the plain
    value)."""
    from app.services import policies

    layers = _layers(user_id, cached=True)
    out = {}
    for field in fields:
        for source, row in layers:
            value = getattr(row, field)
            if value is None:
                continue
            if row.segment_key and (record_type is None
                                    or not matches(row, record_type, attrs or {})):
                continue
            out[field] = Applied(value, source, row.id,
                                 segment_text(row) if row.segment_key else "")
            break
        else:
            out[field] = Applied(policies.GLOBAL_DEFAULTS[field], "built-in")
    return out


def segment_overrides(user_id: int) -> dict[str, list[Applied]]:
    """Per field, the segment policies that come before the user's plain value (so apply to
    their matching records), in resolution order: the effective-policy page and the
    workbench list them under the plain value (reading the rows effective_policy read in the
    same request, if it did)."""
    layers = _layers(user_id, cached=True)
    out: dict[str, list[Applied]] = {}
    for field in SEGMENT_FIELDS:
        found = []
        for source, row in layers:
            if getattr(row, field) is None:
                continue
            if not row.segment_key:
                break
            found.append(Applied(getattr(row, field), source, row.id, segment_text(row)))
        out[field] = found
    return out


def apply_to_some(user_id: int, fields: Iterable[str] = SEGMENT_FIELDS) -> bool:
    """Whether any segment policy comes before the user's plain value of one of `fields`
    (else the plain effective policy is each record's, and pages need not resolve per row)."""
    overrides = segment_overrides(user_id)
    return any(overrides.get(f) for f in fields)


def policy_for_customer(user_id: int, policy: dict, ownership) -> dict:
    """The user's effective policy (policies.effective_policy) with the reclaim fields as they
    apply to one of their customers (segment policies included)."""
    fields = ("reclaim_no_followup_days", "reclaim_no_deal_days", "warn_before_days")
    if not apply_to_some(user_id, fields):
        return policy
    from app.services.policies import EffectiveValue

    customer = ownership.customer
    applied = resolve_for_record(user_id, "customer", {
        "grade": ownership.grade, "category": ownership.category,
        "product_line": customer.product_line if customer else None,
        "source": customer.source if customer else None}, fields)
    return {**policy, **{f: EffectiveValue(a.value, a.source) for f, a in applied.items()}}


# --- SQL resolution ----------------------------------------------------------------------
def _rank(p, pd):
    return case((p.c.scope == "user", USER_RANK),
                (p.c.scope == "department", func.length(pd.c.path)), else_=0)


def owner_periods(fields: Iterable[str], owner_ids: Optional[list[int]] = None):
    """One row per user (or per user of `owner_ids`): owner_id, the department path, and per
    field its plain value (`<field>`) and the rank of the level it came from
    (`<field>_rank`): a subquery over the policy table, joined to the records by owner."""
    u, ud, cols = _period_columns(tuple(fields))
    # OFFSET 0 keeps it a subquery evaluated once (PostgreSQL would otherwise pull it up
    # into the statement and run the policy lookups once per customer instead of per user).
    q = (select(u.c.id.label("owner_id"), ud.c.path.label("path"), *cols)
         .select_from(u.outerjoin(ud, ud.c.id == u.c.department_id)))
    if owner_ids is not None:
        q = q.where(u.c.id.in_(owner_ids))
    return q.offset(0).subquery("owner_periods")


@functools.lru_cache(maxsize=None)
def _period_columns(fields: tuple[str, ...]):
    """owner_periods' lookups, built once per set of fields: they depend on no value (the
    policies are read when the statement runs), and building these expressions cost a rep's
    workbench 3 ms per rule at every request. SQL expressions are immutable: sharing them
    between statements, requests and threads is safe."""
    from app.services import policies

    u = User.__table__
    ud = Department.__table__.alias("owner_department")
    p = Policy.__table__.alias("plain_policy")
    pd = Department.__table__.alias("plain_policy_department")
    applies = or_(and_(p.c.scope == "user", p.c.user_id == u.c.id),
                  and_(p.c.scope == "department", ud.c.path.like(pd.c.path + "%")),
                  p.c.scope == "global")
    cols = []
    for f in fields:
        base = (select(p.c[f]).select_from(p.outerjoin(pd, pd.c.id == p.c.department_id))
                .where(p.c.segment_key == "", p.c[f].is_not(None), applies)
                .order_by(_rank(p, pd).desc()).limit(1))
        cols.append(func.coalesce(base.scalar_subquery(),
                                  policies.GLOBAL_DEFAULTS[f]).label(f))
        cols.append(func.coalesce(base.with_only_columns(_rank(p, pd)).scalar_subquery(),
                                  BUILT_IN_RANK).label(f"{f}_rank"))
    return u, ud, tuple(cols)


@dataclass
class PolicySnapshot:
    """The segment policies (with their department paths) and every period value in use,
    read once per statement built."""
    segments: list  # (row, path or None), in resolution priority
    values: dict[str, set[int]]


def snapshot() -> PolicySnapshot:
    from app.services import policies

    rows = db.session.execute(
        select(Policy, Department.path).outerjoin(Department,
                                                  Department.id == Policy.department_id)).all()
    level = {"user": 0, "department": 1, "global": 2}
    segments = sorted(((r, path) for r, path in rows if r.segment_key),
                      key=lambda rp: (level[rp[0].scope], -len(rp[1] or ""),
                                      *priority(rp[0])))
    values = {f: {policies.GLOBAL_DEFAULTS[f]} | {getattr(r, f) for r, _ in rows
                                                    if getattr(r, f) is not None}
              for f in SEGMENT_FIELDS}
    return PolicySnapshot(segments, values)


def resolved_days(field: str, snap: PolicySnapshot, op, record_cols: dict):
    """The per-row value of `field`: a CASE over the segment policies that set it (in
    priority order, each guarded by its target and by the owner's plain level), else the
    owner's plain value. `record_cols` maps grade / category / product_line / source to the
    row's columns (missing ones never match)."""
    record_type = FIELD_RECORD[field]
    whens = []
    for row, path in snap.segments:
        value = getattr(row, field)
        if value is None or not _possible(row, record_type, record_cols):
            continue
        if row.scope == "user":
            # The subquery's owner, not the row's column: an UPDATE's RETURNING sees the new
            # (ownerless) row but the old owner's subquery row.
            target = op.c.owner_id == row.user_id
        elif row.scope == "department":
            target = and_(op.c.path.like((path or "") + "%"),
                          op.c[f"{field}_rank"] <= len(path or ""))
        else:
            target = op.c[f"{field}_rank"] <= 0
        conds = [record_cols[c[len("segment_"):]] == v
                 for c, v in conditions_of(row).items() if c != "segment_record_type"]
        whens.append((and_(target, *conds), literal(value)))
    return case(*whens, else_=op.c[field]) if whens else op.c[field]


def _possible(row, record_type: str, record_cols: dict) -> bool:
    cond = conditions_of(row)
    if cond.get("segment_record_type", record_type) != record_type:
        return False
    return all(c[len("segment_"):] in record_cols for c in cond if c != "segment_record_type")


def needs_columns(snap: PolicySnapshot, names: Iterable[str], fields: Iterable[str]) -> bool:
    """Whether a segment policy that sets one of `fields` for their record type has a
    condition on one of `names` (so the statement must join the table holding them). A lead
    policy on the source does not make the customers' rule join the customer table: that
    join cost a rep's due list 70 ms at 1M customers for a condition that could not match."""
    wanted = {f"segment_{n}" for n in names}
    fields = tuple(fields)
    return any(wanted & set(conditions_of(r)) for r, _ in snap.segments
               if any(getattr(r, f) is not None
                      and conditions_of(r).get("segment_record_type", FIELD_RECORD[f])
                      == FIELD_RECORD[f] for f in fields))


def cut_of(days_expr, values: Iterable[int], now: dt.datetime):
    """`now - days_expr days` for a days expression whose values are among `values`, as bind
    parameters of the column's type (portable: no interval arithmetic in SQL)."""
    whens = {v: now - dt.timedelta(days=int(v)) for v in sorted(set(values))}
    return case(whens, value=days_expr)


def days_text(days_expr):
    return cast(days_expr, String)
