"""批量导入 pages: upload, map the columns, follow the progress, download the error report.
Thin callers of app.services.imports (which decides who may import where), import_mapping,
import_run and import_report."""
from __future__ import annotations

from flask import Response, current_app, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from app.security import RES_IMPORT
from app.services import import_mapping, import_report, import_run, imports
from app.services.errors import GuishuError, ValidationFailed
from app.services.ids import parse_pk
from app.views.base import signed_in_user
from app.views.leads import lead_owner_choices


def too_large(error):
    """A request over MAX_CONTENT_LENGTH: on the import page a message beside the form
    instead of the bare 413 page."""
    if request.path.startswith("/imports/"):
        mb = current_app.config["MAX_CONTENT_LENGTH"] // 1024 // 1024
        flash(_("The file is too large: at most %(mb)s MB.", mb=min(
            mb, import_mapping.MAX_FILE_BYTES // 1024 // 1024)), "danger")
        return redirect(url_for("ImportView.index"))
    return error


class ImportView(BaseView):
    route_base = "/imports"
    class_permission_name = RES_IMPORT
    method_permission_name = {"index": "read", "upload": "write", "mapping": "write",
                              "show": "read", "status": "read", "errors": "read",
                              "resume": "write"}
    default_view = "index"

    def _batch_or_redirect(self, actor, batch_id):
        try:
            return imports.get_batch(actor, batch_id), None
        except GuishuError as exc:
            flash(exc.message, "danger")
            return None, redirect(url_for("ImportView.index"))

    @expose("/")
    @has_access
    def index(self):
        actor = signed_in_user()
        batches = imports.recent_batches(actor)
        return self.render_template("guishu/imports.html", batches=batches,
                                    may_import=imports.may_import(actor),
                                    max_mb=import_mapping.MAX_FILE_BYTES // 1024 // 1024)

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        actor = signed_in_user()
        file = request.files.get("file")
        try:
            batch = import_mapping.upload(actor, file.filename if file else "",
                                          file.read() if file else b"",
                                          request.form.get("record_type") or "customer")
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("ImportView.index"))
        return redirect(url_for("ImportView.mapping", batch_id=batch.id))

    @expose("/<int:batch_id>/mapping", methods=["GET", "POST"])
    @has_access
    def mapping(self, batch_id: int):
        actor = signed_in_user()
        batch, away = self._batch_or_redirect(actor, batch_id)
        if away:
            return away
        if batch.status != "mapping":
            return redirect(url_for("ImportView.show", batch_id=batch.id))
        errors, chosen = {}, dict(batch.mapping or {})
        target = request.form.get("target", "pool")
        pool_id = request.form.get("pool_id", "")
        owner_id = request.form.get("owner_id", "")
        fields = import_mapping.field_labels(batch.record_type)
        if request.method == "POST":
            chosen = {f: request.form.get(f"map_{f}", "") for f in fields}
            try:
                import_mapping.configure(actor, batch.id, chosen, target,
                                         parse_pk(pool_id), parse_pk(owner_id))
                import_run.start(actor, batch.id)
            except ValidationFailed as exc:
                errors = exc.fields
                if "batch" in errors and batch.status != "mapping":
                    flash(exc.message, "warning")  # queued, but Redis is down
                    return redirect(url_for("ImportView.show", batch_id=batch.id))
                flash(exc.message, "danger")
            except GuishuError as exc:
                flash(exc.message, "danger")
            else:
                return redirect(url_for("ImportView.show", batch_id=batch.id))
        lead = batch.record_type == "lead"
        return self.render_template(
            "guishu/import_mapping.html", batch=batch, fields=fields,
            required=() if lead else import_mapping.REQUIRED_FIELDS, chosen=chosen,
            errors=errors, preview=import_mapping.preview(batch),
            pools=imports.importable_lead_pools(actor) if lead
            else imports.importable_pools(actor),
            owners=lead_owner_choices().all() if lead and imports.may_name_lead_owner(actor)
            else [], owner_id=owner_id,
            target=target, pool_id=pool_id, may_use_rules=imports.may_use_rules(actor))

    @expose("/<int:batch_id>/")
    @has_access
    def show(self, batch_id: int):
        actor = signed_in_user()
        batch, away = self._batch_or_redirect(actor, batch_id)
        if away:
            return away
        return self.render_template(
            "guishu/import_show.html", batch=batch,
            problems=import_report.problem_rows(actor, batch.id, limit=200),
            kinds=import_report.REPORT_KINDS)

    @expose("/<int:batch_id>/status")
    @has_access
    def status(self, batch_id: int):
        actor = signed_in_user()
        try:
            batch = imports.get_batch(actor, batch_id)
        except GuishuError as exc:
            return jsonify(exc.to_dict()), exc.status
        return jsonify({"status": batch.status, "status_label": batch.status_label,
                        "total": batch.total_rows, "processed": batch.processed,
                        "inserted": batch.inserted, "duplicates": batch.duplicates,
                        "invalid": batch.invalid, "error": batch.error})

    @expose("/<int:batch_id>/errors.csv")
    @has_access
    def errors(self, batch_id: int):
        actor = signed_in_user()
        try:
            name, text = import_report.problem_report(actor, batch_id)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("ImportView.index"))
        from urllib.parse import quote

        return Response(text, mimetype="text/csv; charset=utf-8", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})

    @expose("/<int:batch_id>/resume", methods=["POST"])
    @has_access
    def resume(self, batch_id: int):
        actor = signed_in_user()
        try:
            import_run.start(actor, batch_id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(_("Import queued again: it continues after the last saved row."), "success")
        return redirect(url_for("ImportView.show", batch_id=batch_id))
