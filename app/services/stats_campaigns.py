"""Marketing's charts (市场专员 dashboard): the campaign effect table
(app.services.campaign_responses) as stats of the registry in app.services.stats.

Who and what: whoever reads the effect table (campaign_responses.may_read_effect: marketing,
admins, sales managers, auditors), over what that table covers for them — every campaign, as
aggregates (no record, no contact detail). The numbers are the table's own (effect()), so a
chart and the page agree. Campaigns belong to no department: no department filter.
"""
from __future__ import annotations

from typing import Optional

from flask_babel import lazy_gettext as _l

from app.models import User
from app.services import campaign_responses as responses
from app.services.errors import tr
from app.services.stats import Filters, Numbers, stat

CAMPAIGNS_SHOWN = 10  # the effect table's first (newest) campaigns; the page has them all
TOUCH_KINDS = (("click", _l("Clicked")), ("signup", _l("Signed up")),
               ("response", _l("Marked as responded")))


def _readers(user: Optional[User]) -> bool:
    return responses.may_read_effect(user)


def campaign_stat(name: str, title, kind: str, *, dated: bool = False):
    return stat(name, title, kind, dated=dated, departmental=False, readers=_readers)


def _newest(user: User) -> list[responses.Effect]:
    return responses.effect(responses.newest_campaign_ids(CAMPAIGNS_SHOWN), user)


@campaign_stat("campaign_effect", _l("Campaign effect"), "bar")
def campaign_effect(user: User, filters: Filters) -> Numbers:
    """Per campaign (the newest CAMPAIGNS_SHOWN, the table's order): members, delivered,
    clicked, responded, leads, converted customers, opportunities."""
    rows = _newest(user)
    return Numbers([e.name for e in rows],
                   [(tr("Campaign members"), [e.members for e in rows]),
                    (tr("Delivered"), [e.delivered for e in rows]),
                    (tr("Clicked"), [e.clicked for e in rows]),
                    (tr("Responded"), [e.responded for e in rows]),
                    (tr("Leads"), [e.leads for e in rows]),
                    (tr("Converted customers"), [e.converted for e in rows]),
                    (tr("Opportunities"), [e.opportunities for e in rows])], tr("Campaign"))


@campaign_stat("campaign_money", _l("Campaign cost and won amount"), "bar")
def campaign_money(user: User, filters: Filters) -> Numbers:
    """Per campaign (as campaign_effect): actual cost, won amount by first and by last touch
    (yuan), and cost per lead (yuan; null without a cost or a lead)."""
    rows = _newest(user)
    return Numbers([e.name for e in rows],
                   [(tr("Actual cost"), [e.cost for e in rows]),
                    (tr("Won amount (first touch)"), [e.won_first for e in rows]),
                    (tr("Won amount (last touch)"), [e.won_last for e in rows]),
                    (tr("Cost per lead"), [e.cost_per_lead for e in rows])], tr("Campaign"))


@campaign_stat("campaign_totals", _l("Campaign totals (all campaigns)"), "bar")
def campaign_totals(user: User, filters: Filters) -> Numbers:
    """The effect table's columns summed over every campaign (not a funnel: a member may be
    sent several messages, so "delivered" can exceed the members)."""
    rows = responses.effect(None, user)
    measures = (("members", tr("Campaign members")), ("delivered", tr("Delivered")),
                ("clicked", tr("Clicked")), ("responded", tr("Responded")),
                ("leads", tr("Leads")), ("converted", tr("Converted customers")),
                ("opportunities", tr("Opportunities")))
    return Numbers([label for _, label in measures],
                   [(tr("Count"), [sum(getattr(e, key) for e in rows) for key, _ in measures])],
                   tr("Measure"))


@campaign_stat("campaign_responses_per_day", _l("Campaign responses per day"), "line",
               dated=True)
def campaign_responses_per_day(user: User, filters: Filters) -> Numbers:
    """Per business day, over every campaign: the responses recorded (tracked-link clicks,
    sign-ups, responses marked by hand) — the touches the effect table counts."""
    found = responses.touches_per_day(filters.since, filters.until)
    days = [d.isoformat() for d in filters.days()]
    return Numbers(days, [(str(label), [found.get((d, kind), 0) for d in days])
                          for kind, label in TOUCH_KINDS], tr("Day"))
