"""商机 pages: the scoped keyset list with the weighted amount, the opportunity page with its
stage history, add / edit forms, the kanban (one owner or a team; cards dragged between
columns post to the same stage change as the form), and the admins' stage editor. Every write
goes through app.services.opportunities."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Customer, Opportunity, OpportunityStage, Ownership, User
from app.models.opportunity import STAGE_KINDS
from app.models.org import EMPLOYMENT_ACTIVE
from app.paging import KeysetInterface
from app.security import RES_OPPORTUNITY, RES_OPPORTUNITY_STAGE, current_user
from app.services import opportunities as service
from app.services.errors import GuishuError
from app.services.ids import parse_pk
from app.views.base import ScopedModelView, local_path, readable_formatters
from app.views.org import ServiceModelView
from app.views.ownership import flash_error


class OpportunityScopeFilter(BaseFilter):
    """Only opportunities in the user's scope (app.services.opportunities.scope_clause)."""

    name = "opportunity scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(service.scope_clause(current_user()))


def _money(value) -> str:
    return f"{value:,.2f}" if value is not None else ""


def customer_cell(customer) -> Markup:
    if customer is None:
        return Markup("")
    return Markup('<a href="/customers/show/{}">{}</a>').format(customer.id, customer.name)


def stage_choices():
    return [(str(s.id), f"{s.name} ({s.probability}%)") for s in service.stages()
            if s.kind == "open"]


OPP_LOAD = [joinedload(Opportunity.stage), joinedload(Opportunity.closed_owner),
            joinedload(Opportunity.customer).joinedload(Customer.ownership)
            .joinedload(Ownership.owner)]
LABELS = {"title": _("Opportunity"), "customer": _("Customer"), "customer_id": _("Customer ID"),
          "amount": _("Amount"), "weighted_amount": _("Weighted amount"),
          "expected_close_on": _("Expected close date"), "product_line": _("Product line"),
          "stage": _("Stage"), "stage_id": _("Stage"), "stage_label": _("Stage"),
          "status": _("Status"), "status_label": _("Status"), "owner_label": _("Owner"),
          "loss_reason": _("Loss reason"), "created_at": _("Created at"),
          "updated_at": _("Updated at"), "closed_at": _("Closed at")}
FORM_FIELDS = ("title", "amount", "expected_close_on", "product_line")


class OpportunityView(ServiceModelView):
    datamodel = KeysetInterface(Opportunity, load=OPP_LOAD)
    class_permission_name = RES_OPPORTUNITY
    route_base = "/opportunities"
    base_filters = [["id", OpportunityScopeFilter, lambda: None]]
    base_order = ("id", "desc")
    order_columns = []
    base_permissions = ["can_read", "can_write"]
    method_permission_name = dict(ScopedModelView.method_permission_name, stage="write",
                                  kanban="read", delete="amend")
    list_title = _("Opportunities")
    show_title = _("Opportunity")
    add_title = _("Add opportunity")
    edit_title = _("Edit opportunity")
    list_columns = ["title", "customer", "stage_label", "amount", "weighted_amount",
                    "owner_label", "expected_close_on", "status_label", "updated_at"]
    search_columns = ["title", "status", "stage", "product_line", "expected_close_on",
                      "created_at"]
    add_columns = ["customer_id", "title", "amount", "expected_close_on", "product_line",
                   "stage_id"]
    edit_columns = list(FORM_FIELDS)
    label_columns = LABELS
    formatters_columns = dict(readable_formatters("title", "product_line"),
                              customer=customer_cell, amount=_money, weighted_amount=_money)
    _fields = {
        "amount": StringField(_("Amount"), widget=BS3TextFieldWidget(),
                              description=_("e.g. 120000.00")),
        "expected_close_on": StringField(_("Expected close date"), widget=BS3TextFieldWidget(),
                                         validators=[OptionalValidator()],
                                         description=_("YYYY-MM-DD")),
    }
    add_form_extra_fields = dict(
        _fields,
        customer_id=IntegerField(_("Customer ID"), validators=[OptionalValidator()],
                                 description=_("The customer page's “Add opportunity” fills "
                                               "it in")),
        stage_id=SelectField(_("Stage"), choices=[], validate_choice=False,
                             validators=[OptionalValidator()]))
    edit_form_extra_fields = _fields

    @staticmethod
    def _form_data(form) -> dict:
        out = {f: form[f].data for f in FORM_FIELDS if f in form}
        if out.get("expected_close_on") == "":
            out["expected_close_on"] = None
        return out

    def _add(self):
        form = self.add_form.refresh()
        form.stage_id.choices = stage_choices()
        if request.method == "GET":
            wanted = request.args.get("customer_id", type=parse_pk)
            form.customer_id.data = wanted
        if request.method == "POST" and form.validate():
            data = dict(self._form_data(form), customer_id=form.customer_id.data,
                        stage_id=form.stage_id.data or None)
            try:
                service.create(self.actor(), data)
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            service.get_opportunity(self.actor(), item.id, write=True)
        except GuishuError:
            abort(404)  # readable (an auditor, a closed one), not editable
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                try:
                    service.update_opportunity(self.actor(), item.id, self._form_data(form))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.amount.data = str(item.amount)
            form.expected_close_on.data = item.expected_close_on.isoformat() \
                if item.expected_close_on else ""
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        abort(404)  # an opportunity is lost (with a reason), never deleted

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self._scoped_get(pk)
        self.update_redirect()
        actor = self.actor()
        try:
            service.get_opportunity(actor, item.id, write=True)
            writable = True
        except GuishuError:
            writable = False
        return self.render_template(
            "guishu/opportunity_show.html", opp=item, history=service.history(item.id),
            stages=service.stages(), writable=writable, money=_money, title=item.title)

    @expose("/stage/<pk>", methods=["POST"])
    @has_access
    def stage(self, pk):
        """The stage change of the page's form and of the kanban's drop (JSON when asked)."""
        wants_json = request.accept_mimetypes.best == "application/json" \
            or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        pk_int = parse_pk(pk)
        try:
            opp = service.change_stage(
                self.actor(), pk_int if pk_int is not None else pk,
                request.form.get("stage_id", ""),
                loss_reason=request.form.get("loss_reason"),
                won_on=request.form.get("won_on") or None,
                expected_stage_id=request.form.get("expected_stage_id") or None)
        except GuishuError as exc:
            if wants_json:
                return jsonify(exc.to_dict()), exc.status
            flash_error(exc)
            return redirect(local_path(request.form.get("next"))
                            or url_for("OpportunityView.list"))
        if wants_json:
            return jsonify(service.to_dict(opp))
        flash(_("Moved to %(stage)s.", stage=opp.stage.name), "success")
        return redirect(local_path(request.form.get("next"))
                        or url_for("OpportunityView.show", pk=opp.id))

    @expose("/kanban", methods=["GET"])
    @has_access
    def kanban(self):
        """The kanban of one owner (default: oneself) or of one's team (?team=1)."""
        actor = self.actor()
        team = request.args.get("team") == "1"
        owner_id = request.args.get("owner_id", type=parse_pk)
        if "owner_id" in request.args and owner_id is None:
            abort(404)
        try:
            board = service.kanban(actor, owner_id=owner_id, team=team)
        except GuishuError:
            abort(404)
        reach = service.reach(actor)
        people = db.session.query(User).filter(User.active.is_(True),
                                               User.employment_status == EMPLOYMENT_ACTIVE)
        if reach is not None:
            people = people.filter(User.id.in_(sorted(reach)))
        may_write = self.appbuilder.sm.has_access("can_write", RES_OPPORTUNITY)
        return self.render_template(
            "guishu/opportunity_kanban.html", board=board, team=team,
            owner_id=owner_id or actor.id, people=people.order_by(User.username).all(),
            may_write=may_write, money=_money, title=_("Pipeline kanban"))


class OpportunityStageView(ServiceModelView):
    """Admins edit the pipeline's stages (names, probabilities, order, the reclaim flag)."""

    datamodel = SQLAInterface(OpportunityStage)
    class_permission_name = RES_OPPORTUNITY_STAGE
    route_base = "/opportunity-stages"
    base_permissions = ["can_read", "can_write", "can_delete"]
    base_order = ("position", "asc")
    list_title = show_title = _("Pipeline stages")
    add_title = _("Add stage")
    edit_title = _("Edit stage")
    list_columns = ["name", "probability", "position", "kind_label", "protects_from_reclaim"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "probability", "position", "protects_from_reclaim"]
    label_columns = {"name": _("Stage"), "probability": _("Probability (%)"),
                     "position": _("Position"), "kind": _("Kind"), "kind_label": _("Kind"),
                     "protects_from_reclaim": _("Protects from reclaim")}
    description_columns = {"protects_from_reclaim": _(
        "An open opportunity at this stage, updated within the no-follow-up days, keeps its "
        "customer from being reclaimed")}
    add_form_extra_fields = edit_form_extra_fields = {
        "protects_from_reclaim": BooleanField(_("Protects from reclaim"))}

    def create_item(self, values: dict) -> None:
        service.create_stage(self.actor(), values)

    def update_item(self, pk: int, values: dict) -> None:
        service.update_stage(self.actor(), pk, values)

    def delete_item(self, pk: int) -> None:
        service.delete_stage(self.actor(), pk)


__all__ = ["OpportunityView", "OpportunityStageView", "STAGE_KINDS"]
