"""后台任务 (admins): queues, running jobs with progress, abandoned jobs (their worker is gone),
jobs scheduled for later, failed jobs with their error, each of the last three with a button
that queues it again, and the last run of every periodic job with its summary."""
from __future__ import annotations

from flask import flash, redirect, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from redis.exceptions import RedisError

from app.security import RES_JOBS
from app.services import jobs_monitor
from app.services.errors import GuishuError
from app.views.base import signed_in_user


class JobsView(BaseView):
    route_base = "/jobs"
    class_permission_name = RES_JOBS
    method_permission_name = {"index": "read", "requeue": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        try:
            data, periodic, down = jobs_monitor.overview(), jobs_monitor.periodic_jobs(), False
        except (RedisError, OSError):
            data = {"queues": [], "started": [], "abandoned": [], "scheduled": [], "failed": []}
            periodic, down = jobs_monitor.periodic_jobs(with_runs=False), True
        return self.render_template("guishu/jobs.html", data=data, periodic=periodic,
                                    redis_down=down)

    @expose("/<kind>/<job_id>/requeue", methods=["POST"])
    @has_access
    def requeue(self, kind: str, job_id: str):
        try:
            jobs_monitor.requeue(signed_in_user(), kind, job_id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        except (RedisError, OSError):
            flash(_("Background jobs are paused (Redis unreachable): nothing was queued."),
                  "danger")
        else:
            flash(_("Job queued again."), "success")
        return redirect(url_for("JobsView.index"))
