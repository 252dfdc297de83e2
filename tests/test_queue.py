"""app.queue: the app names jobs by dotted path (it never imports `jobs`, which builds the
app), and `rq cron jobs/cron.py` registers exactly the periodic-job table the job page lists."""
from __future__ import annotations

import ast
from pathlib import Path

from rq.cron import CronScheduler

from app.queue import PERIODIC, schedule

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_of_the_app_imports_jobs():
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for name in names
                      if name == "jobs" or name.startswith("jobs.")]
    assert found == []


def test_rq_cron_registers_the_periodic_table_with_its_overrides(monkeypatch):
    monkeypatch.setenv("GUISHU_CRON_RECLAIM", "15 4 * * *")
    scheduler = CronScheduler(connection=None)  # loading the config needs no Redis
    scheduler.load_config_from_file("jobs/cron.py")
    registered = [(j.name, j.func_name, j.cron, j.args, j.queue_name)
                  for j in scheduler.get_jobs()]
    assert registered == [(p.name, p.func, p.cron, p.args, p.queue) for p in PERIODIC]
    assert ("reclaim_sweep", "jobs.ownership.reclaim_sweep", "15 4 * * *", (), "default") \
        in registered
    # The admins' page reads the same table, with the same effective schedule.
    assert [(row["name"], row["cron"]) for row in schedule()] == \
        [(name, cron) for name, _, cron, _, _ in registered]
