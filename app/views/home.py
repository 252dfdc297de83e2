"""Landing page: what the signed-in user holds and may do."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from flask import flash, request
from flask_appbuilder import IndexView, expose
from flask_babel import get_locale
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Ownership
from app.paging import count_text
from app.security import (SCOPE_LABELS, current_user, limit_to_scope, role_label,
                          scope_of)
from app.services import stat_aggregates, stats as stats_service
from app.services.errors import ValidationFailed
from app.services.times import local_text, local_today

# Charts whose later series are amounts (yuan), percentages or average scores: drawn against a
# second axis on the right.
RIGHT_AXIS_FROM = {"pipeline": 1, "team_ranking": 2, "team_conversion": 2, "ticket_sla": 2,
                   "satisfaction_by_agent": 2}


FILTER_ARGS = ("from", "to", "department")
MARKETING_DAYS = 90  # marketing's dashboard: the last 90 days unless asked otherwise


def dashboard(user, args) -> tuple[list[dict], dict]:
    """The charts of the user's home page (app.services.stats.dashboard_for) and the filters
    they are drawn with: those typed in the form above them (checked by the stats service; a
    bad one is flashed and left out), else a manager's this month, marketing's last 90 days,
    the others' last 30 days."""
    names = stats_service.dashboard_for(user)
    if not names:
        return [], {}
    asked = {k: args.get(k, "").strip() for k in FILTER_ARGS if args.get(k, "").strip()}
    if not asked and names == stats_service.MANAGER_DASHBOARD:
        asked = {"from": local_today().replace(day=1).isoformat()}
    elif not asked and names == stats_service.MARKETING_DASHBOARD:
        # Responses trickle in for weeks after a campaign: a quarter shows them.
        asked = {"from": (local_today() - dt.timedelta(days=MARKETING_DAYS - 1)).isoformat()}
    try:
        filters = stats_service.parse_filters(asked)
    except ValidationFailed as exc:
        flash(exc.message, "danger")
        asked, filters = {}, stats_service.parse_filters({})
    # The department filter only where a chart has a department axis (not the desk's and
    # marketing's: tickets belong to teams, campaigns to no one).
    departments = stats_service.department_choices(user) if any(
        stats_service.STATS[n].departmental for n in names) else []
    if asked.get("department") and filters.department_id not in {d for d, _ in departments}:
        asked.pop("department")
        filters = stats_service.parse_filters(asked)
    shown = {"from": filters.date_from.isoformat(), "to": filters.date_to.isoformat(),
             "department": filters.department_id,
             "departments": departments}
    if any(stats_service.STATS[name].aggregated for name in names):
        # The charts sum the aggregates: say how fresh they are, after the catch-up their
        # requests would make anyway (app.services.stat_aggregates).
        stat_aggregates.catch_up()
        shown["as_of"] = local_text(stat_aggregates.fresh_as_of())
    charts = []
    for name in names:
        stat = stats_service.STATS[name]
        query = {k: v for k, v in asked.items()
                 if (k == "department" and stat.departmental) or (k != "department" and stat.dated)}
        charts.append({"name": name, "title": str(stat.title), "kind": stat.kind,
                       "query": urlencode(query), "right_axis_from": RIGHT_AXIS_FROM.get(name, 0)})
    return charts, shown


class HomeView(IndexView):
    index_template = "guishu/index.html"

    @expose("/")
    def index(self):
        user = current_user()
        stats, charts, filters = None, [], {}
        if user is not None:
            charts, filters = dashboard(user, request.args)
            scope = scope_of(user)
            visible = count_text(limit_to_scope(select(Customer.id), user, Customer.id),
                                 db.session)
            mine = db.session.execute(
                select(func.count()).select_from(Ownership).where(Ownership.owner_id == user.id)
            ).scalar_one()
            stats = {"visible": visible, "mine": mine,
                     "scope": SCOPE_LABELS.get(scope, "—") if scope else "—",
                     "roles": ", ".join(role_label(r.name) for r in user.roles)}
        return self.render_template(self.index_template, appbuilder=self.appbuilder, stats=stats,
                                    charts=charts, filters=filters,
                                    locale=str(get_locale() or "zh"))
