"""Risk backtest (issue 20 §5): the time-split evaluation of the 流失风险 models beside the obvious
baseline, on the demo's history, with the cost of training and of scoring a workbench.

Builds the demo (`flask crm init --demo`: ~5,000 customers, 120 days of history, the follow-up
rhythm of app/demo_risk.py and its older history of won customers, won 150–365 days ago) into a fresh database unless --reuse, then for each model:

- the examples rebuilt point in time (train: outcomes known before today - 60 days; test: the
  last 60 days), with their positives;
- the model's test AUC and the baseline's (days since the last follow-up alone), side by side,
  and the gate's verdict (shown only if the model wins by 0.05);
- the training time (examples + fit), and the scoring time of each rep's workbench panel
  (p50 / p95 over every rep, with its SQL statement count).

    .venv/bin/python bench/risk_backtest.py                      # SQLite file in /tmp
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/guishu_bench_risk \\
        .venv/bin/python bench/risk_backtest.py

The demo's AUCs measure the demo generator, not the model: they say the machinery finds a
pattern that was put there (and which one), nothing about a real sales team. Not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_SQLITE = "/tmp/guishu_bench_risk.db"


def build(url: str) -> float:
    from flask_migrate import upgrade

    from app import create_app
    from app.demo import build_demo
    from app.services import bootstrap

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).unlink(missing_ok=True)
    else:
        from claims import recreate_database
        recreate_database(url)
    app = create_app()
    started = time.perf_counter()
    with app.app_context():
        upgrade()
        bootstrap.initialise()
        build_demo("bench-password-1")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep the database as it is")
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", f"sqlite:///{DEFAULT_SQLITE}")
    os.environ.setdefault("GUISHU_DEMO", "1")
    if not args.reuse:
        print(f"building the demo in {url.split('@')[-1]} ...", flush=True)
        print(f"  demo built in {build(url):.1f} s (its first training included)")

    from sqlalchemy import event, select

    from app import create_app
    from app.extensions import db
    from app.models import Ownership, User
    from app.security import ROLE_REP, has_role
    from app.services import risk

    app = create_app()
    with app.app_context():
        print(f"\n{'model':<8} {'train':>7} {'pos':>6} {'test':>7} {'pos':>6} "
              f"{'model AUC':>10} {'baseline AUC':>13} {'gain':>7}  verdict   train s")
        runs = []
        for kind in risk.FEATURES:
            bt = risk.backtest(kind)
            runs.append(bt)
            print(f"{kind:<8} {bt.n_train:>7} {bt.positives_train:>6} {bt.n_test:>7} "
                  f"{bt.positives_test:>6} {bt.model_auc:>10.3f} {bt.baseline_auc:>13.3f} "
                  f"{bt.model_auc - bt.baseline_auc:>+7.3f}  {bt.verdict:<9} {bt.seconds:>6.2f}")
        for bt in runs:
            if bt.coefficients:
                print(f"  {bt.kind} coefficients (standardised): "
                      + ", ".join(f"{k} {v:+.2f}" for k, v in bt.coefficients.items()))
        risk.train()  # store this run, so the panels below score with it
        reps = [u for u in db.session.execute(select(User)).scalars() if has_role(u, ROLE_REP)]
        statements = []
        engine = db.engine

        def count(*_args, **_kw):
            statements[-1] += 1

        event.listen(engine, "before_cursor_execute", count)
        times = []
        for user in reps:
            db.session.expire_all()
            statements.append(0)
            started = time.perf_counter()
            panel = risk.panel(user)
            times.append((time.perf_counter() - started) * 1000)
            assert len(panel["lapse"]["rows"]) <= risk.PANEL_SIZE
        event.remove(engine, "before_cursor_execute", count)
        held = db.session.execute(select(Ownership.owner_id).where(
            Ownership.owner_id.in_([u.id for u in reps]))).all()
        times.sort()
        print(f"\nworkbench panel, {len(reps)} reps ({len(held) / len(reps):.0f} customers "
              f"each on average): p50 {statistics.median(times):.1f} ms, "
              f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms, "
              f"{min(statements)}–{max(statements)} SQL statements")


if __name__ == "__main__":
    main()
