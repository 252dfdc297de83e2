"""Many reps claiming overlapping pool customers at once, while releases, assignments and
transfers (applied and approved) run: no cap is exceeded, no customer has two holders or none,
and the events replay to the table."""
from __future__ import annotations

import random
import threading

from sqlalchemy import select

from app.models import Ownership, OwnershipEvent, Policy, PoolMember, User
from app.services import assignment, customers, pool, transfers
from app.services.errors import GuishuError
from app.services.caps import counted
from app.security import ROLE_REP
from tests.conftest import make_user

CAP = 6


def test_concurrent_claims_keep_every_invariant(app, db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    for rep in (org.rep, org.rep2, org.rep_north):
        db.session.add(Policy(scope="user", user_id=rep.id, max_customers=CAP,
                              daily_claim_limit=10_000, cooldown_days=0))
    # Receives transfers from rep1 (same department: one approval); no tight cap of its own.
    receiver = make_user("rep_recv", ROLE_REP, org.east, org.manager)
    db.session.commit()
    receiver_id = receiver.id
    pool_ids = [customers.create_customer(org.staff, {"name": f"抢单客户{i:03d}"}).id
                for i in range(40)]
    # rep1 starts with customers to transfer: on a busy machine the claim threads may not
    # have given rep1 any by the time the transfer thread looks.
    assignment.assign(org.admin, pool_ids[:3], org.rep.id)
    pool_ids = pool_ids[3:]
    # Plain ids for the threads: the org objects belong to this thread's session.
    rep1_id, rep2_id = org.rep.id, org.rep2.id
    manager_id, admin_id = org.manager.id, org.admin.id
    rep_ids = [rep1_id, rep2_id, org.rep_north.id]
    errors: list[BaseException] = []
    refusals: dict[str, int] = {}
    done = {"transfers": 0}
    lock = threading.Lock()

    def work(seed: int, action: str) -> None:
        rnd = random.Random(seed)
        with app.app_context():
            from app.extensions import db as tdb

            for _ in range(25):
                try:
                    if action == "claim":
                        me = tdb.session.get(User, rep_ids[seed % 3])
                        pool.claim_from_pool(me, rnd.sample(pool_ids, rnd.randint(1, 3)))
                    elif action == "release":
                        me = tdb.session.get(User, manager_id)
                        mine = [c for (c,) in tdb.session.execute(
                            select(Ownership.customer_id).where(
                                Ownership.owner_id.in_([rep1_id, rep2_id]))).all()]
                        if mine:
                            pool.release_to_pool(me, [rnd.choice(mine)], reason="压力测试退回")
                    elif action == "transfer":
                        me = tdb.session.get(User, rep1_id)
                        mine = [c for (c,) in tdb.session.execute(
                            select(Ownership.customer_id).where(
                                Ownership.owner_id == rep1_id)).all()]
                        if mine:
                            t = transfers.create_transfer(me, [rnd.choice(mine)], receiver_id,
                                                          "压力测试转移", "other")
                            transfers.approve(tdb.session.get(User, manager_id), t.id)
                            with lock:
                                done["transfers"] += t.status == "completed"
                    else:
                        me = tdb.session.get(User, admin_id)
                        assignment.assign(me, rnd.sample(pool_ids, 2), rnd.choice(rep_ids))
                except GuishuError as exc:
                    with lock:
                        refusals[exc.code] = refusals.get(exc.code, 0) + 1
                except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                    with lock:
                        errors.append(exc)
                finally:
                    tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i, "claim")) for i in range(9)]
    threads += [threading.Thread(target=work, args=(100, "release")),
                threading.Thread(target=work, args=(200, "assign")),
                threading.Thread(target=work, args=(300, "transfer"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert refusals.get("cap_exceeded", 0) > 0  # the race really pushed against the caps
    assert done["transfers"] > 0  # and transfers really completed while it ran

    db.session.expire_all()
    for rep_id in rep_ids:
        assert counted(rep_id, False) <= CAP
    rows = db.session.execute(select(Ownership)).scalars().all()
    assert all((r.owner_id is None) != (r.pool_id is None) for r in rows)
    # Replaying the append-only events gives exactly the current holders.
    holder: dict[int, tuple] = {}
    for ev in db.session.execute(select(OwnershipEvent).order_by(OwnershipEvent.id)).scalars():
        if ev.kind == "created":
            holder[ev.customer_id] = (ev.to_owner_id, ev.to_pool_id)
        else:
            assert holder[ev.customer_id] == (ev.from_owner_id, ev.from_pool_id), ev.id
            holder[ev.customer_id] = (ev.to_owner_id, ev.to_pool_id)
    assert holder == {r.customer_id: (r.owner_id, r.pool_id) for r in rows}
