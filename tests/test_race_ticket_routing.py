"""Tickets routed at the same moment into a round-robin team spread evenly: the team's
last agent advances under its row lock, so no two routes read the same one."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from app.models import User
from app.models.service_desk import Ticket
from app.services import service_admin, ticket_routing
from tests.service_desk_fixtures import NOW, team

pytestmark = pytest.mark.real_db


def test_concurrent_routes_spread_round_robin(app, db, org):
    first = team(org.admin, "一线", [org.agent, org.agent2, org.service_manager])
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    customer_id = org.c_rep.id
    workers = 9
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(workers)

    def work() -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                tdb.session.get(User, org.agent.id)  # a connection before the start line
                barrier.wait(timeout=30)
                row = Ticket(customer_id=customer_id, channel="phone", subject="并发",
                             priority="P3", status="new")
                tdb.session.add(row)
                tdb.session.flush()
                row.team_id, row.agent_id = ticket_routing.route(row, NOW)
                tdb.session.commit()
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    db.session.expire_all()
    spread = Counter(db.session.execute(select(Ticket.agent_id)).scalars())
    assert spread == {org.agent.id: 3, org.agent2.id: 3, org.service_manager.id: 3}
