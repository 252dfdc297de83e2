"""Jobs only the tests enqueue (importable by the real worker subprocess)."""
from __future__ import annotations


def always_fails(reason: str) -> None:
    raise RuntimeError(f"故意失败：{reason}")


def fails_once(memory: str) -> str:
    """Fails on its first run and succeeds on the next; the file at `memory` remembers."""
    from pathlib import Path

    path = Path(memory)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("故意失败一次")
    return "second run"


def hangs_once(memory: str) -> str:
    """Hangs on its first run (until its worker is killed) and returns at once on the next;
    the file at `memory` remembers, and says the first run has started."""
    import time
    from pathlib import Path

    path = Path(memory)
    if not path.exists():
        path.write_text("started")
        time.sleep(300)
    return "second run"


def app_state_at_start() -> dict:
    """What a work horse finds when its job starts: whether the app was already built (by the
    worker, before the fork) and whether the database answers on the horse's own connection."""
    import os

    from sqlalchemy import func, select

    import jobs

    built = jobs._app is not None
    with jobs.job_app().app_context():
        from app import db
        from app.models import Customer

        customers = db.session.scalar(select(func.count(Customer.id)))
    return {"built": built, "customers": customers, "pid": os.getpid()}
