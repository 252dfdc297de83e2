"""Departments, pools, policies and the audit log (admin-edited configuration)."""
from __future__ import annotations

from flask import flash, request
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, SelectField

from app.models import (AssignmentRule, AuditLog, DedupeRule, Department, GradingSettings,
                        Policy, Pool, PoolMember)
from app.models.policy import POLICY_FIELDS
from app.models.dedupe import DEDUPE_ACTIONS
from app.models.rule import RULE_RECORD_TYPES, RULE_STRATEGIES
from app.security import (RES_AUDIT, RES_DEDUPE, RES_DEPARTMENT, RES_GRADING, RES_POLICY,
                          RES_POOL, RES_RULE, current_user)
from app.services import (audit, audit_labels, classification, dedupe, org, policy_config,
                          pool_admin as pools, rules, segments)
from app.services import cti_routing
from app.services.errors import GuishuError
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, minutes, one_line, readable_formatters
from app.views.pickers import UserPickerField, all_users


# One label per policy field, for the Policies form and the user page's effective policy.
POLICY_LABELS = {
    "max_customers": _("Cap on potential customers"), "count_won": _("Won customers count"),
    "max_locked": _("Cap on locked customers"), "daily_claim_limit": _("Daily claim limit"),
    "cooldown_days": _("Previous-owner cooldown (days)"),
    "reclaim_no_followup_days": _("Reclaim after days without follow-up"),
    "reclaim_no_deal_days": _("Reclaim after days without a deal"),
    "warn_before_days": _("Warn days before reclaim"),
    "lead_max": _("Lead cap (open leads held)"),
    "lead_daily_claim_limit": _("Daily lead claim limit"),
    "lead_reclaim_no_followup_days": _("Reclaim leads after days without follow-up"),
    "call_min_talk_seconds": _("Minimum talk time of a call that counts as a follow-up "
                               "(seconds)"),
}

POOL_RECORD_TYPE_LABELS = {"customer": _("Customers (public pool)"),
                          "lead": _("Leads (lead pool)")}

POLICY_SCOPES = {"global": _("Global"), "department": _("Department"), "user": _("Personal")}


def policy_value(value):
    """A policy field as users read it: empty inherits, booleans are yes/no."""
    if value is None:
        return _("Inherited")
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    return value


class AuditedModelView(ScopedModelView):
    """Every add, edit and delete of configuration writes an audit row (who, old -> new), in
    the same commit as the change (FAB's single commit after the pre_* hooks). Subclasses
    validate in pre_add / pre_update, then call super()."""

    audit_type = ""

    def _actor_id(self):
        user = current_user()
        return user.id if user else None

    def pre_add(self, item):
        audit.record_new(self._actor_id(), self.audit_type, item)

    def pre_update(self, item):
        audit.record(self._actor_id(), "update", self.audit_type, item.id,
                     audit.pending_changes(item))

    def pre_delete(self, item):
        audit.record(self._actor_id(), "delete", self.audit_type, item.id)


class ServiceModelView(ScopedModelView):
    """Add, edit and delete through the row's service, which validates, writes the audit row
    and commits once. A refusal shows the form again with the service's message beside its
    field (on delete: a flash message) and changes nothing."""

    def form_values(self, form, columns) -> dict:
        return {c: form[c].data for c in columns}

    def create_item(self, values: dict) -> None:
        raise NotImplementedError

    def update_item(self, pk: int, values: dict) -> None:
        raise NotImplementedError

    def delete_item(self, pk: int) -> None:
        raise NotImplementedError

    def _add(self):
        form = self.add_form.refresh()
        if request.method == "POST" and form.validate():
            try:
                self.create_item(self.form_values(form, self.add_columns))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            form._id = item.id  # FAB's unique-column validators skip the row itself
            if form.validate():
                try:
                    self.update_item(item.id, self.form_values(form, self.edit_columns))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        item = self._scoped_get(pk)
        try:
            self.delete_item(item.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(self.delete_row_message, "success")
        self.update_redirect()


def cti_queue_validator(form, field) -> None:
    """A call queue's name: at most 64 letters, digits, _, - and . (what platforms accept);
    blank is none (stored NULL)."""
    from wtforms.validators import ValidationError

    try:
        field.data = cti_routing.clean_queue(field.data)
    except GuishuError as exc:
        raise ValidationError(getattr(exc, "fields", {}).get("cti_queue", exc.message)) \
            from None


class DepartmentView(AuditedModelView):
    datamodel = SQLAInterface(Department)
    class_permission_name = RES_DEPARTMENT
    route_base = "/departments"
    audit_type = "department"
    list_title = show_title = _("Departments")
    add_title, edit_title = _("Add department"), _("Edit department")
    list_columns = ["name", "parent", "manager", "cti_queue", "path"]
    add_columns = edit_columns = ["name", "parent", "manager", "cti_queue"]
    show_columns = ["name", "parent", "manager", "cti_queue", "path"]
    label_columns = {"name": _("Name"), "parent": _("Parent department"),
                     "manager": _("Manager"), "path": _("Path"),
                     "cti_queue": _("Call queue")}
    description_columns = {"cti_queue": _(
        "The queue on the telephony platform that rings for this department's "
        "customers when neither their dedicated agent nor their owner can take the call; "
        "empty: the nearest department above with one, else the default queue")}
    validators_columns = {"cti_queue": [cti_queue_validator]}
    base_order = ("path", "asc")

    def pre_add(self, item):
        org.check_parent(item, item.parent)
        super().pre_add(item)
        org.refresh_paths(item)  # the path holds the new id: after the flush

    def pre_update(self, item):
        org.check_parent(item, item.parent)
        super().pre_update(item)
        org.refresh_paths(item)


class PoolMemberView(AuditedModelView):
    """Who belongs to a pool (a department, with its sub-departments, or one user) and who
    administers it (pool admins may distribute its customers)."""

    datamodel = SQLAInterface(PoolMember)
    class_permission_name = RES_POOL
    route_base = "/pool-members"
    audit_type = "pool_member"
    list_title = show_title = _("Pool members")
    add_title, edit_title = _("Add pool member"), _("Edit pool member")
    list_columns = ["pool", "department", "user", "is_admin"]
    add_columns = edit_columns = show_columns = list_columns
    label_columns = {"pool": _("Pool"), "department": _("Department"), "user": _("User"),
                     "is_admin": _("Pool admin")}
    formatters_columns = readable_formatters("department", "user")
    add_form_extra_fields = edit_form_extra_fields = {
        "is_admin": BooleanField(_("Pool admin")),
        "user": UserPickerField(_("User"), query_func=all_users)}

    def pre_add(self, item):
        pools.validate_member(item)
        super().pre_add(item)

    def pre_update(self, item):
        pools.validate_member(item)
        super().pre_update(item)


class PoolView(ServiceModelView):
    """Exactly one default pool: ticking "Default pool" moves the default here (the previous
    default loses it in the same save); unticking or deleting the default is refused."""

    datamodel = SQLAInterface(Pool)
    class_permission_name = RES_POOL
    route_base = "/pools"
    list_title = show_title = _("Public pools")
    add_title, edit_title = _("Add public pool"), _("Edit public pool")
    list_columns = ["name", "record_type", "description", "is_default"]
    add_columns = edit_columns = ["name", "record_type", "description", "is_default"]
    add_form_extra_fields = edit_form_extra_fields = {
        "is_default": BooleanField(_("Default pool")),
        "record_type": SelectField(_("Holds"), choices=list(POOL_RECORD_TYPE_LABELS.items()),
                                   default="customer")}
    label_columns = {"name": _("Name"), "description": _("Description"),
                     "is_default": _("Default pool (of its record type)"),
                     "record_type": _("Holds")}
    formatters_columns = {"record_type": lambda v: POOL_RECORD_TYPE_LABELS.get(v, v)}
    related_views = [PoolMemberView]
    show_template = "appbuilder/general/model/show_cascade.html"

    def create_item(self, values):
        pools.create_pool(self.actor(), values)

    def update_item(self, pk, values):
        pools.update_pool(self.actor(), pk, values)

    def delete_item(self, pk):
        pools.delete_pool(self.actor(), pk)


def _blank_is_none(value):
    return None if value in ("", None, "None") else value


SEGMENT_LABELS = {
    "segment_record_type": _("Segment: record type"), "segment_grade": _("Segment: grade"),
    "segment_category": _("Segment: category"),
    "segment_product_line": _("Segment: product line"),
    "segment_source": _("Segment: source"), "segment_key": _("Segment"),
}


class PolicyView(ServiceModelView):
    """One policy per target and segment; the global default is edited, never deleted
    (policy_config). A segment policy (any segment condition set) holds only the reclaim
    periods and warning days."""

    datamodel = SQLAInterface(Policy)
    class_permission_name = RES_POLICY
    route_base = "/policies"
    list_title = show_title = _("Ownership policies")
    add_title, edit_title = _("Add ownership policy"), _("Edit ownership policy")
    _fields = ["scope", "department", "user", "segment_key", "max_customers", "count_won",
               "max_locked", "daily_claim_limit", "cooldown_days", "reclaim_no_followup_days",
               "reclaim_no_deal_days", "warn_before_days"]
    list_columns = _fields
    _segment = ["segment_record_type", "segment_grade", "segment_category",
                "segment_product_line", "segment_source"]
    _fields = [f for f in _fields if f != "segment_key"]
    _fields = _fields[:3] + _segment + _fields[3:] + [
        "lead_max", "lead_daily_claim_limit", "lead_reclaim_no_followup_days",
        "call_min_talk_seconds"]
    add_columns = edit_columns = show_columns = _fields
    label_columns = {"scope": _("Applies to"), "department": _("Department"), "user": _("User"),
                     **SEGMENT_LABELS, **POLICY_LABELS}
    description_columns = {
        "scope": _("global, department or user; empty fields inherit"),
        "segment_record_type": _("Optional segment conditions: the policy then applies only "
                                 "to the matching customers or leads, and may set only the "
                                 "reclaim periods and warning days. Per field the first that "
                                 "sets it wins: user + segment, user, department + segment, "
                                 "department, ..., global + segment, global."),
        "segment_source": _("Compared with the stored source: a customer's source text, or a "
                            "lead's channel code (web_form, phone, exhibition, referral, "
                            "advertising, campaign, other)"),
    }
    # Words, not raw values: an empty field inherits, count_won is yes/no, scope is named.
    formatters_columns = {
        "scope": lambda v: POLICY_SCOPES.get(v, v),
        "department": lambda v: v if v is not None else "—",
        "user": lambda v: v if v is not None else "—",
        "segment_key": lambda v: segments.key_text(v) or "—",
        **{f: policy_value for f in POLICY_FIELDS},
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "scope": SelectField(_("Applies to"), choices=list(POLICY_SCOPES.items())),
        "count_won": SelectField(_("Won customers count"), choices=[
            ("", _("Inherited")), ("1", _("Yes")), ("0", _("No"))],
            coerce=lambda v: None if v in ("", None, "None") else v in ("1", True, "True")),
        "user": UserPickerField(_("User"), query_func=all_users),
        "segment_record_type": SelectField(SEGMENT_LABELS["segment_record_type"], choices=[
            ("", _("Any")), ("customer", _("Customers")), ("lead", _("Leads"))],
            coerce=_blank_is_none),
        "segment_grade": SelectField(SEGMENT_LABELS["segment_grade"], choices=[
            ("", _("Any")), ("A", "A"), ("B", "B"), ("C", "C")], coerce=_blank_is_none),
        "segment_category": SelectField(SEGMENT_LABELS["segment_category"], choices=[
            ("", _("Any")), ("potential", _("Potential customer")),
            ("active", _("Active customer")), ("silent", _("Silent customer"))],
            coerce=_blank_is_none),
    }

    def form_values(self, form, columns):
        values = super().form_values(form, columns)
        department, user = values.pop("department", None), values.pop("user", None)
        return dict(values, department_id=department.id if department else None,
                    user_id=user.id if user else None)

    def create_item(self, values):
        policy_config.create_policy(self.actor(), values)

    def update_item(self, pk, values):
        policy_config.update_policy(self.actor(), pk, values)

    def delete_item(self, pk):
        policy_config.delete_policy(self.actor(), pk)


class ValidatedModelView(AuditedModelView):
    """Add and edit that run the service's validation before saving and, when it refuses,
    show the form again with the message beside the field and the input kept."""

    def validate_item(self, item) -> None:
        raise NotImplementedError

    def _add(self):
        form = self.add_form.refresh()
        if request.method == "POST" and form.validate():
            item = self.datamodel.obj()
            form.populate_obj(item)
            try:
                self.validate_item(item)
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            self.pre_add(item)
            self.datamodel.add(item)
            self.post_add(item)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                form.populate_obj(item)
                try:
                    self.validate_item(item)
                except GuishuError as exc:
                    self.datamodel.session.rollback()
                    self.show_error(form, exc)
                    return self._get_edit_widget(form=form)
                self.pre_update(item)
                self.datamodel.edit(item)
                self.post_update(item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
        return self._get_edit_widget(form=form)


class SettingsRowView(AuditedModelView):
    """A settings table of one row, seeded by `flask crm init`: edited, never added or
    deleted (a second row would make the settings ambiguous)."""

    base_permissions = ["can_read", "can_write"]
    method_permission_name = dict(AuditedModelView.method_permission_name, add="amend",
                                  delete="amend")


class GradingSettingsView(SettingsRowView):
    """潜在 / 活跃 / 沉默 and A/B/C thresholds."""

    datamodel = SQLAInterface(GradingSettings)
    class_permission_name = RES_GRADING
    route_base = "/grading"
    audit_type = "grading_settings"
    list_title = show_title = edit_title = _("Classification and grading")
    list_columns = show_columns = ["silent_after_days", "grade_a_min",
                                                  "grade_b_min", "updated_at"]
    edit_columns = ["silent_after_days", "grade_a_min", "grade_b_min"]
    label_columns = {"silent_after_days": _("Silent after days without a deal"),
                     "grade_a_min": _("Grade A from (12-month won amount, yuan)"),
                     "grade_b_min": _("Grade B from (12-month won amount, yuan)"),
                     "updated_at": _("Updated at")}

    def pre_update(self, item):
        classification.validate_settings(item)
        super().pre_update(item)


class AuditLogView(ScopedModelView):
    datamodel = KeysetInterface(AuditLog, load=[joinedload(AuditLog.actor)])
    order_columns: list[str] = []  # newest first (id); far back through the time filter
    class_permission_name = RES_AUDIT
    route_base = "/audit"
    base_permissions = ["can_read"]
    base_order = ("id", "desc")
    list_title = show_title = _("Audit log")
    list_columns = ["created_at", "actor", "action", "object_type", "object_id",
                    "changes_shown"]
    show_columns = list_columns
    search_columns = ["actor", "action", "object_type", "object_id", "created_at"]
    label_columns = {"created_at": _("Time"), "actor": _("By"), "action": _("Action"),
                     "object_type": _("Object"), "object_id": _("ID"), "changes": _("Changes"),
                     "changes_shown": _("Changes")}
    # Words, not keys: the action and object named, the changes (masked by changes_shown)
    # as "field: old → new"; the actor's name kept on one line.
    formatters_columns = {
        "actor": one_line,
        "action": audit_labels.action_label, "object_type": audit_labels.object_label,
        "changes_shown": audit_labels.changes_text}


class AssignmentRuleView(AuditedModelView):
    """归属规则: ordered; the first active matching rule decides (admins edit)."""

    datamodel = SQLAInterface(AssignmentRule)
    class_permission_name = RES_RULE
    route_base = "/assignment-rules"
    audit_type = "assignment_rule"
    base_order = ("position", "asc")
    list_title = show_title = _("Assignment rules")
    add_title, edit_title = _("Add assignment rule"), _("Edit assignment rule")
    list_columns = ["position", "name", "active", "record_type", "province", "city", "industry",
                    "customer_type", "grade", "product_line", "source", "lifecycle",
                    "target_type", "target_user", "target_department", "strategy", "target_pool"]
    add_columns = edit_columns = show_columns = list_columns
    label_columns = {
        "position": _("Order"), "name": _("Name"), "active": _("Active"),
        "record_type": _("Places"), "province": _("Province"), "city": _("City"),
        "industry": _("Industry"),
        "customer_type": _("Type"), "grade": _("Grade"), "product_line": _("Product line"),
        "source": _("Source"), "lifecycle": _("Lifecycle stage"), "target_type": _("Target"),
        "target_user": _("Target rep"), "target_department": _("Target department"),
        "strategy": _("Strategy"), "target_pool": _("Target / fallback pool"),
    }
    formatters_columns = readable_formatters(
        "province", "city", "industry", "customer_type", "grade", "product_line", "source",
        "lifecycle", "target_user", "target_department", "target_pool")
    formatters_columns.update(
        target_type=lambda v: {"user": _("A rep"), "department": _("Department"),
                               "pool": _("Pool")}.get(v, v),
        strategy=lambda v: RULE_STRATEGIES.get(v, v) if v else "—",
        record_type=lambda v: RULE_RECORD_TYPES.get(v, v))
    add_form_extra_fields = edit_form_extra_fields = {
        "active": BooleanField(_("Active"), default=True),
        "record_type": SelectField(_("Places"), choices=list(RULE_RECORD_TYPES.items()),
                                   default="customer",
                                   description=_("A lead rule matches only province, city, "
                                                 "industry and source, and its pool must be "
                                                 "a lead pool")),
        "target_type": SelectField(_("Target"), choices=[
            ("user", _("A rep")), ("department", _("Department")), ("pool", _("Pool"))]),
        "strategy": SelectField(_("Strategy"), choices=list(RULE_STRATEGIES.items())),
        "target_user": UserPickerField(_("Target rep"), query_func=all_users),
    }

    def pre_add(self, item):
        rules.validate_rule(item)
        super().pre_add(item)

    def pre_update(self, item):
        rules.validate_rule(item)
        super().pre_update(item)


def _model_default(value) -> str:
    """A scored rule's threshold, or "（模型默认）" when it follows the model."""
    return _("(the model's)") if value is None else f"{value:.1f}"


class DedupeRuleView(ValidatedModelView, SettingsRowView):
    """查重规则: one row per kind; admins switch a rule on or off and pick block or warn; the
    scored rule (the matcher) also has its link and review thresholds (blank: the model's)."""

    datamodel = SQLAInterface(DedupeRule)
    class_permission_name = RES_DEDUPE
    route_base = "/dedupe-rules"
    audit_type = "dedupe_rule"
    list_title = show_title = edit_title = _("Dedupe rules")
    list_columns = ["kind_label", "active", "action_label", "link_score", "review_score",
                    "updated_at"]
    show_columns = list_columns
    edit_columns = ["active", "action", "link_score", "review_score"]
    search_columns = ["kind", "active", "action"]
    label_columns = {"kind_label": _("Rule"), "active": _("Active"),
                     "action": _("On match"), "action_label": _("On match"),
                     "link_score": _("Link threshold (score)"),
                     "review_score": _("Review threshold (score)"),
                     "updated_at": _("Updated at"), "kind": _("Rule")}
    description_columns = {
        "link_score": _("Similar customer (scored) only: a pair whose total reaches this is "
                        "the same customer (blocked or warned as above). Blank: the model's "
                        "threshold"),
        "review_score": _("Similar customer (scored) only: from this total a pair goes to the "
                          "review page. Blank: the model's threshold"),
    }
    edit_form_extra_fields = {
        "active": BooleanField(_("Active")),
        "action": SelectField(_("On match"), choices=list(DEDUPE_ACTIONS.items())),
    }
    formatters_columns = {"updated_at": minutes, "link_score": _model_default,
                          "review_score": _model_default}

    def validate_item(self, item):
        dedupe.validate_rule(item)
