"""The customer page as a rep works from it: the facts of its header and the ownership
actions the record allows the user right there.

Which actions show is decided here from the record and the user's roles, scope and pools;
the view adds the permission check (FAB's, per view) and every action still goes through its
own service, which checks everything again when the button is pressed. A button that would
always be refused is not shown; one that may be refused by a count (the cap, the daily claim
limit) is, and the refusal names the numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import or_, select

from app.extensions import db
from app.models import Customer, CustomerShare, User
from app.models.customer import utcnow
from app.models.transfer import OpenTransfer
from app.security import (RES_CONTACT, RES_CUSTOMER, RES_DEAL, RES_FOLLOWUP, RES_OWNERSHIP,
                          RES_POOL_CUSTOMERS, RES_TRANSFER, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP,
                          can_write_customer, has_role)
from app.services import opportunities, policies, segments, workbench
from app.services.pool import managed_owner_ids, member_pool_ids

# (permission, resource) -> has the user FAB's permission (the view passes sm.has_access).
Permitted = Callable[[str, str], bool]

# Every action the page may offer, in the order the buttons show.
ACTIONS = ("followup", "deal", "claim", "release", "lock", "unlock", "transfer", "edit",
           "add_contact")


@dataclass
class Share:
    user: User
    expires_at: Optional[dt.datetime]


@dataclass
class Reclaim:
    """When the reclaim sweep takes the customer back: `days_left` (≤ 0: due, the next
    sweep takes it), or why it never will (`exempt`: "locked" / "won"); both None for a
    pool customer."""

    days_left: Optional[int] = None
    exempt: Optional[str] = None
    warned: bool = False  # within the owner's warn-before days (the workbench's 即将回收)

    @property
    def due(self) -> bool:
        return self.days_left is not None and self.days_left <= 0


@dataclass
class Header:
    customer: Customer
    owner: Optional[User]
    pool_name: Optional[str]
    grade: str
    category: str
    locked: bool
    won: bool
    reclaim: Reclaim
    shares: list[Share] = field(default_factory=list)
    # The open transfer request holding the customer (a new one would be refused).
    open_transfer_id: Optional[int] = None


def reclaim_of(ownership) -> Reclaim:
    """The workbench's 即将回收 computation (workbench.days_left) for one customer."""
    if ownership is None or ownership.owner_id is None:
        return Reclaim()
    if ownership.locked:
        return Reclaim(exempt="locked")
    if ownership.won:
        return Reclaim(exempt="won")
    policy = segments.policy_for_customer(
        ownership.owner_id, policies.effective_policy(ownership.owner_id), ownership)
    left = workbench.days_left(ownership, policy, protected_since=db.session.execute(
        select(opportunities.protecting_since(ownership.customer_id))).scalar())
    return Reclaim(days_left=left, warned=left <= int(policy["warn_before_days"].value or 0))


def shares_of(customer_id: int) -> list[Share]:
    """The read-only shares of the customer still in force, by user."""
    rows = db.session.execute(select(CustomerShare).where(
        CustomerShare.customer_id == customer_id,
        or_(CustomerShare.expires_at.is_(None), CustomerShare.expires_at > utcnow()))
        .order_by(CustomerShare.id)).scalars()
    return [Share(s.user, s.expires_at) for s in rows if s.user is not None]


def header(customer: Customer) -> Header:
    own = customer.ownership
    return Header(
        customer=customer, owner=own.owner if own else None,
        pool_name=own.pool.name if own is not None and own.pool is not None else None,
        grade=(own.grade or "") if own else "", category=own.category if own else "",
        locked=bool(own and own.locked), won=bool(own and own.won), reclaim=reclaim_of(own),
        shares=shares_of(customer.id),
        open_transfer_id=db.session.execute(select(OpenTransfer.transfer_id).where(
            OpenTransfer.customer_id == customer.id)).scalar())


def actions(actor: Optional[User], customer: Customer, permitted: Permitted) -> set[str]:
    """The actions of ACTIONS the page offers `actor` on `customer`."""
    own = customer.ownership
    if actor is None or own is None:
        return set()
    out: set[str] = set()
    writable = can_write_customer(actor, customer.id)  # in scope, not through a share
    owned = own.owner_id is not None
    if writable:
        if permitted("can_write", RES_FOLLOWUP):
            out.add("followup")
        if owned and permitted("can_write", RES_DEAL):
            out.add("deal")
        if permitted("can_write", RES_CUSTOMER):
            out.add("edit")
        if permitted("can_write", RES_CONTACT):
            out.add("add_contact")  # and edit the contacts
    if (not owned and own.pool_id in member_pool_ids(actor)
            and has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP)
            and permitted("can_claim", RES_POOL_CUSTOMERS)):
        out.add("claim")
    if owned:
        managed = own.owner_id in managed_owner_ids(actor, {own.owner_id})
        if managed and permitted("can_release", RES_OWNERSHIP):
            out.add("release")
        if own.owner_id == actor.id and not own.locked and permitted("can_lock", RES_CUSTOMER):
            out.add("lock")
        if (own.locked and managed and has_role(actor, ROLE_ADMIN, ROLE_MANAGER)
                and permitted("can_unlock", RES_CUSTOMER)):
            out.add("unlock")
        if (writable and permitted("can_transfer", RES_CUSTOMER)
                and permitted("can_request", RES_TRANSFER)
                and db.session.get(OpenTransfer, customer.id) is None):
            out.add("transfer")
    return out
