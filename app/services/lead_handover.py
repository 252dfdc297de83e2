"""Leads in the departure handover (离职交接): a leaving user's open leads go with their
customers — to the successor in the 'rep' mode, within the successor's lead cap (counted
under their row lock; the rest return to their lead pool), and to their lead pools in every
other mode (a team, the rules and the pool modes place customers; leads wait in the lead
pool for the team to claim). Converted and invalid leads stay with the user as history.
One 'assigned' or 'released' lead event per lead, reason 离职交接."""
from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import LeadEvent, LeadOwnership
from app.services import bulk, leads, notifications, ownership, policies

REASON = "离职交接"


def open_leads(user_id: int) -> list[int]:
    return list(db.session.execute(select(LeadOwnership.lead_id).where(
        LeadOwnership.owner_id == user_id, LeadOwnership.is_open.is_(True))
        .order_by(LeadOwnership.lead_id)).scalars())


def plan(user_id: int, successor_id: Optional[int]) -> dict:
    """How many open leads go to the successor and how many to lead pools (the preview)."""
    ids = open_leads(user_id)
    room = 0
    if successor_id is not None and ids:
        policy = policies.effective_policies([successor_id])[successor_id]
        room = max(0, int(policy["lead_max"].value) - leads.open_leads_of(successor_id))
    to_owner = ids[:room]
    return {"leads": len(ids), "to_owner": len(to_owner), "to_pool": len(ids) - len(to_owner),
            "lead_ids": ids}


def hand_over(actor_id: int, user_id: int, successor_id: Optional[int],
              now: dt.datetime) -> dict:
    """Move the open leads (in the caller's transaction, before the user is marked departed);
    returns the counts."""
    ids = open_leads(user_id)
    if not ids:
        return {"leads": 0, "to_owner": 0, "to_pool": 0}
    to_owner: list[int] = []
    if successor_id is not None:
        row = ownership.lock_active_rep(successor_id)
        policy = policies.effective_policy(successor_id,
                                           policies.chain_from_path(row.department_path))
        room = max(0, int(policy["lead_max"].value) - leads.open_leads_of(successor_id))
        to_owner = ids[:room]
    to_pool = [i for i in ids if i not in set(to_owner)]
    events = []
    if to_owner:
        db.session.execute(
            update(LeadOwnership).where(LeadOwnership.lead_id.in_(to_owner),
                                        LeadOwnership.owner_id == user_id)
            .values(owner_id=successor_id, previous_owner_id=user_id, acquired_at=now,
                    acquired_how="assigned", last_followup_at=None)
            .execution_options(synchronize_session=False))
        events += [dict(lead_id=i, kind="assigned", from_owner_id=user_id, from_pool_id=None,
                        to_owner_id=successor_id, to_pool_id=None) for i in to_owner]
    if to_pool:
        lead_pools = _lead_pool_ids()
        default_id = leads.default_lead_pool().id
        homes = dict(db.session.execute(select(LeadOwnership.lead_id,
                                               LeadOwnership.home_pool_id)
                                        .where(LeadOwnership.lead_id.in_(to_pool))).all())
        by_pool: dict[int, list[int]] = {}
        for i in to_pool:
            by_pool.setdefault(homes[i] if homes.get(i) in lead_pools else default_id,
                               []).append(i)
        for pool_id, group in by_pool.items():
            db.session.execute(
                update(LeadOwnership).where(LeadOwnership.lead_id.in_(group),
                                            LeadOwnership.owner_id == user_id)
                .values(owner_id=None, pool_id=pool_id, home_pool_id=pool_id,
                        previous_owner_id=user_id)
                .execution_options(synchronize_session=False))
            events += [dict(lead_id=i, kind="released", from_owner_id=user_id,
                            from_pool_id=None, to_owner_id=None, to_pool_id=pool_id)
                       for i in group]
    bulk.insert_rows(LeadEvent.__table__, [
        dict(e, customer_id=None, actor_id=actor_id, reason=REASON, created_at=now)
        for e in events])
    if to_owner:
        notifications.notify([successor_id], "departure_handover", "离职交接：您接收了新线索",
                             f"{len(to_owner)} 条线索转给您", link="/leads/list/")
    still = db.session.execute(select(func.count()).select_from(LeadOwnership).where(
        LeadOwnership.owner_id == user_id, LeadOwnership.is_open.is_(True))).scalar_one()
    if still:
        from app.services.errors import Conflict, tr

        raise Conflict(tr("Leads changed during the handover; preview again"),
                       code="owner_changed")
    return {"leads": len(ids), "to_owner": len(to_owner), "to_pool": len(to_pool)}


def _lead_pool_ids() -> set[int]:
    from app.services.pool import pool_ids_of_type

    return pool_ids_of_type("lead")
