"""Many reps claiming overlapping pool leads at once while a manager releases and an admin
assigns: no lead cap or daily limit is exceeded, no lead has two holders or none, and the
lead events replay to the table."""
from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from app.models import LeadEvent, LeadOwnership, Policy, PoolMember, User
from app.services import leads
from app.services.errors import GuishuError

CAP = 5
DAILY = 8

pytestmark = pytest.mark.real_db


def test_concurrent_lead_claims_keep_every_invariant(app, db, org):
    pool_id = leads.default_lead_pool().id
    db.session.add(PoolMember(pool_id=pool_id, department_id=org.centre.id))
    for rep in (org.rep, org.rep2, org.rep_north):
        db.session.add(Policy(scope="user", user_id=rep.id, lead_max=CAP,
                              lead_daily_claim_limit=DAILY))
    db.session.commit()
    lead_ids = [leads.create_lead(org.staff, {"company_name": f"抢线索{i:03d}公司"}).id
                for i in range(30)]
    rep_ids = [org.rep.id, org.rep2.id, org.rep_north.id]
    manager_id, admin_id = org.manager.id, org.admin.id
    errors: list[BaseException] = []
    refusals: dict[str, int] = {}
    lock = threading.Lock()

    def work(seed: int, action: str) -> None:
        rnd = random.Random(seed)
        with app.app_context():
            from app.extensions import db as tdb

            for _ in range(20):
                try:
                    if action == "claim":
                        me = tdb.session.get(User, rep_ids[seed % 3])
                        leads.claim_leads(me, rnd.sample(lead_ids, rnd.randint(1, 3)))
                    elif action == "release":
                        me = tdb.session.get(User, manager_id)
                        owned = list(tdb.session.execute(select(LeadOwnership.lead_id).where(
                            LeadOwnership.owner_id.in_(rep_ids[:2]))).scalars())
                        if owned:
                            leads.release_leads(me, [rnd.choice(owned)], "压力测试退回")
                    else:
                        me = tdb.session.get(User, admin_id)
                        leads.assign_leads(me, rnd.sample(lead_ids, 2), rnd.choice(rep_ids))
                except GuishuError as exc:
                    with lock:
                        refusals[exc.code] = refusals.get(exc.code, 0) + 1
                except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                    with lock:
                        errors.append(exc)
                finally:
                    tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i, "claim")) for i in range(6)]
    threads += [threading.Thread(target=work, args=(100, "release")),
                threading.Thread(target=work, args=(200, "assign"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert refusals.get("cap_exceeded", 0) > 0  # the race really pushed against the caps

    db.session.expire_all()
    for rep_id in rep_ids:
        assert leads.open_leads_of(rep_id) <= CAP
        assert leads.claimed_today(rep_id) <= DAILY
    rows = db.session.execute(select(LeadOwnership)).scalars().all()
    assert all((r.owner_id is None) != (r.pool_id is None) for r in rows)
    holder: dict[int, tuple] = {}
    for ev in db.session.execute(select(LeadEvent).order_by(LeadEvent.id)).scalars():
        if ev.kind == "created":
            holder[ev.lead_id] = (ev.to_owner_id, ev.to_pool_id)
        else:
            assert holder[ev.lead_id] == (ev.from_owner_id, ev.from_pool_id), ev.id
            holder[ev.lead_id] = (ev.to_owner_id, ev.to_pool_id)
    assert holder == {r.lead_id: (r.owner_id, r.pool_id) for r in rows}
    assert db.session.execute(select(func.count()).select_from(LeadEvent).where(
        LeadEvent.kind == "claimed")).scalar() > 0


def test_the_lead_sweep_runs_in_a_real_worker(app, db, org, redis_url, database_url):
    """jobs.ownership.lead_reclaim_sweep on a real `rq worker --burst`."""
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    import datetime as dt
    import uuid

    from sqlalchemy import update

    from app.models.customer import utcnow
    from app.queue import get_queue
    from jobs.ownership import lead_reclaim_sweep
    from tests.test_jobs import run_burst_worker

    lead = leads.create_lead(org.rep, {"person_name": "沉睡线索"})
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == lead.id).values(
        acquired_at=utcnow() - dt.timedelta(days=400)))
    db.session.commit()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    job = get_queue(queue).enqueue(lead_reclaim_sweep)
    result = run_burst_worker(redis_url, database_url, queue)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert job.return_value() == {"dry_run": False, "reclaimed": 1, "owners": 1}
    db.session.expire_all()
    row = db.session.get(LeadOwnership, lead.id)
    assert (row.owner_id, row.pool_id) == (None, leads.default_lead_pool().id)
