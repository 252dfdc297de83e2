"""Effective ownership policy for a user: user row > department chain > global default."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import and_, any_, bindparam, literal_column, or_, select, true

from app.extensions import db
from app.models import Department, Policy, User
from app.models.policy import POLICY_FIELDS, SEGMENT_CONDITIONS
from app.services import limits
from app.services.errors import ValidationFailed, tr

# Seeded by `flask crm init` as the global row; admins edit it in the Policies form.
GLOBAL_DEFAULTS: dict[str, Any] = {
    "max_customers": 100,
    "count_won": False,
    "max_locked": 10,
    "daily_claim_limit": 20,
    "cooldown_days": 30,
    "reclaim_no_followup_days": 30,
    "reclaim_no_deal_days": 90,
    "warn_before_days": 3,
    "lead_max": 200,
    "lead_daily_claim_limit": 50,
    "lead_reclaim_no_followup_days": 14,
    "call_min_talk_seconds": 30,
}


@dataclass(frozen=True)
class EffectiveValue:
    value: Any
    source: str  # "user", "department:<name>", "global", "built-in"


def global_policy() -> Optional[Policy]:
    return db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one_or_none()


def ensure_global_policy() -> Policy:
    """Create the global default row if it is missing (idempotent)."""
    policy = global_policy()
    if policy is None:
        policy = Policy(scope="global", **GLOBAL_DEFAULTS)
        db.session.add(policy)
        db.session.flush()
    return policy


def department_chain_ids(user_id: int) -> list[int]:
    """The user's department and every department above it, nearest first (one query)."""
    path = db.session.execute(
        select(Department.path).join(User, User.department_id == Department.id)
        .where(User.id == user_id)).scalar_one_or_none()
    return chain_from_path(path)


def chain_from_path(path: Optional[str]) -> list[int]:
    """Department ids on a materialised path "/1/4/9/", nearest first."""
    return [int(x) for x in (path or "").strip("/").split("/") if x][::-1]


_POLICY = Policy.__table__
_DEPARTMENT = Department.__table__


def layer_columns(fields: tuple[str, ...] = POLICY_FIELDS) -> tuple:
    """What resolve() reads from a layer row, for `fields`."""
    return (_POLICY.c.scope, _POLICY.c.department_id, _POLICY.c.segment_key,
            _DEPARTMENT.c.name.label("department_name"), *(_POLICY.c[f] for f in fields))


LAYER_COLUMNS = layer_columns()
# The scopes written into the SQL, not sent as parameters with every execution.
_SCOPE = {s: literal_column(f"'{s}'", _POLICY.c.scope.type)
          for s in ("user", "department", "global")}
_PLAIN = literal_column("''", _POLICY.c.segment_key.type)


def in_chain(column, chain, array: bool = False):
    """`column IN chain`; with `array`, `chain` is one PostgreSQL array bind parameter
    (`= ANY`), which spares expanding a list of placeholders on every execution."""
    return column == any_(chain) if array else column.in_(chain)


def applies_to(user_id, chain, array: bool = False, with_segments: bool = False):
    """The policy rows that apply to a user: their own, their department chain's, the global
    one, without segment conditions (segment policies hold only reclaim periods and warning
    days, resolved per record: app.services.segments). `user_id` and `chain` are values or
    bind parameters (chain: an expanding one, or an array one with `array`, see in_chain)."""
    return and_(true() if with_segments else _POLICY.c.segment_key == _PLAIN,
                or_(and_(_POLICY.c.scope == _SCOPE["user"], _POLICY.c.user_id == user_id),
                    and_(_POLICY.c.scope == _SCOPE["department"],
                         in_chain(_POLICY.c.department_id, chain, array)),
                    _POLICY.c.scope == _SCOPE["global"]))


def layers_join(from_clause, user_id, chain, array: bool = False):
    """`from_clause` outer-joined to the layer rows (LAYER_COLUMNS) of applies_to()."""
    return (from_clause.outerjoin(_POLICY, applies_to(user_id, chain, array))
            .outerjoin(_DEPARTMENT, _DEPARTMENT.c.id == _POLICY.c.department_id))


# Built once: building the statement cost more than running it. Segment policies come along
# (resolve() skips them) so that the pages saying which segment policy applies
# (segments.segment_overrides) read them from the same statement.
_POLICY_LAYERS = (
    select(*LAYER_COLUMNS, _POLICY.c.id, *(_POLICY.c[c] for c in SEGMENT_CONDITIONS))
    .select_from(_POLICY.outerjoin(_DEPARTMENT, _DEPARTMENT.c.id == _POLICY.c.department_id))
    .where(applies_to(bindparam("user_id"), bindparam("chain", expanding=True),
                      with_segments=True)))


def effective_policy(user_id: int, chain: Optional[list[int]] = None
                     ) -> dict[str, EffectiveValue]:
    """Every policy field with its value and where it comes from (most specific wins):
    the user's row, then their department and its parents (nearest first), then global."""
    rows, chain = layer_rows(user_id, chain)
    return resolve(rows, chain)


def layer_rows(user_id: int, chain: Optional[list[int]] = None) -> tuple[list, list[int]]:
    """(every policy row that applies to the user, plain and segment, with its department's
    name; the department chain, nearest first). Kept for the rest of the request, where only
    the pages naming segment policies read it back (segments.segment_overrides): a write path
    never reuses it."""
    from app.security import request_cache

    chain = department_chain_ids(user_id) if chain is None else chain
    rows = db.session.connection().execute(
        _POLICY_LAYERS, {"user_id": user_id, "chain": chain or [0]}).all()
    cache = request_cache()
    if cache is not None:
        cache[("policy_layers", user_id)] = (rows, chain)
    return rows, chain


def resolve(rows, chain: list[int], fields: tuple[str, ...] = POLICY_FIELDS
            ) -> dict[str, EffectiveValue]:
    """effective_policy from layer rows already read (layer_columns(fields); repeats and rows
    without a policy, scope None, and segment policies are ignored), for `fields`: the plain
    value, what a user's caps and limits are; segments.resolve_for_record has the per-record
    periods."""
    rows = {(r.scope, r.department_id): r for r in rows
            if r.scope is not None and not r.segment_key}.values()
    by_dept = {r.department_id: r for r in rows if r.scope == "department"}
    layers = [("user", r) for r in rows if r.scope == "user"]
    layers += [(f"department:{by_dept[d].department_name}", by_dept[d]) for d in chain
               if d in by_dept]
    layers += [("global", r) for r in rows if r.scope == "global"]
    result: dict[str, EffectiveValue] = {}
    for field in fields:
        for source, row in layers:
            value = getattr(row, field)
            if value is not None:
                result[field] = EffectiveValue(value, source)
                break
        else:
            result[field] = EffectiveValue(GLOBAL_DEFAULTS[field], "built-in")
    return result


def effective_policies(user_ids: Iterable[int]) -> dict[int, dict[str, EffectiveValue]]:
    """effective_policy for many users in two queries (every policy row, every user's
    department path): what a sweep over all owners needs."""
    user_ids = list(user_ids)
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(*LAYER_COLUMNS, _POLICY.c.user_id)
        .select_from(_POLICY.outerjoin(_DEPARTMENT,
                                       _DEPARTMENT.c.id == _POLICY.c.department_id))).all()
    paths: dict[int, Optional[str]] = {}
    for start in range(0, len(user_ids), 5000):
        paths.update(db.session.execute(
            select(User.id, Department.path).outerjoin(Department,
                                                       Department.id == User.department_id)
            .where(User.id.in_(user_ids[start:start + 5000]))).all())
    out = {}
    for uid in user_ids:
        chain = chain_from_path(paths.get(uid))
        mine = [r for r in rows if r.scope == "global"
                or (r.scope == "user" and r.user_id == uid)
                or (r.scope == "department" and r.department_id in chain)]
        out[uid] = resolve(mine, chain)
    return out


def policy_value(user_id: int, field: str) -> Any:
    return effective_policy(user_id)[field].value


def validate_policy(policy: Policy) -> None:
    """The target matches the scope, and no number is negative; raises ValidationFailed."""
    errors: dict[str, str] = {}
    if policy.scope not in ("global", "department", "user"):
        errors["scope"] = tr("The scope can only be global, department or user")
    has_dept = policy.department_id is not None or policy.department is not None
    has_user = policy.user_id is not None or policy.user is not None
    if policy.scope == "department" and (not has_dept or has_user):
        errors["department"] = tr("A department policy needs a department and no user")
    if policy.scope == "user" and (not has_user or has_dept):
        errors["user"] = tr("A user policy needs a user and no department")
    if policy.scope == "global" and (has_user or has_dept):
        errors["scope"] = tr("The global policy cannot name a department or user")
    for field in POLICY_FIELDS:
        value = getattr(policy, field)
        if field == "count_won" or value is None:
            continue
        maximum = limits.maximum_of(field)
        if value < 0:
            errors[field] = tr("Cannot be negative")
        elif value > maximum:
            errors[field] = tr("Cannot be greater than %(max)s", max=maximum)
    from app.services.segments import validate_segment

    validate_segment(policy, errors)
    if errors:
        raise ValidationFailed(errors)
