"""后台任务 (admins): queues, running jobs with progress, failed jobs with their error and a
retry button, and the last run of every periodic job with its summary."""
from __future__ import annotations

from flask import flash, redirect, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from redis.exceptions import RedisError

from app.queue import schedule
from app.security import RES_JOBS
from app.services import jobs_monitor


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
            data, periodic, down = {"queues": [], "started": [], "failed": []}, [
                dict(job, last=None) for job in schedule()], True
        return self.render_template("guishu/jobs.html", data=data, periodic=periodic,
                                    redis_down=down)

    @expose("/failed/<job_id>/requeue", methods=["POST"])
    @has_access
    def requeue(self, job_id: str):
        try:
            done = jobs_monitor.requeue_failed(job_id)
        except (RedisError, OSError):
            done = False
        flash(_("Job queued again.") if done else _("No such failed job."),
              "success" if done else "danger")
        return redirect(url_for("JobsView.index"))
