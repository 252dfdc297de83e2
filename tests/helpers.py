"""Fresh reads of the database state the tests assert on (each ends the test's transaction)."""
from __future__ import annotations

import threading

from sqlalchemy import select


def customers_now(db) -> dict[int, str]:
    """{id: name} of every customer."""
    from app.models import Customer

    db.session.commit()
    return dict(db.session.execute(select(Customer.id, Customer.name)).all())


def holder_of(db, customer_id):
    """(owner_id, pool_id) of a customer, or None if it has no ownership row."""
    from app.models import Ownership

    db.session.commit()
    row = db.session.execute(select(Ownership.owner_id, Ownership.pool_id)
                             .where(Ownership.customer_id == customer_id)).first()
    return tuple(row) if row else None


# FAB's own refusals under /api/, with the code of our error shape (app.api.common).
FAB_FORBIDDEN = {"code": "forbidden", "message": "Forbidden"}
FAB_NOT_FOUND = {"code": "not_found", "message": "Not found"}


def in_threads(app, n: int, work) -> list:
    """work(i) for i in range(n), each in its own thread with its own app context and
    session (removed at the end, so no connection outlives the test); the results, in the
    order they finished. Any thread's error fails the test."""
    results, errors, lock = [], [], threading.Lock()

    def run(i: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                value = work(i)
                with lock:
                    results.append(value)
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread outlived its test"
    assert not errors, errors[:3]
    return results
