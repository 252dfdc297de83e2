"""The cap rule in app.services.caps: what counts (won only if the policy says so, locked
against the lock cap only), which policy layer sets the caps, the exact refusals, and the
paths no other test shows refusing at a cap: merge at the lock cap, and undo.

Each other path's refusal is tested with the path: claim and assign (test_services_pool,
test_claim_refused_over_cap_with_numbers, test_assign_within_scope_and_cap), distribute
(test_distribute_evens_out_and_reports_leftovers; the skip reason in test_views_ownership),
lock (test_lock_cap_and_unlock), create (test_services_customers,
test_create_refused_over_the_cap_names_the_numbers), transfer approval
(test_services_transfers, test_receiver_cap_is_checked_at_approval and, for the lock cap,
test_receiver_lock_cap_is_checked_at_the_last_approval), departure
(test_services_departure, test_handover_to_pool_and_refusals), import
(test_services_import, test_import_through_the_assignment_rules_honours_the_cap) and merge
(test_services_merge, test_a_full_owner_is_skipped_for_the_next_then_the_pool)."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from app.models import Ownership, Policy
from app.services import assignment, caps, customers, merge, workbench
from app.services.caps import Room
from app.services.errors import CapExceeded, LockCapExceeded
from app.services.policies import EffectiveValue
from tests.helpers import holder_of


def set_policy(db, **values):
    db.session.add(Policy(**values))
    db.session.commit()


@pytest.fixture
def held(db, org):
    """rep1 holds four customers: one potential (org.c_rep), one won, two locked."""
    won, *locked = [customers.create_customer(org.rep, {"name": f"客户{i}号有限公司"}).id
                    for i in range(3)]
    db.session.execute(update(Ownership).where(Ownership.customer_id == won).values(won=True))
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(locked))
                       .values(locked=True))
    db.session.commit()
    return won


def test_won_customers_count_only_when_the_policy_says_so(db, org, held):
    assert (caps.counted(org.rep.id, False), caps.counted(org.rep.id, True)) == (1, 2)
    assert caps.room(org.rep.id) == Room(100, 1)  # the global default: won ones are free
    set_policy(db, scope="user", user_id=org.rep.id, max_customers=2, count_won=True)
    assert caps.room(org.rep.id) == Room(2, 2)
    with pytest.raises(CapExceeded) as exc:
        caps.check_cap(org.rep.id, 1, verb="领取")
    assert exc.value.to_dict() == {"code": "cap_exceeded",
                                   "message": "超出客户上限：上限 2，已拥有 2，本次领取 1",
                                   "cap": 2, "owned": 2, "adding": 1}
    assert exc.value.status == 409
    caps.check_cap(org.rep2.id, 99)  # rep2 holds one of the default 100


def test_locked_customers_count_against_the_lock_cap_only(db, org, held):
    set_policy(db, scope="user", user_id=org.rep.id, max_customers=1, max_locked=3)
    assert caps.room(org.rep.id) == Room(1, 1)  # the two locked ones are not counted
    assert caps.lock_room(org.rep.id) == Room(3, 2)
    assert caps.room(org.rep.id).left == 0 and caps.lock_room(org.rep.id).left == 1
    caps.check_lock_cap(org.rep.id, 1)
    with pytest.raises(LockCapExceeded) as exc:
        caps.check_lock_cap(org.rep.id, 2)
    assert exc.value.to_dict() == {"code": "lock_cap_exceeded",
                                   "message": "超出锁定上限：上限 3，已锁定 2，本次锁定 2",
                                   "cap": 3, "locked": 2, "adding": 2}
    # One more customer fits only where it counts against a cap with room left.
    assert caps.fits(org.rep.id, locked=True, won=False)
    assert caps.fits(org.rep.id, locked=False, won=True)  # won: not counted here
    assert not caps.fits(org.rep.id, locked=False, won=False)
    set_policy(db, scope="user", user_id=org.rep2.id, max_locked=0)
    assert not caps.fits(org.rep2.id, locked=True, won=False)


def test_the_nearest_department_sets_the_caps_and_a_user_policy_overrides_it(db, org, held):
    set_policy(db, scope="department", department_id=org.centre.id, max_customers=7,
               max_locked=1)
    set_policy(db, scope="department", department_id=org.east.id, max_customers=5)
    assert caps.standing(org.rep.id) == (Room(5, 1), Room(1, 2))
    assert caps.room(org.rep_north.id) == Room(7, 1)  # 华北 inherits 销售中心's
    set_policy(db, scope="user", user_id=org.rep.id, max_customers=3, count_won=True)
    assert caps.room(org.rep.id) == Room(3, 2)
    with pytest.raises(CapExceeded) as exc:
        caps.check_cap(org.rep.id, 2, verb="分配")
    assert exc.value.message == "超出客户上限：上限 3，已拥有 2，本次分配 2"


def test_a_claim_reads_both_counts_before_it_knows_the_policy():
    def policy(count_won):
        return {"max_customers": EffectiveValue(4, "user"),
                "count_won": EffectiveValue(count_won, "user")}

    assert caps.room_of(policy(True), 3, 1) == Room(4, 3)
    assert caps.room_of(policy(False), 3, 1) == Room(4, 1)


def test_the_workbench_shows_what_the_paths_count(db, org, held):
    set_policy(db, scope="user", user_id=org.rep.id, max_customers=1)
    info = workbench.limits(org.rep.id)
    assert (info["owned"], info["locked"]) == (1, 2)
    assert (info["owned"], info["policy"]["max_customers"]["value"]) == tuple(
        caps.room(org.rep.id))


# --- merge and undo -------------------------------------------------------------------------
def test_merge_skips_an_owner_at_the_lock_cap_and_undo_refuses_to_push_one_over(db, org):
    twin = customers.create_customer(org.rep2, {"name": "云帆科技杭州分公司"})
    assignment.lock(org.rep2, [twin.id])
    set_policy(db, scope="user", user_id=org.rep2.id, max_locked=1)
    # rep2's locked record would come first, but rep2 is at the lock cap: rep1 keeps it.
    [record] = merge.merge(org.staff, org.c_rep.id, [twin.id])
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)
    db.session.execute(update(Policy).where(Policy.user_id == org.rep2.id)
                       .values(max_locked=0))
    db.session.commit()
    with pytest.raises(CapExceeded) as exc:
        merge.undo(org.staff, record.id)
    assert exc.value.message == f"撤销会使用户 #{org.rep2.id} 超出锁定上限"
    assert merge.survivor_of(twin.id) == org.c_rep.id  # nothing was undone


def test_undo_refuses_to_push_an_owner_over_the_cap(db, org):
    twin = customers.create_customer(org.rep2, {"name": "云帆科技杭州分公司"})
    [record] = merge.merge(org.staff, org.c_rep.id, [twin.id])  # rep1 made first contact
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)
    set_policy(db, scope="user", user_id=org.rep2.id, max_customers=1)  # rep2 holds c_rep2
    with pytest.raises(CapExceeded) as exc:
        merge.undo(org.staff, record.id)
    assert exc.value.to_dict() == {
        "code": "cap_exceeded", "cap": 1, "owned": 2,
        "message": f"撤销会使用户 #{org.rep2.id} 超出客户上限（上限 1，撤销后 2）"}
    assert merge.survivor_of(twin.id) == org.c_rep.id
    # Within the cap (or where the count does not rise) the undo goes through.
    db.session.execute(update(Policy).where(Policy.user_id == org.rep2.id)
                       .values(max_customers=2))
    db.session.commit()
    merge.undo(org.staff, record.id)
    assert holder_of(db, twin.id) == (org.rep2.id, None)
