"""Claim benchmark: many concurrent clients claiming from one pool on PostgreSQL.

Prints, for Guishu's claim (row lock on the rep + conditional UPDATE) and for an unsafe naive
claim (count, then UPDATE and an event row, no lock, no re-check) measured in the same run on
the same workload (the same rep and customer for every attempt): attempts, successes,
throughput, p50/p99 latency, and violations (reps over their cap; claims that took a customer
someone else already held). Then times one even distribution of 100k pool customers over 50
reps.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/guishu_bench \\
        .venv/bin/python bench/claims.py --customers 1000000 --attempts 100000 --clients 64

The default workload: 2,000 reps (cap 50, room for 100k claims) and 200k contested customers,
so most attempts succeed, about one in ten finds its customer already taken, and a few reps
reach their cap. `--reps 200 --hot 20000` gives the saturated shape (most attempts refused
at the cap). The database named in DATABASE_URL is dropped and recreated. Not a test: numbers
only.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

CAP = 50


def recreate_database(url: str) -> None:
    u = sa.engine.make_url(url)
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(sa.text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def setup(app, n_customers: int, n_reps: int):
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.models import Policy, PoolMember
    from app.security import ROLE_REP
    from app.services import bootstrap, org
    from app.services.ownership import default_pool

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dept = org.create_department("压测部")
        pool = default_pool()
        db.session.add(PoolMember(pool_id=pool.id, department_id=dept.id))
        db.session.add(Policy(scope="department", department_id=dept.id, max_customers=CAP,
                              daily_claim_limit=10**9, cooldown_days=0))
        role = appbuilder.sm.find_role(ROLE_REP)
        reps = []
        for i in range(n_reps):
            u = appbuilder.sm.add_user(f"bench{i}", "压测", str(i), f"b{i}@bench.local", role,
                                       hashed_password="x", commit=False)
            u.department_id = dept.id
            reps.append(u)
        db.session.commit()
        reps = [u.id for u in reps]
        t0 = time.perf_counter()
        # Server-side bulk load: the customer rows, their pool ownership and their events.
        db.session.execute(sa.text(
            "SET CONSTRAINTS ALL DEFERRED"))
        db.session.execute(sa.text(
            "INSERT INTO customer (id, name, customer_type, created_at, updated_at, "
            "birthday_lunar, norm_version) SELECT g, 'bench-' || g, 'company', now(), now(), "
            "false, 1 FROM generate_series(1, :n) g"), {"n": n_customers})
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, pool_id, acquired_at, acquired_how, "
            "locked, won, category) SELECT g, :pool, now(), 'created', false, false, "
            "'potential' FROM generate_series(1, :n) g"), {"n": n_customers, "pool": pool.id})
        # And the 'created' event every real customer has (ownership.place_new_customer):
        # the claim reads the event log (cooldown, daily limit), and an empty log would
        # give the planner statistics no deployment has.
        db.session.execute(sa.text(
            "INSERT INTO ownership_event (customer_id, kind, to_pool_id, reason, created_at) "
            "SELECT g, 'created', :pool, '新建客户', now() FROM generate_series(1, :n) g"),
            {"n": n_customers, "pool": pool.id})
        db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": n_customers})
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        print(f"loaded {n_customers:,} pool customers and {n_reps} reps in "
              f"{time.perf_counter() - t0:.1f} s")
        return reps, pool.id


def reused(app, n_customers: int, n_reps: int):
    """The reps and pool of an earlier setup(), checked against the sizes asked for."""
    from app.extensions import db

    with app.app_context():
        reps = db.session.execute(sa.text(
            "SELECT u.id FROM ab_user u JOIN department d ON d.id = u.department_id "
            "WHERE d.name = '压测部' ORDER BY u.id")).scalars().all()
        pool_id = db.session.execute(sa.text(
            "SELECT m.pool_id FROM pool_member m JOIN department d ON d.id = m.department_id "
            "WHERE d.name = '压测部'")).scalar()
        customers = db.session.execute(sa.text("SELECT count(*) FROM customer")).scalar()
        db.session.remove()
    if len(reps) != n_reps or customers != n_customers or pool_id is None:
        sys.exit(f"--reuse: the database holds {customers:,} customers and {len(reps)} bench "
                 f"reps, not {n_customers:,} and {n_reps}; run without --reuse")
    return reps, pool_id


def naive_claim(conn, rep_id: int, customer_id: int) -> bool:
    """What a CRM without care does: count, compare, then take it and log it (no lock, no
    re-check that the customer is still in the pool)."""
    have = conn.execute(NAIVE_COUNT, {"r": rep_id}).scalar()
    if have >= CAP:
        conn.commit()
        return False
    conn.execute(NAIVE_TAKE, {"r": rep_id, "c": customer_id})
    conn.execute(NAIVE_EVENT, {"r": rep_id, "c": customer_id})
    conn.commit()
    return True


NAIVE_COUNT = sa.text("SELECT count(*) FROM customer_ownership "
                      "WHERE owner_id = :r AND won = false AND locked = false")
NAIVE_TAKE = sa.text("UPDATE customer_ownership SET owner_id = :r, pool_id = NULL "
                     "WHERE customer_id = :c")
NAIVE_EVENT = sa.text("INSERT INTO ownership_event (customer_id, kind, to_owner_id, actor_id, "
                      "reason, created_at) VALUES (:c, 'claimed', :r, :r, '领取', now())")


def run(label, worker, n_clients, attempts, hot_ids, reps):
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    per_client = attempts // n_clients

    def client(seed):
        rnd = random.Random(seed)
        local_lat, local_out = [], {}
        state = worker.start()
        try:
            for _ in range(per_client):
                rep = reps[rnd.randrange(len(reps))]
                cid = hot_ids[rnd.randrange(len(hot_ids))]
                t = time.perf_counter()
                outcome = worker.claim(state, rep, cid)
                local_lat.append(time.perf_counter() - t)
                local_out[outcome] = local_out.get(outcome, 0) + 1
        finally:
            worker.stop(state)
        with lock:
            latencies.extend(local_lat)
            for k, v in local_out.items():
                outcomes[k] = outcomes.get(k, 0) + v

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)
    return {"label": label, "attempts": n, "wall": wall, "throughput": n / wall,
            "p50_ms": latencies[n // 2] * 1000, "p99_ms": latencies[int(n * 0.99)] * 1000,
            "outcomes": outcomes}


class GuishuWorker:
    """Calls the real service, as a request would: one app context and session per client,
    the signed-in user already loaded (with roles) the way Flask-Login hands it over."""

    def __init__(self, app, users: dict):
        self.app = app
        self.users = users

    def start(self):
        ctx = self.app.app_context()
        ctx.push()
        from app.extensions import db

        return {"ctx": ctx, "db": db}

    def claim(self, state, rep_id, customer_id):
        from app.services import pool
        from app.services.errors import GuishuError

        try:
            pool.claim_from_pool(self.users[rep_id], [customer_id])
            return "claimed"
        except GuishuError as exc:
            return exc.code

    def stop(self, state):
        state["db"].session.remove()
        state["ctx"].pop()


def load_users(app, rep_ids) -> dict:
    """Each rep with its roles loaded, detached: a request loads its user once; keeping 2,000
    users in one long-lived session would make every commit expire all of them, a cost no
    request pays."""
    from sqlalchemy.orm import selectinload

    from app.extensions import db
    from app.models import User

    with app.app_context():
        users = db.session.execute(sa.select(User).options(selectinload(User.roles))
                                   .where(User.id.in_(rep_ids))).scalars().all()
        db.session.expunge_all()
        db.session.remove()
    return {u.id: u for u in users}


class NaiveWorker:
    def __init__(self, engine):
        self.engine = engine

    def start(self):
        return self.engine.connect()

    def claim(self, conn, rep_id, customer_id):
        return "claimed" if naive_claim(conn, rep_id, customer_id) else "cap"

    def stop(self, conn):
        conn.close()


def violations(engine, claimed: int) -> tuple[int, int]:
    """(reps over the cap, claims that took a customer someone else held). Every run starts
    from an empty pool, so each successful claim should have left exactly one owned
    customer; fewer owned customers than successes means some claims overwrote an owner."""
    with engine.connect() as c:
        over = c.execute(sa.text(
            "SELECT count(*) FROM (SELECT owner_id FROM customer_ownership WHERE owner_id IS NOT "
            "NULL AND won = false AND locked = false GROUP BY owner_id HAVING count(*) > :cap) x"),
            {"cap": CAP}).scalar()
        owned = c.execute(sa.text(
            "SELECT count(*) FROM customer_ownership WHERE owner_id IS NOT NULL")).scalar()
    return over, claimed - owned


def reset_pool(engine, pool_id):
    """Every customer back in the pool and the event log emptied, then VACUUM ANALYZE, so each
    run starts from the same table state."""
    with engine.begin() as c:
        c.execute(sa.text("UPDATE customer_ownership SET owner_id = NULL, pool_id = :p "
                          "WHERE owner_id IS NOT NULL"), {"p": pool_id})
        c.execute(sa.text("DELETE FROM ownership_event WHERE kind <> 'created'"))
        tallied = sa.inspect(c).has_table("owner_tally")
        if tallied:
            # Nobody holds anything now, and the owner tally (migration 0047) says so: a
            # zero base row per rep, as a deployment's every-minute fold leaves one for each
            # owner who ever held a customer, and no change rows.
            c.execute(sa.text("DELETE FROM owner_tally"))
            c.execute(sa.text(
                "INSERT INTO owner_tally (owner_id, base, held, locked, won, unlocked_unwon, "
                "fresh) SELECT id, true, 0, 0, 0, 0, 0 FROM ab_user"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        if tallied:
            c.execute(sa.text("VACUUM ANALYZE owner_tally"))
        c.execute(sa.text("VACUUM ANALYZE customer_ownership"))
        c.execute(sa.text("VACUUM ANALYZE ownership_event"))
        c.execute(sa.text("VACUUM ANALYZE ab_user"))


def print_result(r, over, stolen):
    print(f"  {r['label']:<28} attempts {r['attempts']:>7,}  claimed {r['outcomes'].get('claimed', 0):>6,}"
          f"  {r['throughput']:>7.0f}/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
          f"  violations: {over} reps over cap, {stolen} taken from another owner;  refusals: "
          + (", ".join(f"{k}={v}" for k, v in sorted(r["outcomes"].items()) if k != "claimed")
             or "none"))


def claim_runs(app, engine, args, reps, pool_id):
    """The naive claim, then Guishu's, on the same attempts; prints both and the ratio."""
    hot = random.Random(1).sample(range(1, args.customers + 1), args.hot)
    reset_pool(engine, pool_id)  # a reused database holds the last run's claims
    print(f"{args.clients} clients, {args.attempts:,} attempts each run, {len(reps)} reps "
          f"(cap {CAP}), {args.hot:,} contested customers")
    naive = run("naive count-then-update", NaiveWorker(engine), args.clients, args.attempts,
                hot, reps)
    over_naive, stolen_naive = violations(engine, naive["outcomes"].get("claimed", 0))
    print_result(naive, over_naive, stolen_naive)
    reset_pool(engine, pool_id)
    engine.dispose()  # its idle connections would count against max_connections

    ours = run("guishu claim_from_pool", GuishuWorker(app, load_users(app, reps)), args.clients,
               args.attempts, hot, reps)
    over_ours, stolen_ours = violations(engine, ours["outcomes"].get("claimed", 0))
    print_result(ours, over_ours, stolen_ours)
    print(f"  throughput ratio guishu/naive: {ours['throughput'] / naive['throughput']:.2f} "
          f"(target >= 0.6); violations: guishu {over_ours + stolen_ours}, "
          f"naive {over_naive + stolen_naive}")


def distribution_run(app, engine, reps, pool_id, n_customers):
    """One even distribution of up to 100k pool customers over 50 reps with room for them."""
    reset_pool(engine, pool_id)
    engine.dispose()
    with app.app_context():
        from app.extensions import db
        from app.models import Policy, User
        from app.services import assignment

        db.session.execute(sa.update(Policy).where(Policy.scope == "department")
                           .values(max_customers=10_000))
        db.session.commit()
        admin = db.session.execute(sa.select(User).where(User.username == "admin")).scalar_one_or_none()
        if admin is None:
            from app.services import bootstrap

            admin = bootstrap.create_admin("admin", "bench-admin")
        n = min(100_000, n_customers)
        ids = list(range(1, n + 1))
        t0 = time.perf_counter()
        plan = assignment.distribute(admin, ids, reps[:50], dry_run=False,
                                     limit=assignment.MAX_DISTRIBUTE)
        wall = time.perf_counter() - t0
        counts = [len(line.customer_ids) for line in plan.lines]
    with engine.connect() as c:
        owned = c.execute(sa.text("SELECT count(*) FROM customer_ownership WHERE owner_id IS NOT "
                                  "NULL")).scalar()
        events = c.execute(sa.text("SELECT count(*) FROM ownership_event WHERE kind = "
                                   "'assigned'")).scalar()
    print(f"  even distribution: {sum(counts):,} customers over {len(counts)} reps in "
          f"{wall:.1f} s (target <= 10 s); per rep {min(counts):,}-{max(counts):,}; "
          f"owned after {owned:,}, events {events:,}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--attempts", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2_000)
    ap.add_argument("--hot", type=int, default=200_000, help="customers the clients fight over")
    ap.add_argument("--skip-distribution", action="store_true", help="only the claims")
    ap.add_argument("--skip-claims", action="store_true", help="only the distribution")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the database of an earlier run (same --customers and --reps) "
                         "instead of recreating it; each run starts from an empty pool anyway")
    args = ap.parse_args()
    args.hot = min(args.hot, args.customers)
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/guishu_bench")
    if not args.reuse:
        recreate_database(url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app(SQLALCHEMY_ENGINE_OPTIONS={"pool_size": args.clients + 4,
                                                "max_overflow": 8})
    if args.reuse:
        reps, pool_id = reused(app, args.customers, args.reps)
        with app.app_context():  # the distribution run raised the cap
            from app.extensions import db
            from app.models import Policy

            db.session.execute(sa.update(Policy).where(Policy.scope == "department")
                               .values(max_customers=CAP))
            db.session.commit()
            db.session.remove()
    else:
        reps, pool_id = setup(app, args.customers, args.reps)
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=args.clients + 4)
    if not args.skip_claims:
        claim_runs(app, engine, args, reps, pool_id)
    if not args.skip_distribution:
        distribution_run(app, engine, reps, pool_id, args.customers)


if __name__ == "__main__":
    main()
