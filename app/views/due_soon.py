"""待回收预警: what the reclaim sweeps will take within N days, per owner (a dry run of their own
rule, app.services.due_soon); a rep sees their own, a manager their team, an admin all."""
from __future__ import annotations

from flask import abort, request
from flask_appbuilder import BaseView, expose, has_access

from app.security import RES_WORKBENCH, current_user
from app.services import due_soon
from app.services.errors import NotFound, ValidationFailed


class DueSoonView(BaseView):
    route_base = "/due-soon"
    class_permission_name = RES_WORKBENCH
    method_permission_name = {"index": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        args = request.args
        try:
            page = due_soon.due_soon(current_user(), args.get("days"), args.get("owner_id"),
                                     args.get("after"), args.get("lead_after"))
        except NotFound:
            abort(404)
        except ValidationFailed as exc:
            abort(400, description="; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
        return self.render_template("guishu/due_soon.html", page=page,
                                    max_days=due_soon.MAX_DAYS)
