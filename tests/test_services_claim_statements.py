"""One claim costs a fixed, small number of statements (bench/claims.py: the claim's share
of a request is its round trips), and every refusal still names its rule and numbers and
leaves nothing behind, now that PostgreSQL moves and logs in the statement that reads the
facts (a refusal rolls that back)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text

from app import database
from app.models import OwnershipEvent, Policy, Pool, PoolMember
from app.models.customer import utcnow
from app.security import ROLE_REP, has_role
from app.services import customers, pool
from app.services.errors import (CapExceeded, DailyLimitReached, InCooldown, NotInPool,
                                 OutOfScope)
from tests.helpers import holder_of


@pytest.fixture
def pool_ids(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    return [org.c_pool.id] + [customers.create_customer(org.staff, {"name": f"计数客户{i}"}).id
                              for i in range(4)]


@contextmanager
def statements(db):
    """The statements sent to the database inside the block (the test's savepoints, which
    stand in for the transaction a request begins and commits, left out)."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    engine = db.session.get_bind().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def expected_statements(db) -> int:
    # PostgreSQL: the rep lock, then one statement that reads the facts, moves and logs.
    # SQLite (no data-modifying CTEs): the lock, the facts, the move, the event log.
    return 2 if db.session.get_bind().dialect.name == "postgresql" else 4


def test_a_claim_is_the_rep_lock_and_one_statement(db, org, pool_ids):
    assert has_role(org.rep, ROLE_REP)  # the request's user, roles loaded once
    with statements(db) as seen:
        assert pool.claim_from_pool(org.rep, pool_ids[:1]) == pool_ids[:1]
    assert len(seen) == expected_statements(db), seen
    assert seen[0].lstrip().upper().startswith("UPDATE AB_USER")  # the lock comes first
    # Naming the pool costs nothing more, and neither do more customers. (The commit
    # expired this test's objects; a request loads its user afresh, so reload them here.)
    pool_id = org.pool.id
    assert has_role(org.rep, ROLE_REP)
    with statements(db) as seen:
        pool.claim_from_pool(org.rep, pool_ids[1:4], pool_id=pool_id)
    assert len(seen) == expected_statements(db), seen
    assert [holder_of(db, i) for i in pool_ids[:4]] == [(org.rep.id, None)] * 4
    events = db.session.execute(select(OwnershipEvent.customer_id, OwnershipEvent.from_pool_id,
                                       OwnershipEvent.to_owner_id, OwnershipEvent.actor_id,
                                       OwnershipEvent.reason)
                                .where(OwnershipEvent.kind == "claimed")
                                .order_by(OwnershipEvent.customer_id)).all()
    assert [tuple(e) for e in events] == [(i, org.pool.id, org.rep.id, org.rep.id, "领取")
                                          for i in sorted(pool_ids[:4])]


def test_a_refused_claim_is_no_dearer(db, org, pool_ids):
    """A refusal decided on the facts costs no extra statement (the names it gives come
    from the rows read)."""
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.commit()
    assert has_role(org.rep, ROLE_REP)
    with statements(db) as seen, pytest.raises(CapExceeded):
        pool.claim_from_pool(org.rep, pool_ids[:1])
    assert len(seen) == 2, seen  # the lock, and the statement that read what refused it


def test_the_api_claim_reads_the_user_once_and_nothing_after_its_commit(api, db, org,
                                                                        pool_ids):
    rep = api("rep1")
    with statements(db) as seen:
        resp = rep("POST", "/api/v1/pool/claim", json={"customer_ids": pool_ids[:2]})
    assert resp.status_code == 200
    lock = next(i for i, s in enumerate(seen) if s.lstrip().upper().startswith("UPDATE AB_USER"))
    # After the rep lock: the claim's statements and nothing else (the user and roles are
    # not read again after the commit).
    assert len(seen) - lock == expected_statements(db), seen[lock:]
    users = [s for s in seen if s.lstrip().upper().startswith("SELECT AB_USER.ID")]
    assert len(users) == 1, users
    assert holder_of(db, pool_ids[1]) == (org.rep.id, None)


def claimed_events(db) -> int:
    return db.session.execute(select(func.count()).select_from(OwnershipEvent)
                              .where(OwnershipEvent.kind == "claimed")).scalar_one()


def other_pool(db, org):
    other = Pool(name="计数外公海")
    db.session.add(other)
    db.session.commit()
    return other


def refuse_not_member(db, org, ids):
    return pool.claim_from_pool, (org.rep, ids[:1]), {"pool_id": other_pool(db, org).id}


def refuse_not_in_pool(db, org, ids):
    return pool.claim_from_pool, (org.rep, [ids[0], org.c_rep2.id]), {}


def refuse_foreign_pool(db, org, ids):
    c = customers.create_customer(org.staff, {"name": "外池客户"}, pool_id=other_pool(db, org).id)
    return pool.claim_from_pool, (org.rep, [ids[0], c.id]), {}


def refuse_cooldown(db, org, ids):
    db.session.add(Policy(scope="user", user_id=org.rep.id, cooldown_days=30))
    db.session.commit()
    pool.release_to_pool(org.rep, [org.c_rep.id], reason="客户暂无需求")
    return pool.claim_from_pool, (org.rep, [ids[0], org.c_rep.id]), {}


def refuse_daily_limit(db, org, ids):
    db.session.add(Policy(scope="user", user_id=org.rep.id, daily_claim_limit=3))
    db.session.commit()
    pool.claim_from_pool(org.rep, ids[3:5])
    return pool.claim_from_pool, (org.rep, ids[:2]), {}


def refuse_cap(db, org, ids):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=3))
    db.session.commit()
    return pool.claim_from_pool, (org.rep, ids[:3]), {}


@pytest.mark.parametrize("setup, error, code, message", [
    (refuse_not_member, OutOfScope, "not_pool_member", "您不是该公海的成员"),
    (refuse_not_in_pool, NotInPool, "not_in_pool", "客户已不在公海中：{c_rep2}"),
    (refuse_foreign_pool, OutOfScope, "not_pool_member", "这些客户所在的公海您无权领取：外池客户"),
    (refuse_cooldown, InCooldown, "cooldown",
     "原负责人冷却期 30 天：{c_rep} 于 {today} 从您名下退回，还需 30 天才能再领取"),
    (refuse_daily_limit, DailyLimitReached, "daily_limit",
     "超出每日领取上限：上限 3，今日已领取 2，本次领取 2"),
    (refuse_cap, CapExceeded, "cap_exceeded", "超出客户上限：上限 3，已拥有 1，本次领取 3"),
], ids=["not_member", "not_in_pool", "foreign_pool", "cooldown", "daily_limit", "cap"])
def test_every_refusal_names_its_rule_and_keeps_nothing(db, org, pool_ids, setup, error, code,
                                                        message):
    call, args, kwargs = setup(db, org, pool_ids)
    before_events = claimed_events(db)
    before = {i: holder_of(db, i) for i in pool_ids[:3]}
    with pytest.raises(error) as exc:
        call(*args, **kwargs)
    today = pool.local_date(utcnow())
    assert exc.value.code == code
    assert exc.value.message == message.format(c_rep=org.c_rep.name, c_rep2=org.c_rep2.name,
                                               today=today)
    # Nothing of the refused claim stays: no customer moved, no event logged.
    assert {i: holder_of(db, i) for i in pool_ids[:3]} == before
    assert before[pool_ids[0]] == (None, org.pool.id)
    assert claimed_events(db) == before_events
    # And the next claim that keeps the rules goes through.
    if code in ("not_in_pool", "foreign_pool", "not_pool_member", "cooldown"):
        assert pool.claim_from_pool(org.rep, pool_ids[:1]) == pool_ids[:1]


def test_a_claim_right_after_a_refusal_counts_what_is_held(db, org, pool_ids):
    """The refused claim's move was rolled back, so the cap count after it is as before."""
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=3))
    db.session.commit()
    with pytest.raises(CapExceeded):
        pool.claim_from_pool(org.rep, pool_ids[:3])
    assert pool.claim_from_pool(org.rep, pool_ids[:2]) == pool_ids[:2]
    with pytest.raises(CapExceeded) as exc:
        pool.claim_from_pool(org.rep, pool_ids[2:3])
    assert exc.value.message == "超出客户上限：上限 3，已拥有 3，本次领取 1"


def postgres_only(db) -> bool:
    """True on PostgreSQL; on SQLite (no prepared-statement cache to keep) the engine must
    not have app.database's connection class, which is all there is to check there."""
    if db.session.get_bind().dialect.name == "postgresql":
        return True
    with db.engine.connect() as conn:
        assert not isinstance(conn.connection.driver_connection, database.Connection)
    return False


def test_one_customer_claims_run_one_cached_plan(db, org, pool_ids):
    """The driver prepares the claim's statement once it has run a few times, and PostgreSQL
    then keeps one generic plan only if it is no dearer than planning each claim: for the
    usual claim, one customer, it is (the id is one parameter, not an array of them)."""
    if not postgres_only(db):
        return
    ids = [customers.create_customer(org.staff, {"name": f"计划客户{i}"},
                                     confirm_duplicates=True).id for i in range(14)]
    for i in ids:
        assert pool.claim_from_pool(org.rep, [i]) == [i]
    plans = db.session.execute(text(
        "SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH facts%'"
    )).scalars().all()
    assert plans and max(plans) > 0, plans


def test_a_rollback_keeps_the_prepared_statements(db, org):
    """A refused claim rolls back: the connection's prepared statements stay (psycopg's own
    connection would drop them all, and the next claims would be planned afresh)."""
    if not postgres_only(db):
        return
    query = "SELECT %s::integer + 41"
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, database.Connection)

        def prepared() -> int:
            return raw.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement "
                               "= 'SELECT $1::integer + 41'", prepare=False).fetchone()[0]

        assert raw.execute(query, [1], prepare=True).fetchone()[0] == 42
        raw.rollback()
        assert prepared() == 1
        # Still known to the driver as well: it runs the one prepared, no second PREPARE.
        assert raw.execute(query, [2], prepare=True).fetchone()[0] == 43
        assert prepared() == 1
        conn.rollback()
