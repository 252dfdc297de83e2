"""The reclaim sweep (回收): exactly the due customers (boundary days included), locked, won and
followed-up customers spared, one event each, per-owner policies, a second run changes
nothing, a claim or follow-up landing meanwhile is kept, and the real worker runs it."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, update

from app.models import Notification, Ownership, OwnershipEvent, Policy, Pool
from app.models.customer import utcnow
from app.services import customers, pool, reclaim
from app.services.ownership import snapshot
from tests.helpers import holder_of

NOW = dt.datetime(2026, 11, 23, 12, 0)
DAY = dt.timedelta(days=1)


def make_owned(db, org, owner, name, acquired_days_ago, followup_days_ago=None, **flags):
    c = customers.create_customer(owner, {"name": name})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id).values(
        acquired_at=NOW - acquired_days_ago * DAY,
        last_followup_at=(NOW - followup_days_ago * DAY) if followup_days_ago is not None
        else None, **flags))
    db.session.commit()
    return c.id


@pytest.fixture
def book(db, org):
    """rep1's customers around the global thresholds (30 days no follow-up, 90 no deal)."""
    db.session.execute(update(Ownership).where(Ownership.owner_id.is_not(None))
                       .values(acquired_at=NOW - DAY))  # the org fixture's customers: fresh
    db.session.commit()
    ids = {
        "exactly_30": make_owned(db, org, org.rep, "刚好30天", 30),
        "over_30": make_owned(db, org, org.rep, "31天未跟进", 31),
        "followed": make_owned(db, org, org.rep, "10天前跟进", 60, followup_days_ago=10),
        "stale_followup": make_owned(db, org, org.rep, "40天前跟进", 60, followup_days_ago=40),
        "no_deal": make_owned(db, org, org.rep, "91天未成交", 91, followup_days_ago=2),
        "deal_boundary": make_owned(db, org, org.rep, "刚好90天", 90, followup_days_ago=2),
        "locked": make_owned(db, org, org.rep, "锁定客户", 200, locked=True),
        "won": make_owned(db, org, org.rep, "已成交", 200, won=True),
    }
    return ids


DUE = {"over_30", "stale_followup", "no_deal"}


def test_dry_run_lists_exactly_the_due_with_rule_and_changes_nothing(db, org, book):
    result = reclaim.sweep(dry_run=True, now=NOW)
    due = {r["customer_id"]: r for r in result.due}
    assert set(due) == {book[k] for k in DUE}
    assert (due[book["over_30"]]["rule"], due[book["over_30"]]["days"]) == ("no_followup", 30)
    assert (due[book["no_deal"]]["rule"], due[book["no_deal"]]["days"]) == ("no_deal", 90)
    assert due[book["no_deal"]]["reason"] == "领取后超过 90 天未成交，自动回收"
    assert all(holder_of(db, i)[0] == org.rep.id for i in book.values())


def test_sweep_reclaims_the_due_once_with_events_and_cooldown(db, org, book):
    result = reclaim.sweep(now=NOW)
    assert result.reclaimed == 3 and dict(result.by_rule) == {"no_followup": 2, "no_deal": 1}
    for key, cid in book.items():
        expected = (None, org.pool.id) if key in DUE else (org.rep.id, None)
        assert holder_of(db, cid) == expected, key
    events = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.kind == "reclaimed")).scalars().all()
    assert sorted(e.customer_id for e in events) == sorted(book[k] for k in DUE)
    ev = next(e for e in events if e.customer_id == book["over_30"])
    assert (ev.from_owner_id, ev.to_pool_id, ev.rule, ev.reason) == (
        org.rep.id, org.pool.id, "reclaim:no_followup:30d", "超过 30 天未跟进，自动回收")
    row = snapshot([book["over_30"]])[book["over_30"]]
    assert row.previous_owner_id == org.rep.id and row.released_at == NOW
    # The owner and their manager hear about it once, with the count.
    notes = db.session.execute(select(Notification.user_id, Notification.title)).all()
    assert (org.rep.id, "3 个客户已被自动回收到公海") in notes
    assert (org.manager.id, "rep1 的 3 个客户已被自动回收到公海") in notes
    # A second run changes nothing and writes nothing.
    again = reclaim.sweep(now=NOW)
    assert again.reclaimed == 0
    assert len(db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.kind == "reclaimed")).all()) == 3


def test_previous_owner_cannot_claim_back_during_cooldown(db, org, book):
    from app.models import PoolMember
    from app.services.errors import InCooldown

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    reclaim.sweep(now=NOW)
    with pytest.raises(InCooldown):
        pool.claim_from_pool(org.rep, [book["over_30"]])


def test_owner_policy_overrides_apply(db, org, book):
    # rep1's own policy: 45 days without follow-up; the 31- and 40-day ones are spared.
    db.session.add(Policy(scope="user", user_id=org.rep.id, reclaim_no_followup_days=45))
    # rep2's department default is stricter: 5 days.
    db.session.add(Policy(scope="department", department_id=org.east.id,
                          reclaim_no_followup_days=5))
    db.session.commit()
    c2 = make_owned(db, org, org.rep2, "rep2 六天未跟进", 6)
    result = reclaim.sweep(now=NOW)
    assert holder_of(db, book["over_30"]) == (org.rep.id, None)
    assert holder_of(db, book["no_deal"]) == (None, org.pool.id)
    assert holder_of(db, c2) == (None, org.pool.id)
    assert result.reclaimed == 2


def test_each_customer_returns_to_the_pool_it_was_claimed_from(db, org):
    from app.models import PoolMember

    south, west = Pool(name="华南公海"), Pool(name="西部公海")
    db.session.add_all([south, west])
    db.session.flush()
    for p in (south, west, org.pool):
        db.session.add(PoolMember(pool_id=p.id, department_id=org.east.id))
    db.session.commit()
    taken = {}
    for p in (south, west, org.pool, south):
        c = customers.create_customer(org.staff, {"name": f"{p.name}客户{len(taken)}"},
                                      pool_id=p.id)
        pool.claim_from_pool(org.rep, [c.id])
        taken[c.id] = p.id
    created_by_rep = customers.create_customer(org.rep, {"name": "自建客户"}).id  # no pool yet
    db.session.execute(update(Ownership).where(Ownership.owner_id == org.rep.id)
                       .values(acquired_at=NOW - 100 * DAY))
    db.session.commit()
    reclaim.sweep(now=NOW)
    for cid, pool_id in taken.items():
        assert holder_of(db, cid) == (None, pool_id)
    assert holder_of(db, created_by_rep) == (None, org.pool.id)  # the default pool


def test_followup_landing_before_the_update_is_kept(db, org, book, monkeypatch):
    """The predicate is checked again inside the UPDATE: a follow-up logged between the
    sweep's SELECT and its UPDATE keeps the customer with its owner."""
    original = reclaim._lock_sweep
    state = {"done": False}

    def follow_up_meanwhile():
        original()
        if not state["done"]:
            state["done"] = True
            db.session.execute(update(Ownership).where(
                Ownership.customer_id == book["over_30"]).values(last_followup_at=NOW))
    monkeypatch.setattr(reclaim, "_lock_sweep", follow_up_meanwhile)
    result = reclaim.sweep(now=NOW)
    assert holder_of(db, book["over_30"]) == (org.rep.id, None)
    assert result.reclaimed == 2


@pytest.mark.real_db  # two sweeps in two threads, each with its own connection
def test_two_sweeps_at_once_reclaim_each_customer_once(app, db, org, book):
    errors, results = [], []

    def run():
        with app.app_context():
            from app.extensions import db as tdb
            try:
                results.append(reclaim.sweep(now=NOW).reclaimed)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == [0, 3]
    events = db.session.execute(select(OwnershipEvent.customer_id).where(
        OwnershipEvent.kind == "reclaimed")).scalars().all()
    assert sorted(events) == sorted(book[k] for k in DUE)


def test_cli_dry_run_prints_what_and_why(app, db, org, book):
    from app.cli import crm_cli

    db.session.execute(update(Ownership).where(Ownership.customer_id == book["over_30"])
                       .values(acquired_at=utcnow() - 31 * DAY))
    db.session.commit()
    out = app.test_cli_runner().invoke(crm_cli, ["sweep", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert f"customer {book['over_30']}" in out.output and "超过 30 天未跟进" in out.output
    assert holder_of(db, book["over_30"]) == (org.rep.id, None)
    out = app.test_cli_runner().invoke(crm_cli, ["sweep"])
    assert "customers reclaimed" in out.output
    assert holder_of(db, book["over_30"]) == (None, org.pool.id)


def test_worker_runs_the_sweep(app, db, org, redis_url, database_url):
    from app.queue import get_queue
    from jobs.ownership import reclaim_sweep
    from tests.test_jobs import run_burst_worker

    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    cid = make_owned(db, org, org.rep, "过期客户", 0)
    db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                       .values(acquired_at=utcnow() - 200 * DAY))
    db.session.commit()
    queue = "test-sweep"
    job = get_queue(queue).enqueue(reclaim_sweep)
    result = run_burst_worker(redis_url, database_url, queue)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert job.return_value()["reclaimed"] == 1
    assert holder_of(db, cid) == (None, org.pool.id)


def test_warnings_go_once_per_customer_and_cycle(db, org, book):
    from app.models import ReclaimWarning

    # warn_before is 3 days (global): 27-29 days without follow-up are about to go.
    soon = make_owned(db, org, org.rep, "28天未跟进", 28)
    later = make_owned(db, org, org.rep, "20天未跟进", 20)
    # Due within 3 days, not yet due: 28 days idle, and the two sitting exactly on a deadline.
    assert reclaim.warn(now=NOW) == 3
    warned = {w.customer_id: w for w in db.session.execute(select(ReclaimWarning)).scalars()}
    assert set(warned) == {soon, book["exactly_30"], book["deal_boundary"]}
    assert warned[book["deal_boundary"]].rule == "no_deal"
    assert warned[soon].due_at == NOW + 2 * DAY and warned[soon].rule == "no_followup"
    assert later not in warned and book["over_30"] not in warned  # not yet / already due
    note = db.session.execute(select(Notification).where(
        Notification.kind == "reclaim_warning", Notification.link == f"/customers/show/{soon}")
    ).scalar_one()
    assert note.user_id == org.rep.id
    assert note.title == f"客户「28天未跟进」将于 {(NOW + 2 * DAY):%Y-%m-%d} 被自动回收"
    # The next day's run sends nothing new for the same cycle.
    assert reclaim.warn(now=NOW + DAY) == 0
    # A follow-up starts a new cycle: warned again when that one nears its end.
    db.session.execute(update(Ownership).where(Ownership.customer_id == soon)
                       .values(last_followup_at=NOW))
    db.session.commit()
    assert reclaim.warn(now=NOW + 28 * DAY) >= 1
    assert len(db.session.execute(select(ReclaimWarning).where(
        ReclaimWarning.customer_id == soon)).all()) == 2


def test_a_claim_landing_during_the_sweep_is_kept(db, org, book, monkeypatch):
    """Chunks of one customer: after the first is reclaimed, rep2 claims it back from the
    pool while the sweep goes on; the later chunks neither overwrite nor log it again."""
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    first = sorted(book[k] for k in DUE)[0]
    original, calls = reclaim._lock_sweep, {"n": 0}

    def claim_meanwhile():
        calls["n"] += 1
        if calls["n"] == 2:  # the first chunk has been committed
            from app.models import User

            pool.claim_from_pool(db.session.get(User, org.rep2.id), [first])
        original()
    monkeypatch.setattr(reclaim, "_lock_sweep", claim_meanwhile)
    result = reclaim.sweep(now=NOW, chunk=1)
    assert result.reclaimed == 3 and calls["n"] >= 3
    assert holder_of(db, first) == (org.rep2.id, None)
    kinds = db.session.execute(select(OwnershipEvent.kind).where(
        OwnershipEvent.customer_id == first).order_by(OwnershipEvent.id)).scalars().all()
    assert kinds == ["created", "reclaimed", "claimed"]
