"""Assignment rules (归属规则): the first active rule, in position order, whose non-empty
conditions all equal the record's values decides the owner or pool.

A rule places one record type (record_type): customers, or leads (app.services.leads). The
same code chooses for both; the record type picks which rules apply, what a rep's cap counts
(customers against max_customers, open leads against lead_max), which default pool takes
what falls back, and which event log the 'even' strategy counts.

First-contact protection: rules never take a record away from an owner; they place new
customers that nobody claimed as first contact (created by staff/admins, imported, or handed
over on departure), new leads entered by staff/admins or imported "by the assignment rules",
and pool customers on demand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import func, select

from app.extensions import db
from app.models import AssignmentRule, Customer, Department, LeadEvent, OwnershipEvent, User
from app.models.customer import utcnow
from app.models.lead import LEAD_SOURCES
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.rule import LEAD_RULE_CONDITIONS, RULE_CONDITIONS
from app.security import ROLE_REP, has_role
from app.services import caps, ownership
from app.services.errors import CLAIMED_MEANWHILE, NotInPool, ValidationFailed, tr


@dataclass
class Placement:
    owner_id: Optional[int]
    pool_id: Optional[int]
    rule: Optional[str]          # the rule's name, or None when no rule matched
    note: str = ""


CUSTOMER, LEAD = "customer", "lead"


def active_rules(record_type: str = CUSTOMER) -> list[AssignmentRule]:
    """The active rules that place `record_type` records, in the order they are tried."""
    return list(db.session.execute(
        select(AssignmentRule).where(AssignmentRule.active.is_(True),
                                     AssignmentRule.record_type == record_type)
        .order_by(AssignmentRule.position, AssignmentRule.id)).scalars())


def default_pool(record_type: str = CUSTOMER):
    """The pool that takes a `record_type` record no rule places (or a rule falls back)."""
    if record_type == LEAD:
        from app.services.leads import default_lead_pool

        return default_lead_pool()
    return ownership.default_pool()


def matches(rule: AssignmentRule, values: dict[str, Any]) -> bool:
    for field in RULE_CONDITIONS:
        wanted = getattr(rule, field)
        if wanted not in (None, "") and (values.get(field) or "") != wanted:
            return False
    return True


def customer_values(customer: Customer) -> dict[str, Any]:
    own = customer.ownership
    return {"province": customer.province, "city": customer.city, "industry": customer.industry,
            "customer_type": customer.customer_type, "product_line": customer.product_line,
            "source": customer.source, "grade": own.grade if own else None,
            "lifecycle": own.category if own else "potential"}


def _candidates(rule: AssignmentRule) -> list[User]:
    """Active sales reps in the rule's department and its sub-departments, by id."""
    dept = rule.target_department
    if dept is None:
        return []
    subtree = select(Department.id).where(Department.path.startswith(dept.path))
    users = db.session.execute(select(User).where(
        User.department_id.in_(subtree), User.active.is_(True),
        User.employment_status == EMPLOYMENT_ACTIVE).order_by(User.id)).scalars()
    return [u for u in users if has_role(u, ROLE_REP)]


def room(user_id: int, record_type: str = CUSTOMER) -> caps.Room:
    """The cap a rule's placement counts against: the customer cap, or the lead cap (open
    leads against lead_max) for lead rules."""
    if record_type == LEAD:
        from app.services.leads import lead_room

        return lead_room(user_id)
    return caps.room(user_id)


class _Loads:
    """Counts for choosing reps within one batch (what the batch adds is counted too), against
    the cap of the record type placed."""

    def __init__(self, record_type: str = CUSTOMER):
        self.record_type = record_type
        self.added: dict[int, int] = {}
        self.room: dict[int, tuple[int, int]] = {}
        self._away: Optional[dict] = None

    def away(self) -> dict:
        """{user id: (from, to)} of everyone on leave today, read once per batch."""
        if self._away is None:
            from app.services.absences import current_absences

            self._away = current_absences()
        return self._away

    def has_room(self, user_id: int) -> bool:
        if user_id not in self.room:
            self.room[user_id] = room(user_id, self.record_type)
        cap, have = self.room[user_id]
        return have + self.added.get(user_id, 0) < cap

    def load(self, user_id: int) -> int:
        self.has_room(user_id)
        return self.room[user_id][1] + self.added.get(user_id, 0)

    def take(self, user_id: int) -> None:
        self.added[user_id] = self.added.get(user_id, 0) + 1


def _rule_count(rule: AssignmentRule, user_id: int) -> int:
    """How many records the rule has given the user so far (its events' rule label)."""
    event = LeadEvent if rule.record_type == LEAD else OwnershipEvent
    return db.session.execute(select(func.count()).select_from(event).where(
        event.rule == f"rule:{rule.name}", event.to_owner_id == user_id)).scalar_one()


def fallback_pool_id(rule: Optional[AssignmentRule], record_type: str = CUSTOMER) -> int:
    """Where a record goes when the rule cannot give it to a rep: the rule's pool, else the
    record type's default pool."""
    pool = (rule.target_pool if rule is not None else None) or default_pool(record_type)
    return pool.id


def _fallback(rule: AssignmentRule, why: str) -> Placement:
    return Placement(None, fallback_pool_id(rule, rule.record_type), rule.name, why)


def place(rule: AssignmentRule, loads: _Loads, exclude: Iterable[int] = ()) -> Placement:
    """Where the rule sends one record now, honouring caps (full reps are skipped)."""
    excluded = set(exclude)
    if rule.target_type == "pool":
        return Placement(None, fallback_pool_id(rule, rule.record_type), rule.name)
    if rule.target_type == "user":
        user = rule.target_user
        if user is None or not user.active or user.employment_status != EMPLOYMENT_ACTIVE \
                or user.id in excluded:
            return _fallback(rule, "指定销售不可用")
        if user.id in loads.away():
            start, end = loads.away()[user.id]
            return _fallback(rule, tr("The rule's sales rep is on leave (%(period)s)",
                                      period=f"{start}–{end}"))
        if not loads.has_room(user.id):
            return _fallback(rule, "指定销售已达上限")
        loads.take(user.id)
        return Placement(user.id, None, rule.name)
    present = [u for u in _candidates(rule) if u.id not in excluded]
    away = loads.away()
    if present and all(u.id in away for u in present):
        return _fallback(rule, tr("Every sales rep of the department is on leave"))
    reps = [u for u in present if u.id not in away and loads.has_room(u.id)]
    if not reps:
        return _fallback(rule, "部门内没有可接收的销售")
    if rule.strategy == "round_robin":
        after = [u for u in reps if rule.last_user_id is None or u.id > rule.last_user_id]
        chosen = (after or reps)[0]
        rule.last_user_id = chosen.id
    elif rule.strategy == "least_loaded":
        chosen = min(reps, key=lambda u: (loads.load(u.id), u.id))
    else:  # even: fewest customers this rule has given so far
        chosen = min(reps, key=lambda u: (_rule_count(rule, u.id) + loads.added.get(u.id, 0),
                                          u.id))
    loads.take(chosen.id)
    return Placement(chosen.id, None, rule.name)


def place_new(values: dict[str, Any], exclude: Iterable[int] = (),
              record_type: str = CUSTOMER) -> Optional[Placement]:
    """Placement for a new record (customer or lead) with these field values, or None if no
    rule matches."""
    for rule in active_rules(record_type):
        if matches(rule, values):
            return place(rule, _Loads(record_type), exclude)
    return None


def place_many(values: list[dict[str, Any]],
               record_type: str = CUSTOMER) -> list[Optional[Placement]]:
    """place_new for a batch of new records (an import chunk), counting what the batch
    itself gives each rep against the caps."""
    rules, loads = active_rules(record_type), _Loads(record_type)
    out: list[Optional[Placement]] = []
    for v in values:
        rule = next((r for r in rules if matches(r, v)), None)
        out.append(place(rule, loads) if rule is not None else None)
    return out


def apply_to_pool_customers(actor: User, customer_ids: Iterable, dry_run: bool = True) -> dict:
    """Run the rules over a selection of pool customers (admins; managers for their pools;
    pool admins for the pools they administer)."""
    from app.services.assignment import require_distributor, distributable_pool_ids
    from app.services.pool import parse_ids

    require_distributor(actor)
    ids = parse_ids(customer_ids)
    rows = ownership.snapshot(ids)
    gone = [i for i in ids if i not in rows or rows[i].pool_id is None]
    if gone:
        raise NotInPool(tr("Assignment rules apply only to pool customers"), customer_ids=gone)
    pools = distributable_pool_ids(actor)
    if any(rows[i].pool_id not in pools for i in ids):
        raise ValidationFailed({"customer_ids": tr("Some customers are in pools you do not "
                                                   "manage")})
    rules = active_rules()
    loads = _Loads()
    plan: list[dict] = []
    for customer in db.session.execute(select(Customer).where(Customer.id.in_(ids))
                                       .order_by(Customer.id)).scalars():
        rule = next((r for r in rules if matches(r, customer_values(customer))), None)
        if rule is None:
            plan.append({"customer_id": customer.id, "rule": None, "owner_id": None,
                         "pool_id": rows[customer.id].pool_id, "note": "没有匹配的规则"})
            continue
        p = place(rule, loads)
        plan.append({"customer_id": customer.id, "rule": p.rule, "owner_id": p.owner_id,
                     "pool_id": p.pool_id, "note": p.note})
    if dry_run:
        db.session.rollback()
        return {"dry_run": True, "plan": plan}
    try:
        now = utcnow()
        events = []
        for owner_id in sorted({p["owner_id"] for p in plan if p["owner_id"]}):
            ownership.lock_rep(owner_id)
            mine = [p["customer_id"] for p in plan if p["owner_id"] == owner_id]
            caps.check_cap(owner_id, len(mine), verb=caps.ASSIGNING)
            if ownership.move_from_pool(mine, owner_id, now=now, how="rule-assigned") != len(mine):
                raise NotInPool(tr(CLAIMED_MEANWHILE))
        for p in plan:
            cid = p["customer_id"]
            if p["owner_id"]:
                events.append(dict(customer_id=cid, kind="rule-assigned",
                                   from_pool_id=rows[cid].pool_id, to_owner_id=p["owner_id"],
                                   actor_id=actor.id, reason="按归属规则分配",
                                   rule=f"rule:{p['rule']}"))
            elif p["rule"] and p["pool_id"] != rows[cid].pool_id:
                ownership.move_between_pools([cid], p["pool_id"])
                events.append(dict(customer_id=cid, kind="moved", from_pool_id=rows[cid].pool_id,
                                   to_pool_id=p["pool_id"], actor_id=actor.id,
                                   reason=p["note"] or "按归属规则移入公海",
                                   rule=f"rule:{p['rule']}"))
        ownership.record_events(events, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return {"dry_run": False, "plan": plan}


def validate_rule(rule: AssignmentRule) -> None:
    """The rule form's checks, each refusal naming its field."""
    errors = {}
    record_type = rule.record_type or CUSTOMER
    if record_type not in (CUSTOMER, LEAD):
        errors["record_type"] = tr("A rule places customers or leads")
        record_type = CUSTOMER
    if rule.target_type == "user" and rule.target_user is None and rule.target_user_id is None:
        errors["target_user"] = tr("A rule targeting a sales rep needs the rep")
    elif rule.target_type == "user":
        from app.models import User
        from app.security import marketing_only, service_only
        from app.services.ownership import SERVICE_OWNS_NOTHING

        target = rule.target_user or db.session.get(User, rule.target_user_id)
        if marketing_only(target):
            errors["target_user"] = tr("%(name)s works in marketing and cannot own customers or "
                                       "leads", name=target.display_name)
        elif service_only(target):
            errors["target_user"] = tr(SERVICE_OWNS_NOTHING, name=target.display_name)
    if rule.target_type == "department" and rule.target_department is None \
            and rule.target_department_id is None:
        errors["target_department"] = tr("A rule targeting a department needs the department")
    if rule.lifecycle not in (None, "", "potential", "active", "silent"):
        errors["lifecycle"] = tr("The lifecycle can only be potential, active or silent")
    if rule.grade not in (None, "", "A", "B", "C"):
        errors["grade"] = tr("The grade can only be A, B or C")
    pool = rule.target_pool
    if pool is None and rule.target_pool_id is not None:
        from app.models import Pool

        pool = db.session.get(Pool, rule.target_pool_id)
    if pool is not None and pool.record_type != record_type:
        errors["target_pool"] = (tr("A lead rule's pool must be a lead pool") if record_type == LEAD
                                 else tr("A customer rule's pool must be a customer pool"))
    if record_type == LEAD:
        for field in RULE_CONDITIONS:
            if field not in LEAD_RULE_CONDITIONS and getattr(rule, field) not in (None, ""):
                errors[field] = tr("A lead has no such field; a lead rule can match the "
                                   "province, city, industry and source only")
        if rule.source not in (None, "") and rule.source not in LEAD_SOURCES:
            by_label = {str(label): code for code, label in LEAD_SOURCES.items()}
            if rule.source in by_label:
                rule.source = by_label[rule.source]
            else:
                errors["source"] = tr("The source can only be: %(choices)s",
                                      choices=", ".join(LEAD_SOURCES))
    if errors:
        raise ValidationFailed(errors)
