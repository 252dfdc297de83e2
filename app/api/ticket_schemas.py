"""The bodies of /api/v1/tickets/ (kept beside app.api.schemas, registered by TicketApi)."""
from __future__ import annotations

from marshmallow import fields

from app.api.schemas import Answer, Body, Choice, RecordId, Text, Timestamp
from app.models.service_desk import (MESSAGE_KINDS, TICKET_CHANNELS, TICKET_PRIORITIES,
                                     TICKET_STATUSES)
from app.services import limits, tickets
from app.services.errors import tr

_CHANNELS, _PRIORITIES, _STATUSES = (tuple(TICKET_CHANNELS), tuple(TICKET_PRIORITIES),
                                     tuple(TICKET_STATUSES))


def _choice(field: str, choices: tuple, **kwargs) -> Choice:
    return Choice(choices, message=lambda: tr("%(field)s can only be: %(choices)s",
                                              field=field, choices=tr(", ").join(choices)),
                  metadata={"description": " | ".join(choices)}, **kwargs)


class _TicketFields(Body):
    customer_id = RecordId(allow_none=True, metadata={
        "description": "the customer (the desk: any; an owner: one in its scope)"})
    contact_id = RecordId(allow_none=True, metadata={"description": "one of the customer's"})
    category_id = RecordId(allow_none=True, metadata={"description": "an active category"})
    description = Text(tickets.DESCRIPTION, allow_none=True)
    requester_name = Text(tickets.REQUESTER, allow_none=True, metadata={
        "description": "who asked, when no customer is linked"})
    requester_email = Text(tickets.REQUESTER, allow_none=True)


class TicketCreate(_TicketFields):
    channel = _choice("channel", _CHANNELS, required=True)
    priority = _choice("priority", _PRIORITIES)
    subject = Text(tickets.SUBJECT, required=True)


class TicketUpdate(_TicketFields):
    channel = _choice("channel", _CHANNELS)
    priority = _choice("priority", _PRIORITIES)
    subject = Text(tickets.SUBJECT)


class TicketAssignRequest(Body):
    agent_id = RecordId(allow_none=True, metadata={"description": "a service agent (of the "
                                                                  "team, when one is named)"})
    team_id = RecordId(allow_none=True, metadata={
        "description": "an active team; neither agent nor team: route the ticket again"})


class TicketStatusRequest(Body):
    status = _choice("status", _STATUSES, required=True)
    note = Text(limits.REASON, allow_none=True)


class TicketMessageRequest(Body):
    body = Text(tickets.DESCRIPTION, required=True)


class Ticket(Answer):
    """A ticket as the API answers it (requester_email masked by the contact rule)."""
    id = fields.Integer(required=True)
    customer_id = fields.Integer(allow_none=True)
    customer_name = fields.String(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    requester_name = fields.String(allow_none=True)
    requester_email = fields.String(allow_none=True)
    channel = fields.String(required=True, metadata={"description": " | ".join(_CHANNELS)})
    category_id = fields.Integer(allow_none=True)
    priority = fields.String(required=True, metadata={"description": " | ".join(_PRIORITIES)})
    subject = fields.String(required=True)
    description = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": " | ".join(_STATUSES)})
    team_id = fields.Integer(allow_none=True)
    agent_id = fields.Integer(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)
    assigned_at = Timestamp(allow_none=True)
    first_response_at = Timestamp(allow_none=True)
    resolved_at = Timestamp(allow_none=True)
    closed_at = Timestamp(allow_none=True)
    reopened_count = fields.Integer(required=True)
    first_response_due_at = Timestamp(allow_none=True)
    resolution_due_at = Timestamp(allow_none=True)
    satisfaction_score = fields.Integer(allow_none=True)


class TicketResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Ticket, required=True)


class TicketRaised(Answer):
    """The answer to raising a ticket routing sent outside the caller's scope (201)."""
    id = fields.Integer(required=True)
    team_id = fields.Integer(allow_none=True, metadata={"description": "where it was routed"})
    team_name = fields.String(allow_none=True)
    status = fields.String(required=True)
    message = fields.String(required=True, metadata={
        "description": "says where it went; the ticket itself is not readable by the caller"})


class TicketPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(Ticket), required=True)


class TicketMessage(Answer):
    id = fields.Integer(required=True)
    ticket_id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": " | ".join(MESSAGE_KINDS)})
    body = fields.String(required=True)
    author_id = fields.Integer(allow_none=True)
    address = fields.String(allow_none=True, metadata={
        "description": "a reply's recipient or an inbound mail's sender (masked by the rule)"})
    delivery_status = fields.String(allow_none=True, metadata={
        "description": "replies by e-mail: pending | sending | sent | failed | cancelled"})
    created_at = Timestamp(allow_none=True)


class TicketMessageResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(TicketMessage, required=True)


class TicketMessageList(Answer):
    count = fields.Integer(required=True)
    result = fields.List(fields.Nested(TicketMessage), required=True)


class TicketAttachment(Answer):
    id = fields.Integer(required=True)
    ticket_id = fields.Integer(required=True)
    message_id = fields.Integer(allow_none=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sha256 = fields.String(required=True)
    uploaded_by_id = fields.Integer(allow_none=True)
    created_at = Timestamp(allow_none=True)


class TicketAttachmentResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(TicketAttachment, required=True)


class TicketAttachmentList(Answer):
    count = fields.Integer(required=True)
    result = fields.List(fields.Nested(TicketAttachment), required=True)


class InboundMail(Body):
    """A mail from the mail bridge (its headers and its plain text)."""
    from_ = Text(320, required=True, data_key="from", metadata={
        "description": "the sender: an address, or Name <address>"})
    to = Text(320, allow_none=True, metadata={"description": "the desk's address it went to"})
    subject = Text(1000, allow_none=True, metadata={
        "description": "a [#123] token continues ticket 123 when the sender is its own"})
    text = Text(100_000, required=True, metadata={"description": "the plain-text body"})
    message_id = Text(300, required=True, metadata={
        "description": "the Message-ID header: a mail is taken once"})
    in_reply_to = Text(1200, allow_none=True, metadata={
        "description": "the In-Reply-To header: continues the ticket of that message"})


class InboundMailResult(Answer):
    ticket_id = fields.Integer(required=True)
    message_id = fields.Integer(required=True, metadata={"description": "the ticket message"})
    created = fields.Boolean(required=True, metadata={"description": "a new ticket"})
    duplicate = fields.Boolean(required=True, metadata={
        "description": "this Message-ID was taken before; nothing changed"})


COMPONENTS = (InboundMail, InboundMailResult, TicketCreate, TicketUpdate, TicketAssignRequest, TicketStatusRequest,
              TicketMessageRequest, Ticket, TicketResult, TicketRaised, TicketPage, TicketMessage,
              TicketMessageResult, TicketMessageList, TicketAttachment,
              TicketAttachmentResult, TicketAttachmentList)
