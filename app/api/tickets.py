"""/api/v1/tickets/: list (scoped, keyset by id, filters), get, post, patch, and the
operations assign, reply, note, status; every write through app.services.tickets."""
from __future__ import annotations

from typing import Optional

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.api import schemas, ticket_schemas as ts
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models import Ticket, TicketMessage, User
from app.models.service_desk import TICKET_CHANNELS, TICKET_PRIORITIES, TICKET_STATUSES
from app.security import RES_TICKET, current_user
from app.services import masking, ticket_storage, tickets
from app.services.errors import ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk

MAX_PAGE_SIZE = 100
CHOICE_ARGS = {"status": TICKET_STATUSES, "priority": TICKET_PRIORITIES,
               "channel": TICKET_CHANNELS}
ID_ARGS = ("customer_id", "category_id", "team_id", "agent_id")
LIST_ARGS = ("after", "page_size", *CHOICE_ARGS, *ID_ARGS)


def _full(actor: Optional[User], ticket: Ticket) -> bool:
    return tickets.addresses_in_full(actor, ticket)


def ticket_dict(ticket: Ticket, full: bool) -> dict:
    out = {f: getattr(ticket, f) for f in (
        "id", "customer_id", "contact_id", "requester_name", "channel", "category_id",
        "priority", "subject", "description", "status", "team_id", "agent_id",
        "created_by_id", "created_at", "updated_at", "assigned_at", "first_response_at",
        "resolved_at", "closed_at", "reopened_count", "first_response_due_at",
        "resolution_due_at", "satisfaction_score")}
    out["customer_name"] = ticket.customer.name if ticket.customer is not None else None
    out["requester_email"] = masking.shown("email", ticket.requester_email, full)
    return out


def message_dict(message: TicketMessage, full: bool) -> dict:
    out = {f: getattr(message, f) for f in ("id", "ticket_id", "kind", "body", "author_id",
                                            "delivery_status", "created_at")}
    out["address"] = masking.shown("email", message.address, full)
    return out


def _answer(ticket: Ticket) -> dict:
    db.session.refresh(ticket)
    return schemas.dump(ts.TicketResult, {
        "id": ticket.id, "result": ticket_dict(ticket, _full(current_user(), ticket))})


def _message_answer(message: TicketMessage) -> dict:
    return schemas.dump(ts.TicketMessageResult, {
        "id": message.id,
        "result": message_dict(message, _full(current_user(), message.ticket))})


def attachment_dict(row) -> dict:
    return {f: getattr(row, f) for f in ("id", "ticket_id", "message_id", "filename",
                                         "content_type", "size", "sha256", "uploaded_by_id",
                                         "created_at")}


def _list_args() -> dict:
    """The list's query arguments, each checked (400 naming the field)."""
    errors: dict[str, str] = {k: tr("Unknown parameter")
                              for k in sorted(set(request.args) - set(LIST_ARGS))}
    out: dict = {"page_size": 50}
    for key in ("after", *ID_ARGS):
        if key in request.args:
            out[key] = parse_pk(request.args[key])
            if out[key] is None:
                errors[key] = tr("%(field)s must be an integer from 1 to %(max)s", field=key,
                                 max=MAX_PK)
    if "page_size" in request.args:
        raw = request.args["page_size"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            errors["page_size"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                     field="page_size", min=1, max=MAX_PAGE_SIZE)
        else:
            out["page_size"] = int(raw)
    for key, choices in CHOICE_ARGS.items():
        if key in request.args:
            if request.args[key] not in choices:
                errors[key] = tr("%(field)s can only be: %(choices)s", field=key,
                                 choices=tr(", ").join(choices))
            out[key] = request.args[key]
    if errors:
        raise ValidationFailed(errors)
    return out


class TicketApi(DocumentedApi):
    resource_name = "tickets"
    class_permission_name = RES_TICKET
    openapi_spec_tag = "Tickets"
    openapi_spec_component_schemas = schemas.COMPONENTS + ts.COMPONENTS

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_tickets(self):
        """Tickets in the caller's scope.
        ---
        get:
          summary: 工单列表 — the tickets the caller may read, newest first, keyset pages by id
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: status, schema: {type: string,
             enum: [new, assigned, in_progress, waiting, resolved, closed]}}
          - {in: query, name: priority, schema: {type: string, enum: [P1, P2, P3, P4]}}
          - {in: query, name: channel, schema: {type: string,
             enum: [phone, email, online, wechat, visit]}}
          - {in: query, name: customer_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: category_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: team_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: agent_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          answer: TicketPage
          errors: [400, 401, 403]
        """
        args = _list_args()
        actor = current_user()
        q = (select(Ticket).options(joinedload(Ticket.customer))
             .where(tickets.scope_clause(actor)).order_by(Ticket.id.desc())
             .limit(args["page_size"] + 1))
        if "after" in args:
            q = q.where(Ticket.id < args["after"])
        for key in (*CHOICE_ARGS, *ID_ARGS):
            if key in args:
                q = q.where(getattr(Ticket, key) == args[key])
        rows = list(db.session.execute(q).unique().scalars())
        more = len(rows) > args["page_size"]
        rows = rows[:args["page_size"]]
        return self.response(200, **schemas.dump(ts.TicketPage, {
            "count": len(rows), "next_after": rows[-1].id if more and rows else None,
            "result": [ticket_dict(r, _full(actor, r)) for r in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_ticket(self, pk: int):
        """One ticket.
        ---
        get:
          summary: 工单 — one ticket the caller may read
          answer: TicketResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(tickets.get_ticket(current_user(), pk)))

    @expose("/<int:pk>/messages", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_messages(self, pk: int):
        """The ticket's messages.
        ---
        get:
          summary: 工单消息 — replies, internal notes and the customer's messages, oldest first
          answer: TicketMessageList
          errors: [401, 403, 404]
        """
        actor = current_user()
        ticket = tickets.get_ticket(actor, pk)
        full = _full(actor, ticket)
        rows = tickets.messages(ticket)
        return self.response(200, **schemas.dump(ts.TicketMessageList, {
            "count": len(rows), "result": [message_dict(m, full) for m in rows]}))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Raise a ticket.
        ---
        post:
          summary: 新建工单 — by the desk (any customer, or an unlinked requester) or by a
            customer's owner; routed, its SLA started, the owner told of a complaint or a P1
          description: 200 with the ticket when the caller may read it; 201 with its id,
            team and status only when routing sent it outside the caller's scope (an agent
            raising a ticket another team serves).
          body: TicketCreate
          answer: TicketResult
          responses:
            "201":
              description: raised and routed outside the caller's scope
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/TicketRaised"}
          errors: [400, 401, 403]
        """
        actor = current_user()
        ticket = tickets.create(actor, load_body(ts.TicketCreate))
        if tickets.may_read(actor, ticket.id):
            return self.response(200, **_answer(ticket))
        return self.response(201, **schemas.dump(ts.TicketRaised, {
            "id": ticket.id, "team_id": ticket.team_id,
            "team_name": ticket.team.name if ticket.team is not None else None,
            "status": ticket.status, "message": tickets.raised_elsewhere(ticket)}))

    @expose("/<int:pk>", methods=["PATCH"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def change(self, pk: int):
        """Change a ticket.
        ---
        patch:
          summary: 修改工单 — subject, description, category, priority, channel, the customer
            and contact link (the fields given)
          body: TicketUpdate
          answer: TicketResult
          errors: [400, 401, 403, 404]
        """
        data = load_body(ts.TicketUpdate)
        return self.response(200, **_answer(tickets.update(current_user(), pk, data)))

    @expose("/<int:pk>/assign", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def assign(self, pk: int):
        """Assign a ticket.
        ---
        post:
          summary: 分派 — to an agent and / or a team (neither routes it again); 409 when the
            ticket is closed or another agent took it meanwhile
          body: TicketAssignRequest
          answer: TicketResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(ts.TicketAssignRequest)
        return self.response(200, **_answer(tickets.assign(
            current_user(), pk, agent_id=data.get("agent_id"), team_id=data.get("team_id"))))

    @expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def status(self, pk: int):
        """Move a ticket by the status machine.
        ---
        post:
          summary: 状态 — in_progress, waiting, resolved, closed; from resolved or closed,
            in_progress or assigned reopens; 409 naming both statuses for a move the machine
            does not allow
          body: TicketStatusRequest
          answer: TicketResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(ts.TicketStatusRequest)
        return self.response(200, **_answer(tickets.change_status(
            current_user(), pk, data["status"], data.get("note"))))

    @expose("/<int:pk>/reply", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def reply(self, pk: int):
        """Reply to the customer.
        ---
        post:
          summary: 回复客户 — e-mailed to the contact / customer / requester when there is an
            address; the first reply is the first response
          body: TicketMessageRequest
          answer: TicketMessageResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(ts.TicketMessageRequest)
        return self.response(200, **_message_answer(tickets.reply(current_user(), pk,
                                                                  data["body"])))

    @expose("/<int:pk>/note", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def note(self, pk: int):
        """Add an internal note.
        ---
        post:
          summary: 内部备注 — never sent; the desk, and the customer's owner
          body: TicketMessageRequest
          answer: TicketMessageResult
          errors: [400, 401, 403, 404]
        """
        data = load_body(ts.TicketMessageRequest)
        return self.response(200, **_message_answer(tickets.note(current_user(), pk,
                                                                 data["body"])))

    @expose("/<int:pk>/attachments", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_attachments(self, pk: int):
        """The ticket's attachments.
        ---
        get:
          summary: 附件列表 — the files on the ticket and its messages
          answer: TicketAttachmentList
          errors: [401, 403, 404]
        """
        rows = ticket_storage.attachments_of(tickets.get_ticket(current_user(), pk))
        return self.response(200, **schemas.dump(ts.TicketAttachmentList, {
            "count": len(rows), "result": [attachment_dict(r) for r in rows]}))

    @expose("/<int:pk>/attachments", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def upload(self, pk: int):
        """Attach a file.
        ---
        post:
          summary: 上传附件 — images, PDF, office documents, txt, csv, zip, up to the size the
            service settings allow; the type is checked by the name's extension and by the
            content
          requestBody:
            required: true
            content:
              multipart/form-data:
                schema:
                  type: object
                  required: [file]
                  properties:
                    file: {type: string, format: binary}
          answer: TicketAttachmentResult
          errors: [400, 401, 403, 404, 413]
        """
        # (a part without a name reads as None: refused as the body's)
        unknown = sorted({k if isinstance(k, str) else "body"
                          for k in [*request.files, *request.form] if k != "file"})
        if unknown:
            from app.services.errors import UNKNOWN_FIELD

            raise ValidationFailed({k: str(UNKNOWN_FIELD) for k in unknown})
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed({"file": tr("Please choose a file")})
        row = ticket_storage.add(current_user(), pk, upload)
        return self.response(200, **schemas.dump(ts.TicketAttachmentResult, {
            "id": row.id, "result": attachment_dict(row)}))

    @expose("/<int:pk>/attachments/<int:aid>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def download(self, pk: int, aid: int):
        """Download an attachment.
        ---
        get:
          summary: 下载附件 — only for those who may read the ticket; always a download
          responses:
            200:
              description: the file
              content:
                application/octet-stream:
                  schema: {type: string, format: binary}
          errors: [401, 403, 404]
        """
        from urllib.parse import quote

        from flask import Response

        row, data = ticket_storage.open_attachment(current_user(), pk, aid)
        # Served as bytes to save, never rendered here (an HTML or SVG could not run as
        # this site even if one got past the type checks).
        response = Response(data, mimetype="application/octet-stream")
        response.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(row.filename)}")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


class TicketMailApi(DocumentedApi):
    """/api/v1/tickets/inbound-mail, for the mail bridge: authenticated by an API key of
    purpose email_inbound, never by a session or a JWT (so exempt from CSRF: nothing here
    reads the session cookie). Its security schemes are the ones HooksApi declares."""

    resource_name = "tickets"
    openapi_spec_tag = "Webhooks"
    allow_browser_login = False
    openapi_spec_component_schemas = schemas.COMPONENTS + ts.COMPONENTS

    @expose("/inbound-mail", methods=["POST"])
    @maps_domain_errors
    def inbound_mail(self):
        """An inbound e-mail from the mail bridge (API key purpose email_inbound).
        ---
        post:
          summary: 来信 — open a ticket, or continue one (In-Reply-To, or [#id] in the subject)
          description: Authenticated by an API key of purpose email_inbound (never by a
            session or JWT). The mail continues the ticket whose message (or opening mail)
            In-Reply-To names, or whose [#id] token the subject carries when the sender is the
            ticket's requester, contact or customer (a closed ticket gets a new one). Else it
            opens a ticket matched to the customer by the sender's normalised address (the
            customer's, else a contact's); an unknown sender's ticket has no customer. Taken
            once per message_id (a redelivery answers duplicate true). Refusals 401
            missing_key / unknown_key / revoked_key, 403 wrong_purpose, 429 rate_limited,
            413 too_large (over 512 KiB), 400 naming the field.
          security:
          - machine_key_bearer: []
          - machine_key_header: []
          body: InboundMail
          answer: InboundMailResult
          errors: [400, 401, 403, 413, 429]
        """
        from app.api.hooks import body_within, key_for
        from app.api.common import json_body
        from app.services import ticket_mail

        body_within(ticket_mail.BODY_MAX)
        key = key_for("email_inbound")
        data = schemas.load(ts.InboundMail, json_body())
        data["from"] = data.pop("from_")
        result = ticket_mail.receive(key, data)
        return self.response(200, **schemas.dump(ts.InboundMailResult, result.as_dict()))
