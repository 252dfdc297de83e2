"""Landing page: what the signed-in user holds and may do."""
from __future__ import annotations

from flask_appbuilder import IndexView, expose
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Ownership
from app.paging import count_text
from app.security import (SCOPE_LABELS, current_user, limit_to_scope, role_label,
                          scope_of)


class HomeView(IndexView):
    index_template = "guishu/index.html"

    @expose("/")
    def index(self):
        user = current_user()
        stats = None
        if user is not None:
            scope = scope_of(user)
            visible = count_text(limit_to_scope(select(Customer.id), user, Customer.id),
                                 db.session)
            mine = db.session.execute(
                select(func.count()).select_from(Ownership).where(Ownership.owner_id == user.id)
            ).scalar_one()
            stats = {"visible": visible, "mine": mine,
                     "scope": SCOPE_LABELS.get(scope, "—") if scope else "—",
                     "roles": ", ".join(role_label(r.name) for r in user.roles)}
        return self.render_template(self.index_template, appbuilder=self.appbuilder, stats=stats)
