"""Transfer requests (转移 / 交接) in the web UI: apply from the customer list, the inbox
(awaiting my decision / mine / others), and one request's page with approve, reject and
cancel. Every decision is app.services.transfers; a request the user may not see is a 404."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, TransferRequest
from app.models.transfer import STATUS_LABELS, TRANSFER_TRIGGERS
from app.security import RES_TRANSFER
from app.services import org, transfers
from app.services.errors import GuishuError
from app.services.ids import parse_page, parse_pk
from app.views.base import signed_in_user
from app.views.ownership import flash_error, ids_arg, owned_customers, selected_ids



class TransferView(BaseView):
    route_base = "/transfers"
    class_permission_name = RES_TRANSFER
    method_permission_name = {"index": "read", "show": "read", "new": "request",
                              "cancel": "request", "approve": "approve", "reject": "approve"}
    default_view = "index"

    def _actor(self):
        return signed_in_user()

    def _visible(self, pk: int) -> TransferRequest:
        transfer = db.session.get(TransferRequest, pk)
        if transfer is None or not transfers.visible_to(self._actor(), transfer):
            abort(404)
        return transfer

    @expose("/")
    @has_access
    def index(self):
        # Each box pages on its own: ?awaiting_page=1&mine_page=2 (from 0).
        pages = {box: request.args.get(f"{box}_page", 0, type=parse_page) or 0
                 for box in transfers.BOXES}
        return self.render_template("guishu/transfers.html",
                                    boxes=transfers.inbox(self._actor(), pages),
                                    page_args={f"{box}_page": n for box, n in pages.items()},
                                    statuses=STATUS_LABELS)

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        actor = self._actor()
        ids = selected_ids()
        customers = owned_customers(actor, ids)
        form = {k: request.form.get(k, "") for k in ("to_owner_id", "reason", "trigger",
                                                     "handover_note", "keep_read_days")}
        # An ordinary request is "other": departure has its own page (OwnershipView.departure),
        # and a preselected first option recorded rule transfer:departure on every request.
        form["trigger"] = form["trigger"] or "other"
        if request.method == "POST":
            try:
                keep = int(form["keep_read_days"] or 0)
            except ValueError:
                keep = -1  # the service names the allowed range
            try:
                transfer = transfers.create_transfer(
                    actor, ids, request.form.get("to_owner_id", type=parse_pk), form["reason"],
                    form["trigger"], form["handover_note"], keep)
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(_("Transfer request #%(id)s is waiting for approval.", id=transfer.id),
                      "success")
                return redirect(url_for("TransferView.show", pk=transfer.id))
        return self.render_template(
            "guishu/transfer_new.html", customers=customers, ids=ids_arg(ids), form=form,
            receiver_id=parse_pk(form["to_owner_id"]),
            # Anyone who sells may receive; approval decides across departments.
            receivers=[u for u in org.active_sellers()
                       if u.id not in {c.ownership.owner_id for c in customers}],
            triggers=TRANSFER_TRIGGERS)

    @expose("/<int:pk>")
    @has_access
    def show(self, pk: int):
        actor = self._actor()
        transfer = self._visible(pk)
        names = dict(db.session.execute(select(Customer.id, Customer.name).where(
            Customer.id.in_([i.customer_id for i in transfer.items]))).all())
        return self.render_template(
            "guishu/transfer_show.html", t=transfer, names=names, statuses=STATUS_LABELS,
            can_decide=transfers.awaiting_decision(actor, transfer),
            can_cancel=transfers.can_cancel(actor, transfer))

    def _decide(self, pk: int, fn, done: str):
        self._visible(pk)
        try:
            fn()
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(done, "success")
        return redirect(url_for("TransferView.show", pk=pk))

    @expose("/<int:pk>/approve", methods=["POST"])
    @has_access
    def approve(self, pk: int):
        return self._decide(pk, lambda: transfers.approve(self._actor(), pk,
                                                          request.form.get("note", "")),
                            _("Approved."))

    @expose("/<int:pk>/reject", methods=["POST"])
    @has_access
    def reject(self, pk: int):
        return self._decide(pk, lambda: transfers.reject(self._actor(), pk,
                                                         request.form.get("note", "")),
                            _("Rejected."))

    @expose("/<int:pk>/cancel", methods=["POST"])
    @has_access
    def cancel(self, pk: int):
        return self._decide(pk, lambda: transfers.cancel(self._actor(), pk), _("Cancelled."))
