"""Transfer requests (转移 / 交接): apply -> review -> approve -> notify -> hand over.

The current owner's department manager (or a manager above, or an admin) approves first. A
second approval - an admin, or the receiving department's manager, not the first approver -
is needed when a customer is grade A or locked, or the receiver is in another department.
The receiver's cap and lock cap are checked when the last approval lands, and the owner
changes there in one transaction with the events and notifications.

Requesting a transfer needs write access to every customer in it (a read-only share, such as
the one a previous owner keeps after a transfer, is not enough). A customer is in at most one
open (pending or approved) request: the open_transfer table's primary key holds that under
concurrency, and a request's rows there go in the transaction that ends it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from sqlalchemy import and_, delete, func, not_, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload, selectinload

from app.extensions import db
from app.models import (Customer, CustomerShare, Department, OpenTransfer, Ownership,
                        TransferItem, TransferRequest, User)
from app.models.customer import utcnow
from app.models.transfer import TRANSFER_TRIGGERS
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP, ROLE_STAFF,
                          customer_scope_clause, has_role, request_cache)
from app.services import caps, limits, notifications, ownership
from app.services.errors import (NO_SUCH_CUSTOMER, Conflict, NotFound, OutOfScope, PermissionDenied,
                                 ValidationFailed, tr)
from app.services.ids import check_paging
from app.services.pool import customer_names, parse_ids
from app.services.times import rfc3339


# The inbox's boxes, and how many requests one page of a list shows (at most).
BOXES = ("awaiting", "mine", "others")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_link(transfer_id: int) -> str:
    """Where a notification about a request leads: its page in the web UI."""
    return f"/transfers/{transfer_id}"


def _department_managers(department_id: Optional[int]) -> list[int]:
    """Managers of the department and of every department above it, nearest first."""
    out: list[int] = []
    dept = db.session.get(Department, department_id) if department_id else None
    seen: set[int] = set()
    while dept is not None and dept.id not in seen:
        seen.add(dept.id)
        if dept.manager_id and dept.manager_id not in out:
            out.append(dept.manager_id)
        dept = dept.parent
    return out


def create_transfer(actor: User, customer_ids: Iterable, to_owner_id: int, reason: str,
                    trigger: str = "other", handover_note: str = "",
                    keep_read_days: int = 0) -> TransferRequest:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF):
        raise PermissionDenied(tr("Your role cannot request customer transfers"))
    ids = parse_ids(customer_ids)
    errors = {}
    if not (reason or "").strip():
        errors["reason"] = tr("Please give a reason for the transfer")
    limits.check_length(errors, "reason", reason, limits.REASON)
    limits.check_length(errors, "handover_note", handover_note, limits.REASON)
    if trigger not in TRANSFER_TRIGGERS:
        errors["trigger"] = tr("The trigger can only be: %(choices)s",
                               choices=tr(", ").join(TRANSFER_TRIGGERS))
    if not isinstance(keep_read_days, int) or not 0 <= keep_read_days <= 365:
        errors["keep_read_days"] = tr("The previous owner's read-only days must be within 0–365")
    if errors:
        raise ValidationFailed(errors)
    writable = set(db.session.execute(select(Customer.id).where(
        Customer.id.in_(ids), customer_scope_clause(actor, include_shared=False))).scalars())
    hidden = [i for i in ids if i not in writable]
    if hidden:
        raise OutOfScope(tr(NO_SUCH_CUSTOMER), customer_ids=hidden)
    rows = ownership.snapshot(ids)
    owners = {rows[i].owner_id for i in ids}
    if None in owners:
        raise ValidationFailed({"customer_ids": tr("Pool customers are assigned, not transferred")})
    if len(owners) != 1:
        raise ValidationFailed({"customer_ids": tr("The customers of one transfer must have the "
                                                   "same owner")})
    from_owner_id = owners.pop()
    if from_owner_id == to_owner_id:
        raise ValidationFailed({"to_owner_id": tr("The receiver is the current owner")})
    receiver = ownership.ensure_active_owner(to_owner_id)
    _refuse_pending(ids)
    giver = db.session.get(User, from_owner_id)
    grade_a_or_locked = db.session.execute(select(Ownership.customer_id).where(
        Ownership.customer_id.in_(ids),
        (Ownership.grade == "A") | (Ownership.locked.is_(True)))).first() is not None
    transfer = TransferRequest(
        applicant_id=actor.id, from_owner_id=from_owner_id, to_owner_id=to_owner_id,
        reason=reason.strip(), trigger=trigger, handover_note=(handover_note or "").strip(),
        keep_read_days=keep_read_days, status="pending",
        needs_second_approval=grade_a_or_locked or giver.department_id != receiver.department_id,
        items=[TransferItem(customer_id=i) for i in ids], created_at=utcnow())
    db.session.add(transfer)
    try:
        db.session.flush()
        db.session.add_all(OpenTransfer(customer_id=i, transfer_id=transfer.id) for i in ids)
        db.session.flush()
    except IntegrityError:
        # A simultaneous application for one of these customers committed first.
        db.session.rollback()
        _refuse_pending(ids)
        raise
    approvers = _department_managers(giver.department_id) or _admin_ids()
    notifications.notify(approvers, "transfer_pending", f"待审批的客户转移 #{transfer.id}",
                         f"{giver.display_name} → {receiver.display_name}，共 {len(ids)} 个客户："
                         f"{reason.strip()}", link=page_link(transfer.id))
    db.session.commit()
    return transfer


def _refuse_pending(ids: list[int]) -> None:
    """Conflict `transfer_pending` if any of the customers is in an open request."""
    held = set(db.session.execute(select(OpenTransfer.customer_id).where(
        OpenTransfer.customer_id.in_(ids))).scalars())
    if held:
        pending = [i for i in ids if i in held]
        raise Conflict(tr("These customers already have a pending transfer: %(names)s",
                          names=customer_names(pending)),
                       code="transfer_pending")


def _close(transfer: TransferRequest, status: str, actor: User) -> None:
    """End the request: its customers are free for another one."""
    transfer.status, transfer.decided_by_id = status, actor.id
    db.session.execute(delete(OpenTransfer).where(OpenTransfer.transfer_id == transfer.id))


def _admin_ids() -> list[int]:
    return [u.id for u in db.session.execute(select(User)).scalars()
            if has_role(u, ROLE_ADMIN) and u.active]


def _load(transfer_id: int) -> TransferRequest:
    transfer = db.session.get(TransferRequest, transfer_id)
    if transfer is None:
        raise NotFound(tr("The transfer request does not exist"))
    return transfer


# Who may see and decide a request, as WHERE clauses on transfer_request: the lists filter
# with them in SQL, and the checks on one request below ask the same clause about its row.
def _is(column, user_id: int):
    """column = user_id, false (never NULL) where the column is NULL, so that NOT works."""
    return and_(column.is_not(None), column == user_id)


def _staff_under(actor: User) -> list[int]:
    """The ids of the users in the departments the actor manages and in every department
    below them: the people whose requests the actor approves as their manager (the
    managers of a department and of the departments above it). Read in one statement, once
    per request: the transfer page asks it for each box and each approval step, and
    building the recursive query a dozen times cost more than running it."""
    cache = request_cache()
    key = ("staff_under", actor.id)
    if cache is not None and key in cache:
        return cache[key]
    managed = select(Department.id).where(Department.manager_id == actor.id) \
        .cte(recursive=True)
    child = aliased(Department)
    # UNION, not UNION ALL: a department met twice is not walked again.
    managed = managed.union(select(child.id).where(child.parent_id == managed.c.id))
    ids = list(db.session.execute(
        select(User.id).where(User.department_id.in_(select(managed.c.id)))).scalars())
    if cache is not None:
        cache[key] = ids
    return ids


def first_approver_clause(actor: User):
    """The requests whose first approval is the actor's: admins, and the managers of the
    giving rep's department or of a department above it."""
    if has_role(actor, ROLE_ADMIN):
        return true()
    return TransferRequest.from_owner_id.in_(_staff_under(actor))


def second_approver_clause(actor: User):
    """The requests whose second approval is the actor's: admins, and the managers of the
    receiving rep's department or above it, but never the first approver."""
    not_first = not_(_is(TransferRequest.first_approver_id, actor.id))
    if has_role(actor, ROLE_ADMIN):
        return not_first
    return and_(not_first, TransferRequest.to_owner_id.in_(_staff_under(actor)))


def _party_clause(actor: User, *columns):
    return or_(*[_is(column, actor.id) for column in columns])


def visible_clause(actor: User):
    """Parties, approvers and admins/auditors see a request."""
    if has_role(actor, ROLE_ADMIN, ROLE_AUDITOR):
        return true()
    t = TransferRequest
    return or_(_party_clause(actor, t.applicant_id, t.from_owner_id, t.to_owner_id,
                             t.first_approver_id, t.second_approver_id),
               first_approver_clause(actor), second_approver_clause(actor))


def awaiting_clause(actor: User):
    """The requests the actor should approve or reject now."""
    t = TransferRequest
    return or_(and_(t.status == "pending", first_approver_clause(actor)),
               and_(t.status == "approved", t.needs_second_approval.is_(True),
                    second_approver_clause(actor)))


def _box_clause(actor: User, box: Optional[str]):
    """All visible requests (box None), or one inbox box: awaiting my decision, mine
    (applied for, giving or receiving), every other request the actor may see."""
    if box is None:
        return visible_clause(actor)
    mine = _party_clause(actor, TransferRequest.applicant_id, TransferRequest.from_owner_id,
                         TransferRequest.to_owner_id)
    return {"awaiting": awaiting_clause(actor),
            "mine": and_(mine, not_(awaiting_clause(actor))),
            "others": and_(visible_clause(actor), not_(awaiting_clause(actor)), not_(mine)),
            }[box]


def _row_matches(transfer: TransferRequest, clause) -> bool:
    return db.session.execute(select(TransferRequest.id).where(
        TransferRequest.id == transfer.id, clause)).first() is not None


def can_first_approve(actor: User, transfer: TransferRequest) -> bool:
    return _row_matches(transfer, first_approver_clause(actor))


def can_second_approve(actor: User, transfer: TransferRequest) -> bool:
    return _row_matches(transfer, second_approver_clause(actor))


def approve(actor: User, transfer_id: int, note: str = "") -> TransferRequest:
    """Record an approval; the last one required hands the customers over."""
    if limits.too_long(note, limits.REASON):
        raise ValidationFailed({"note": limits.too_long(note, limits.REASON)})
    transfer = _load(transfer_id)
    if transfer.status != "pending" and not (transfer.status == "approved"
                                             and transfer.needs_second_approval):
        raise Conflict(tr("The request is %(status)s and cannot be approved",
                          status=transfer.status),
                       code="not_pending")
    now = utcnow()
    if transfer.first_approver_id is None:
        if not can_first_approve(actor, transfer):
            raise PermissionDenied(tr("Only a manager of the previous owner's department or an "
                                      "admin can approve"))
        transfer.first_approver_id, transfer.first_approved_at = actor.id, now
        if transfer.needs_second_approval:
            transfer.status = "approved"
            notifications.notify(
                _department_managers(transfer.to_owner.department_id) or _admin_ids(),
                "transfer_second_approval", f"客户转移 #{transfer.id} 需要第二级审批",
                "涉及 A 级或锁定客户，或跨部门转移", link=page_link(transfer.id))
            db.session.commit()
            return transfer
    else:
        if not can_second_approve(actor, transfer):
            raise PermissionDenied(tr("The second approval is by an admin or a manager of the "
                                      "receiving department, not the first approver"))
        transfer.second_approver_id, transfer.second_approved_at = actor.id, now
    transfer.decision_note = note or transfer.decision_note
    try:
        _hand_over(actor, transfer, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return transfer


def _hand_over(actor: User, transfer: TransferRequest, now: dt.datetime) -> None:
    ids = [item.customer_id for item in transfer.items]
    ownership.lock_rep(transfer.to_owner_id)
    ownership.ensure_active_owner(transfer.to_owner_id)
    caps.check_cap(transfer.to_owner_id, len(ids), verb=caps.TRANSFERRING_IN)
    caps.check_lock_cap_receiving(transfer.to_owner_id, ids)
    moved = db.session.execute(
        update(Ownership)
        .where(Ownership.customer_id.in_(ids), Ownership.owner_id == transfer.from_owner_id)
        .values(owner_id=transfer.to_owner_id, acquired_at=now, acquired_how="transferred",
                previous_owner_id=transfer.from_owner_id, last_followup_at=None)).rowcount
    if moved != len(ids):
        raise Conflict(tr("Some customers no longer belong to the previous owner; the request "
                          "cannot complete"), code="owner_changed")
    ownership.record_events(
        [dict(customer_id=i, kind="transferred", from_owner_id=transfer.from_owner_id,
              to_owner_id=transfer.to_owner_id, actor_id=actor.id,
              reason=f"转移申请 #{transfer.id}：{transfer.reason}",
              rule=f"transfer:{transfer.trigger}") for i in ids], now)
    if transfer.keep_read_days:
        until = now + dt.timedelta(days=transfer.keep_read_days)
        db.session.execute(delete(CustomerShare).where(
            CustomerShare.customer_id.in_(ids), CustomerShare.user_id == transfer.from_owner_id))
        for i in ids:
            db.session.add(CustomerShare(customer_id=i, user_id=transfer.from_owner_id,
                                         expires_at=until))
    _close(transfer, "completed", actor)
    transfer.completed_at = now
    notifications.notify(
        [transfer.applicant_id, transfer.from_owner_id, transfer.to_owner_id,
         transfer.first_approver_id, transfer.second_approver_id],
        "transfer_completed", f"客户转移 #{transfer.id} 已完成",
        f"{len(ids)} 个客户已交接给 {transfer.to_owner.display_name}。交接说明："
        f"{transfer.handover_note or '无'}", link=page_link(transfer.id))


def reject(actor: User, transfer_id: int, note: str) -> TransferRequest:
    transfer = _load(transfer_id)
    if transfer.status not in ("pending", "approved"):
        raise Conflict(tr("The request is %(status)s and cannot be rejected",
                          status=transfer.status),
                       code="not_pending")
    allowed = can_first_approve(actor, transfer) if transfer.first_approver_id is None \
        else can_second_approve(actor, transfer)
    if not allowed:
        raise PermissionDenied(tr("You are not an approver of this request"))
    if not (note or "").strip():
        raise ValidationFailed({"note": tr("Please give a reason for rejecting")})
    if limits.too_long(note, limits.REASON):
        raise ValidationFailed({"note": limits.too_long(note, limits.REASON)})
    _close(transfer, "rejected", actor)
    transfer.decision_note = note.strip()
    notifications.notify([transfer.applicant_id, transfer.from_owner_id], "transfer_rejected",
                         f"客户转移 #{transfer.id} 被驳回", note.strip(),
                         link=page_link(transfer.id))
    db.session.commit()
    return transfer


def can_cancel(actor: User, transfer: TransferRequest) -> bool:
    """The applicant (or an admin) may withdraw a request that is still open."""
    return transfer.status in ("pending", "approved") and (
        transfer.applicant_id == actor.id or has_role(actor, ROLE_ADMIN))


def cancel(actor: User, transfer_id: int) -> TransferRequest:
    transfer = _load(transfer_id)
    if transfer.applicant_id != actor.id and not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only the requester can withdraw"))
    if not can_cancel(actor, transfer):
        raise Conflict(tr("The request is %(status)s and cannot be withdrawn",
                          status=transfer.status),
                       code="not_pending")
    _close(transfer, "cancelled", actor)
    db.session.commit()
    return transfer


def visible_to(actor: User, transfer: TransferRequest) -> bool:
    return _row_matches(transfer, visible_clause(actor))


def awaiting_decision(actor: User, transfer: TransferRequest) -> bool:
    """Whether the actor is the one who should approve or reject the request now."""
    return _row_matches(transfer, awaiting_clause(actor))


@dataclass
class Page:
    """One page of a list of requests, newest first, and how many the whole list holds."""
    items: list[TransferRequest]
    total: int
    page: int          # from 0
    page_size: int

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.total


def requests_for(actor: User, box: Optional[str] = None, page: int = 0,
                 page_size: int = PAGE_SIZE) -> Page:
    """One page of the requests the actor may see (or of one inbox box), filtered and
    counted in the database: an old request is never hidden behind newer ones."""
    check_paging(page, page_size, MAX_PAGE_SIZE)
    where = _box_clause(actor, box)
    total = db.session.execute(select(func.count()).select_from(TransferRequest)
                               .where(where)).scalar_one()
    items = db.session.execute(
        select(TransferRequest).where(where).order_by(TransferRequest.id.desc())
        .offset(page * page_size).limit(page_size)
        .options(selectinload(TransferRequest.items), selectinload(TransferRequest.from_owner),
                 selectinload(TransferRequest.to_owner))).scalars().all()
    return Page(list(items), total, page, page_size)


def inbox(actor: User, pages: Optional[Mapping[str, int]] = None,
          page_size: int = PAGE_SIZE) -> dict[str, Page]:
    """The transfer page's three boxes (see _box_clause), each at its own page: the three
    totals in one statement, each box's rows in one more (owners joined; each request's
    number of customers as `item_count`, its items not loaded)."""
    pages = pages or {}
    for box in BOXES:
        check_paging(pages.get(box, 0), page_size, MAX_PAGE_SIZE)
    clauses = {box: _box_clause(actor, box) for box in BOXES}
    totals = db.session.execute(select(*(
        func.count().filter(clause).label(box) for box, clause in clauses.items()))
        .select_from(TransferRequest)).one()
    item_count = select(func.count()).where(TransferItem.transfer_id == TransferRequest.id) \
        .correlate(TransferRequest).scalar_subquery()
    out = {}
    for box, clause in clauses.items():
        page = pages.get(box, 0)
        rows = db.session.execute(
            select(TransferRequest, item_count).where(clause)
            .order_by(TransferRequest.id.desc()).offset(page * page_size).limit(page_size)
            .options(joinedload(TransferRequest.from_owner),
                     joinedload(TransferRequest.to_owner))).all()
        for transfer, n in rows:
            transfer.item_count = n
        out[box] = Page([t for t, _ in rows], getattr(totals, box), page, page_size)
    return out


def to_dict(transfer: TransferRequest) -> dict:
    iso = rfc3339
    return {
        "id": transfer.id, "status": transfer.status, "trigger": transfer.trigger,
        "reason": transfer.reason, "handover_note": transfer.handover_note,
        "customer_ids": [i.customer_id for i in transfer.items],
        "applicant_id": transfer.applicant_id, "from_owner_id": transfer.from_owner_id,
        "to_owner_id": transfer.to_owner_id,
        "needs_second_approval": transfer.needs_second_approval,
        "first_approver_id": transfer.first_approver_id,
        "second_approver_id": transfer.second_approver_id,
        "keep_read_days": transfer.keep_read_days, "decision_note": transfer.decision_note,
        "created_at": iso(transfer.created_at), "completed_at": iso(transfer.completed_at),
    }
