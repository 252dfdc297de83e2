"""工单 pages: the list (in scope; mine / my teams; filters), the ticket's page (details, SLA
time left, status buttons, assign, reply and note forms, the thread and the history), the
new-ticket and edit forms, and the customer page's 专属客服 form. Every write is a call to
app.services.tickets (or service_admin for the dedicated agent), which checks scope and
role again; the pages only offer what the actor may do."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import User
from app.models.customer import utcnow
from app.models.service_desk import (MESSAGE_KINDS, TICKET_CHANNELS, TICKET_PRIORITIES,
                                     TICKET_STATUSES, ServiceTeam, Ticket)
from app.paging import KeysetInterface
from app.security import (METHOD_PERMISSIONS, RES_DEDICATED_AGENT, RES_TICKET, current_user)
from app.services import (masking, service_admin, service_panels, sla, sla_sweep,
                          ticket_storage, tickets)
from app.services.errors import GuishuError
from app.services.ids import parse_pk
from app.views.base import ScopedModelView, local_path, minutes, signed_in_user

# The list's quick views (?which=…): everything in scope, assigned to me, my teams' queue.
WHICH = {"all": _("All in my scope"), "mine": _("Assigned to me"), "teams": _("My teams")}


class TicketScopeFilter(BaseFilter):
    """FAB base filter: the tickets the signed-in user may read (tickets.scope_clause), and
    the list's quick view (?which=mine / teams)."""

    name = "ticket scope"
    arg_name = None

    def apply(self, query, value):
        actor = current_user()
        query = query.filter(tickets.scope_clause(actor))
        which = request.args.get("which") if request else None
        if which == "mine" and actor is not None:
            query = query.filter(Ticket.agent_id == actor.id)
        elif which == "teams" and actor is not None:
            query = query.filter(Ticket.team_id.in_(sorted(tickets.agent_team_ids(actor))))
        return query


def ticket_link(ticket_id) -> Markup:
    return Markup('<a href="{}">#{}</a>').format(url_for("TicketView.show", pk=ticket_id),
                                                 ticket_id)


def customer_cell(customer) -> Markup:
    if customer is None:
        return Markup("")
    return Markup('<a href="{}">{}</a>').format(url_for("CustomerView.show", pk=customer.id),
                                                customer.name)


# The history's kinds (TicketEvent.kind) as words; a kind not listed shows as it is stored.
EVENT_LABELS = {"created": _("Raised"), "status": _("Status"), "reopened": _("Reopened"),
                "assigned": _("Agent"), "team": _("Team"), "customer": _("Customer"),
                "category": _("Category"), "priority": _("Priority"), "channel": _("Channel"),
                "contact": _("Contact"), "edited": _("Edited"), "reply": _("Reply"),
                "note": _("Internal note"), "rated": _("Satisfaction"),
                "attachment": _("Attachment"),
                **sla_sweep.EVENT_LABELS}  # the SLA job's warnings, breaches, escalations
DELIVERY_LABELS = {"pending": _("Waiting to be sent"), "sending": _("Sending"),
                   "sent": _("Sent"), "failed": _("Sending failed"),
                   "cancelled": _("Cancelled")}


def history_rows(events) -> list[dict]:
    """The history as the page prints it: statuses, teams, agents and categories by name."""
    users = {e.actor_id for e in events}
    teams, cats = set(), set()
    for e in events:
        target = {"assigned": users, "team": teams, "category": cats}.get(e.kind)
        if target is not None:
            target.update(int(v) for v in (e.from_value, e.to_value) if v and v.isdigit())
    names = {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(sorted(i for i in users if i)))).scalars()}
    team_names = dict(db.session.execute(select(ServiceTeam.id, ServiceTeam.name).where(
        ServiceTeam.id.in_(sorted(teams)))).all()) if teams else {}
    cat_names = dict(service_admin.category_choices(active_only=False)) if cats else {}

    def word(kind, value):
        if value is None:
            return ""
        if kind in ("status", "reopened"):
            return str(TICKET_STATUSES.get(value, value))
        if kind == "priority":
            return str(TICKET_PRIORITIES.get(value, value))
        if kind == "channel":
            return str(TICKET_CHANNELS.get(value, value))
        lookup = {"assigned": names, "team": team_names, "category": cat_names}.get(kind)
        if lookup is not None and value.isdigit():
            return lookup.get(int(value), value)
        if kind in ("reply", "note"):
            return ""
        if kind in (sla_sweep.BREACH_RESPONSE, sla_sweep.BREACH_RESOLUTION):
            # a breach that escalated the ticket (the SLA job writes the level it reached)
            return str(_("Escalated to level %(level)s", level=value))
        return value

    return [{"at": e.at, "kind": e.kind, "label": EVENT_LABELS.get(e.kind, e.kind),
             "from": word(e.kind, e.from_value), "to": word(e.kind, e.to_value),
             "note": e.note, "actor": names.get(e.actor_id, "")} for e in events]


def choices(labels: dict) -> list[tuple[str, str]]:
    return list(labels.items())


def category_choices():
    return [("", "—")] + [(str(i), label) for i, label in service_admin.category_choices()]


class TicketView(ScopedModelView):
    datamodel = KeysetInterface(Ticket, load=[joinedload(Ticket.customer),
                                              joinedload(Ticket.agent),
                                              joinedload(Ticket.team),
                                              joinedload(Ticket.category)])
    class_permission_name = RES_TICKET
    route_base = "/tickets"
    order_columns = ["created_at"]
    base_order = ("created_at", "desc")
    base_filters = [["id", TicketScopeFilter, lambda: None]]
    base_permissions = ["can_read", "can_write"]
    # Tickets are closed, never deleted; the page's verbs are writes.
    method_permission_name = dict(METHOD_PERMISSIONS, delete="amend", status="write",
                                  assign="write", reply="write", note="write",
                                  reopen="write", attach="write", attachment="read")
    list_title = show_title = _("Tickets")
    add_title = _("New ticket")
    edit_title = _("Edit ticket")
    list_template = "guishu/ticket_list.html"
    list_columns = ["id", "created_at", "subject", "customer", "status_label",
                    "priority_label", "category", "team", "agent"]
    search_columns = ["status", "priority", "category", "team", "agent", "customer",
                      "channel", "subject", "created_at"]
    label_columns = {"id": _("No."), "created_at": _("Created at"), "subject": _("Subject"),
                     "customer": _("Customer"), "status": _("Status"),
                     "status_label": _("Status"), "priority": _("Priority"),
                     "priority_label": _("Priority"), "category": _("Category"),
                     "team": _("Team"), "agent": _("Agent"), "channel": _("Channel"),
                     "customer_id": _("Customer ID"), "contact_id": _("Contact ID"),
                     "category_id": _("Category"), "description": _("Description"),
                     "requester_name": _("Requester"),
                     "requester_email": _("Requester e-mail")}
    formatters_columns = {"id": ticket_link, "customer": customer_cell, "created_at": minutes,
                          "category": lambda v: v or "", "team": lambda v: v or "",
                          "agent": lambda v: v or ""}
    _form_fields = ["customer_id", "contact_id", "channel", "category_id", "priority",
                    "subject", "description", "requester_name", "requester_email"]
    add_columns = _form_fields
    edit_columns = [f for f in _form_fields if f not in ("requester_name", "requester_email")]
    _fields = {
        "customer_id": StringField(_("Customer ID"), widget=BS3TextFieldWidget(),
                                   validators=[OptionalValidator()],
                                   description=_("The customer page's “New ticket” fills it "
                                                 "in")),
        "contact_id": StringField(_("Contact ID"), widget=BS3TextFieldWidget(),
                                  validators=[OptionalValidator()]),
        "channel": SelectField(_("Channel"), choices=choices(TICKET_CHANNELS)),
        "category_id": SelectField(_("Category"), choices=[], validate_choice=False),
        "priority": SelectField(_("Priority"), choices=choices(TICKET_PRIORITIES),
                                default="P3"),
        "subject": StringField(_("Subject"), widget=BS3TextFieldWidget()),
        "description": TextAreaField(_("Description"), widget=BS3TextAreaFieldWidget()),
        "requester_name": StringField(_("Requester"), widget=BS3TextFieldWidget(),
                                      description=_("Without a customer: who asked")),
        "requester_email": StringField(_("Requester e-mail"), widget=BS3TextFieldWidget()),
    }
    add_form_extra_fields = _fields
    edit_form_extra_fields = {k: v for k, v in _fields.items()
                              if k not in ("requester_name", "requester_email")}

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            kwargs.update(which=request.args.get("which", "all"), which_labels=WHICH,
                          service_user=tickets.is_service_user(current_user()))
        return super().render_template(template, **kwargs)

    @staticmethod
    def _values(form, columns) -> dict:
        out = {}
        for name in columns:
            value = form[name].data
            out[name] = value.strip() if isinstance(value, str) else value
            if out[name] == "":
                out[name] = None
        return out

    def _add(self):
        form = self.add_form.refresh()
        form.category_id.choices = category_choices()
        if request.method == "GET":
            # From the customer page: its id (and the primary contact when it has one).
            wanted = request.args.get("customer_id", type=parse_pk)
            form.customer_id.data = str(wanted) if wanted else ""
        if request.method == "POST" and form.validate():
            try:
                ticket = tickets.create(self.actor(), self._values(form, self.add_columns))
            except GuishuError as exc:
                db.session.rollback()
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            if tickets.may_read(self.actor(), ticket.id):
                flash(_("Ticket #%(id)s raised.", id=ticket.id), "success")
                self._created_id = ticket.id
            else:
                # Routed out of the raiser's scope (another team's): say where it went and
                # go back to the list rather than to a page that answers 404.
                flash(tickets.raised_elsewhere(ticket), "info")
                self._created_id = "list"
            return None
        return self._get_add_widget(form=form)

    def post_add_redirect(self):
        created = getattr(self, "_created_id", None)
        if created is not None:
            self._created_id = None
            if created == "list":
                return redirect(url_for("TicketView.list"))
            return redirect(url_for("TicketView.show", pk=created))
        return super().post_add_redirect()

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            tickets.get_ticket(self.actor(), item.id, write=True)
        except GuishuError:
            abort(404)  # readable (an owner, an auditor), not theirs to edit
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            form.category_id.choices = category_choices()
            if form.validate():
                try:
                    tickets.update(self.actor(), item.id, self._values(form, self.edit_columns))
                except GuishuError as exc:
                    db.session.rollback()
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.category_id.choices = category_choices()
            form.category_id.data = str(item.category_id or "")
            form.customer_id.data = str(item.customer_id or "")
            form.contact_id.data = str(item.contact_id or "")
        return self.edit_widgets(form, item)

    def post_edit_redirect(self):
        pk = request.view_args.get("pk") if request.view_args else None
        return redirect(url_for("TicketView.show", pk=pk) if parse_pk(pk) else
                        self.get_redirect())

    def _delete(self, pk):
        abort(404)

    # -- the ticket's page ----------------------------------------------------------------
    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        actor = self.actor()
        try:
            ticket = tickets.get_ticket(actor, pk)
        except GuishuError:
            abort(404)
        self.update_redirect()
        try:
            tickets.get_ticket(actor, ticket.id, write=True)
            writable = True
        except GuishuError:
            writable = False
        moves = [s for s in tickets.TRANSITIONS.get(ticket.status, ())
                 if not (ticket.status in tickets.REOPEN_FROM and s != "closed")] \
            if writable else []
        left = sla.time_left(ticket, utcnow())
        teams = list(db.session.execute(select(ServiceTeam).where(
            ServiceTeam.active.is_(True)).order_by(ServiceTeam.name)).scalars()) \
            if writable else []
        full = tickets.addresses_in_full(actor, ticket)  # the API's rule, not a second one
        return self.render_template(
            "guishu/ticket_show.html", t=ticket, title=ticket.subject, writable=writable,
            address=lambda value: masking.shown("email", value, full),
            may_note=tickets.raises_tickets(actor), moves=moves, statuses=TICKET_STATUSES,
            reopenable=writable and ticket.status in tickets.REOPEN_FROM,
            left=left, duration=service_panels.duration_text,
            thread=tickets.messages(ticket), history=history_rows(tickets.history(ticket)),
            files=ticket_storage.attachments_of(ticket),
            max_mb=service_admin.settings().max_attachment_mb,
            kinds=MESSAGE_KINDS, deliveries=DELIVERY_LABELS, teams=teams,
            agents=service_admin.active_service_users() if writable else [],
            category=dict(service_admin.category_choices(active_only=False)))

    def _verb(self, pk, call, done):
        try:
            call(self.actor(), parse_pk(pk) or pk)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(done, "success")
            if not tickets.may_read(self.actor(), parse_pk(pk)):
                # Handed on to another team: the page would answer 404 now.
                return redirect(url_for("TicketView.list"))
        return redirect(url_for("TicketView.show", pk=pk) if parse_pk(pk)
                        else url_for("TicketView.list"))

    @expose("/status/<pk>", methods=["POST"])
    @has_access
    def status(self, pk):
        target = request.form.get("status", "")
        return self._verb(pk, lambda actor, t: tickets.change_status(
            actor, t, target, note=request.form.get("note") or None),
            _("Status changed to %(status)s.", status=TICKET_STATUSES.get(target, target)))

    @expose("/reopen/<pk>", methods=["POST"])
    @has_access
    def reopen(self, pk):
        return self._verb(pk, lambda actor, t: tickets.reopen(
            actor, t, request.form.get("reason", "")), _("The ticket was reopened."))

    @expose("/assign/<pk>", methods=["POST"])
    @has_access
    def assign(self, pk):
        return self._verb(pk, lambda actor, t: tickets.assign(
            actor, t, agent_id=request.form.get("agent_id") or None,
            team_id=request.form.get("team_id") or None), _("The ticket was assigned."))

    @expose("/reply/<pk>", methods=["POST"])
    @has_access
    def reply(self, pk):
        return self._verb(pk, lambda actor, t: tickets.reply(
            actor, t, request.form.get("body", ""), attachments=self._uploads()),
            _("Reply recorded."))

    @expose("/note/<pk>", methods=["POST"])
    @has_access
    def note(self, pk):
        return self._verb(pk, lambda actor, t: tickets.note(
            actor, t, request.form.get("body", ""), attachments=self._uploads()),
            _("Internal note added."))

    @expose("/attach/<pk>", methods=["POST"])
    @has_access
    def attach(self, pk):
        """A file on the ticket itself (ticket_storage.add checks type, size and who)."""
        upload = request.files.get("file")
        return self._verb(pk, lambda actor, t: ticket_storage.add(actor, t, upload),
                          _("File attached."))

    @expose("/attachment/<pk>/<aid>", methods=["GET"])
    @has_access
    def attachment(self, pk, aid):
        """Download an attachment: readers of the ticket only, always as a download."""
        from urllib.parse import quote

        try:
            row, data = ticket_storage.open_attachment(self.actor(), pk, aid)
        except GuishuError:
            abort(404)
        response = Response(data, mimetype="application/octet-stream")
        response.headers["Content-Disposition"] = \
            f"attachment; filename*=UTF-8''{quote(row.filename)}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @staticmethod
    def _uploads() -> list:
        return [f for f in request.files.getlist("attachments") if f and f.filename]


class DedicatedAgentView(BaseView):
    """The customer page's 专属客服 form: set or remove a customer's dedicated agent."""

    route_base = "/dedicated-agent"
    class_permission_name = RES_DEDICATED_AGENT
    method_permission_name = {"save": "write"}

    @expose("/<customer_id>", methods=["POST"])
    @has_access
    def save(self, customer_id):
        actor = signed_in_user()
        number = parse_pk(customer_id)
        if number is None:
            abort(404)
        try:
            if request.form.get("unset"):
                service_admin.unset_dedicated_agent(actor, number)
                flash(_("The dedicated service agent was removed."), "success")
            else:
                service_admin.set_dedicated_agent(actor, number, request.form.get("agent_id"))
                flash(_("The dedicated service agent was set."), "success")
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(local_path(request.form.get("next"))
                        or url_for("CustomerView.show", pk=number))


def customer_service_tab(actor: User, customer_id: int, has_access) -> dict:
    """What the customer page's 服务 tab shows: the customer's tickets (open first), the last
    satisfaction score, the dedicated agent and whether the reader may change it."""
    row = service_admin.dedicated_row(customer_id)
    may_set = has_access("can_write", RES_DEDICATED_AGENT) and \
        service_admin.may_set_dedicated(actor)
    return {
        "tickets": service_panels.customer_tickets(actor, customer_id),
        "rating": service_panels.last_rating(actor, customer_id),
        "dedicated": row.agent if row is not None else None,
        "dedicated_source": row.source if row is not None else None,
        "may_set_dedicated": may_set,
        "agents": service_admin.active_service_users() if may_set else [],
        "may_raise": has_access("can_write", RES_TICKET) and tickets.raises_tickets(actor),
        "may_read": has_access("can_read", RES_TICKET),
    }
