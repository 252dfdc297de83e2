"""Leads (线索): entry with dedupe, the lead pools (线索公海), claim / release / assign under the
lead cap, follow-ups, invalidation, the reclaim sweep and conversion into a customer.

The customer engine's invariants hold for leads: one owner or one lead pool (schema CHECK on
lead_ownership), every change of holder writes one append-only lead_event, the lead cap and
the daily claim limit are counted after the rep's row lock (app.services.ownership), and the
data scope follows the owner like customers; pool leads are visible to the pool's members
and to users who see every record. Lead pools are pools with record_type 'lead': customer
code never sees them, and nothing here touches a customer pool.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from sqlalchemy import and_, case, func, or_, select, text, true, update

from app.extensions import db
from app.models import (AssignmentRule, Contact, Customer, Lead, LeadEvent, LeadFollowUp,
                        LeadOwnership, Pool, User)
from app.models.customer import utcnow
from app.models.lead import LEAD_SOURCES
from app.security import (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, Scope, has_role,
                          marketing_only, scope_of, visible_owner_ids)
from app.services import audit, dedupe, limits, notifications, ownership, policies, segments
from app.services.errors import (UNKNOWN_FIELD, CapExceeded, Conflict, DailyLimitReached,
                                 Duplicate, DuplicateWarning, NotFound, NotInPool,
                                 OutOfScope, PermissionDenied, ValidationFailed, lazy_tr, tr)
from app.services.ids import LEAD, parse_ids as parse_id_list
from app.services.normalize import (InvalidValue, normalize_email, normalize_mobile,
                                    normalize_phone, split_company_name)
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_day_start

MAX_BATCH = 1000
LEAD_FIELDS = ("person_name", "company_name", "mobile", "phone", "email", "province", "city",
               "industry", "source", "campaign", "notes")
MAX_LENGTHS = {"person_name": 100, "company_name": limits.NAME, "mobile": 60, "phone": 60,
               "email": 200, "province": 50, "city": 50, "industry": 100, "source": 20,
               "campaign": 200, "notes": limits.NOTE}
OPEN_STATUSES = ("new", "working")
NO_SUCH_LEAD = lazy_tr("The lead does not exist or is outside your data scope")
CLAIMED_MEANWHILE = lazy_tr("Someone else just took some of these leads; refresh and try again")
SWEEP_LOCK_KEY = 4_242_015  # pg_advisory_xact_lock key of the lead sweep


# --- pools --------------------------------------------------------------------------------
def default_lead_pool() -> Pool:
    pool = db.session.execute(select(Pool).where(
        Pool.is_default.is_(True), Pool.record_type == "lead")).scalars().first()
    if pool is None:
        raise NotFound(tr("No default lead pool is set up; run flask crm init first"),
                       code="no_default_pool")
    return pool


def lead_pool(pool_id: Any, field: str = "pool_id") -> Pool:
    """The lead pool `pool_id`; ValidationFailed naming `field` otherwise (a customer pool
    never holds leads)."""
    from app.services.ids import parse_pk

    pk = parse_pk(pool_id)
    pool = db.session.get(Pool, pk) if pk is not None else None
    if pool is None or pool.record_type != "lead":
        raise ValidationFailed({field: tr("The lead pool does not exist")})
    return pool


def member_lead_pool_ids(user: User) -> set[int]:
    """Lead pools the user belongs to (admins: every one)."""
    from app.services.pool import member_pool_ids

    return member_pool_ids(user, record_type="lead")


def browsable_lead_pool_ids(user: User) -> set[int]:
    """Lead pools whose leads the user may browse: members; every one for users who see every
    record (back-office staff, auditors, admins)."""
    from app.services.pool import pool_ids_of_type

    if scope_of(user) == Scope.ALL:
        return pool_ids_of_type("lead")
    return member_lead_pool_ids(user)


def lead_pools(user: User) -> list[Pool]:
    """The lead pools the user may browse, the default first (pickers)."""
    ids = browsable_lead_pool_ids(user)
    return list(db.session.execute(select(Pool).where(Pool.id.in_(ids or {0})).order_by(
        Pool.is_default.desc(), Pool.name)).scalars())


# --- scope and contact details ------------------------------------------------------------
def visible_lead_ids_select(user: Optional[User], write: bool = False):
    """SELECT of lead ids in the user's scope, or None when it is every lead. Owned leads of
    the owners the user sees (as for customers); for reading also the leads of the lead pools
    the user belongs to."""
    scope = scope_of(user)
    if scope is None:
        return select(LeadOwnership.lead_id).where(false_())
    if scope == Scope.ALL:
        if write and not has_role(user, ROLE_ADMIN, ROLE_STAFF):
            return select(LeadOwnership.lead_id).where(false_())  # auditors read only
        return None
    mine = LeadOwnership.owner_id.in_(sorted(visible_owner_ids(user, scope)))
    if not write:
        pools = member_lead_pool_ids(user)
        if pools:
            mine = or_(mine, LeadOwnership.pool_id.in_(sorted(pools)))
    return select(LeadOwnership.lead_id).where(mine)


def false_():
    return LeadOwnership.lead_id != LeadOwnership.lead_id


def lead_scope_clause(user: Optional[User], column=Lead.id, write: bool = False):
    ids = visible_lead_ids_select(user, write)
    return true() if ids is None else column.in_(ids)


def contact_rule(user: Optional[User]):
    """(owner_id, pool_id) of a lead -> may the user read its contact details in full? The
    customers' rule (app.services.masking) with lead pools: admins and staff, owners and
    managers for the leads they may edit, a lead pool's admins for that pool."""
    if user is None:
        return lambda owner_id, pool_id: False
    if has_role(user, ROLE_ADMIN, ROLE_STAFF):
        return lambda owner_id, pool_id: True
    if marketing_only(user):
        # As app.services.masking for customers: 市场专员 read every lead masked, a lead
        # pool they administer included (they own none and call none).
        return lambda owner_id, pool_id: False
    from app.services.pool_admin import admin_pool_ids

    pools = admin_pool_ids(user, "lead")
    scope = scope_of(user)
    if scope is None or scope == Scope.ALL:
        return lambda owner_id, pool_id: pool_id is not None and pool_id in pools
    owners = visible_owner_ids(user, scope)
    return lambda owner_id, pool_id: (owner_id is not None and owner_id in owners) or (
        pool_id is not None and pool_id in pools)


def current_contact_rule():
    from flask import g, has_request_context

    from app.security import current_user

    if not has_request_context():
        return contact_rule(current_user())
    if "guishu_lead_contact_rule" not in g:
        g.guishu_lead_contact_rule = contact_rule(current_user())
    return g.guishu_lead_contact_rule


def shown_field(lead: Lead, name: str, rule=None) -> Any:
    """A contact field of a lead as the signed-in user (or `rule`) may see it."""
    from app.services.masking import shown

    o = lead.ownership
    rule = rule or current_contact_rule()
    return shown(name, getattr(lead, name), rule(o.owner_id if o else None,
                                                 o.pool_id if o else None))


def get_lead(actor: User, lead_id: Any, write: bool = False) -> Lead:
    """The lead if the actor may see it (write: change it); the same refusal for missing and
    outside the scope."""
    from app.services.ids import parse_pk

    pk = parse_pk(lead_id)
    if write:
        _require_writer(actor)
    lead = db.session.get(Lead, pk) if pk is not None else None
    if lead is None or db.session.execute(select(Lead.id).where(
            Lead.id == pk, lead_scope_clause(actor, write=write))).first() is None:
        raise OutOfScope(tr(NO_SUCH_LEAD))
    return lead


def _require_writer(actor: User) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF):
        raise PermissionDenied(tr("Your role cannot add or change leads"))


def parse_lead_ids(values: Iterable) -> list[int]:
    return parse_id_list(values, "lead_ids", MAX_BATCH, LEAD)


# --- input --------------------------------------------------------------------------------
def clean_lead_data(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise lead input; ValidationFailed naming every bad field."""
    from app.services.masking import MASKED_REFUSAL, is_masked

    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    errors: dict[str, str] = {str(f): str(UNKNOWN_FIELD) for f in set(data) - set(LEAD_FIELDS)}
    out: dict[str, Any] = {}
    for name in LEAD_FIELDS:
        if partial and name not in data:
            continue
        value = data.get(name)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            errors[name] = tr("Must be text")
            continue
        if is_unclean(value):
            errors[name] = str(UNCLEAN_MESSAGE)
            continue
        value = str(value).strip() if value is not None else None
        value = value or None
        message = limits.too_long(value, MAX_LENGTHS[name])
        if message:
            errors[name] = message
            continue
        out[name] = value
    if out.get("source") is not None and out["source"] not in LEAD_SOURCES:
        errors["source"] = tr("The source can only be: %(choices)s",
                              choices=", ".join(LEAD_SOURCES))
    from app.services.customers import phone_region

    region = phone_region()
    for name, key, fn in (("mobile", "mobile_e164", lambda v: normalize_mobile(v, region)),
                          ("phone", "phone_e164", lambda v: normalize_phone(v, region)),
                          ("email", "email_norm", normalize_email)):
        if name in out and name not in errors:
            if is_masked(out[name]):
                errors[name] = str(MASKED_REFUSAL)
                continue
            try:
                out[key] = fn(out[name])
            except InvalidValue as exc:
                errors[name] = str(exc)
    if not partial and "person_name" not in errors and "company_name" not in errors \
            and not out.get("person_name") and not out.get("company_name"):
        errors["person_name"] = tr("Give a person name or a company name (at least one)")
    if errors:
        raise ValidationFailed(errors)
    if "company_name" in out:
        out["name_core"] = company_core(out["company_name"])
    return out


def company_core(name: Optional[str]) -> Optional[str]:
    split = split_company_name(name) if name else None
    return (split.core or None) if split else None


# --- dedupe -------------------------------------------------------------------------------
@dataclass
class LeadMatch:
    record: str          # "lead" or "customer"
    id: int
    name: str
    holder: str
    kind: str
    action: str

    @property
    def text(self) -> str:
        if self.record == "customer":
            return dedupe.exists_text(self.name, self.holder, False, self.kind_label)
        return tr("Already a lead: %(name)s, %(holder)s (matched by %(kind)s)", name=self.name,
                  holder=self.holder, kind=self.kind_label)

    @property
    def kind_label(self) -> str:
        from app.models.dedupe import DEDUPE_KINDS

        return str(DEDUPE_KINDS.get(self.kind, self.kind))

    def to_dict(self) -> dict:
        return {"record": self.record, "id": self.id, "name": self.name, "holder": self.holder,
                "rule": self.kind, "action": self.action, "message": self.text}


def customer_values(values: dict[str, Any]) -> dict[str, Any]:
    """A lead's values as the customer matcher reads them: a company if it names one, else a
    person."""
    from app.services.customers import text_keys

    kind = "company" if values.get("company_name") else "person"
    name = values.get("company_name") or values.get("person_name")
    out = {k: values.get(k) for k in ("mobile_e164", "phone_e164", "email_norm", "city")}
    out.update(customer_type=kind, **text_keys(kind, name, None))
    return out


def rule_of(kind: str) -> str:
    """The dedupe rule that governs a lead-to-lead key: an equal company core is the scored
    rule's business (it replaced the company name rule), the identifiers their own."""
    return "scored" if kind == "company_name" else kind


def find_duplicates(values: dict[str, Any], exclude_lead_id: Optional[int] = None,
                    ) -> list[LeadMatch]:
    """Matches of a lead's values among customers (the customer matcher, its rules) and open
    or invalid leads (the same rules' exact keys: mobile, phone, e-mail, company core name)."""
    matches = [LeadMatch("customer", m.customer_id, m.customer_name, m.holder, m.kind, m.action)
               for m in dedupe.find(customer_values(values))]
    rules = dedupe.active_rules()
    keys = [("mobile", Lead.mobile_e164, values.get("mobile_e164")),
            ("phone", Lead.phone_e164, values.get("phone_e164")),
            ("email", Lead.email_norm, values.get("email_norm")),
            ("company_name", Lead.name_core, values.get("name_core"))]
    seen: set[int] = set()
    for kind, column, value in keys:
        if not value or rule_of(kind) not in rules:
            continue
        q = (select(Lead).join(LeadOwnership, LeadOwnership.lead_id == Lead.id)
             .where(column == value, Lead.status != "converted").order_by(Lead.id).limit(20))
        if exclude_lead_id is not None:
            q = q.where(Lead.id != exclude_lead_id)
        for lead in db.session.execute(q).scalars():
            if lead.id in seen:
                continue
            seen.add(lead.id)
            matches.append(LeadMatch("lead", lead.id, lead.name, holder_text(lead.ownership),
                                     kind, rules[rule_of(kind)].action))
    return sorted(matches, key=lambda m: (m.action != "block", m.record != "lead", m.id))


def holder_text(o: Optional[LeadOwnership]) -> str:
    if o is None:
        return ""
    if o.owner is not None:
        dept = o.owner.department.name if getattr(o.owner, "department", None) else None
        return (tr("owner %(owner)s (%(dept)s)", owner=o.owner.display_name, dept=dept) if dept
                else tr("owner %(owner)s", owner=o.owner.display_name))
    return tr("in the lead pool 『%(pool)s』", pool=o.pool.name if o.pool else "")


def enforce_dedupe(values: dict[str, Any], exclude_lead_id: Optional[int] = None,
                   confirmed: bool = False) -> list[LeadMatch]:
    """Duplicate for a blocking match, DuplicateWarning for a warning one unless confirmed;
    the confirmed warnings are returned (the caller audits them)."""
    matches = find_duplicates(values, exclude_lead_id)
    blocking = [m for m in matches if m.action == "block"]
    if blocking:
        raise Duplicate(tr("; ").join(m.text for m in blocking[:3]),
                        matches=[m.to_dict() for m in blocking])
    if matches and not confirmed:
        raise DuplicateWarning(
            tr("%(matches)s. If it is not the same, tick “Save anyway”",
               matches=tr("; ").join(m.text for m in matches[:3])),
            matches=[m.to_dict() for m in matches])
    return matches


def _record_confirmed(actor_id: int, lead_id: int, matches: list[LeadMatch]) -> None:
    if matches:
        audit.record(actor_id, "dedupe_confirmed", "lead", lead_id,
                     {"matches": (None, ",".join(f"{m.record}:{m.id}" for m in matches))})


# --- caps and limits ----------------------------------------------------------------------
def open_leads_of(user_id: int) -> int:
    """The user's leads counted against the lead cap: owned and open (new, following up)."""
    return db.session.execute(select(func.count()).select_from(LeadOwnership).where(
        LeadOwnership.owner_id == user_id, LeadOwnership.is_open.is_(True))).scalar_one()


def claimed_today(user_id: int) -> int:
    return db.session.execute(select(func.count()).select_from(LeadEvent).where(
        LeadEvent.to_owner_id == user_id, LeadEvent.kind == "claimed",
        LeadEvent.created_at >= local_day_start())).scalar_one()


VERB_ADDING, VERB_CLAIMING, VERB_ASSIGNING = (
    lazy_tr("adding"), lazy_tr("claiming"), lazy_tr("assigning"))


def check_lead_cap(user_id: int, adding: int, policy: dict, verb=VERB_ADDING) -> None:
    """Refuse `adding` more open leads beyond the user's lead cap; after lock_rep."""
    cap = int(policy["lead_max"].value)
    have = open_leads_of(user_id)
    if have + adding > cap:
        raise CapExceeded(tr("Over the lead cap: cap %(cap)s, held %(have)s, %(verb)s "
                             "%(adding)s", cap=cap, have=have, verb=str(verb), adding=adding),
                          cap=cap, owned=have, adding=adding)


def lead_room(user_id: int, policy: Optional[dict] = None):
    """The user's lead cap and open leads now, as caps.Room (the assignment rules' count for
    lead rules; re-read after lock_rep before relying on it)."""
    from app.services.caps import Room

    policy = policy or policies.effective_policy(user_id)
    return Room(int(policy["lead_max"].value), open_leads_of(user_id))


def _lock_owner(user_id: int) -> dict:
    """lock_active_rep and the user's effective policy (read under the lock)."""
    row = ownership.lock_active_rep(user_id)
    return policies.effective_policy(user_id, policies.chain_from_path(row.department_path))


def _event(lead_id: int, kind: str, actor_id: Optional[int], **values) -> None:
    db.session.add(LeadEvent(lead_id=lead_id, kind=kind, actor_id=actor_id,
                             created_at=values.pop("created_at", None) or utcnow(), **values))


def _commit(fn):
    """Run fn() and commit; roll back on any error."""
    try:
        result = fn()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


# --- create and edit ----------------------------------------------------------------------
def _assignable(actor: User, owner_id: int) -> bool:
    """May the actor name owner_id as a lead's owner? Admins and staff anyone, managers their
    scope, reps themselves."""
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF) or owner_id == actor.id:
        return True
    if has_role(actor, ROLE_MANAGER):
        return owner_id in visible_owner_ids(actor, scope_of(actor) or Scope.OWN)
    return False


def create_lead(actor: User, data: dict[str, Any], *, owner_id: Any = None,
                pool_id: Any = None, confirm_duplicates: bool = False) -> Lead:
    """A new lead with its ownership row and 'created' event. Reps and managers own what they
    create (first contact; a manager may name a rep in scope); staff and admins name a lead
    pool or an owner, or else the first matching active lead rule places it (the default
    lead pool when none matches). The owner's lead cap is checked under the lock; a rep the
    rule chose who is at the cap by then leaves the lead in the rule's pool."""
    from app.services.ids import parse_optional_id

    _require_writer(actor)
    values = clean_lead_data(data)
    owner = parse_optional_id(owner_id, "owner_id")
    pool = lead_pool(pool_id) if pool_id not in (None, "") else None
    if owner is not None and pool is not None:
        raise ValidationFailed({"pool_id": tr("Name an owner or a lead pool, not both")})
    if owner is not None and not _assignable(actor, owner):
        raise ValidationFailed({"owner_id": tr("You can only name an owner within your data "
                                               "scope")})
    by_rules = owner is None and pool is None and has_role(actor, ROLE_ADMIN, ROLE_STAFF)
    if owner is None and pool is None and not by_rules:
        owner = actor.id
    if pool is not None and not has_role(actor, ROLE_ADMIN, ROLE_STAFF) \
            and pool.id not in member_lead_pool_ids(actor):
        raise ValidationFailed({"pool_id": tr("You are not a member of this lead pool")})
    confirmed = enforce_dedupe(values, confirmed=confirm_duplicates)

    def go() -> Lead:
        placed = place_by_rules([values])[0] if by_rules else None
        lead = insert_lead(values, actor_id=actor.id,
                           owner_id=placed.owner_id if placed else owner,
                           pool_id=placed.pool_id if placed else (pool.id if pool else None),
                           reason=(placed.reason if placed else None) or "新建线索",
                           rule=placed.rule if placed else None,
                           how=placed.how if placed else "created",
                           check_cap=placed is None)
        _record_confirmed(actor.id, lead.id, confirmed)
        return lead

    return _commit(go)


@dataclass
class LeadPlacement:
    """Where one new lead goes through the lead rules (place_by_rules)."""
    owner_id: Optional[int]
    pool_id: Optional[int]
    rule: Optional[str]  # 'rule:<name>' for the event, None when no rule matched
    reason: str = ""

    @property
    def how(self) -> str:
        return "rule-assigned" if self.owner_id is not None else "created"


def place_by_rules(values: list[dict[str, Any]]) -> list[LeadPlacement]:
    """The lead rules' placement of new leads (one entry, or an import chunk), within the
    lead caps: app.services.rules chooses, counting what the batch itself gives each rep;
    then each chosen rep's row is locked (in id order) and their open leads re-counted, so a
    claim, an assignment or another placement that landed meanwhile cannot take them over
    the lead cap: the leads that no longer fit go to the rule's pool instead (its lead pool,
    else the default lead pool). No rule matched: the default lead pool. Call inside the
    transaction that inserts the leads."""
    from app.services import rules

    placed = rules.place_many(values, record_type=rules.LEAD)
    default_id: Optional[int] = None
    out: list[LeadPlacement] = []
    wanted: dict[int, int] = {}
    for p in placed:
        if p is None:
            default_id = default_id or default_lead_pool().id
            out.append(LeadPlacement(None, default_id, None))
            continue
        out.append(LeadPlacement(p.owner_id, p.pool_id, f"rule:{p.rule}", p.note))
        if p.owner_id is not None:
            wanted[p.owner_id] = wanted.get(p.owner_id, 0) + 1
    for owner_id in sorted(wanted):
        now_room = lead_room(owner_id, _lock_owner(owner_id))
        over = wanted[owner_id] - now_room.left
        for i in range(len(out) - 1, -1, -1):
            if over <= 0:
                break
            if out[i].owner_id == owner_id:
                name = out[i].rule[len("rule:"):]
                rule = db.session.execute(select(AssignmentRule).where(
                    AssignmentRule.name == name)).scalar_one_or_none()
                out[i] = LeadPlacement(None, rules.fallback_pool_id(rule, rules.LEAD),
                                       out[i].rule,
                                       tr("The rule's sales rep is at the lead cap (cap "
                                          "%(cap)s, held %(have)s)", cap=now_room.cap,
                                          have=now_room.have))
                over -= 1
    return out


def insert_lead(values: dict[str, Any], *, actor_id: Optional[int], owner_id: Optional[int],
                pool_id: Optional[int], reason: str = "新建线索",
                extra: Optional[dict[str, Any]] = None, rule: Optional[str] = None,
                how: str = "created", check_cap: bool = False) -> Lead:
    """The writes of a new lead once it is checked (clean_lead_data, dedupe, and the owner's
    lead cap under lock_rep): the lead, its ownership row, the 'created' event, the audit row
    and its priority score. No commit (create_lead, the capture form and the import own
    theirs); actor_id None is a public form. `rule` labels the event when an assignment rule
    placed the lead; check_cap locks the owner and checks the lead cap here."""
    from app.services import lead_priority

    if check_cap and owner_id is not None:
        check_lead_cap(owner_id, 1, _lock_owner(owner_id))
    now = utcnow()
    lead = Lead(created_by_id=actor_id, status="new", created_at=now, updated_at=now,
                **values, **(extra or {}))
    lead.ownership = LeadOwnership(owner_id=owner_id, pool_id=pool_id, home_pool_id=pool_id,
                                   is_open=True, acquired_at=now, acquired_how=how)
    db.session.add(lead)
    db.session.flush()
    _event(lead.id, "created", actor_id, to_owner_id=owner_id, to_pool_id=pool_id,
           reason=reason, rule=rule, created_at=now)
    audit.record(actor_id, "create", "lead", lead.id,
                 {k: (None, v) for k, v in values.items() if v is not None})
    lead_priority.recompute(lead.id, now)
    db.session.expire(lead, ["priority_score", "priority_source", "priority_completeness",
                             "priority_engagement", "priority_age"])
    return lead


def update_lead(actor: User, lead_id: Any, data: dict[str, Any],
                confirm_duplicates: bool = False) -> Lead:
    """Edit a lead's fields (not its holder or status: those have their own actions)."""
    lead = get_lead(actor, lead_id, write=True)
    values = clean_lead_data(data, partial=True)
    merged = {f: values.get(f, getattr(lead, f)) for f in ("person_name", "company_name")}
    if not merged["person_name"] and not merged["company_name"]:
        raise ValidationFailed({"person_name": tr("Give a person name or a company name (at "
                                                  "least one)")})
    changes = audit.diff(lead, values)
    keys = ("mobile_e164", "phone_e164", "email_norm", "name_core")
    if any(k in changes for k in keys) or "person_name" in changes:
        after = {k: values.get(k, getattr(lead, k)) for k in keys + ("company_name",
                                                                     "person_name", "city")}
        confirmed = enforce_dedupe(after, exclude_lead_id=lead.id, confirmed=confirm_duplicates)
    else:
        confirmed = []

    def go() -> Lead:
        for key, value in values.items():
            setattr(lead, key, value)
        if changes:
            audit.record(actor.id, "update", "lead", lead.id, changes)
        _record_confirmed(actor.id, lead.id, confirmed)
        _refresh_priority(lead)
        return lead

    return _commit(go)


def _refresh_priority(lead: Lead) -> None:
    """Recompute the lead's score after a write (flushes first: the UPDATE reads the row)."""
    from app.services import lead_priority

    db.session.flush()
    lead_priority.recompute(lead.id)
    db.session.expire(lead, ["priority_score", "priority_source", "priority_completeness",
                             "priority_engagement", "priority_age"])


# --- claim, release, assign ---------------------------------------------------------------
def _rows(ids: list[int]) -> dict[int, Any]:
    return {r.lead_id: r for r in db.session.execute(
        select(LeadOwnership.lead_id, LeadOwnership.owner_id, LeadOwnership.pool_id,
               LeadOwnership.home_pool_id, LeadOwnership.is_open, Lead.status,
               Lead.person_name, Lead.company_name)
        .join(Lead, Lead.id == LeadOwnership.lead_id).where(LeadOwnership.lead_id.in_(ids)))}


def _label(row) -> str:
    if row.company_name and row.person_name:
        return f"{row.company_name}（{row.person_name}）"
    return row.company_name or row.person_name


def lead_names(rows: dict, ids: Iterable[int]) -> str:
    return "、".join(_label(rows[i]) if i in rows else f"#{i}" for i in ids)


def _refuse_closed(rows: dict, ids: list[int]) -> None:
    closed = [i for i in ids if rows[i].status not in OPEN_STATUSES]
    if closed:
        raise Conflict(tr("These leads are converted or invalid: %(names)s",
                          names=lead_names(rows, closed)), code="lead_closed", lead_ids=closed)


def claim_leads(actor: User, lead_ids: Iterable, pool_id: Any = None) -> list[int]:
    """The actor takes leads from lead pools they belong to, all or nothing: refused over the
    lead daily claim limit or the lead cap (counted under the actor's row lock); the move
    re-checks every lead is still in the pool it was read in, so two claimants of one lead
    cannot both win."""
    ids = parse_lead_ids(lead_ids)
    if not has_role(actor, ROLE_REP, ROLE_MANAGER, ROLE_ADMIN):
        raise PermissionDenied(tr("Your role cannot claim pool leads"))
    wanted = lead_pool(pool_id) if pool_id not in (None, "") else None

    def go() -> list[int]:
        policy = _lock_owner(actor.id)  # first: everything below is read under the lock
        pools = member_lead_pool_ids(actor)
        if wanted is not None and wanted.id not in pools:
            raise OutOfScope(tr("You are not a member of this lead pool"), code="not_pool_member")
        rows = _rows(ids)
        gone = [i for i in ids if i not in rows or rows[i].pool_id is None
                or (wanted is not None and rows[i].pool_id != wanted.id)]
        if gone:
            raise NotInPool(tr("No longer in a lead pool: %(names)s",
                               names=lead_names(rows, gone)), lead_ids=gone)
        foreign = [i for i in ids if rows[i].pool_id not in pools]
        if foreign:
            raise OutOfScope(tr("These leads are in pools you may not claim from: %(names)s",
                                names=lead_names(rows, foreign)),
                             code="not_pool_member", lead_ids=foreign)
        _refuse_closed(rows, ids)
        from app.services import lead_cooldown

        lead_cooldown.check(actor.id, ids, int(policy["cooldown_days"].value or 0), utcnow(),
                            lambda some: lead_names(rows, some))
        limit = int(policy["lead_daily_claim_limit"].value)
        today = claimed_today(actor.id)
        if today + len(ids) > limit:
            raise DailyLimitReached(
                tr("Over the daily lead claim limit: limit %(limit)s, claimed today %(today)s, "
                   "claiming now %(adding)s", limit=limit, today=today, adding=len(ids)),
                limit=limit, claimed_today=today, adding=len(ids))
        check_lead_cap(actor.id, len(ids), policy, VERB_CLAIMING)
        now = utcnow()
        by_pool: dict[int, list[int]] = {}
        for i in ids:
            by_pool.setdefault(rows[i].pool_id, []).append(i)
        moved = 0
        for from_pool, group in by_pool.items():
            moved += db.session.execute(
                update(LeadOwnership)
                .where(LeadOwnership.lead_id.in_(group), LeadOwnership.pool_id == from_pool)
                .values(owner_id=actor.id, pool_id=None, home_pool_id=from_pool,
                        acquired_at=now, acquired_how="claimed", last_followup_at=None)
                .execution_options(synchronize_session=False)).rowcount
        if moved != len(ids):
            raise NotInPool(tr(CLAIMED_MEANWHILE))
        for i in ids:
            _event(i, "claimed", actor.id, from_pool_id=rows[i].pool_id, to_owner_id=actor.id,
                   reason="领取", created_at=now)
        return ids

    return _commit(go)


def _managed(actor: User, owner_ids: set[int]) -> set[int]:
    from app.services.pool import managed_owner_ids

    return managed_owner_ids(actor, owner_ids)


def release_leads(actor: User, lead_ids: Iterable, reason: str,
                  pool_id: Any = None) -> list[int]:
    """Owners (their managers, admins) return open leads to a lead pool with a reason: the
    pool named, else the pool each came from, else the default lead pool."""
    ids = parse_lead_ids(lead_ids)
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise ValidationFailed({"reason": tr("Please give a reason for releasing")})
    if limits.too_long(reason, limits.REASON):
        raise ValidationFailed({"reason": limits.too_long(reason, limits.REASON)})
    target = lead_pool(pool_id) if pool_id not in (None, "") else None
    _require_writer(actor)

    def go() -> list[int]:
        rows = _rows(ids)
        not_owned = [i for i in ids if i not in rows or rows[i].owner_id is None]
        if not_owned:
            raise NotInPool(tr("These leads have no owner, nothing to release: %(names)s",
                               names=lead_names(rows, not_owned)),
                            code="not_owned", lead_ids=not_owned)
        allowed = _managed(actor, {r.owner_id for r in rows.values()})
        foreign = [i for i in ids if rows[i].owner_id not in allowed]
        if foreign:
            raise OutOfScope(tr(NO_SUCH_LEAD), lead_ids=foreign)
        _refuse_closed(rows, ids)
        lead_pool_ids = _lead_pool_ids()
        default_id = None
        now = utcnow()
        done = 0
        targets = {}
        for i in ids:
            home = rows[i].home_pool_id
            if target is not None:
                targets[i] = target.id
            elif home in lead_pool_ids:
                targets[i] = home
            else:
                default_id = default_id or default_lead_pool().id
                targets[i] = default_id
            done += db.session.execute(
                update(LeadOwnership)
                .where(LeadOwnership.lead_id == i, LeadOwnership.owner_id == rows[i].owner_id)
                .values(owner_id=None, pool_id=targets[i], home_pool_id=targets[i],
                        previous_owner_id=rows[i].owner_id)
                .execution_options(synchronize_session=False)).rowcount
        if done != len(ids):
            raise Conflict(tr("The owner of some leads just changed; refresh and try again"))
        for i in ids:
            _event(i, "released", actor.id, from_owner_id=rows[i].owner_id,
                   to_pool_id=targets[i], reason=reason, created_at=now)
        return ids

    return _commit(go)


def _lead_pool_ids() -> set[int]:
    from app.services.pool import pool_ids_of_type

    return pool_ids_of_type("lead")


def assign_leads(actor: User, lead_ids: Iterable, owner_id: Any, reason: str = "") -> list[int]:
    """Managers (within their scope) and admins give leads to an owner: pool leads of the
    lead pools they belong to, or leads of owners in their scope; within the receiver's lead
    cap, under the receiver's lock."""
    from app.services.ids import parse_id

    from app.security import marketing_only

    ids = parse_lead_ids(lead_ids)
    owner = parse_id(owner_id, "owner_id")
    # Marketing (市场专员) hands out the leads of every lead pool (never a rep's leads) to
    # any active sales user: it feeds the sales team from the campaigns' responses.
    marketing = marketing_only(actor)
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER) and not marketing:
        raise PermissionDenied(tr("Only managers, marketing and admins can assign leads"))
    reason = reason.strip() if isinstance(reason, str) else ""
    if limits.too_long(reason, limits.REASON):
        raise ValidationFailed({"reason": limits.too_long(reason, limits.REASON)})
    if marketing:
        target = db.session.get(User, owner)
        if target is None or marketing_only(target) or not has_role(
                target, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP):
            raise ValidationFailed({"owner_id": tr("Leads go to a sales rep or manager")})
    elif not has_role(actor, ROLE_ADMIN) and owner not in visible_owner_ids(
            actor, scope_of(actor) or Scope.OWN):
        raise ValidationFailed({"owner_id": tr("You can only name an owner within your data "
                                               "scope")})

    def go() -> list[int]:
        policy = _lock_owner(owner)
        rows = _rows(ids)
        pools = browsable_lead_pool_ids(actor) if marketing else member_lead_pool_ids(actor)
        allowed = _managed(actor, {r.owner_id for r in rows.values() if r.owner_id})
        foreign = [i for i in ids if i not in rows or not (
            (rows[i].owner_id is not None and rows[i].owner_id in allowed)
            or (rows[i].pool_id is not None and rows[i].pool_id in pools))]
        if foreign:
            raise OutOfScope(tr(NO_SUCH_LEAD), lead_ids=foreign)
        _refuse_closed(rows, ids)
        moving = [i for i in ids if rows[i].owner_id != owner]
        check_lead_cap(owner, len(moving), policy, VERB_ASSIGNING)
        now = utcnow()
        for i in moving:
            r = rows[i]
            held = (LeadOwnership.owner_id == r.owner_id) if r.owner_id is not None \
                else (LeadOwnership.pool_id == r.pool_id)
            done = db.session.execute(
                update(LeadOwnership).where(LeadOwnership.lead_id == i, held)
                .values(owner_id=owner, pool_id=None,
                        home_pool_id=r.pool_id if r.pool_id is not None else r.home_pool_id,
                        previous_owner_id=r.owner_id, acquired_at=now,
                        acquired_how="assigned", last_followup_at=None)
                .execution_options(synchronize_session=False)).rowcount
            if done != 1:
                raise Conflict(tr("The owner of some leads just changed; refresh and try "
                                  "again"))
            _event(i, "assigned", actor.id, from_owner_id=r.owner_id, from_pool_id=r.pool_id,
                   to_owner_id=owner, reason=reason or "分配", created_at=now)
        return ids

    return _commit(go)


# --- follow-ups and outcome ---------------------------------------------------------------
def log_lead_followup(actor: User, lead_id: Any, data: dict[str, Any]) -> LeadFollowUp:
    """A contact with the lead: a new lead becomes 跟进中 and the reclaim clock restarts."""
    from app.services.followups import clean_followup

    lead = get_lead(actor, lead_id, write=True)
    if lead.status not in OPEN_STATUSES:
        raise Conflict(tr("This lead is converted or invalid"), code="lead_closed")
    now = utcnow()
    values = clean_followup(data, now)

    def go() -> LeadFollowUp:
        row = LeadFollowUp(lead_id=lead.id, user_id=actor.id, channel=values["channel"],
                           content=values["content"], happened_at=values["happened_at"],
                           created_at=now)
        db.session.add(row)
        o = lead.ownership
        if o.last_followup_at is None or values["happened_at"] > o.last_followup_at:
            o.last_followup_at = values["happened_at"]
        if lead.status == "new":
            lead.status = "working"
        db.session.flush()
        audit.record(actor.id, "followup", "lead", lead.id,
                     {"channel": (None, values["channel"])})
        _refresh_priority(lead)
        return row

    return _commit(go)


def mark_invalid(actor: User, lead_id: Any, reason: str) -> Lead:
    """无效: the lead leaves the cap and the sweep, with the reason kept and logged."""
    lead = get_lead(actor, lead_id, write=True)
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise ValidationFailed({"reason": tr("Please give the reason the lead is invalid")})
    if limits.too_long(reason, 500):
        raise ValidationFailed({"reason": limits.too_long(reason, 500)})
    if lead.status not in OPEN_STATUSES:
        raise Conflict(tr("This lead is converted or invalid"), code="lead_closed")

    def go() -> Lead:
        done = db.session.execute(
            update(Lead).where(Lead.id == lead.id, Lead.status.in_(OPEN_STATUSES))
            .values(status="invalid", invalid_reason=reason, updated_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount
        if done != 1:
            raise Conflict(tr("This lead is converted or invalid"), code="lead_closed")
        o = lead.ownership
        o.is_open = False
        _event(lead.id, "invalidated", actor.id, from_owner_id=o.owner_id,
               from_pool_id=o.pool_id, to_owner_id=o.owner_id, to_pool_id=o.pool_id,
               reason=reason)
        audit.record(actor.id, "invalidate", "lead", lead.id,
                     {"status": (lead.status, "invalid"), "invalid_reason": (None, reason)})
        return lead

    lead = _commit(go)
    db.session.refresh(lead)
    return lead


# --- reclaim ------------------------------------------------------------------------------
@dataclass
class LeadSweepResult:
    dry_run: bool
    reclaimed: int = 0
    by_owner: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"dry_run": self.dry_run, "reclaimed": self.reclaimed,
                "owners": len(self.by_owner)}


def _last_touch():
    o = LeadOwnership
    return case((o.last_followup_at > o.acquired_at, o.last_followup_at), else_=o.acquired_at)


def last_touch():
    """The time the lead sweep counts its days from (the pre-reclaim warnings read it too)."""
    return _last_touch()


@dataclass
class LeadRule:
    """The lead reclaim rule at one instant, per row: each open owned lead's no-follow-up
    days resolved from the policies (segments: user + segment, user, department + segment,
    ..., global + segment, global), 0 meaning "never". `due` is a WHERE clause over
    lead_ownership (with the per-owner subquery joined by `joins`), for a SELECT and for the
    sweep's UPDATE alike."""
    joins: list
    days: Any
    eligible: Any
    due: Any


def lead_rule(now: dt.datetime) -> LeadRule:
    lo = LeadOwnership.__table__
    snap = segments.snapshot()
    field_ = "lead_reclaim_no_followup_days"
    op = segments.owner_periods((field_,))
    joins = [op.c.owner_id == lo.c.owner_id]
    record_cols = {}
    if segments.needs_columns(snap, ("source",), (field_,)):
        lead = Lead.__table__
        joins.append(lead.c.id == lo.c.lead_id)
        record_cols["source"] = lead.c.source
    days = segments.resolved_days(field_, snap, op, record_cols)
    cut = segments.cut_of(days, snap.values[field_], now)
    # Who the rule may take at all (exemptions go here, once): owned, open, a period > 0.
    eligible = and_(*joins, lo.c.owner_id.is_not(None), lo.c.is_open.is_(True), days > 0)
    return LeadRule(joins, days, eligible, and_(eligible, _last_touch() < cut))


def due_leads(now: dt.datetime, rule: Optional[LeadRule] = None):
    """The SELECT of every lead the sweep takes at `now` (lead_id, owner_id, acquired_at,
    last_followup_at, days): what reclaim_sweep moves and the due-soon page shows."""
    rule = rule or lead_rule(now)
    lo = LeadOwnership.__table__.c
    return select(lo.lead_id, lo.owner_id, lo.acquired_at, lo.last_followup_at,
                  rule.days.label("days")).where(rule.due)


def reclaim_sweep(dry_run: bool = False, now: Optional[dt.datetime] = None) -> LeadSweepResult:
    """Return to their lead pool (the one each came from, else the default) the open owned
    leads without a follow-up for their resolved lead_reclaim_no_followup_days (per lead:
    segment policies may set it by source): one scan of the due leads, one UPDATE per chunk
    re-checking in its WHERE that each lead is still owned, open and due, then one
    'reclaimed' event per lead moved. Commits."""
    now = now or utcnow()
    result = LeadSweepResult(dry_run=dry_run)
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})
    rule = lead_rule(now)
    try:
        rows = db.session.execute(due_leads(now, rule).with_for_update(
            of=LeadOwnership.__table__)).all()
        for r in rows:
            result.by_owner[r.owner_id] = result.by_owner.get(r.owner_id, 0) + 1
        if not rows or dry_run:
            result.reclaimed = len(rows)
            db.session.rollback()
            return result
        result.by_owner = {}
        pools = _lead_pool_ids()
        default_id = default_lead_pool().id
        target = case((LeadOwnership.home_pool_id.in_(sorted(pools) or [0]),
                       LeadOwnership.home_pool_id), else_=default_id)
        ids = [r.lead_id for r in rows]
        moved: dict[int, int] = {}
        for chunk in range(0, len(ids), 5000):
            part = ids[chunk:chunk + 5000]
            moved.update(db.session.execute(
                update(LeadOwnership).where(LeadOwnership.lead_id.in_(part), rule.due)
                .values(pool_id=target, home_pool_id=target,
                        previous_owner_id=LeadOwnership.owner_id, owner_id=None)
                .returning(LeadOwnership.lead_id, LeadOwnership.pool_id)
                .execution_options(synchronize_session=False)).all())
        from app.services import bulk

        bulk.insert_rows(LeadEvent.__table__, [
            dict(lead_id=r.lead_id, kind="reclaimed", from_owner_id=r.owner_id,
                 from_pool_id=None, to_owner_id=None, to_pool_id=moved[r.lead_id],
                 customer_id=None, actor_id=None,
                 reason=f"{r.days} 天未跟进，自动回收", created_at=now)
            for r in rows if r.lead_id in moved])
        for r in rows:
            if r.lead_id in moved:
                result.by_owner[r.owner_id] = result.by_owner.get(r.owner_id, 0) + 1
        result.reclaimed = len(moved)
        for uid, n in result.by_owner.items():
            notifications.notify([uid], "lead_reclaimed",
                                 f"{n} 条线索因未跟进已回收至线索公海", link="/leads/list/")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


# --- conversion ---------------------------------------------------------------------------
def customer_data(lead: Lead) -> dict[str, Any]:
    """The customer a lead becomes: the company if it names one, else the person."""
    return {k: v for k, v in {
        "name": lead.company_name or lead.person_name,
        "customer_type": "company" if lead.company_name else "person",
        "mobile": None if lead.company_name and lead.person_name else lead.mobile,
        "phone": lead.phone, "email": None if lead.company_name and lead.person_name
        else lead.email,
        "province": lead.province, "city": lead.city, "industry": lead.industry,
        "source": str(LEAD_SOURCES[lead.source]) if lead.source else None,
        "notes": lead.notes}.items() if v is not None}


def convert_lead(actor: User, lead_id: Any, *, into_pool: bool = False, pool_id: Any = None,
                 confirm_duplicates: bool = False,
                 opportunity: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """转化: the lead becomes a customer (with a contact for its person), or is linked to the
    customer it duplicates, through the customer dedupe check and the ownership rules:

    - no match: a new customer owned by the lead's owner, within their customer cap (over it:
      CapExceeded, code cap_exceeded, with the numbers), or in a customer pool when
      `into_pool` (the pool named, else the default); a pool lead goes to a customer pool;
    - a blocking match owned by another rep: linked, that owner notified, nothing moves;
    - a blocking match in a pool: the converter claims it under the claim rules
      (app.services.pool.claim_from_pool; its refusals stand);
    - a blocking match the converter (or the lead's owner) holds: linked;
    - warning matches only: DuplicateWarning unless confirmed (then a new customer).

    The lead becomes 已转化 with the customer kept, one 'converted' event and an audit row.
    `opportunity` ({title, amount}, optional): an open opportunity on the customer it became,
    through app.services.opportunities (its input is checked before anything changes; if the
    customer cannot have one by the actor — in a pool, another rep's — the conversion stands
    and the answer says why in "opportunity_note").
    """
    from app.queue import enqueue
    from app.services import customers as customer_service
    from app.services import opportunities
    from app.services import pool as pool_service

    if opportunity is not None:
        if not isinstance(opportunity, dict):
            raise ValidationFailed({"opportunity": tr("Must be an object")})
        opportunity = {k: opportunity.get(k) for k in ("title", "amount")}
        try:
            opportunities.clean(dict(opportunity, customer_id=1))
        except ValidationFailed as exc:
            raise ValidationFailed({f"opportunity.{k}": v for k, v in exc.fields.items()})
    result = _convert(actor, lead_id, into_pool, pool_id, confirm_duplicates, customer_service,
                      pool_service, enqueue)
    result.update(opportunity_id=None, opportunity_note=None)
    if opportunity is not None:
        try:
            made = opportunities.create(actor, dict(opportunity,
                                                    customer_id=result["customer_id"]))
            result["opportunity_id"] = made.id
        except (ValidationFailed, PermissionDenied, OutOfScope) as exc:
            result["opportunity_note"] = exc.message
    return result


def _convert(actor: User, lead_id: Any, into_pool: bool, pool_id: Any,
             confirm_duplicates: bool, customer_service, pool_service, enqueue) -> dict:
    """convert_lead's conversion itself (the customer, the lead marked)."""
    lead = get_lead(actor, lead_id, write=True)
    if lead.status == "converted":
        raise Conflict(tr("This lead is already converted"), code="already_converted")
    if lead.status == "invalid":
        raise Conflict(tr("An invalid lead cannot be converted"), code="lead_closed")
    values = customer_service.clean_customer_data(customer_data(lead))
    contact = None
    if lead.company_name and lead.person_name:
        contact = customer_service.clean_contact_data(
            {"name": lead.person_name, "mobile": lead.mobile, "email": lead.email})
    matches = dedupe.find(values, contacts=[contact] if contact else ())
    blocking = [m for m in matches if m.action == "block"]
    if matches and not blocking and not confirm_duplicates:
        raise DuplicateWarning(
            tr("%(matches)s. If it is not the same customer, tick “Save anyway”",
               matches=tr("; ").join(m.text for m in matches[:3])),
            matches=[m.to_dict() for m in matches])
    lead_owner = lead.ownership.owner_id
    if blocking:
        match = blocking[0]
        holder_owner, holder_pool = _customer_holder(match.customer_id)
        if holder_pool is not None:
            # Its own transaction (the claim's rules and lock); the lead follows in the next.
            pool_service.claim_from_pool(actor, [match.customer_id])
            outcome = "claimed"
        elif holder_owner in (actor.id, lead_owner):
            outcome = "linked"
        else:
            outcome = "linked_other"
        customer_id = match.customer_id

        def go() -> dict:
            _mark_converted(actor, lead, customer_id, outcome)
            if outcome == "linked_other":
                notifications.notify(
                    [holder_owner], "lead_linked",
                    f"线索「{lead.name}」与您的客户「{match.customer_name}」重复，已关联",
                    f"转化人：{actor.display_name}", link=f"/customers/show/{customer_id}")
            return {"lead_id": lead.id, "customer_id": customer_id, "outcome": outcome,
                    "holder": match.holder}

        return _commit(go)

    if into_pool or lead_owner is None:
        owner, target = None, (ownership.customer_pool(
            pool_id if pool_id not in (None, "") else None, "pool_id")
            if pool_id not in (None, "") else ownership.default_pool()).id
    else:
        owner, target = lead_owner, None

    def create() -> dict:
        # The consent the lead gave on a public form goes with it (个人信息保护法).
        customer = Customer(created_by_id=actor.id, consent_version=lead.consent_version,
                            consented_at=lead.consented_at, **values)
        db.session.add(customer)
        ownership.place_new_customer(customer, actor_id=actor.id, owner_id=owner,
                                     pool_id=target, reason="线索转化")
        audit.record(actor.id, "create", "customer", customer.id)
        dedupe.record_confirmed(actor.id, customer.id, matches)
        if contact or lead.person_name:
            person = contact or {k: v for k, v in values.items()
                                 if k in ("mobile", "mobile_e164", "email", "email_norm")}
            db.session.add(Contact(customer_id=customer.id,
                                   **dict(person, name=lead.person_name, is_primary=True)))
        _mark_converted(actor, lead, customer.id, "created" if owner else "created_in_pool")
        return {"lead_id": lead.id, "customer_id": customer.id,
                "outcome": "created" if owner else "created_in_pool", "holder": None}

    result = _commit(create)
    enqueue("jobs.customers.recheck_duplicates", result["customer_id"])
    return result


def _customer_holder(customer_id: int) -> tuple[Optional[int], Optional[int]]:
    from app.models import Ownership

    row = db.session.execute(select(Ownership.owner_id, Ownership.pool_id).where(
        Ownership.customer_id == customer_id)).first()
    return (row.owner_id, row.pool_id) if row else (None, None)


def _mark_converted(actor: User, lead: Lead, customer_id: int, outcome: str) -> None:
    """The lead's status moves only from open (a concurrent conversion finds it closed)."""
    now = utcnow()
    done = db.session.execute(
        update(Lead).where(Lead.id == lead.id, Lead.status.in_(OPEN_STATUSES))
        .values(status="converted", converted_customer_id=customer_id, converted_at=now,
                converted_by_id=actor.id, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise Conflict(tr("This lead is already converted"), code="already_converted")
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == lead.id)
                       .values(is_open=False).execution_options(synchronize_session=False))
    o = lead.ownership
    _event(lead.id, "converted", actor.id, from_owner_id=o.owner_id, from_pool_id=o.pool_id,
           to_owner_id=o.owner_id, to_pool_id=o.pool_id, customer_id=customer_id,
           reason=outcome, created_at=now)
    audit.record(actor.id, "convert", "lead", lead.id,
                 {"status": (lead.status, "converted"),
                  "converted_customer_id": (None, customer_id)})
