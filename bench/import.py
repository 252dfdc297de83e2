"""Bulk import benchmark: a ROWS-row CSV (default 100k) imported into a table of N customers
(default 1M), beside a bare bulk insert of the same rows measured in the same run.

    .venv/bin/python bench/import.py --db postgres              # database bench_import
    .venv/bin/python bench/import.py --db postgres --reuse      # keep the 1M rows between runs
    .venv/bin/python bench/import.py --db sqlite --n 200000

Ours is the whole import as the job runs it (app.services.import_run: read the GBK file, map,
validate every row like the customer form, dedupe against the table and the file, insert
customers + ownership + 'created' events chunk by chunk, write the problem rows). The
baseline inserts the same rows, as read from the CSV, into customer and customer_ownership
with one executemany per chunk and nothing else. Each side runs in its own process, so the
peak memory (ru_maxrss) is that side's alone; the imported rows are deleted afterwards so a
--reuse run starts from the same N. The file is ~2% duplicates of existing customers, ~1%
in-file repeats and ~1% invalid rows, as real lists are. Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_import"
SQLITE_PATH = "/tmp/guishu_bench_import.db"
CSV_PATH = "/tmp/guishu_bench_import.csv"
HEADER = ["客户名称", "手机", "电话", "邮箱", "省份", "城市", "地址", "行业", "来源"]
CHUNK = 5000


def make_file(url: str, rows: int, seed: int) -> dict:
    """The CSV (GBK, as Excel writes it): new companies, plus a few duplicates of existing
    customers (same mobile), repeats within the file and invalid numbers."""
    from dedupe_check import TRADE_CHARS, INDUSTRIES, LEGAL_FORMS, places

    rng = random.Random(seed)
    engine = sa.create_engine(url)
    with engine.connect() as c:
        existing = [r[0] for r in c.execute(sa.text(
            "SELECT mobile FROM customer WHERE mobile IS NOT NULL ORDER BY id LIMIT 5000"))]
    engine.dispose()
    where = places()
    forms = list(LEGAL_FORMS)
    written, kinds = [], {"new": 0, "table duplicate": 0, "file repeat": 0, "invalid": 0}
    for i in range(rows):
        roll = rng.random()
        prov, city, code, digits, districts = rng.choice(where)
        trade = "".join(rng.choice(TRADE_CHARS) for _ in range(4))
        name = f"{city.rstrip('市')}{trade}{rng.choice(INDUSTRIES)}{rng.choice(forms)}"
        mobile = f"19{i:09d}"
        row = [name, mobile, "", f"u{i}@bench{seed}.cn", prov, city,
               f"{prov}{city}{rng.choice(districts)}{rng.randint(1, 999)}号", "制造业", "展会"]
        if roll < 0.02 and existing:
            row[1], kinds["table duplicate"] = rng.choice(existing), kinds["table duplicate"] + 1
        elif roll < 0.03 and written:
            row = list(rng.choice(written))
            kinds["file repeat"] += 1
        elif roll < 0.04:
            row[1], kinds["invalid"] = f"1{i % 1000}", kinds["invalid"] + 1
        else:
            kinds["new"] += 1
        written.append(row)
    with open(CSV_PATH, "w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(written)
    return kinds


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(url: str, out) -> None:
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import User
        from app.services import import_mapping, import_run, ownership

        staff = db.session.execute(select(User).where(User.username == "bench_staff")
                                   ).scalar_one()
        before = _peak_mib()
        t0 = time.perf_counter()
        batch = import_mapping.upload(staff, "bench.csv", Path(CSV_PATH).read_bytes())
        import_mapping.configure(staff, batch.id, batch.mapping, "pool",
                                 ownership.default_pool().id)
        batch = import_run.run(batch.id)
        seconds = time.perf_counter() - t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out.put({"seconds": seconds, "peak_mib": _peak_mib(), "before_mib": before,
                 "workers_mib": children,
                 "inserted": batch.inserted, "duplicates": batch.duplicates,
                 "invalid": batch.invalid, "batch": batch.id})


def run_bare(url: str, first_id: int, out) -> None:
    """Same rows, read from the same file, straight into customer + customer_ownership."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    t0 = time.perf_counter()
    with open(CSV_PATH, encoding="gb18030", newline="") as f:
        rows = list(csv.reader(f))[1:]
    meta = sa.MetaData()
    customer = sa.Table("customer", meta, autoload_with=engine)
    owned = sa.Table("customer_ownership", meta, autoload_with=engine)
    pool_id = None
    with engine.begin() as c:
        pool_id = c.execute(sa.text("SELECT id FROM pool WHERE is_default")).scalar()
    import datetime as dt

    now = dt.datetime.now()
    next_id = first_id
    with engine.begin() as c:
        for start in range(0, len(rows), CHUNK):
            part = rows[start:start + CHUNK]
            ids = list(range(next_id, next_id + len(part)))
            next_id += len(part)
            c.execute(customer.insert(), [
                {"id": i, "name": r[0], "mobile": r[1], "phone": r[2] or None, "email": r[3],
                 "province": r[4], "city": r[5], "address": r[6], "industry": r[7],
                 "source": r[8], "customer_type": "company", "birthday_lunar": False,
                 "norm_version": 0, "created_at": now, "updated_at": now}
                for i, r in zip(ids, part)])
            c.execute(owned.insert(), [
                {"customer_id": i, "pool_id": pool_id, "acquired_at": now,
                 "acquired_how": "imported", "locked": False, "won": False,
                 "category": "potential"} for i in ids])
    out.put({"seconds": time.perf_counter() - t0, "peak_mib": _peak_mib(),
             "inserted": len(rows)})
    engine.dispose()


def in_process(target, *args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def delete_after(url: str, first_id: int) -> None:
    """Remove what a run inserted, so the next run starts from the same table."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM ownership_event WHERE customer_id >= :f"),
                  {"f": first_id})
        c.execute(sa.text("DELETE FROM customer_ownership WHERE customer_id >= :f"),
                  {"f": first_id})
        c.execute(sa.text("DELETE FROM customer WHERE id >= :f"), {"f": first_id})
        c.execute(sa.text("DELETE FROM import_problem"))
        c.execute(sa.text("DELETE FROM import_batch"))
        if c.dialect.name == "postgresql":
            c.execute(sa.text(f"SELECT setval('customer_id_seq', {first_id - 1})"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE customer"))
            c.execute(sa.text("VACUUM ANALYZE customer_ownership"))
    engine.dispose()


def ensure_staff(app) -> None:
    from app.extensions import appbuilder, db
    from app.security import ROLE_STAFF

    with app.app_context():
        sm = appbuilder.sm
        if sm.find_user(username="bench_staff") is None:
            sm.add_user("bench_staff", "后台", "导入", "bench_staff@bench.local",
                        sm.find_role(ROLE_STAFF), hashed_password="x")
        db.session.commit()


def main():
    from dedupe_check import prepare_database

    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    ap.add_argument("--n", type=int, default=1_000_000, help="customers already in the table")
    ap.add_argument("--rows", type=int, default=100_000, help="rows in the imported file")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--sqlite-path", default=SQLITE_PATH)
    ap.add_argument("--url", default=PG_URL)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    app, engine_url = prepare_database(args)
    url = os.environ["DATABASE_URL"]
    ensure_staff(app)
    first_id = args.n + 1
    delete_after(engine_url, first_id)
    kinds = make_file(engine_url, args.rows, args.seed)
    size = Path(CSV_PATH).stat().st_size / 1024 / 1024
    mix = ", ".join(f"{k} {v:,}" for k, v in kinds.items())
    print(f"file: {args.rows:,} rows, {size:.1f} MiB GBK ({mix})")

    bare = in_process(run_bare, engine_url, first_id)
    delete_after(engine_url, first_id)
    ours = in_process(run_ours, url)
    delete_after(engine_url, first_id)

    print(f"\n{args.db}, {args.rows:,} rows into {args.n:,} customers:")
    print(f"  guishu import:  {ours['seconds']:.1f} s  peak {ours['peak_mib']:.0f} MiB "
          f"(app loaded: {ours['before_mib']:.0f} MiB; each validation worker "
          f"<= {ours['workers_mib']:.0f} MiB)  inserted {ours['inserted']:,}, "
          f"duplicates {ours['duplicates']:,}, invalid {ours['invalid']:,}  "
          f"(targets <= 20 s, <= 1 GiB)")
    print(f"  bare insert:    {bare['seconds']:.1f} s  peak {bare['peak_mib']:.0f} MiB  "
          f"inserted {bare['inserted']:,} (no validation, no dedupe, no events)")
    print(f"  ratio:          {ours['seconds'] / bare['seconds']:.2f}x  (target <= 5x)")


if __name__ == "__main__":
    main()
