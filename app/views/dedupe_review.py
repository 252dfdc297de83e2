"""查重审核: the batch scan's open clusters, one cluster side by side with merge and dismiss,
the merges of the last 30 days with undo, and the button that queues a scan.

Every decision is app.services.dedupe_review / merge; a refusal is a flashed message and a
redirect, never a 500."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _, ngettext

from app.security import RES_DEDUPE_REVIEW
from app.services import dedupe_review as review, merge as merge_service
from app.services.errors import GuishuError
from app.services.masking import customer_field
from app.services.ids import parse_page, parse_pk
from app.views.base import signed_in_user
from app.views.customers import CUSTOMER_LABELS

FIELD_LABELS = dict(CUSTOMER_LABELS, birthday=_("Birthday"))


def _int(value, default=None):
    number = parse_pk(value)
    return default if number is None else number


def field_value(customer, field: str) -> str:
    if field == "birthday":
        return customer.birthday_display
    value = customer_field(customer, field)  # contact details by the masking rule
    return "" if value is None else str(value)


class DedupeReviewView(BaseView):
    route_base = "/dedupe-review"
    class_permission_name = RES_DEDUPE_REVIEW
    method_permission_name = {"index": "read", "show": "read", "merges": "read",
                              "scan": "write", "merge": "write", "dismiss": "write",
                              "undo": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        actor = signed_in_user()
        page = request.args.get("page", 0, type=parse_page) or 0
        try:
            clusters, total = review.open_clusters(actor, page)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect("/")
        return self.render_template("guishu/dedupe_clusters.html", clusters=clusters,
                                    total=total, page=page, page_size=review.PAGE_SIZE,
                                    last=review.last_scan(), can_write=merge_service.may_review(actor))

    @expose("/scan", methods=["POST"])
    @has_access
    def scan(self):
        try:
            job = review.queue_scan(signed_in_user())
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("DedupeReviewView.index"))
        if job is None:
            flash(_("Background jobs are paused (Redis unreachable): nothing was queued."),
                  "warning")
        else:
            flash(_("Scan queued: its progress is shown on the background jobs page."), "info")
        return redirect(url_for("DedupeReviewView.index"))

    @expose("/<int:pk>")
    @has_access
    def show(self, pk: int):
        actor = signed_in_user()
        try:
            cluster, members = review.cluster(actor, pk)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("DedupeReviewView.index"))
        present = [m for m in members if m.customer is not None]
        stale = review.stale_reason(members)
        if stale and cluster.status == "open":
            flash(stale, "warning")
        return self.render_template(
            "guishu/dedupe_cluster.html", cluster=cluster, members=members, present=present,
            fields=merge_service.MERGE_FIELDS, labels=FIELD_LABELS, value=field_value,
            stale=stale, can_write=merge_service.may_review(actor) and cluster.status == "open")

    @expose("/<int:pk>/merge", methods=["POST"])
    @has_access
    def merge(self, pk: int):
        actor = signed_in_user()
        survivor = _int(request.form.get("survivor"))
        merged = [i for i in (_int(v) for v in request.form.getlist("merge")) if i]
        choices = {f: _int(request.form.get(f"field_{f}")) for f in merge_service.MERGE_FIELDS
                   if request.form.get(f"field_{f}")}
        if survivor is None:
            flash(_("Pick the record to keep."), "danger")
            return redirect(url_for("DedupeReviewView.show", pk=pk))
        try:
            records = review.merge_cluster(actor, pk, survivor, merged,
                                           {f: i for f, i in choices.items() if i})
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("DedupeReviewView.show", pk=pk))
        flash(ngettext("Merged %(n)s customer into #%(id)s.",
                       "Merged %(n)s customers into #%(id)s.", len(records), n=len(records),
                       id=survivor), "success")
        return redirect(f"/customers/show/{survivor}")

    @expose("/<int:pk>/dismiss", methods=["POST"])
    @has_access
    def dismiss(self, pk: int):
        try:
            review.dismiss(signed_in_user(), pk)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("DedupeReviewView.index"))
        flash(_("Marked as not duplicates: these customers will not be proposed again."),
              "success")
        return redirect(url_for("DedupeReviewView.index"))

    @expose("/merges/")
    @has_access
    def merges(self):
        actor = signed_in_user()
        try:
            merge_service.require_reader(actor)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect("/")
        records = merge_service.recent_merges()
        return self.render_template(
            "guishu/dedupe_merges.html", records=records,
            refusals={r.id: merge_service.undo_refusal(r) for r in records},
            can_write=merge_service.may_review(actor))

    @expose("/merges/<int:pk>/undo", methods=["POST"])
    @has_access
    def undo(self, pk: int):
        try:
            record = merge_service.undo(signed_in_user(), pk)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("DedupeReviewView.merges"))
        flash(_("Merge undone: customer #%(id)s is back.", id=record.merged_id), "success")
        return redirect(url_for("DedupeReviewView.merges"))

