"""Dedupe on entry (查重): is this customer already held by someone?

Every entry path (the forms, the REST API, `POST /api/v1/dedupe/check`) calls `check` with
the cleaned values; the admins' rules decide which keys take part, exact or fuzzy, and whether
a match blocks the save or asks for confirmation. Owned and pool customers are matched alike.
The answer names the matching customer and who holds it — "已存在：客户 X，负责人 张三（销售二部）",
"在公海『华东公海』中", "已锁定" — and never its contact details.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Optional

from rapidfuzz import fuzz
from sqlalchemy import (Integer, and_, bindparam, literal_column, or_, select, union,
                        union_all)
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Contact, Customer, DedupeRule, Department, Ownership, Pool, User
from app.models.dedupe import DEDUPE_KINDS
from app.services import audit
from app.services.errors import NO_SUCH_CUSTOMER, Duplicate, DuplicateWarning, ValidationFailed, tr

DEFAULT_RULES = [
    # kind, fuzzy, threshold, same_city, action
    ("mobile", False, 100, False, "block"),
    ("phone", False, 100, False, "block"),
    ("email", False, 100, False, "block"),
    ("company_name", True, 90, True, "warn"),
    ("person_birthday", False, 100, False, "warn"),
    ("person_address", True, 90, False, "warn"),
]
FUZZY_KINDS = {"company_name", "person_address"}
MAX_CANDIDATES = 200  # fuzzy candidates scored per check (same prefix, same region)


@dataclass(frozen=True)
class Match:
    kind: str
    action: str
    customer_id: int
    customer_name: str
    holder: str          # "负责人 张三（销售二部）" / "在公海『华东公海』中"
    locked: bool
    score: int           # 100 for exact matches

    @property
    def text(self) -> str:
        kind = (tr("%(kind)s, similarity %(score)s%%", kind=DEDUPE_KINDS[self.kind],
                   score=self.score) if self.score != 100 else str(DEDUPE_KINDS[self.kind]))
        return exists_text(self.customer_name, self.holder, self.locked, kind)

    def to_dict(self) -> dict:
        return {"rule": self.kind, "action": self.action, "customer_id": self.customer_id,
                "customer_name": self.customer_name, "holder": self.holder,
                "locked": self.locked, "score": self.score, "message": self.text}


# The stored values the rules read: a save whose values are unchanged is not checked again.
CHECKED_FIELDS = ("customer_type", "name_core", "name_region", "name_pinyin", "city",
                  "address_norm", "mobile_e164", "phone_e164", "email_norm", "birth_year",
                  "birth_month", "birth_day", "birthday_lunar")


def values_of(row) -> dict[str, Any]:
    return {f: getattr(row, f, None) for f in CHECKED_FIELDS}


def ensure_rules() -> None:
    """Seed one row per kind with the defaults (idempotent)."""
    have = set(db.session.execute(select(DedupeRule.kind)).scalars())
    for kind, fuzzy, threshold, same_city, action in DEFAULT_RULES:
        if kind not in have:
            db.session.add(DedupeRule(kind=kind, fuzzy=fuzzy, threshold=threshold,
                                      same_city=same_city, action=action, active=True))
    db.session.flush()


def exists_text(name: str, holder: str, locked: bool, kinds: str) -> str:
    """"已存在：客户 X，负责人 张三（销售二部），已锁定（手机号）": who holds the match, by what."""
    if locked:
        return tr("Already exists: customer %(name)s, %(holder)s, locked (%(kinds)s)",
                  name=name, holder=holder, kinds=kinds)
    return tr("Already exists: customer %(name)s, %(holder)s (%(kinds)s)", name=name,
              holder=holder, kinds=kinds)


def validate_rule(rule: DedupeRule) -> None:
    errors = {}
    if rule.action not in ("block", "warn"):
        errors["action"] = tr("The action can only be block or warn")
    if rule.threshold is None or not 50 <= rule.threshold <= 100:
        errors["threshold"] = tr("The similarity threshold must be from 50 to 100")
    if rule.fuzzy and rule.kind not in FUZZY_KINDS:
        errors["fuzzy"] = tr("%(kind)s can only match exactly",
                              kind=DEDUPE_KINDS.get(rule.kind, rule.kind))
    if errors:
        raise ValidationFailed(errors)


def active_rules() -> dict[str, DedupeRule]:
    return {r.kind: r for r in db.session.execute(
        select(DedupeRule).where(DedupeRule.active.is_(True))).scalars()}


# --- finding matches ----------------------------------------------------------------------
# Statements are built once (lru_cache) with bound parameters, and candidates come back as
# rows of the few fields the rules read: building statements and loading 200 ORM customers
# per check cost more than the queries themselves.
_CANDIDATE_COLUMNS = (Customer.id, Customer.name_core, Customer.name_region, Customer.city,
                      Customer.address_norm, Customer.birth_year, Customer.birth_month,
                      Customer.birth_day, Customer.birthday_lunar)
# The columns each contact-key rule looks in, on customers and on contacts alike.
_KEY_COLUMNS = {"mobile": ("mobile_e164", "phone_e164"), "phone": ("phone_e164", "mobile_e164"),
                "email": ("email_norm",)}


def _rows(stmt, params: dict) -> list:
    """Plain rows on the session's connection: the ORM's result handling costs more than
    the lookup for 200 candidate rows."""
    return db.session.connection().execute(stmt, params).all()


# Rendered as a number when run (a parameter would leave the plan guessing at the limit);
# read from MAX_CANDIDATES per call.
_LIMIT = bindparam("limit", type_=Integer, literal_execute=True)


def _not_excluded(q, exclude: bool):
    return q.where(Customer.id.not_in(bindparam("exclude", expanding=True))) if exclude else q


@lru_cache(maxsize=None)
def _contact_keys_statement(kinds: tuple[str, ...]):
    """One round trip; each branch an equality lookup on one indexed column (an OR across
    columns is not one index lookup everywhere)."""
    branches = []
    for kind in kinds:
        keys = bindparam(f"{kind}_keys", expanding=True)
        for model, id_col in ((Customer, Customer.id), (Contact, Contact.customer_id)):
            for c in _KEY_COLUMNS[kind]:
                branches.append(select(literal_column(f"'{kind}'").label("kind"),
                                       id_col.label("id")).where(getattr(model, c).in_(keys)))
    return union(*branches)


def _by_contact_keys(keys: dict[str, list[str]], exclude: set[int]) -> dict[str, set[int]]:
    """{kind: customers whose own or contacts' fields hold one of its keys}."""
    found: dict[str, set[int]] = {}
    if keys:
        stmt = _contact_keys_statement(tuple(sorted(keys)))
        for kind, cid in _rows(stmt, {f"{k}_keys": v for k, v in keys.items()}):
            if cid not in exclude:
                found.setdefault(kind, set()).add(cid)
    return found


def cities_agree(rule: DedupeRule, values: dict, other) -> bool:
    """Whether the rule's same-city condition lets `values` match `other` (the bulk matcher
    asks the same question)."""
    if not rule.same_city:
        return True
    mine = values.get("name_region") or values.get("city")
    theirs = other.name_region or other.city
    # Unknown on either side is no evidence of different cities.
    return not mine or not theirs or mine.rstrip("市") == theirs.rstrip("市")


@lru_cache(maxsize=None)
def _name_statement(exclude: bool):
    def limited(cond):
        q = select(*_CANDIDATE_COLUMNS).where(Customer.customer_type == bindparam("type"), cond)
        return select(_not_excluded(q, exclude).limit(_LIMIT).subquery())

    return union_all(limited(Customer.name_core == bindparam("core")),
                     limited(and_(Customer.name_block == bindparam("block"),
                                  Customer.name_core != bindparam("core"))))


def _name_candidates(core: str, customer_type: str, exclude: set[int]) -> list:
    """Customers of the same type with the same core name, and others whose core starts
    with the same two characters (the block the fuzzy score is computed in): index lookups on
    name_core and name_block. The equal ones are looked up apart, so a block larger than
    MAX_CANDIDATES still yields its exact matches."""
    params = {"type": customer_type, "core": core, "block": core[:2], "limit": MAX_CANDIDATES}
    if exclude:
        params["exclude"] = list(exclude)
    return _rows(_name_statement(bool(exclude)), params)


def find(values: dict[str, Any], exclude_ids: Iterable[int] = (),
         contacts: Iterable[dict] = ()) -> list[Match]:
    """Matches of cleaned customer values (with their keys) under the active rules."""
    rules = active_rules()
    exclude = set(exclude_ids)
    hits: dict[tuple[str, int], int] = {}

    def hit(kind: str, ids: Iterable[int], score: int = 100) -> None:
        for cid in ids:
            hits[(kind, cid)] = max(score, hits.get((kind, cid), 0))

    people = [values, *contacts]
    mobiles = [v for p in people for v in [p.get("mobile_e164")] if v]
    phones = [v for p in people for v in [p.get("phone_e164")] if v]
    emails = [v for p in people for v in [p.get("email_norm")] if v]
    keys = {kind: k for kind, k in (("mobile", mobiles), ("phone", phones),
                                    ("email", emails)) if kind in rules and k}
    for kind, ids in _by_contact_keys(keys, exclude).items():
        hit(kind, ids)
    core = values.get("name_core")
    kind_of = values.get("customer_type") or "company"
    if core and kind_of == "company" and "company_name" in rules:
        rule = rules["company_name"]
        for other in _name_candidates(core, "company", exclude):
            score = 100 if other.name_core == core else int(fuzz.ratio(core, other.name_core))
            if (score == 100 or (rule.fuzzy and score >= rule.threshold)) \
                    and cities_agree(rule, values, other):
                hit("company_name", [other.id], score)
    if core and kind_of == "person":
        _person_matches(values, core, rules, exclude, hit)
    return matches_for_hits(hits, rules)


@lru_cache(maxsize=None)
def _person_statement(exclude: bool):
    q = select(*_CANDIDATE_COLUMNS).where(
        Customer.customer_type == "person",
        or_(Customer.name_core == bindparam("core"),
            and_(Customer.name_pinyin.is_not(None),
                 Customer.name_pinyin == bindparam("pinyin"))))
    return _not_excluded(q, exclude).limit(_LIMIT)


def _person_matches(values, core, rules, exclude, hit) -> None:
    params = {"core": core, "pinyin": values.get("name_pinyin"), "limit": MAX_CANDIDATES}
    if exclude:
        params["exclude"] = list(exclude)
    for other in _rows(_person_statement(bool(exclude)), params):
        for kind, score in person_pair(rules, values, other._asdict()):
            hit(kind, [other.id], score)


def person_pair(rules: dict[str, DedupeRule], mine: dict, other: dict
                ) -> Iterable[tuple[str, int]]:
    """(rule kind, score) for two persons already equal by folded name or pinyin: the same
    birthday (an unknown year matches any year), or addresses equal / similar enough."""
    if "person_birthday" in rules and mine.get("birth_month") and \
            (other.get("birth_month"), other.get("birth_day"),
             bool(other.get("birthday_lunar"))) == (
                mine.get("birth_month"), mine.get("birth_day"),
                bool(mine.get("birthday_lunar"))) and \
            (not mine.get("birth_year") or not other.get("birth_year")
             or mine.get("birth_year") == other.get("birth_year")):
        yield "person_birthday", 100
    rule = rules.get("person_address")
    a, b = mine.get("address_norm"), other.get("address_norm")
    if rule and a and b:
        score = 100 if a == b else int(fuzz.ratio(a, b))
        if score == 100 or (rule.fuzzy and score >= rule.threshold):
            yield "person_address", score


@lru_cache(maxsize=None)
def _answer_statement():
    """Holder, department and pool in the same query: no look-up per match."""
    owner = aliased(User, name="owner")
    return (select(Customer.id, Customer.name, Ownership.locked, Ownership.owner_id,
                   Pool.name.label("pool"), owner, Department.name.label("dept"))
            .join(Ownership, Ownership.customer_id == Customer.id)
            .outerjoin(Pool, Pool.id == Ownership.pool_id)
            .outerjoin(owner, owner.id == Ownership.owner_id)
            .outerjoin(Department, Department.id == owner.department_id)
            .where(Customer.id.in_(bindparam("ids", expanding=True))))


def matches_for_hits(hits: dict[tuple[str, int], int], rules: dict[str, DedupeRule]) -> list[Match]:
    """{(rule kind, customer id): score} as Matches with each customer's holder, in the order
    the user reads them (find and the bulk matcher answer alike)."""
    if not hits:
        return []
    ids = list({cid for _, cid in hits})
    rows = {r.id: r for r in db.session.execute(_answer_statement(), {"ids": ids}).all()}
    matches = []
    for (kind, cid), score in hits.items():
        r = rows.get(cid)
        if r is None:
            continue
        if r.owner_id is None:
            holder = tr("in the pool 『%(pool)s』", pool=r.pool)
        else:
            holder = (tr("owner %(owner)s (%(dept)s)", owner=r.owner.display_name, dept=r.dept)
                      if r.dept else tr("owner %(owner)s", owner=r.owner.display_name))
        matches.append(Match(kind=kind, action=rules[kind].action, customer_id=cid,
                             customer_name=r.name, holder=holder, locked=bool(r.locked),
                             score=score))
    # Blocking rules first, then exact before fuzzy, then the oldest record.
    return sorted(matches, key=lambda m: (m.action != "block", -m.score, m.customer_id))


def enforce(values: dict[str, Any], exclude_ids: Iterable[int] = (), confirmed: bool = False,
            contacts: Iterable[dict] = ()) -> list[Match]:
    """Raise Duplicate for a blocking match, DuplicateWarning for a warning one unless the
    user confirmed; return the (confirmed) warnings, which the caller audits."""
    matches = find(values, exclude_ids, contacts)
    blocking = [m for m in matches if m.action == "block"]
    if blocking:
        raise Duplicate(tr("; ").join(m.text for m in blocking[:3]),
                        matches=[m.to_dict() for m in blocking])
    if matches and not confirmed:
        raise DuplicateWarning(
            tr("%(matches)s. If it is not the same customer, tick “Save anyway”",
               matches=tr("; ").join(m.text for m in matches[:3])),
            matches=[m.to_dict() for m in matches])
    return matches


def record_confirmed(actor_id: Optional[int], customer_id: int, matches: list[Match]) -> None:
    if matches:
        audit.record(actor_id, "dedupe_confirmed", "customer", customer_id,
                     {"matches": (None, _ids_text(m.customer_id for m in matches))})


def _ids_text(ids: Iterable[int]) -> str:
    """Customer ids as the audit log keeps them: "12,40"."""
    return ",".join(str(i) for i in sorted(set(ids)))


def check(actor, data: dict[str, Any], exclude_id: Optional[int] = None) -> dict:
    """`POST /api/v1/dedupe/check`: would these values be refused or warned about? The input
    is validated like a customer's (any subset of the fields); nothing is saved."""
    from app.security import can_see_customer
    from app.services.customers import clean_customer_data, text_keys
    from app.services.errors import OutOfScope

    values = clean_customer_data({k: v for k, v in data.items() if k != "exclude_id"},
                                 partial=True)
    if exclude_id is not None and not can_see_customer(actor, exclude_id):
        raise OutOfScope(tr(NO_SUCH_CUSTOMER))
    kind = values.get("customer_type") or "company"
    values.update(customer_type=kind, **{k: v for k, v in text_keys(
        kind, values.get("name"), values.get("address")).items()
        if v is not None or k in ("name_core",)})
    matches = find(values, exclude_ids=[exclude_id] if exclude_id else [])
    return {"blocked": any(m.action == "block" for m in matches),
            "warned": any(m.action == "warn" for m in matches),
            "matches": [m.to_dict() for m in matches]}


# --- after the save -----------------------------------------------------------------------
def _acknowledged(customer_id: int, action: str) -> set[int]:
    """Customer ids already confirmed (or already flagged) as matches of this one."""
    from app.models import AuditLog

    rows = db.session.execute(select(AuditLog.changes).where(
        AuditLog.object_type == "customer", AuditLog.object_id == customer_id,
        AuditLog.action == action)).scalars()
    found: set[int] = set()
    for changes in rows:
        text = ((changes or {}).get("matches") or [None, ""])[1] or ""
        found |= {int(i) for i in str(text).split(",") if i.strip().isdigit()}
    return found


def recheck(customer_id: int) -> list[Match]:
    """The RQ job after every save. Two reps saving the same customer in the same second both
    pass the check before either commits; here each record is compared again with everything
    committed since. Of a pair, the later save (later updated_at, then higher id) is flagged:
    its owner, its creator and their managers are notified and an audit row names the
    matches. Matches the user confirmed, and pairs already flagged, are not flagged again.
    Commits."""
    from app.services import notifications

    customer = db.session.get(Customer, customer_id)
    if customer is None:
        return []
    seen = _acknowledged(customer_id, "dedupe_confirmed") | _acknowledged(customer_id,
                                                                         "dedupe_flagged")
    stamp = (customer.updated_at, customer.id)
    matches = []
    for m in find(values_of(customer), exclude_ids=[customer_id]):
        other = db.session.get(Customer, m.customer_id)
        if m.customer_id not in seen and (other.updated_at, other.id) <= stamp:
            matches.append(m)
    if not matches:
        db.session.rollback()
        return []
    audit.record(None, "dedupe_flagged", "customer", customer_id,
                 {"matches": (None, _ids_text(m.customer_id for m in matches))})
    owner_id = customer.ownership.owner_id if customer.ownership else None
    people = {owner_id, customer.created_by_id}
    for user_id in [p for p in people if p]:
        user = db.session.get(User, user_id)
        people.add(user.superior_id if user else None)
    notifications.notify(people, "duplicate", f"疑似重复：客户 {customer.name}",
                         "；".join(m.text for m in matches[:3]),
                         link=f"/customers/show/{customer_id}")
    db.session.commit()
    return matches
