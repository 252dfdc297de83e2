"""价值复评建议: the open proposals of the value re-evaluation in the reader's scope, each
accepted with one click (a transfer request, the grade given back to the deals, a campaign
membership or a re-activation task) or dismissed with a reason. app.services.value_review
decides everything; this page only calls it."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.security import RES_VALUE_REVIEW
from app.services import value_review
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed, tr
from app.views.base import signed_in_user


class ValueReviewView(BaseView):
    route_base = "/value-review"
    class_permission_name = RES_VALUE_REVIEW
    method_permission_name = {"index": "read", "accept": "write", "dismiss": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        user = signed_in_user()
        kind = request.args.get("kind") or None
        try:
            rows, total = value_review.open_proposals(user, kind)
        except ValidationFailed as exc:
            for message in exc.fields.values():
                flash(message, "danger")
            kind = None
            rows, total = value_review.open_proposals(user)
        from app.models.value_review import PROPOSAL_KINDS

        return self.render_template(
            "guishu/value_review.html", rows=rows, total=total, kind=kind,
            kinds=PROPOSAL_KINDS, labels={k: tr(v) for k, v in value_review.KIND_LABELS.items()},
            finding=value_review.finding_text, page=value_review.PAGE,
            may_decide=_may_decide(user))

    def _decide(self, action):
        back = url_for("ValueReviewView.index", kind=request.args.get("kind") or None)
        try:
            action(signed_in_user())
        except ValidationFailed as exc:
            for message in exc.fields.values():
                flash(message, "danger")
        except Conflict as exc:
            flash(exc.message, "warning")
        except OutOfScope:
            abort(404)
        except PermissionDenied:
            abort(403)
        return redirect(back)

    @expose("/<int:proposal_id>/accept", methods=["POST"])
    @has_access
    def accept(self, proposal_id):
        form = request.form

        def act(user):
            proposal = value_review.accept(user, proposal_id, form.get("to_owner_id"),
                                           form.get("campaign_id"))
            if proposal.transfer_id:
                flash(tr("Transfer request #%(id)s filed: it now goes through the approvals",
                         id=proposal.transfer_id), "success")
            else:
                flash(tr("Proposal accepted"), "success")
        return self._decide(act)

    @expose("/<int:proposal_id>/dismiss", methods=["POST"])
    @has_access
    def dismiss(self, proposal_id):
        def act(user):
            value_review.dismiss(user, proposal_id, request.form.get("reason"))
            flash(tr("Proposal dismissed"), "success")
        return self._decide(act)


def _may_decide(user) -> bool:
    try:
        value_review.require_decider(user)
        return True
    except PermissionDenied:
        return False
