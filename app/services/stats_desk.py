"""The service desk's charts (客服 / 客服主管 dashboards): the service analysis's tables
(app.services.service_analysis) as stats of the registry in app.services.stats.

Who and what: whoever reads the service analysis (service_analysis.can_read: admins, staff,
auditors, service managers and agents, sales managers), over the tickets that page counts for
them (tickets.scope_clause: an agent its teams' and its own, a service manager its teams', a
sales manager its customers'). The numbers come from the analysis's own queries, so a chart
and the page's table agree. Tickets belong to teams, not departments: no department filter.
"""
from __future__ import annotations

from typing import Optional

from flask_babel import lazy_gettext as _l

from app.models import Ticket, User
from app.models.customer import utcnow
from app.models.service_desk import OPEN_TICKET_STATUSES, TICKET_PRIORITIES, TICKET_STATUSES
from app.services import service_analysis as analysis
from app.services.errors import tr
from app.services.stats import Filters, Numbers, stat

SCORES = (1, 2, 3, 4, 5)  # the satisfaction survey's scale


def _readers(user: Optional[User]) -> bool:
    return analysis.can_read(user)


def _scope(user: User):
    from app.services import tickets

    return tickets.scope_clause(user)


def _period(filters: Filters) -> analysis.Period:
    return analysis.Period(filters.date_from, filters.date_to)


def desk_stat(name: str, title, kind: str, *, dated: bool = True):
    return stat(name, title, kind, dated=dated, departmental=False, readers=_readers)


@desk_stat("tickets_per_day", _l("Tickets raised and resolved per day"), "line")
def tickets_per_day(user: User, filters: Filters) -> Numbers:
    """Per business day: the tickets raised (the analysis's "tickets by day") and those
    resolved that day (their latest resolution; a reopened ticket counts when resolved
    again)."""
    scope, period = _scope(user), _period(filters)
    raised = analysis.per_day(Ticket.created_at, analysis.raised_in(scope, period))
    resolved = analysis.per_day(Ticket.resolved_at, analysis.resolved_in(scope, period))
    days = filters.days()
    return Numbers([d.isoformat() for d in days],
                   [(tr("Raised"), [raised.get(d, 0) for d in days]),
                    (tr("Resolved"), [resolved.get(d, 0) for d in days])], tr("Day"))


@desk_stat("tickets_by_category", _l("Tickets by category"), "pie")
def tickets_by_category(user: User, filters: Filters) -> Numbers:
    """The tickets raised in the period per category, busiest first (the analysis's table)."""
    rows = analysis.by_category(analysis.raised_in(_scope(user), _period(filters)))
    return Numbers([r["category"] for r in rows], [(tr("Tickets"), [r["tickets"] for r in rows])],
                   tr("Category"))


@desk_stat("ticket_sla", _l("SLA by priority"), "bar")
def ticket_sla(user: User, filters: Filters) -> Numbers:
    """Per priority of the tickets raised in the period (the analysis's SLA table): tickets
    with an SLA and those that breached it, then response and resolution in time and the
    breach rate in percent (the second axis)."""
    rows, _sampled = analysis.sla_by_priority(
        analysis.raised_in(_scope(user), _period(filters)), durations=False)
    return Numbers([r["priority"] for r in rows],
                   [(tr("With an SLA"), [r["with_sla"] for r in rows]),
                    (tr("Breached"), [r["breached"] for r in rows]),
                    (tr("Response in time %"), [r["response_met"] for r in rows]),
                    (tr("Resolved in time %"), [r["resolution_met"] for r in rows]),
                    (tr("Breach rate %"), [r["breach_rate"] for r in rows])], tr("Priority"))


@desk_stat("ticket_backlog", _l("Open tickets by age (now)"), "bar", dated=False)
def ticket_backlog(user: User, filters: Filters) -> Numbers:
    """The open tickets now by age and priority (the analysis's backlog)."""
    rows = analysis.backlog(_scope(user), utcnow())
    return Numbers([str(analysis.AGE_LABELS[r["age"]]) for r in rows],
                   [(p, [r[p] for r in rows]) for p in TICKET_PRIORITIES], tr("Age"))


@desk_stat("satisfaction_scores", _l("Satisfaction scores"), "bar")
def satisfaction_scores(user: User, filters: Filters) -> Numbers:
    """The rated tickets raised in the period per score, 1 to 5."""
    counts = analysis.score_counts(analysis.raised_in(_scope(user), _period(filters)))
    return Numbers([str(s) for s in SCORES], [(tr("Rated tickets"), [counts.get(s, 0)
                                                                     for s in SCORES])],
                   tr("Score"))


@desk_stat("satisfaction_by_agent", _l("Satisfaction by agent"), "bar")
def satisfaction_by_agent(user: User, filters: Filters) -> Numbers:
    """Per agent (the analysis's table, worst average first): rated tickets, low scores, and
    the average score on the second axis."""
    rows = analysis.satisfaction(analysis.raised_in(_scope(user), _period(filters)),
                                 "satisfaction_agent")
    return Numbers([r["name"] for r in rows],
                   [(tr("Rated"), [r["rated"] for r in rows]),
                    (tr("Low scores"), [r["low"] for r in rows]),
                    (tr("Average score"), [r["average"] for r in rows])], tr("Agent"))


@desk_stat("agent_workload", _l("Open tickets per agent (now)"), "bar", dated=False)
def agent_workload(user: User, filters: Filters) -> Numbers:
    """The open tickets now per agent and status (unassigned ones last): who carries what."""
    rows = analysis.workload(_scope(user))
    return Numbers([r["name"] for r in rows],
                   [(str(TICKET_STATUSES[s]), [r[s] for r in rows]) for s in OPEN_TICKET_STATUSES],
                   tr("Agent"))
