"""Pipeline benchmark: the kanban and the pipeline sums at 100k opportunities on PostgreSQL.

Loads REPS reps under one manager, N/2 owned customers and N opportunities spread over every
stage (open ones through their customer's owner, closed ones with their closing owner, closed
within the kanban's window), then prints p50 / p95 over many runs, measured in the same run:

- a rep's kanban (app.services.opportunities.kanban: the grouped sums, then the cards of
  each column) and the manager's team kanban (every rep);
- the pipeline sums alone (opportunities.pipeline_sums) for a rep and for the team;
- the bare-query baseline: the same grouped sum as one hand-written SQL statement on a raw
  connection (no ORM, no scope, no cards).

    .venv/bin/python bench/pipeline.py --opportunities 100000

The database in DATABASE_URL (default guishu_bench_pipeline) is dropped and recreated. Target:
p95 ≤ 100 ms. Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from claims import recreate_database  # noqa: E402

REPS = 200


def setup(app, n_opps: int):
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.security import ROLE_ADMIN, ROLE_MANAGER, ROLE_REP
    from app.services import bootstrap, opportunities, org

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dept = org.create_department("压测销售部")
        manager = appbuilder.sm.add_user("pipe_mgr", "压测", "经理", "m@bench.local",
                                         appbuilder.sm.find_role(ROLE_MANAGER),
                                         hashed_password="x")
        manager.department_id = dept.id
        appbuilder.sm.add_user("pipe_admin", "压测", "管理员", "a@bench.local",
                               appbuilder.sm.find_role(ROLE_ADMIN), hashed_password="x")
        role = appbuilder.sm.find_role(ROLE_REP)
        reps = []
        for i in range(REPS):
            u = appbuilder.sm.add_user(f"pipe{i}", "压测", str(i), f"p{i}@bench.local", role,
                                       hashed_password="x", commit=False)
            u.department_id = dept.id
            u.superior_id = manager.id
            reps.append(u)
        db.session.commit()
        rep0 = min(u.id for u in reps)
        stages = opportunities.stages()
        open_ids = [s.id for s in stages if s.kind == "open"]
        won = next(s.id for s in stages if s.kind == "won")
        lost = next(s.id for s in stages if s.kind == "lost")
        n_customers = n_opps // 2
        now = dt.datetime.utcnow()
        t0 = time.perf_counter()
        db.session.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
        db.session.execute(sa.text(
            "INSERT INTO customer (id, name, customer_type, created_at, updated_at, "
            "birthday_lunar, norm_version) SELECT g, 'pipe-' || g, 'company', :now, :now, "
            f"false, 1 FROM generate_series(1, {n_customers}) g"), {"now": now})
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, owner_id, acquired_at, acquired_how, "
            "locked, won, category) SELECT g, :rep0 + (g % :reps), :now, 'created', false, "
            f"false, 'potential' FROM generate_series(1, {n_customers}) g"),
            {"rep0": rep0, "reps": REPS, "now": now})
        # Opportunity g belongs to customer (g+1)/2; one in ten won, one in ten lost, the rest
        # over the open stages; amounts 1,000 .. 500,000.
        arr = "ARRAY[" + ",".join(str(i) for i in open_ids) + "]"
        db.session.execute(sa.text(
            "INSERT INTO opportunity (id, customer_id, title, amount, stage_id, status, "
            "closed_owner_id, closed_at, loss_reason, created_at, updated_at) "
            "SELECT g, (g + 1) / 2, 'opp-' || g, 1000 + (g * 7919) % 499000, "
            f"CASE WHEN g % 10 = 0 THEN {won} WHEN g % 10 = 1 THEN {lost} "
            f"ELSE ({arr})[1 + g % {len(open_ids)}] END, "
            "CASE WHEN g % 10 = 0 THEN 'won' WHEN g % 10 = 1 THEN 'lost' ELSE 'open' END, "
            "CASE WHEN g % 10 IN (0, 1) THEN :rep0 + (((g + 1) / 2) % :reps) END, "
            "CASE WHEN g % 10 IN (0, 1) THEN :now - (g % 60) * interval '1 day' END, "
            "CASE WHEN g % 10 = 1 THEN '价格' END, :now, :now "
            f"FROM generate_series(1, {n_opps}) g"), {"rep0": rep0, "reps": REPS, "now": now})
        db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": n_customers})
        db.session.execute(sa.text("SELECT setval('opportunity_id_seq', :n)"), {"n": n_opps})
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        print(f"loaded {n_opps:,} opportunities on {n_customers:,} customers of {REPS} reps "
              f"in {time.perf_counter() - t0:.1f} s")
        return [u.id for u in reps], manager.id


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


BARE = ("SELECT o.stage_id, count(*), sum(o.amount) FROM opportunity o "
        "JOIN customer_ownership w ON w.customer_id = o.customer_id "
        "WHERE o.status = 'open' AND w.owner_id = ANY(:owners) GROUP BY o.stage_id")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--opportunities", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    url = os.environ.get("DATABASE_URL",
                         "postgresql://postgres@127.0.0.1:5432/guishu_bench_pipeline")
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    reps, manager_id = setup(app, args.opportunities)
    from app.extensions import db
    from app.models import User
    from app.services import opportunities

    engine = sa.create_engine(url)
    rng = random.Random(7)
    rows = []
    with app.test_request_context():
        manager = db.session.get(User, manager_id)
        users = {pk: db.session.get(User, pk) for pk in reps}

        def rep_kanban():
            opportunities.kanban(users[rng.choice(reps)])

        def rep_sums():
            opportunities.pipeline_sums([rng.choice(reps)])

        def team_kanban():
            opportunities.kanban(manager, team=True)

        admin = db.session.execute(sa.select(User).where(User.username == "pipe_admin")).scalar_one()

        def everyone_kanban():
            opportunities.kanban(admin, team=True)

        def team_sums():
            opportunities.pipeline_sums(sorted(reps + [manager_id]))

        with engine.connect() as conn:
            def bare_rep():
                conn.execute(sa.text(BARE), {"owners": [rng.choice(reps)]}).all()

            def bare_team():
                conn.execute(sa.text(BARE), {"owners": reps + [manager_id]}).all()

            rows.append(("bare grouped sum, one rep", *timed(bare_rep, args.runs)))
            rows.append(("bare grouped sum, team", *timed(bare_team, args.runs)))
        rows.append(("pipeline sums, one rep", *timed(rep_sums, args.runs)))
        rows.append(("pipeline sums, team", *timed(team_sums, args.runs)))
        rows.append(("kanban page query, one rep", *timed(rep_kanban, args.runs)))
        rows.append(("kanban page query, team", *timed(team_kanban, max(20, args.runs // 5))))
        rows.append(("kanban page query, everyone", *timed(everyone_kanban,
                                                           max(20, args.runs // 5))))
    engine.dispose()
    print(f"\n{'':32} {'p50 ms':>8} {'p95 ms':>8}")
    for label, p50, p95 in rows:
        print(f"{label:32} {p50:8.1f} {p95:8.1f}")
    worst = max(p95 for label, _, p95 in rows if not label.startswith("bare"))
    print(f"\nworst p95 {worst:.1f} ms (target ≤ 100 ms): {'met' if worst <= 100 else 'MISSED'}")


if __name__ == "__main__":
    main()
