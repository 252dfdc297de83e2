"""The previous-owner cooldown for leads, as for customers (app.services.pool, DESIGN
invariant 4): a rep cannot claim back, within the policy's cooldown_days (the customers'
setting, one number for both record types), a lead that left them for a lead pool —
released or reclaimed — whoever held it since. Read from the lead event log, not from
lead_ownership.previous_owner_id, which names only the last owner."""
from __future__ import annotations

import datetime as dt
from typing import Callable

from sqlalchemy import func, select

from app.extensions import db
from app.models import LeadEvent
from app.services.errors import InCooldown, tr
from app.services.times import local_date


def left_actor_at(actor_id: int, lead_ids: list[int]) -> dict[int, dt.datetime]:
    """{lead id: the last time it went from the actor to a lead pool}."""
    return dict(db.session.execute(
        select(LeadEvent.lead_id, func.max(LeadEvent.created_at)).where(
            LeadEvent.lead_id.in_(lead_ids), LeadEvent.from_owner_id == actor_id,
            LeadEvent.to_pool_id.is_not(None), LeadEvent.kind.in_(("released", "reclaimed")))
        .group_by(LeadEvent.lead_id)).all())


def check(actor_id: int, lead_ids: list[int], days: int, now: dt.datetime,
          names: Callable[[list[int]], str]) -> None:
    """InCooldown (409, code cooldown) naming the leads, the days and when one may claim
    again; nothing when `days` is 0."""
    if not days:
        return
    cut = now - dt.timedelta(days=days)
    cooling = {i: at for i, at in left_actor_at(actor_id, lead_ids).items() if at > cut}
    if cooling:
        first = min(cooling.values())
        ids = sorted(cooling)
        raise InCooldown(
            tr("Previous-owner cooldown of %(days)s days: the leads %(names)s left you on "
               "%(date)s; you can claim them again in %(left)s days", days=days,
               names=names(ids), date=local_date(first), left=days - (now - first).days),
            cooldown_days=days, lead_ids=ids)
