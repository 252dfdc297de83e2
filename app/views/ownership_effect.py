"""归属效果评估: which assignment rule, strategy and channel converts (issue 20 §3), as tables
with their confidence intervals, each table also as CSV / XLSX. The service decides who reads
it and over which reps (app.services.ownership_effect)."""
from __future__ import annotations

from flask import Response, abort, flash, request
from flask_appbuilder import BaseView, expose, has_access

from app.security import RES_OWNERSHIP_EFFECT
from app.services import exports, ownership_effect
from app.services.errors import PermissionDenied, ValidationFailed
from app.views.base import signed_in_user

FORMATS = ("csv", "xlsx")


class OwnershipEffectView(BaseView):
    route_base = "/ownership-effect"
    class_permission_name = RES_OWNERSHIP_EFFECT
    method_permission_name = {"index": "read", "export": "read"}
    default_view = "index"

    def _report(self):
        args = request.args
        try:
            return ownership_effect.report(signed_in_user(), args.get("start"), args.get("end"),
                                           args.get("dept"), args.get("days"))
        except PermissionDenied:
            abort(403)

    @expose("/")
    @has_access
    def index(self):
        try:
            report = self._report()
        except ValidationFailed as exc:
            for name, message in exc.fields.items():
                flash(f"{name}: {message}", "danger")
            try:
                report = ownership_effect.report(signed_in_user())
            except PermissionDenied:
                abort(403)
            return self._page(report), 400
        return self._page(report)

    def _page(self, report):
        return self.render_template(
            "guishu/ownership_effect.html", report=report, oe=ownership_effect,
            departments=ownership_effect.departments(signed_in_user()))

    @expose("/<table>.<fmt>")
    @has_access
    def export(self, table: str, fmt: str):
        if fmt not in FORMATS or (table not in ownership_effect.TABLES and table != "overall"):
            abort(404)
        try:
            report = self._report()
        except ValidationFailed as exc:
            abort(400, description="; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
        header, rows = ownership_effect.table_rows(report, table)
        f = report.filters
        name = f"ownership-effect-{table}-{f.start}-{f.end}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "csv":
            return Response(exports.table_csv(header, rows), mimetype="text/csv; charset=utf-8",
                            headers=headers)
        return Response(exports.table_xlsx(table, header, rows), headers=headers,
                        mimetype="application/vnd.openxmlformats-officedocument"
                                 ".spreadsheetml.sheet")
