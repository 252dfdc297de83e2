"""服务分析: the desk's tables over a period (app.services.service_analysis), each also as
CSV. The service decides who reads it and over which tickets (tickets.scope_clause)."""
from __future__ import annotations

from flask import Response, abort, flash, request
from flask_appbuilder import BaseView, expose, has_access

from app.security import RES_SERVICE_ANALYSIS
from app.services import service_analysis
from app.services.errors import PermissionDenied, ValidationFailed
from app.views.base import signed_in_user


class ServiceAnalysisView(BaseView):
    route_base = "/service-analysis"
    class_permission_name = RES_SERVICE_ANALYSIS
    method_permission_name = {"index": "read", "export": "read"}
    default_view = "index"

    def _report(self):
        args = request.args
        try:
            return service_analysis.report(signed_in_user(), args.get("start"), args.get("end"))
        except PermissionDenied:
            abort(403)

    @expose("/")
    @has_access
    def index(self):
        try:
            report = self._report()
        except ValidationFailed as exc:
            for message in exc.fields.values():
                flash(message, "danger")
            report = service_analysis.report(signed_in_user())
        return self.render_template(
            "guishu/service_analysis.html", report=report, titles=service_analysis.TABLE_TITLES,
            columns=service_analysis.COLUMNS, cell=service_analysis.cell,
            tables=service_analysis.TABLES, limits={
                "sample": service_analysis.DURATION_SAMPLE,
                "categories": service_analysis.TOP_CATEGORIES,
                "subjects": service_analysis.SUBJECTS_PER_CATEGORY,
                "similarity": service_analysis.SIMILARITY})

    @expose("/<table>.csv")
    @has_access
    def export(self, table: str):
        if table not in service_analysis.TABLES:
            abort(404)
        try:
            report = self._report()
        except ValidationFailed as exc:
            abort(400, description="; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
        body = "\ufeff" + service_analysis.csv_text(report, table)
        name = f"service-{table}-{report.period.start}-{report.period.end}.csv"
        return Response(body, mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
