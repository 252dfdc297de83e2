"""The fast claim and distribution paths keep the rules: policy layers read alongside the
claim, won customers counted only when the policy says so, the move re-checking the pool it
read, ids deduplicated in order, and the even plan identical to fewest-first round-robin."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select, update

from app.models import Ownership, OwnershipEvent, Policy, Pool, PoolMember
from app.models.customer import utcnow
from app.services import assignment, customers, ownership, pool
from app.services.assignment import PlanLine
from app.services.errors import CapExceeded, OutOfScope, ValidationFailed
from tests.helpers import holder_of


@pytest.fixture
def pool_ids(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    return [org.c_pool.id] + [customers.create_customer(org.staff, {"name": f"快速客户{i}"}).id
                              for i in range(6)]


def test_parse_ids_dedupes_in_first_seen_order_and_caps_the_batch():
    assert pool.parse_ids([3, "1", 3, 2, 1]) == [3, 1, 2]
    with pytest.raises(ValidationFailed) as exc:
        pool.parse_ids(range(1, pool.MAX_BATCH + 2))
    assert exc.value.fields == {"customer_ids": f"一次最多处理 {pool.MAX_BATCH} 个客户"}
    assert len(pool.parse_ids(range(1, 5002), limit=10_000)) == 5001
    with pytest.raises(ValidationFailed):
        pool.parse_ids([1, True])


def test_department_policy_applies_to_claims_and_user_policy_overrides_it(db, org, pool_ids):
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=2))
    db.session.commit()
    with pytest.raises(CapExceeded) as exc:
        pool.claim_from_pool(org.rep, pool_ids[:2])  # rep1 already owns one
    assert exc.value.message == "超出客户上限：上限 2，已拥有 1，本次领取 2"
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=3))
    db.session.commit()
    assert pool.claim_from_pool(org.rep, pool_ids[:2]) == pool_ids[:2]


def test_won_customers_count_against_the_cap_only_when_the_policy_says_so(db, org, pool_ids):
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(won=True))
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1, count_won=False))
    db.session.commit()
    assert pool.claim_from_pool(org.rep, pool_ids[:1]) == pool_ids[:1]  # the won one is free
    db.session.execute(update(Policy).where(Policy.user_id == org.rep.id)
                       .values(max_customers=2, count_won=True))
    db.session.commit()
    with pytest.raises(CapExceeded) as exc:
        pool.claim_from_pool(org.rep, pool_ids[1:2])
    assert exc.value.message == "超出客户上限：上限 2，已拥有 2，本次领取 1"


def test_claim_names_the_pool_only_members_may_use(db, org, pool_ids):
    other = Pool(name="华北公海")
    db.session.add(other)
    db.session.commit()
    with pytest.raises(OutOfScope) as exc:
        pool.claim_from_pool(org.rep, pool_ids[:1], pool_id=other.id)
    assert (exc.value.code, exc.value.message) == ("not_pool_member", "您不是该公海的成员")
    c = customers.create_customer(org.staff, {"name": "华北客户"}, pool_id=other.id)
    assert pool.claim_from_pool(org.admin, [c.id]) == [c.id]  # admins belong to every pool


def test_take_from_pool_moves_and_logs_only_customers_still_in_the_pool_read(db, org, pool_ids):
    other = Pool(name="备用公海")
    db.session.add(other)
    db.session.commit()
    event = dict(kind="claimed", actor_id=org.rep.id, reason="领取")
    moved = ownership.take_from_pool({other.id: pool_ids[:2], org.pool.id: pool_ids[2:3]},
                                     org.rep.id, now=utcnow(), how="claimed", event=event)
    assert moved == 1  # the first two are in the default pool, not in `other`
    db.session.commit()
    assert holder_of(db, pool_ids[0]) == (None, org.pool.id)
    assert holder_of(db, pool_ids[2]) == (org.rep.id, None)
    logged = db.session.execute(select(OwnershipEvent.customer_id, OwnershipEvent.from_pool_id)
                                .where(OwnershipEvent.kind == "claimed")).all()
    assert logged == [(pool_ids[2], org.pool.id)]


def _fewest_first(lines: list[PlanLine], ids: list[int]) -> list[int]:
    """The plan's rule written plainly: each customer to the open line with the fewest, ties
    to the earlier line."""
    unassigned = []
    for customer_id in ids:
        open_lines = [l for l in lines if l.owned_before + len(l.customer_ids) < l.cap]
        if not open_lines:
            unassigned.append(customer_id)
            continue
        min(open_lines, key=lambda l: l.owned_before + len(l.customer_ids)).customer_ids.append(
            customer_id)
    return unassigned


def test_even_plan_matches_fewest_first_round_robin_on_many_customers():
    rnd = random.Random(7)
    shape = [(rnd.randint(0, 40), rnd.randint(41, 700)) for _ in range(9)]
    ids = list(range(1, 4001))
    fast = [PlanLine(i, f"rep{i}", have, cap) for i, (have, cap) in enumerate(shape)]
    plain = [PlanLine(i, f"rep{i}", have, cap) for i, (have, cap) in enumerate(shape)]
    assert assignment._fill_evenly(fast, ids) == _fewest_first(plain, ids)
    assert [l.customer_ids for l in fast] == [l.customer_ids for l in plain]
    totals = [l.owned_before + len(l.customer_ids) for l in fast]
    assert all(t <= l.cap for t, l in zip(totals, fast))


def test_distribute_beyond_the_api_batch_needs_the_bulk_limit(db, org, pool_ids):
    many = list(range(1, pool.MAX_BATCH + 2))
    with pytest.raises(ValidationFailed):
        assignment.distribute(org.admin, many, [org.rep.id])
    plan = assignment.distribute(org.admin, pool_ids, [org.rep.id, org.rep2.id], dry_run=False,
                                 limit=assignment.MAX_DISTRIBUTE)
    assert sorted(len(l.customer_ids) for l in plan.lines) == [3, 4]
    n_events = db.session.execute(select(func.count()).select_from(OwnershipEvent).where(
        OwnershipEvent.kind == "assigned", OwnershipEvent.rule == "even distribution")).scalar_one()
    assert n_events == len(pool_ids)
