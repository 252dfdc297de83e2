"""价值复评 (seed 000: 定期评估客户价值，适时调整客户归属): a periodic review that proposes and
never acts. It finds

- grade_review: a grade set by hand that the deals no longer bear out (set A, the last 12
  months' deals say C): accepting gives the grade back to the nightly grading;
- grade_a_overloaded: a grade-A customer whose owner is at or over the customer cap;
- grade_a_neglected: a grade-A customer its owner has not followed up for N days
  (GUISHU_VALUE_NEGLECT_DAYS, default 30): for both, accepting files a transfer request to a
  dedicated rep of the owner's department (the usual approvals: a grade-A transfer needs the
  second level);
- reactivate: a silent customer of grade A or B, worth a re-activation: accepting adds it to
  a campaign (admins; adding to campaigns is marketing's and admins') or gives its owner a
  re-activation task.

A manager decides in their data scope (admins everywhere); a dismissal needs a reason. One
open proposal per customer and kind (a partial unique index); what was decided is not raised
again for QUIET_DAYS; an open proposal whose finding no longer holds expires at the next run.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from flask import current_app
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.customer import Customer, utcnow
from app.models.org import Employee
from app.models.ownership import Ownership, last_touch_of
from app.models.transfer import OpenTransfer
from app.models.value_review import PROPOSAL_KINDS, ValueProposal
from app.security import ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, customer_scope_clause, has_role
from app.services import audit, caps, limits, notifications
from app.services.errors import N_, Conflict, OutOfScope, PermissionDenied, ValidationFailed, tr

QUIET_DAYS = 90           # a decided proposal is not raised again for this long
NEGLECT_DAYS = 30         # default of GUISHU_VALUE_NEGLECT_DAYS
PAGE = 200                # proposals shown on the page, newest first

KIND_LABELS = {
    "grade_review": N_("Manual grade contradicted by the deals"),
    "grade_a_overloaded": N_("Grade A held by a rep at the cap"),
    "grade_a_neglected": N_("Grade A without a follow-up"),
    "reactivate": N_("Silent valuable customer: re-activate"),
}
NOT_OPEN = N_("This proposal has already been decided")


def neglect_days() -> int:
    return int(current_app.config.get("GUISHU_VALUE_NEGLECT_DAYS", NEGLECT_DAYS))


@dataclass
class Finding:
    customer_id: int
    kind: str
    owner_id: Optional[int]
    grade: Optional[str]
    proposed_grade: Optional[str] = None
    proposed_owner_id: Optional[int] = None
    detail: str = ""


# --- the review -------------------------------------------------------------------------------
def _grade_reviews(today: dt.date) -> list[Finding]:
    from app.services.classification import computed_grade, settings

    computed = computed_grade(today, settings()).label("computed")
    rows = db.session.execute(select(
        Ownership.customer_id, Ownership.owner_id, Ownership.grade_override, computed)
        .where(Ownership.grade_override.is_not(None))).all()
    return [Finding(r.customer_id, "grade_review", r.owner_id, r.grade_override, r.computed,
                    detail=f"{r.grade_override} → {r.computed}")
            for r in rows if r.computed != r.grade_override]


def _grade_a(now: dt.datetime) -> list[Finding]:
    """Grade-A customers of owners at the cap, and of owners who let them lie."""
    out: list[Finding] = []
    owners = list(db.session.execute(select(Ownership.owner_id).where(
        Ownership.grade == "A", Ownership.owner_id.is_not(None)).distinct()).scalars())
    full: dict[int, caps.Room] = {}
    for owner_id in owners:   # one policy look-up per owner of a grade-A customer
        room = caps.room(owner_id)
        if room.have >= room.cap:
            full[owner_id] = room
    days = neglect_days()
    touch = last_touch_of(Ownership).label("touch")
    rows = db.session.execute(select(Ownership.customer_id, Ownership.owner_id, touch).where(
        Ownership.grade == "A", Ownership.owner_id.is_not(None))).all()
    for r in rows:
        if r.owner_id in full:
            room = full[r.owner_id]
            out.append(Finding(r.customer_id, "grade_a_overloaded", r.owner_id, "A",
                               detail=f"{room.have}/{room.cap}"))
        if r.touch < now - dt.timedelta(days=days):
            out.append(Finding(r.customer_id, "grade_a_neglected", r.owner_id, "A",
                               detail=str((now - r.touch).days)))
    return out


def _reactivations() -> list[Finding]:
    rows = db.session.execute(select(Ownership.customer_id, Ownership.owner_id, Ownership.grade)
                              .where(Ownership.category == "silent",
                                     Ownership.grade.in_(("A", "B")))).all()
    return [Finding(r.customer_id, "reactivate", r.owner_id, r.grade) for r in rows]


def dedicated_rep(owner_id: int, receivers: dict) -> Optional[int]:
    """A rep of the owner's department to hand a key customer to, by the distribution's own
    rules (app.services.assignment.plan_distribution: active, not on leave, below the cap),
    the fewest customers first — counting the proposals of this run, so that ten neglected
    accounts of one department do not all go to the same rep (ties: the lowest id). None if
    nobody has room. `receivers`: the department's plan lines, kept across one run."""
    from flask_appbuilder.security.sqla.models import Role, assoc_user_role

    from app.services.assignment import plan_distribution

    owner = db.session.get(Employee, owner_id)
    dept = owner.department_id if owner else None
    if dept is None:
        return None
    if dept not in receivers:
        reps = select(assoc_user_role.c.user_id).join(
            Role, Role.id == assoc_user_role.c.role_id).where(Role.name == ROLE_REP)
        candidates = list(db.session.execute(select(Employee.id).where(
            Employee.department_id == dept, Employee.id.in_(reps))
            .order_by(Employee.id)).scalars())
        receivers[dept] = plan_distribution(None, [], candidates, allowed=select(Employee.id).where(
            Employee.id.in_(candidates))).lines if candidates else []
    room = [line for line in receivers[dept] if line.owner_id != owner_id
            and line.owned_before + len(line.customer_ids) < line.cap]
    if not room:
        return None
    best = min(room, key=lambda line: (line.owned_before + len(line.customer_ids),
                                       line.owner_id))
    best.customer_ids.append(owner_id)   # stands for the proposal: counts towards the load
    return best.owner_id


def review(now: Optional[dt.datetime] = None) -> dict[str, int]:
    """The periodic run: new proposals for what it finds (skipping what is open, or was
    decided in the last QUIET_DAYS, or has a transfer pending), open proposals whose finding
    is gone expired. Commits; returns counts per kind and 'expired'."""
    from app.services.times import local_date

    now = now or utcnow()
    today = local_date(now)
    findings = _grade_reviews(today) + _grade_a(now) + _reactivations()
    for attempt in range(2):   # a simultaneous run may insert first: read again, once
        try:
            result = _file(findings, now)
            db.session.commit()
            return result
        except IntegrityError:
            db.session.rollback()
            if attempt:
                raise
    return {}


def _file(findings: list[Finding], now: dt.datetime) -> dict[str, int]:
    found = {(f.customer_id, f.kind) for f in findings}
    open_rows = db.session.execute(select(ValueProposal.id, ValueProposal.customer_id,
                                          ValueProposal.kind)
                                   .where(ValueProposal.status == "open")).all()
    gone = [r.id for r in open_rows if (r.customer_id, r.kind) not in found]
    for start in range(0, len(gone), 5000):
        db.session.execute(update(ValueProposal).where(
            ValueProposal.id.in_(gone[start:start + 5000]), ValueProposal.status == "open")
            .values(status="expired", decided_at=now))
    recent = set(db.session.execute(select(ValueProposal.customer_id, ValueProposal.kind).where(
        or_(ValueProposal.status == "open",
            and_(ValueProposal.status.in_(("accepted", "dismissed")),
                 ValueProposal.decided_at >= now - dt.timedelta(days=QUIET_DAYS))))).all())
    pending = set(db.session.execute(select(OpenTransfer.customer_id)).scalars())
    rows: list[dict[str, Any]] = []
    counts = {kind: 0 for kind in PROPOSAL_KINDS}
    cache: dict = {}
    for f in findings:
        if (f.customer_id, f.kind) in recent or (f.kind.startswith("grade_a")
                                                 and f.customer_id in pending):
            continue
        recent.add((f.customer_id, f.kind))
        if f.kind.startswith("grade_a"):
            f.proposed_owner_id = dedicated_rep(f.owner_id, cache)
        rows.append(dict(customer_id=f.customer_id, kind=f.kind, status="open",
                         owner_id=f.owner_id, grade=f.grade, proposed_grade=f.proposed_grade,
                         proposed_owner_id=f.proposed_owner_id, detail=f.detail,
                         created_at=now))
        counts[f.kind] += 1
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(ValueProposal), rows[start:start + 5000])
    if rows:
        _tell_managers(rows)
    counts["expired"] = len(gone)
    return counts


def _tell_managers(rows: list[dict]) -> None:
    """One notification per manager over the owners of the new proposals (pool customers'
    proposals go to the admins)."""
    from app.services.transfers import _admin_ids, _department_managers

    by_owner: dict[Optional[int], int] = {}
    for r in rows:
        by_owner[r["owner_id"]] = by_owner.get(r["owner_id"], 0) + 1
    per_manager: dict[int, int] = {}
    for owner_id, n in by_owner.items():
        owner = db.session.get(Employee, owner_id) if owner_id else None
        managers = _department_managers(owner.department_id) if owner else []
        for manager_id in (managers[:1] or _admin_ids()):
            per_manager[manager_id] = per_manager.get(manager_id, 0) + n
    for manager_id, n in per_manager.items():
        notifications.notify([manager_id], "value_review",
                             tr("Value re-evaluation: %(n)s new proposals", n=n),
                             tr("Proposals on key customers' grades and owners: accept or "
                                "dismiss them"), link="/value-review/")


# --- deciding ---------------------------------------------------------------------------------
def require_decider(actor) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        raise PermissionDenied(tr("Only sales managers and admins decide on value "
                                  "re-evaluation proposals"))


def _visible(actor):
    """The proposals the actor may see: those of customers in their data scope."""
    return ValueProposal.customer_id.in_(select(Customer.id).where(
        customer_scope_clause(actor, include_shared=False)))


def get_proposal(actor, proposal_id: Any) -> ValueProposal:
    from app.services.ids import parse_id

    pid = parse_id(proposal_id, "proposal_id")
    row = db.session.execute(select(ValueProposal).where(
        ValueProposal.id == pid, _visible(actor))).scalar_one_or_none()
    if row is None:
        raise OutOfScope(tr("No such proposal"), proposal_ids=[pid])
    return row


def _claim(actor, proposal: ValueProposal, status: str, note: Optional[str] = None) -> None:
    """Mark the proposal decided, if it is still open (a second click, or a colleague, loses)."""
    done = db.session.execute(update(ValueProposal).where(
        ValueProposal.id == proposal.id, ValueProposal.status == "open").values(
        status=status, decided_at=utcnow(), decided_by_id=actor.id, decision_note=note)
    ).rowcount
    if not done:
        db.session.rollback()
        raise Conflict(tr(NOT_OPEN), code="proposal_decided")


def accept(actor, proposal_id: Any, to_owner_id: Any = None, campaign_id: Any = None
           ) -> ValueProposal:
    """Carry out a proposal through the service that owns the change; refuses a proposal
    already decided, or whose customer has changed hands since the review."""
    from app.services import campaigns, classification, ownership, tasks, transfers
    from app.services.ids import parse_id

    require_decider(actor)
    proposal = get_proposal(actor, proposal_id)
    pid, cid, kind = proposal.id, proposal.customer_id, proposal.kind
    if proposal.status != "open":
        raise Conflict(tr(NOT_OPEN), code="proposal_decided")
    current = ownership.snapshot([cid])[cid]
    if kind != "reactivate" and current.owner_id != proposal.owner_id:
        raise Conflict(tr("The customer has changed hands since the review: dismiss the "
                          "proposal, the next review looks again"), code="owner_changed")
    if kind.startswith("grade_a"):
        target = parse_id(to_owner_id, "to_owner_id") if to_owner_id not in (None, "") \
            else proposal.proposed_owner_id
        if target is None:
            raise ValidationFailed({"to_owner_id": tr(
                "No rep of the department has room: choose who takes the customer")})
    _claim(actor, proposal, "accepted")
    result: dict[str, Any] = {}
    try:
        # Each service commits: the proposal's claim goes with it, or is rolled back with it.
        if kind == "grade_review":
            classification.set_grade(actor, [cid], None)
            classification.classify([cid])
        elif kind.startswith("grade_a"):
            transfer = transfers.create_transfer(
                actor, [cid], target, reason=tr("Value re-evaluation: %(finding)s",
                                                finding=tr(KIND_LABELS[kind])), trigger="other")
            result["transfer_id"] = transfer.id
        elif campaign_id not in (None, ""):
            cid_campaign = parse_id(campaign_id, "campaign_id")
            campaigns.add_members(cid_campaign, actor, customer_ids=[cid])
            result["campaign_id"] = cid_campaign
        else:
            if current.owner_id is None:
                raise ValidationFailed({"campaign_id": tr(
                    "A pool customer has no owner to call it: choose a campaign")})
            tasks.create(actor, {"subject": tr("Re-activate a silent customer"),
                                 "notes": tr("Value re-evaluation: %(finding)s",
                                             finding=tr(KIND_LABELS[kind])),
                                 "due_at": (utcnow() + dt.timedelta(days=7)).date(),
                                 "owner_id": current.owner_id, "record_type": "customer",
                                 "record_id": cid})
    except Exception:
        db.session.rollback()
        raise
    if result:
        db.session.execute(update(ValueProposal).where(ValueProposal.id == pid).values(**result))
    audit.record(actor.id, "accept", "value_proposal", pid,
                 {"status": ("open", "accepted"), **{k: (None, v) for k, v in result.items()}})
    db.session.commit()
    return db.session.get(ValueProposal, pid)


def dismiss(actor, proposal_id: Any, reason: Any) -> ValueProposal:
    require_decider(actor)
    proposal = get_proposal(actor, proposal_id)
    errors: dict[str, str] = {}
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        errors["reason"] = tr("Please give a reason for the dismissal")
    limits.check_length(errors, "reason", text, limits.REASON)
    if errors:
        raise ValidationFailed(errors)
    if proposal.status != "open":
        raise Conflict(tr(NOT_OPEN), code="proposal_decided")
    pid = proposal.id
    _claim(actor, proposal, "dismissed", text)
    audit.record(actor.id, "dismiss", "value_proposal", pid,
                 {"status": ("open", "dismissed"), "decision_note": (None, text)})
    db.session.commit()
    return db.session.get(ValueProposal, pid)


# --- reading ----------------------------------------------------------------------------------
def open_proposals(actor, kind: Optional[str] = None) -> tuple[list[dict], int]:
    """The newest PAGE open proposals in the actor's scope, with names, and how many are open
    in all."""
    if kind is not None and kind not in PROPOSAL_KINDS:
        raise ValidationFailed({"kind": tr("The kind can only be: %(choices)s",
                                           choices=", ".join(PROPOSAL_KINDS))})
    owner = Employee.__table__.alias("owner")
    proposed = Employee.__table__.alias("proposed")
    where = [ValueProposal.status == "open", _visible(actor)]
    if kind:
        where.append(ValueProposal.kind == kind)
    rows = db.session.execute(
        select(ValueProposal.id, ValueProposal.kind, ValueProposal.customer_id,
               Customer.name.label("customer"), ValueProposal.grade,
               ValueProposal.proposed_grade, ValueProposal.detail, ValueProposal.created_at,
               ValueProposal.proposed_owner_id, ValueProposal.owner_id,
               owner.c.last_name.label("owner_last"), owner.c.first_name.label("owner_first"),
               proposed.c.last_name.label("prop_last"), proposed.c.first_name.label("prop_first"))
        .join(Customer, Customer.id == ValueProposal.customer_id)
        .outerjoin(owner, owner.c.id == ValueProposal.owner_id)
        .outerjoin(proposed, proposed.c.id == ValueProposal.proposed_owner_id)
        .where(*where).order_by(ValueProposal.id.desc()).limit(PAGE)).all()
    total = db.session.execute(select(func.count()).select_from(ValueProposal)
                               .where(*where)).scalar_one()
    return [dict(id=r.id, kind=r.kind, customer_id=r.customer_id, customer=r.customer,
                 grade=r.grade, proposed_grade=r.proposed_grade, detail=r.detail,
                 created_at=r.created_at, owner_id=r.owner_id,
                 owner=_name(r.owner_last, r.owner_first),
                 proposed_owner_id=r.proposed_owner_id,
                 proposed_owner=_name(r.prop_last, r.prop_first)) for r in rows], total


def _name(last: Optional[str], first: Optional[str]) -> Optional[str]:
    """Family name first (王桂芳), as every list shows a person."""
    if last is None and first is None:
        return None
    return f"{last or ''}{first or ''}"


def finding_text(row: dict) -> str:
    """The finding in words, with its numbers."""
    kind, detail = row["kind"], row.get("detail") or ""
    if kind == "grade_review":
        return tr("Set by hand to %(grade)s; the deals of the last 12 months say %(computed)s",
                  grade=row["grade"], computed=row["proposed_grade"])
    if kind == "grade_a_overloaded":
        have, _, cap = detail.partition("/")
        return tr("Its owner holds %(have)s customers against a cap of %(cap)s",
                  have=have, cap=cap)
    if kind == "grade_a_neglected":
        return tr("No follow-up for %(days)s days (the review looks for %(limit)s)",
                  days=detail, limit=neglect_days())
    return tr("Silent, grade %(grade)s", grade=row["grade"])
