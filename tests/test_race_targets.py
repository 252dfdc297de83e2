"""Many managers and admins setting the same target at once: exactly one row per holder and
period, every other attempt refused with `target_exists` (the unique index decides a race the
service's look-up cannot see), never another error."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.models import SalesTarget, User
from app.services import targets
from app.services.errors import GuishuError

pytestmark = pytest.mark.real_db


def test_concurrent_sets_of_one_target_leave_exactly_one(app, db, org):
    setters = [org.admin.id, org.manager.id] * 4
    holders = [("user_id", org.rep.id), ("user_id", org.rep2.id)]
    errors: list[BaseException] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(len(setters))

    def work(actor_id: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                actor = tdb.session.get(User, actor_id)
                actor.roles  # loaded before the start line, so the inserts meet
                barrier.wait(timeout=30)
                for field, pk in holders:
                    try:
                        targets.create_target(actor, {
                            field: pk, "period_kind": "month", "period_start": "2026-10",
                            "won_amount": "1000"})
                        key = "created"
                    except GuishuError as exc:
                        key = exc.code
                    with lock:
                        outcomes[key] = outcomes.get(key, 0) + 1
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(a,)) for a in setters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert outcomes == {"created": 2, "target_exists": 2 * len(setters) - 2}
    db.session.expire_all()
    rows = db.session.execute(select(SalesTarget.user_id, func.count()).group_by(
        SalesTarget.user_id)).all()
    assert sorted(rows) == sorted([(org.rep.id, 1), (org.rep2.id, 1)])
