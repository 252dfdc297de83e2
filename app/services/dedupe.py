"""Dedupe on entry (查重): is this customer already held by someone?

Every entry path (the forms, the REST API, `POST /api/v1/dedupe/check`) calls `check` with
the cleaned values; the admins' rules decide which keys take part and whether a match blocks
the save or asks for confirmation: the exact identifiers (mobile, landline, e-mail — a
customer's own or its contacts'), and the matcher (rule `scored`, app.services.matching),
which scores the record against the candidates the batch scan would pair it with
(app.services.match_keys) and explains each match field by field. Owned and pool customers
are matched alike.
The answer names the matching customer and who holds it — "已存在：客户 X，负责人 张三（销售二部）",
"在公海『华东公海』中", "已锁定" — and never its contact details.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Optional

from sqlalchemy import bindparam, literal_column, select, union
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
    ("scored", True, 100, False, "warn"),
]
EXACT_KINDS = ("mobile", "phone", "email")
SCORE_LIMIT = 1000.0  # a threshold beyond ±this is no threshold (and not finite input)


@dataclass(frozen=True)
class Match:
    kind: str
    action: str
    customer_id: int
    customer_name: str
    holder: str          # "负责人 张三（销售二部）" / "在公海『华东公海』中"
    locked: bool
    score: int           # 100 for exact matches; a scored match's probability, at most 99
    total: Optional[float] = None  # a scored match: the matcher's total
    explanation: str = ""          # and its field-by-field account

    @property
    def why(self) -> str:
        """"手机号" or "相似客户（综合评分）：名称 相似 88%（+4.1）· … → 5.8"."""
        if self.explanation:
            return tr("%(kind)s: %(why)s", kind=DEDUPE_KINDS[self.kind], why=self.explanation)
        return str(DEDUPE_KINDS[self.kind])

    @property
    def text(self) -> str:
        return exists_text(self.customer_name, self.holder, self.locked, self.why)

    def to_dict(self) -> dict:
        return {"rule": self.kind, "action": self.action, "customer_id": self.customer_id,
                "customer_name": self.customer_name, "holder": self.holder,
                "locked": self.locked, "score": self.score, "total": self.total,
                "explanation": self.explanation or None, "message": self.text}


# The stored values the rules read: a save whose values are unchanged is not checked again.
CHECKED_FIELDS = ("customer_type", "name", "name_core", "name_region", "legal_form",
                  "name_pinyin", "province", "city", "address_norm", "mobile_e164", "phone_e164",
                  "email_norm", "birth_year", "birth_month", "birth_day", "birthday_lunar",
                  "industry")


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
    """The rules form's checks: an action; the exact kinds match exactly; the scorer's
    thresholds are blank (the model's) or numbers, the review one not above the link one."""
    import math

    errors = {}
    if rule.action not in ("block", "warn"):
        errors["action"] = tr("The action can only be block or warn")
    if rule.kind in EXACT_KINDS:
        rule.fuzzy, rule.threshold, rule.same_city = False, 100, False
        rule.link_score = rule.review_score = None
    for name in ("link_score", "review_score"):
        value = getattr(rule, name)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                      and -SCORE_LIMIT <= value <= SCORE_LIMIT):
            errors[name] = tr("A threshold is a number from %(low)s to %(high)s, or blank",
                              low=-int(SCORE_LIMIT), high=int(SCORE_LIMIT))
    if rule.kind == "scored" and not errors:
        from app.services.matching import Matcher

        link, review = thresholds(rule, Matcher.current(), clamp=False)
        if review > link:
            errors["review_score"] = tr(
                "The review threshold (%(review)s) cannot be above the link threshold "
                "(%(link)s)", review=_number(review), link=_number(link))
    if errors:
        raise ValidationFailed(errors)


def _number(x: float) -> str:
    return f"{x:.1f}"


def thresholds(rule: DedupeRule, matcher, clamp: bool = True) -> tuple[float, float]:
    """(link, review) totals of the scored rule: its own, else the matcher's model's; the
    review threshold never above the link one."""
    link = rule.link_score if rule.link_score is not None else matcher.link_threshold
    review = rule.review_score if rule.review_score is not None else matcher.review_threshold
    return (link, min(review, link)) if clamp else (link, review)


def active_rules() -> dict[str, DedupeRule]:
    return {r.kind: r for r in db.session.execute(
        select(DedupeRule).where(DedupeRule.active.is_(True))).scalars()}


# --- finding matches ----------------------------------------------------------------------
# The columns each contact-key rule looks in, on customers and on contacts alike.
_KEY_COLUMNS = {"mobile": ("mobile_e164", "phone_e164"), "phone": ("phone_e164", "mobile_e164"),
                "email": ("email_norm",)}


def _rows(stmt, params: dict) -> list:
    """Plain rows on the session's connection (no ORM result handling)."""
    return db.session.connection().execute(stmt, params).all()


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


@dataclass(frozen=True)
class Scored:
    """A pair the matcher scored at or above a threshold: the other customer, the total, the
    probability (percent, at most 99: only an equal identifier is certain) and the account."""
    customer_id: int
    total: float
    probability: int
    explanation: str


def probability(matcher, customer_type: Optional[str], total: float) -> int:
    """The model's probability (percent) that a pair with this total is one customer, from
    its estimated share of duplicates among candidate pairs; 0–99."""
    import math

    kind = "person" if customer_type == "person" else "company"
    prior = min(max(float(matcher.model.prior.get(kind, 0.001)), 1e-9), 1 - 1e-9)
    logit = total + math.log2(prior / (1 - prior))
    p = 1.0 / (1.0 + 2.0 ** max(-60.0, min(60.0, -logit)))
    return max(0, min(99, int(p * 100)))


def scored_matches(values: dict[str, Any], exclude: Iterable[int] = (),
                   threshold: Optional[float] = None, matcher=None,
                   rule: Optional[DedupeRule] = None) -> list[Scored]:
    """The saved customers the matcher puts at or above `threshold` (default: the link
    threshold of the scored rule, else the model's) against these values: its candidates are
    the ones the batch scan would pair the record with (match_keys.candidate_records), scored in
    one vectorised call, best first."""
    from app.services import match_keys
    from app.services.matching import Matcher

    if not (values.get("name_core") or values.get("name")):
        return []
    matcher = matcher or Matcher.current()
    if threshold is None:
        rule = rule or active_rules().get("scored")
        threshold = thresholds(rule, matcher)[0] if rule else matcher.link_threshold
    exclude = set(exclude)
    own = next(iter(exclude)) if len(exclude) == 1 else None
    rows = [r for r in match_keys.candidate_records(values, customer_id=own)
            if r["id"] not in exclude]
    if not rows:
        return []
    _, accounts = matcher.score_explained(values, rows, explain_from=threshold)
    out = []
    for i, explained in accounts.items():
        out.append(Scored(rows[i]["id"], explained.total,
                          probability(matcher, values.get("customer_type"), explained.total),
                          explained.text()))
    return sorted(out, key=lambda m: (-m.total, m.customer_id))


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
    accounts: dict[int, Scored] = {}
    if "scored" in rules:
        for m in scored_matches(values, exclude, rule=rules["scored"]):
            hit("scored", [m.customer_id], m.probability)
            accounts[m.customer_id] = m
    return matches_for_hits(hits, rules, accounts)


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


def matches_for_hits(hits: dict[tuple[str, int], int], rules: dict[str, DedupeRule],
                     accounts: Optional[dict[int, Scored]] = None) -> list[Match]:
    """{(rule kind, customer id): score} as Matches with each customer's holder (and, for the
    scored rule, the matcher's account of the pair), in the order the user reads them (find
    and the bulk matcher answer alike)."""
    accounts = accounts or {}
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
        account = accounts.get(cid) if kind == "scored" else None
        matches.append(Match(kind=kind, action=rules[kind].action, customer_id=cid,
                             customer_name=r.name, holder=holder, locked=bool(r.locked),
                             score=score, total=account.total if account else None,
                             explanation=account.explanation if account else ""))
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
