"""The cap rule (DESIGN.md invariant 3), once: what counts against a rep's caps, the room
left, and the refusal.

A rep's cap counts the customers they own that are neither locked nor won (won ones too when
the policy's count_won says so); locked customers count against the separate lock cap.
Every path that gives a rep customers (claim, create, assign, distribute, transfer, import,
merge, undo, departure handover) counts here, after taking the rep's row lock
(ownership.lock_rep or lock_active_rep) in the same transaction, so two requests cannot both
squeeze in under a cap; previews and the workbench only read.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Ownership
from app.services import policies, tally
from app.services.errors import N_, CapExceeded, Conflict, LockCapExceeded, tr


class Room(NamedTuple):
    """A cap and how many count against it now."""
    cap: int
    have: int

    @property
    def left(self) -> int:
        return max(self.cap - self.have, 0)


def counts_against_cap(locked: bool, won: bool, count_won: bool) -> bool:
    """Does one customer, locked / won as given, count against its owner's cap?"""
    return not locked and (count_won or not won)


def counted_select(user_id, count_won: bool):
    """The user's customers counted against the cap (unlocked; unlocked and not won), as a
    scalar subquery read from the owner tally (`user_id` may be a bind parameter, for
    statements built once)."""
    return tally.count_select(user_id, "unlocked" if count_won else "unlocked_unwon")


def counted_both_select(user_id):
    """One row: counted_all (unlocked) and counted_unwon (unlocked and not won), the two
    counts room_of() chooses from, in one read of the owner tally."""
    row = tally.one_owner_select(user_id, ("unlocked", "unlocked_unwon"))
    return row.with_only_columns(*(c.label(name) for c, name in zip(
        row.selected_columns, ("counted_all", "counted_unwon"))))


def counted(user_id: int, count_won: bool) -> int:
    return tally.read(select(counted_select(user_id, count_won))).scalar_one()


def locked_count(user_id: int) -> int:
    """The user's customers counted against the lock cap."""
    return tally.read(select(tally.count_select(user_id, "locked"))).scalar_one()


def room(user_id: int, policy: Optional[dict] = None) -> Room:
    """The cap under the user's effective policy (pass `policy` if already resolved)."""
    policy = policy or policies.effective_policy(user_id)
    return Room(int(policy["max_customers"].value),
                counted(user_id, bool(policy["count_won"].value)))


def room_of(policy: dict, counted_all: int, counted_unwon: int) -> Room:
    """room() from counts read before the policy was known (counted_select with and without
    won customers, in the statement that also read the policy)."""
    return Room(int(policy["max_customers"].value),
                counted_all if policy["count_won"].value else counted_unwon)


def lock_room(user_id: int, policy: Optional[dict] = None) -> Room:
    policy = policy or policies.effective_policy(user_id)
    return Room(int(policy["max_locked"].value), locked_count(user_id))


# How the customers arrive, named in the cap refusals (msgids: 新增, 领取, 分配, 转入, 锁定).
ADDING, CLAIMING, ASSIGNING, TRANSFERRING_IN, LOCKING = (
    N_("adding"), N_("claiming"), N_("assigning"), N_("transferring in"), N_("locking"))


def check(current: Room, adding: int, verb: str = ADDING) -> None:
    """Refuse `adding` more customers beyond the cap; `verb` names the path (CLAIMING…)."""
    cap, have = current
    if have + adding > cap:
        raise CapExceeded(tr("Over the customer cap: cap %(cap)s, held %(have)s, %(verb)s "
                             "%(adding)s", cap=cap, have=have, verb=tr(verb), adding=adding),
                          cap=cap, owned=have, adding=adding)


def check_cap(user_id: int, adding: int, verb: str = ADDING) -> None:
    """check() against the user's count now; call after lock_rep in the same transaction."""
    check(room(user_id), adding, verb)


def check_handover(user_id: int, adding: int) -> None:
    """A departing rep's customers all to one rep: refused before anything is planned, as a
    conflict naming the receiver's numbers; the handover itself checks again under the lock
    (check_cap)."""
    cap, have = room(user_id)
    if have + adding > cap:
        raise Conflict(tr("The receiver would be over the customer cap: cap %(cap)s, held "
                          "%(have)s, transferring in %(adding)s", cap=cap, have=have,
                          adding=adding),
                       code="cap_exceeded", cap=cap, owned=have, adding=adding)


def check_lock_cap(user_id: int, adding: int, verb: str = LOCKING) -> None:
    """Refuse `adding` more locked customers for the user beyond the lock cap (locking them,
    or `verb` naming the path they arrive by); call after lock_rep in the same transaction."""
    cap, have = lock_room(user_id)
    if have + adding > cap:
        raise LockCapExceeded(tr("Over the lock cap: cap %(cap)s, locked %(have)s, %(verb)s "
                                 "%(adding)s", cap=cap, have=have, verb=tr(verb),
                                 adding=adding),
                              cap=cap, locked=have, adding=adding)


def check_lock_cap_receiving(user_id: int, customer_ids: list[int],
                             verb: str = TRANSFERRING_IN) -> None:
    """A customer keeps its lock when it changes owner: refuse handing `customer_ids` to the
    user if the locked ones among them would take the user past the lock cap. Call after
    lock_rep(user_id) in the same transaction. The customers' rows are locked while they are
    counted (FOR UPDATE, on PostgreSQL), so their owner cannot lock one more of them before
    they move."""
    rows = db.session.execute(select(Ownership.customer_id, Ownership.locked).where(
        Ownership.customer_id.in_(customer_ids)).with_for_update()).all()
    adding = sum(1 for row in rows if row.locked)
    if adding:  # unlocked customers never refuse, even to a rep already over the lock cap
        check_lock_cap(user_id, adding, verb)


def fits(user_id: int, *, locked: bool, won: bool) -> bool:
    """Would one more customer, locked / won as given, stay within both of the user's caps?
    Call after lock_rep in the same transaction."""
    policy = policies.effective_policy(user_id)
    count_won = bool(policy["count_won"].value)
    if counts_against_cap(locked, won, count_won) and room(user_id, policy).left < 1:
        return False
    return not locked or lock_room(user_id, policy).left >= 1


def standing(user_id: int) -> tuple[Room, Room]:
    """(cap, lock cap) of the user now; call after lock_rep."""
    policy = policies.effective_policy(user_id)
    return room(user_id, policy), lock_room(user_id, policy)


def check_undo(user_id: int, before: tuple[Room, Room], after: tuple[Room, Room]) -> None:
    """Undoing a merge puts customers back: refused where it raises a count over its cap.
    A count that did not rise never refuses (a cap lowered since the merge keeps what the
    rep already had)."""
    (cap_before, lock_before), (cap_after, lock_after) = before, after
    if cap_after.have > cap_before.have and cap_after.have > cap_after.cap:
        raise CapExceeded(tr("Undoing would take user #%(user)s over the customer cap (cap "
                             "%(cap)s, %(have)s after undoing)", user=user_id,
                             cap=cap_after.cap, have=cap_after.have),
                          cap=cap_after.cap, owned=cap_after.have)
    if lock_after.have > lock_before.have and lock_after.have > lock_after.cap:
        raise CapExceeded(tr("Undoing would take user #%(user)s over the lock cap", user=user_id))
