"""Many users moving the same opportunities at once (drags, wins, losses): each opportunity
is won at most once (one deal each), every stage change is one history row whose chain
replays to the opportunity's stage, and nothing is left between states."""
from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from app.models import Deal, Opportunity, OpportunityStageChange, User
from app.services import opportunities
from app.services.errors import GuishuError

pytestmark = pytest.mark.real_db


def test_concurrent_stage_changes_keep_history_and_one_deal(app, db, org):
    opp_ids = [opportunities.create(org.rep, {"customer_id": org.c_rep.id,
                                              "title": f"并发商机{i}", "amount": "1000"}).id
               for i in range(6)]
    stage_ids = [s.id for s in opportunities.stages()]
    lost = opportunities.stage_of_kind("lost").id
    user_ids = [org.rep.id, org.manager.id, org.admin.id, org.staff.id]
    errors: list[BaseException] = []
    refusals: dict[str, int] = {}
    lock = threading.Lock()

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        with app.app_context():
            from app.extensions import db as tdb

            for _ in range(15):
                try:
                    me = tdb.session.get(User, user_ids[seed % len(user_ids)])
                    target = rnd.choice(stage_ids)
                    opportunities.change_stage(me, rnd.choice(opp_ids), target,
                                               loss_reason="并发输单" if target == lost else None)
                except GuishuError as exc:
                    with lock:
                        refusals[exc.code] = refusals.get(exc.code, 0) + 1
                except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                    with lock:
                        errors.append(exc)
                finally:
                    tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert refusals.get("opportunity_closed", 0) > 0  # the race really hit closed ones
    db.session.expire_all()
    for opp in db.session.execute(select(Opportunity)).scalars():
        chain = opportunities.history(opp.id)
        assert chain[0].from_stage_id is None
        for before, after in zip(chain, chain[1:]):
            assert after.from_stage_id == before.to_stage_id  # no lost update
        assert chain[-1].to_stage_id == opp.stage_id
        kind = opp.stage.kind
        assert opp.status == kind
        assert (opp.deal_id is not None) == (kind == "won")
        assert (opp.closed_owner_id is not None) == (kind != "open")
    deals = db.session.execute(select(func.count()).select_from(Deal)).scalar_one()
    won = db.session.execute(select(func.count()).select_from(Opportunity).where(
        Opportunity.status == "won")).scalar_one()
    assert deals == won
    assert db.session.execute(select(func.count()).select_from(OpportunityStageChange)).scalar() \
        >= len(opp_ids)
