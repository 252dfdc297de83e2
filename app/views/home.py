"""Landing page: what the signed-in user holds and may do."""
from __future__ import annotations

from flask_appbuilder import IndexView, expose
from flask_babel import get_locale
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Ownership
from app.paging import count_text
from app.security import (SCOPE_LABELS, current_user, limit_to_scope, role_label,
                          scope_of)
from app.services import stats as stats_service
from app.services.times import local_today

# Charts whose later series are amounts (yuan): drawn against a second axis on the right.
RIGHT_AXIS_FROM = {"pipeline": 1, "team_ranking": 2}


def dashboard(user) -> list[dict]:
    """The charts of the user's home page (app.services.stats.dashboard_for): a manager's
    over this month, the organisation's over the last 30 days."""
    names = stats_service.dashboard_for(user)
    month = f"from={local_today().replace(day=1).isoformat()}" \
        if names == stats_service.MANAGER_DASHBOARD else ""
    return [{"name": name, "title": str(stats_service.STATS[name].title),
             "kind": stats_service.STATS[name].kind,
             "query": month if stats_service.STATS[name].dated else "",
             "right_axis_from": RIGHT_AXIS_FROM.get(name, 0)} for name in names]


class HomeView(IndexView):
    index_template = "guishu/index.html"

    @expose("/")
    def index(self):
        user = current_user()
        stats, charts = None, []
        if user is not None:
            charts = dashboard(user)
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
                                    charts=charts, locale=str(get_locale() or "zh"))
