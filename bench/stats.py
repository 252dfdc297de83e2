"""Dashboard benchmark (issue 20 §6): every aggregate-backed chart beside the live query it
replaces, at 1M customers and 10M ownership events.

Loads the data with bench/list_pages.py's generator (imported, not copied: the demo
organisation, `--customers` customers, `--events` ownership events, 2 follow-ups per customer,
a deal per 5 customers, spread over two years), brings the schema up to date, times the full
rebuild of the aggregates (`flask crm stats-refresh --rebuild`) and an increment of
`--increment` new events, then, signed in as admin, manager1 (the whole sales tree) and rep1,
requests each chart of the role's dashboard through Flask's test client and prints p50 / p95
beside the live query (app.services.stats.RAW, the same numbers from the event tables,
timed in-process: no HTTP around it, which flatters the baseline) measured in the same run.
Ends with each role's dashboard: the home page plus every chart on it, one after the other
(a browser fetches them in parallel), against the 1 s target.

    .venv/bin/python bench/stats.py                        # PostgreSQL, 1M / 10M
    .venv/bin/python bench/stats.py --reuse --repeat 5
    .venv/bin/python bench/stats.py --sqlite /tmp/stats.db --customers 100000 --events 1000000

The PostgreSQL database in DATABASE_URL (default guishu_bench_stats) is dropped and
recreated, the SQLite file replaced, unless `--reuse` finds the data already there. Not a
test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from claims import recreate_database  # noqa: E402
from list_pages import base_setup, generate, has_data, login, timed  # noqa: E402

ROLES = ("admin", "manager1", "rep1")
TARGET_MS = 1000.0


def add_events(app, n: int) -> None:
    """`n` more ownership events, as the day's work would append them (a copy of the newest
    ones, stamped now): the increment the 5-minute job counts."""
    from app.extensions import db

    with app.app_context(), db.engine.begin() as c:
        top = c.execute(sa.text("SELECT max(id) FROM ownership_event")).scalar()
        c.execute(sa.text(
            "INSERT INTO ownership_event (customer_id, kind, from_owner_id, from_pool_id, "
            "to_owner_id, to_pool_id, reason, actor_id, created_at) "
            "SELECT customer_id, kind, from_owner_id, from_pool_id, to_owner_id, to_pool_id, "
            "reason, actor_id, :now FROM ownership_event WHERE id > :lo"),
            {"lo": top - n, "now": dt.datetime.utcnow()})


def aggregates(app, args) -> None:
    from app.services import stat_aggregates

    with app.app_context():
        t = time.perf_counter()
        counted = stat_aggregates.rebuild()
        print(f"full rebuild: {time.perf_counter() - t:7.1f} s  ({counted})", flush=True)
        from app.extensions import db

        rows = db.session.execute(sa.text("SELECT count(*) FROM stat_daily")).scalar()
        print(f"stat_daily rows: {rows:,}")
    if args.increment:
        add_events(app, args.increment)
        with app.app_context():
            t = time.perf_counter()
            stat_aggregates.refresh()
            print(f"increment of {args.increment:,} events: "
                  f"{(time.perf_counter() - t) * 1000:7.0f} ms", flush=True)


def query_for(names, role: str) -> dict:
    """The filters the home page draws the role's charts with (a manager's: this month)."""
    from app.services.times import local_today

    if role == "manager1":
        return {"from": local_today().replace(day=1).isoformat()}
    return {}


def live_query(name, user, filters, args):
    """The live query the chart replaces; on PostgreSQL cancelled after --max-seconds (then
    printed as that many seconds: a lower bound)."""
    from app.extensions import db
    from app.services import stats

    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text(f"SET statement_timeout = {int(args.max_seconds * 1000)}"))
    return stats.evaluate(user, name, filters, raw=True)


def variants(names, role: str) -> list:
    """(chart, span in days or None for the home page's filters): each chart as the home
    page asks for it, and the aggregate-backed dated ones over 30 and 365 days too."""
    from app.services import stats

    out = []
    for name in names:
        out.append((name, None))
        if name in stats.RAW and stats.STATS[name].dated:
            out += [(name, 30), (name, 365)]
    return out


def measure(app, args) -> None:
    from urllib.parse import urlencode

    from app.extensions import db
    from app.models import User
    from app.services import stats
    from app.services.times import local_today

    roles = args.roles.split(",") if args.roles else list(ROLES)
    rows, dashboards = [], []
    for role in roles:
        client = login(app, role, args.password)
        with app.app_context():
            user = db.session.execute(sa.select(User).where(User.username == role)).scalar_one()
            names = list(stats.dashboard_for(user))
            extra = [n for n in stats.RAW if n not in names
                     and (not stats.STATS[n].whole_org or role == "admin")]
        query = query_for(names, role)
        total = 0.0
        t_home = timed(lambda: client.get("/"), args.repeat)
        total += t_home[0]
        rows.append((role, "home page /", t_home[0], t_home[1], None, None))
        for name, span in variants(names + extra, role):
            asked = dict(query)
            if span:
                asked = {"from": (local_today() - dt.timedelta(days=span - 1)).isoformat()}
            asked = {k: v for k, v in asked.items() if stats.STATS[name].dated}
            qs = urlencode(asked)

            def endpoint():
                resp = client.get(f"/api/v1/stats/{name}" + (f"?{qs}" if qs else ""))
                assert resp.status_code == 200, (name, resp.status_code)
                return resp.get_json()

            p50, p95, _ = timed(endpoint, args.repeat)
            if name in names and not span:
                total += p50
            raw50 = raw95 = None
            if name in stats.RAW:
                with app.app_context():
                    user = db.session.merge(user)
                    filters = stats.parse_filters(asked)
                    try:
                        raw50, raw95, _ = timed(lambda: live_query(name, user, filters, args),
                                                args.repeat, args.max_seconds)
                    except sa.exc.OperationalError:  # cancelled: slower than max_seconds
                        db.session.rollback()
                        raw50 = raw95 = args.max_seconds * 1000
                    db.session.remove()
            label = name + (f", {span} days" if span else "") + (
                "" if name in names else " (not on the dashboard)")
            rows.append((role, label, p50, p95, raw50, raw95))
            print(f"  {role:<9} {label:<52} {p50:8.1f} {p95:8.1f}   "
                  + (f"{raw50:9.1f} {raw95:9.1f}  x{raw50 / p50:5.1f}" if raw50 else ""),
                  flush=True)
        dashboards.append((role, total))
    print()
    print(f"{'role':<9} {'chart':<52} {'p50 ms':>8} {'p95 ms':>8}   {'live p50':>9} "
          f"{'live p95':>9}  ratio")
    for role, label, p50, p95, raw50, raw95 in rows:
        live = f"{raw50:9.1f} {raw95:9.1f}  x{raw50 / p50:5.1f}" if raw50 else ""
        print(f"{role:<9} {label:<52} {p50:8.1f} {p95:8.1f}   {live}")
    print()
    for role, total in dashboards:
        verdict = "ok" if total <= TARGET_MS else "MISSES"
        print(f"dashboard of {role:<9}: home page + its charts one after the other "
              f"{total:7.1f} ms (target {TARGET_MS:.0f} ms: {verdict})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--sqlite", help="SQLite file to use instead of PostgreSQL")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the database when it already holds the data")
    ap.add_argument("--roles", help="comma-separated usernames (default: " + ",".join(ROLES)
                    + ")")
    ap.add_argument("--repeat", type=int, default=5, help="timed requests after one warm-up")
    ap.add_argument("--increment", type=int, default=10_000,
                    help="events appended after the rebuild, then counted by an increment")
    ap.add_argument("--skip-rebuild", action="store_true",
                    help="with --reuse: the aggregates are already built")
    ap.add_argument("--password", default="bench-lists-pass", help="every demo account's")
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="a live query slower than this is measured once")
    args = ap.parse_args()
    if args.sqlite:
        url = f"sqlite:///{Path(args.sqlite).resolve()}"
    else:
        url = os.environ.get("DATABASE_URL",
                             "postgresql://postgres@127.0.0.1:5432/guishu_bench_stats")
    os.environ["DATABASE_URL"] = url
    reuse = args.reuse and has_data(url, args.customers, args.events)
    if not reuse:
        if url.startswith("sqlite"):
            Path(sa.engine.make_url(url).database).unlink(missing_ok=True)
        else:
            recreate_database(url)
    from flask_migrate import upgrade

    from app import create_app

    app = create_app()
    if reuse:
        print("reusing the data already in the database")
        with app.app_context():
            upgrade()  # data generated before migration 0046
    else:
        t = time.perf_counter()
        base_setup(app, args.password)
        print(f"demo organisation in {time.perf_counter() - t:.0f} s")
        generate(app, args.customers, args.events)
    if not args.skip_rebuild:
        aggregates(app, args)
    measure(app, args)


if __name__ == "__main__":
    main()
