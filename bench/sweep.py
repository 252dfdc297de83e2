"""Reclaim sweep benchmark: N owned customers, about 45 % due, on PostgreSQL or SQLite, under
segment policies (issue 15): grade-A customers 180 / 365 days (global + segment), the bench
department's 硬件 product line 60 days (department + segment), one rep 20 days (user), web
leads 15 days (a lead segment the customer sweep must skip), the global plain 30 / 90.

Prints, measured in the same run on the same rows: a bare UPDATE of exactly the due rows
with one fixed period (rolled back), the real sweep (app.services.reclaim.sweep: periods
resolved per row from the policies, chunks, predicate re-checked, one event per customer),
their ratio, and the p99 of claims running while the sweep runs.

    .venv/bin/python bench/sweep.py --customers 1000000                     # PostgreSQL
    .venv/bin/python bench/sweep.py --customers 1000000 --sqlite /tmp/sweep.db
    .venv/bin/python bench/sweep.py --customers 1000000 --reuse   # PostgreSQL, from the copy

The PostgreSQL database in DATABASE_URL (default guishu_bench_sweep) is dropped and
recreated; the SQLite file is replaced. On PostgreSQL the freshly loaded database is also
kept as a template (<name>_seed), so that --reuse starts the next run from an identical copy
in seconds instead of loading the rows again (the sweep changes them). Not a test: numbers
only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from claims import recreate_database  # noqa: E402

REPS = 1000
CLAIM_POOL = 20_000  # pool customers the concurrent claimers take from


def series(dialect: str, n: int) -> str:
    """A FROM clause yielding g = 1..n."""
    if dialect == "postgresql":
        return f"generate_series(1, {n}) g"
    return (f"(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) "
            f"SELECT g FROM s)")


def setup(app, n_customers: int):
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.models import Policy, PoolMember
    from app.security import ROLE_REP
    from app.services import bootstrap, org
    from app.services.ownership import default_pool

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dialect = db.engine.dialect.name
        dept = org.create_department("压测部")
        pool = default_pool()
        db.session.add(PoolMember(pool_id=pool.id, department_id=dept.id))
        # The department sets the caps only: the periods come from the global 30 / 90 (a
        # department's own period would come before the global grade-A segment).
        db.session.add(Policy(scope="department", department_id=dept.id, max_customers=10**9,
                              daily_claim_limit=10**9, cooldown_days=0))
        db.session.add_all([
            Policy(scope="global", segment_grade="A", segment_key="grade=A",
                   reclaim_no_followup_days=180, reclaim_no_deal_days=365),
            Policy(scope="department", department_id=dept.id, segment_product_line="硬件",
                   segment_key="product_line=硬件", reclaim_no_followup_days=60),
            Policy(scope="global", segment_record_type="lead", segment_source="web_form",
                   segment_key="record_type=lead;source=web_form",
                   lead_reclaim_no_followup_days=15)])
        role = appbuilder.sm.find_role(ROLE_REP)
        users = []
        for i in range(REPS):
            u = appbuilder.sm.add_user(f"sweep{i}", "压测", str(i), f"s{i}@bench.local", role,
                                       hashed_password="x", commit=False)
            u.department_id = dept.id
            users.append(u)
        db.session.commit()
        first_rep = min(u.id for u in users)
        # A user policy: the first rep's customers go after 20 days.
        db.session.add(Policy(scope="user", user_id=first_rep, reclaim_no_followup_days=20))
        db.session.commit()
        t0 = time.perf_counter()
        total = n_customers + CLAIM_POOL
        if dialect == "postgresql":
            db.session.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
        now = dt.datetime.utcnow()
        db.session.execute(sa.text(
            "INSERT INTO customer (id, name, customer_type, created_at, updated_at, "
            "birthday_lunar, norm_version, product_line) SELECT g, 'sweep-' || g, 'company', "
            ":now, :now, false, 1, CASE WHEN g % 7 = 0 AND g % 10 <> 2 THEN '硬件' ELSE '软件' END "
            f"FROM {series(dialect, total)}"), {"now": now})
        # Owned: every second customer acquired 100 days ago (due by both rules, unless grade
        # A: g % 10 = 2, 180 / 365 days; never 硬件 nor the 20-day rep's, whose policies
        # would come first), the rest 5 days ago (due for none, the 20-day rep included); then
        # CLAIM_POOL customers in the pool for the concurrent claimers.
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, owner_id, acquired_at, acquired_how, "
            "locked, won, category, grade) SELECT g, :rep0 + (g % :reps), "
            "CASE WHEN g % 2 = 0 THEN :old ELSE :recent END, 'created', false, false, "
            "'potential', CASE WHEN g % 10 = 2 THEN 'A' WHEN g % 3 = 0 THEN 'B' ELSE 'C' END "
            f"FROM {series(dialect, n_customers)}"),
            {"rep0": first_rep, "reps": REPS, "old": now - dt.timedelta(days=100),
             "recent": now - dt.timedelta(days=5)})
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, pool_id, acquired_at, acquired_how, "
            "locked, won, category) SELECT g + :n, :pool, :now, 'created', false, false, "
            f"'potential' FROM {series(dialect, CLAIM_POOL)}"),
            {"n": n_customers, "pool": pool.id, "now": now})
        # Opportunities (issue 15): every 10th customer has one. Where g % 20 = 0 (due by
        # age) it is open at 方案报价, a stage that protects from reclaim, and was updated
        # yesterday: the customer stays (the bare UPDATE leaves those out by hand). Where
        # g % 20 = 10 it sits at 初步接洽 (protects nothing): the customer goes.
        stages = dict(db.session.execute(sa.text(
            "SELECT name, id FROM opportunity_stage")).all())
        db.session.execute(sa.text(
            "INSERT INTO opportunity (customer_id, title, amount, stage_id, status, "
            "created_at, updated_at) SELECT g, 'bench-' || g, 10000, "
            "CASE WHEN g % 20 = 0 THEN :protects ELSE :early END, 'open', :then, :yesterday "
            f"FROM {series(dialect, n_customers)} WHERE g % 10 = 0"),
            {"protects": stages["方案报价"], "early": stages["初步接洽"],
             "then": now - dt.timedelta(days=90), "yesterday": now - dt.timedelta(days=1)})
        if dialect == "postgresql":
            db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": total})
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        print(f"loaded {n_customers:,} owned customers (about {n_customers * 35 // 100:,} "
              f"due), {n_customers // 10:,} opportunities and "
              f"{CLAIM_POOL:,} pool customers over {REPS} reps in "
              f"{time.perf_counter() - t0:.1f} s")
        return [u.id for u in users], pool.id


def copy_database(url: str, seed: str, into: bool, customers: int) -> bool:
    """into=False: keep the database as the template `seed` (its comment holds the customer
    count); into=True: recreate the database from `seed` if it holds `customers`."""
    u = sa.engine.make_url(url)
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if into:
                held = c.execute(sa.text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :d"), {"d": seed}).scalar()
                if held != str(customers):
                    return False
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
                c.execute(sa.text(f'CREATE DATABASE "{u.database}" TEMPLATE "{seed}"'))
            else:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{seed}" WITH (FORCE)'))
                c.execute(sa.text(f'CREATE DATABASE "{seed}" TEMPLATE "{u.database}"'))
                c.execute(sa.text(f"COMMENT ON DATABASE \"{seed}\" IS '{customers}'"))
        return True
    finally:
        admin.dispose()


def reused(app) -> tuple[list[int], int]:
    """The reps and the default pool of a database copied from the seed."""
    from app.extensions import db
    from app.models import User
    from app.services.ownership import default_pool

    with app.app_context():
        reps = list(db.session.execute(sa.select(User.id).where(User.username.like("sweep%"))
                                       .order_by(User.id)).scalars())
        pool_id = default_pool().id
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        return reps, pool_id


def bare_update(app, pool_id: int) -> tuple[float, int]:
    """The same rows, one plain UPDATE with one fixed period and no chunks, checks, policy
    resolution or events (the grade-A rows, kept by their segment policy, and the customers an
    opportunity protects, left out by hand so that both move the same rows); rolled back."""
    from app.extensions import db

    with app.app_context():
        cut = dt.datetime.utcnow() - dt.timedelta(days=30)
        t0 = time.perf_counter()
        n = db.session.execute(sa.text(
            "UPDATE customer_ownership SET owner_id = NULL, pool_id = :pool, "
            "previous_owner_id = owner_id, released_at = :now WHERE owner_id IS NOT NULL "
            "AND locked = false AND won = false AND acquired_at < :cut AND grade <> 'A' "
            "AND customer_id % 20 <> 0"),
            {"pool": pool_id, "now": dt.datetime.utcnow(), "cut": cut}).rowcount
        elapsed = time.perf_counter() - t0
        db.session.rollback()
        return elapsed, n


def vacuum(app) -> None:
    """Clear what the rolled-back bare UPDATE left behind (a dead version of every due row and
    its index entries), so the sweep starts from the same clean table the bare UPDATE had."""
    from app.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE customer_ownership"))


def claims_during(app, reps, pool_ids, stop, latencies: list) -> None:
    """One client claiming pool customers one at a time until the sweep ends."""
    from app.extensions import db
    from app.models import User
    from app.services import pool
    from app.services.errors import GuishuError

    with app.app_context():
        users = {u.id: u for u in db.session.execute(
            sa.select(User).where(User.id.in_(reps))).scalars()}
        for u in users.values():
            _ = u.roles  # loaded, as Flask-Login hands the user over
        i = 0
        while not stop.is_set() and i < len(pool_ids):
            rep = users[reps[i % len(reps)]]
            t = time.perf_counter()
            try:
                pool.claim_from_pool(rep, [pool_ids[i]])
            except GuishuError:
                pass
            latencies.append(time.perf_counter() - t)
            i += 1
        db.session.remove()


def claimer(url, reps, pool_ids, stop, ready, results) -> None:
    """A claimer process: its own app and connection pool, like a gunicorn worker."""
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    ready.wait()
    latencies: list[float] = []
    claims_during(app, reps, pool_ids, stop, latencies)
    results.put(latencies)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--sqlite", help="SQLite file to use instead of PostgreSQL")
    ap.add_argument("--claimers", type=int, default=4)
    ap.add_argument("--reuse", action="store_true",
                    help="PostgreSQL: start from the copy the last load of the same "
                         "--customers kept, instead of loading the rows again")
    args = ap.parse_args()
    if args.sqlite:
        Path(args.sqlite).unlink(missing_ok=True)
        url = f"sqlite:///{args.sqlite}"
    else:
        url = os.environ.get("DATABASE_URL",
                             "postgresql://postgres@127.0.0.1:5432/guishu_bench_sweep")
        if not (args.reuse and copy_database(url, f"{sa.engine.make_url(url).database}_seed",
                                             into=True, customers=args.customers)):
            args.reuse = False
            recreate_database(url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    if args.reuse:
        reps, pool_id = reused(app)
        print(f"reused the loaded copy of {args.customers:,} owned customers")
    else:
        reps, pool_id = setup(app, args.customers)
        if not args.sqlite:
            from app.extensions import db

            with app.app_context():
                db.engine.dispose()
            copy_database(url, f"{sa.engine.make_url(url).database}_seed", into=False,
                          customers=args.customers)
    bare, n_bare = bare_update(app, pool_id)
    print(f"  bare UPDATE of the due rows:     {n_bare:,} rows in {bare:.2f} s "
          f"(rolled back)")
    vacuum(app)

    pool_ids = list(range(args.customers + 1, args.customers + CLAIM_POOL + 1))
    from app.extensions import db
    from app.models import OwnershipEvent
    from app.services import reclaim

    if args.claimers:
        alone = run_claimers(url, reps, pool_ids[:CLAIM_POOL // 2], args.claimers,
                             lambda: time.sleep(BASELINE_SECONDS))
        print(f"  claims alone (baseline):         {len(alone):,} by {args.claimers} clients "
              f"in {BASELINE_SECONDS} s, p50 {pct(alone, 50):.1f} ms, p99 {pct(alone, 99):.1f} ms")
    swept = {}

    def run_sweep():
        with app.app_context():
            t0 = time.perf_counter()
            swept["result"] = reclaim.sweep()
            swept["elapsed"] = time.perf_counter() - t0

    during = run_claimers(url, reps, pool_ids[CLAIM_POOL // 2:], args.claimers, run_sweep)
    with app.app_context():
        events = db.session.execute(sa.select(sa.func.count()).select_from(OwnershipEvent)
                                    .where(OwnershipEvent.kind == "reclaimed")).scalar()
    elapsed = swept["elapsed"]
    print(f"  guishu sweep (chunks + events):  {swept['result'].reclaimed:,} reclaimed, "
          f"{events:,} events in {elapsed:.2f} s (target <= 5 s on PostgreSQL)"
          + (f", with {args.claimers} claimers running" if args.claimers else ""))
    print(f"  ratio sweep / bare UPDATE:       {elapsed / bare:.2f}x (target <= 2.5x)")
    if swept["result"].reclaimed != n_bare:
        print(f"  MISMATCH: the sweep moved {swept['result'].reclaimed:,} rows, the bare "
              f"UPDATE {n_bare:,}")
    if args.claimers:
        print(f"  claims during the sweep:         {len(during):,} by {args.claimers} clients, "
              f"p50 {pct(during, 50):.1f} ms, p99 {pct(during, 99):.1f} ms (target <= 50 ms)")


BASELINE_SECONDS = 15


def pct(latencies: list[float], p: int) -> float:
    data = sorted(latencies)
    return data[min(int(len(data) * p / 100), len(data) - 1)] * 1000 if data else float("nan")


def run_claimers(url, reps, pool_ids, n: int, while_running) -> list[float]:
    """Start n claimer processes, run `while_running()`, stop them; their claim latencies.
    Processes, as web workers are: in the sweep's own process they would measure the GIL."""
    if not n:
        while_running()
        return []
    ctx = multiprocessing.get_context("spawn")
    stop, results, ready = ctx.Event(), ctx.Queue(), ctx.Barrier(n + 1)
    share = len(pool_ids) // n
    procs = [ctx.Process(target=claimer, args=(
        url, reps[k::n][:50], pool_ids[k * share:(k + 1) * share], stop, ready, results))
        for k in range(n)]
    for p in procs:
        p.start()
    ready.wait()
    time.sleep(1.0)  # past the first, slower claims of each process
    while_running()
    stop.set()
    latencies = [x for _ in procs for x in results.get()]
    for p in procs:
        p.join()
    return latencies


if __name__ == "__main__":
    main()
