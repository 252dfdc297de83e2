"""Tickets by e-mail: inbound mail (from a mail bridge, POST /api/v1/tickets/inbound-mail with
an API key of purpose email_inbound) opens or continues a ticket; replies to the customer go
out by e-mail through the SMTP gateway of app.services.care_channels.

Inbound: a mail continues a ticket when its In-Reply-To names one of the ticket's messages
(or the mail that opened it), or when its subject carries the "[#123]" token our replies
write — in both cases only when the sender is the ticket's requester, contact or customer; a reply to a closed
ticket opens a new one. Otherwise it opens a ticket, matched to the customer by the sender's
normalised address (the customer's own, else a contact's: the lowest id when several are);
an unknown sender gets a ticket without a customer (requester_email / requester_name),
linked later with tickets.update. A mail is taken once: its Message-ID is unique among the
ticket messages, so a redelivery, even a concurrent one, answers "duplicate".

Outbound: tickets.reply leaves a 'reply' message with delivery_status 'pending' when there is
an address; `deliver` (the periodic job, and a job queued at once on each reply) claims each
one, sends it with "[#id]" in the subject, keeps the Message-ID the gateway gave it (so the
customer's answer finds its thread) and retries with the care outbox's backoff.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Optional

from sqlalchemy import Integer, cast, literal, null, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ApiKey, Contact, Customer, Ownership, Ticket, TicketMessage
from app.models.customer import utcnow
from app.services import audit, care_channels, notifications, tickets
from app.services.care import backoff
from app.services.errors import N_, ValidationFailed, tr
from app.services.normalize import InvalidValue, normalize_email
from app.services.text import UNCLEAN_MESSAGE, is_unclean

ADDRESS_MAX = 320       # an address, or "Name <address>"
SUBJECT_MAX = 1_000     # a mail's subject (the ticket keeps its first 200 characters)
TEXT_MAX = 100_000      # a mail's text (the ticket's description keeps the first 10,000)
MESSAGE_ID_MAX = 300    # the mail_message_id column
BODY_MAX = 512 * 1024   # bytes of the whole request (the endpoint refuses more with 413)
MAX_ATTEMPTS = 4        # sending a reply, as the care outbox
BATCH = 200
STALE_SENDING = dt.timedelta(minutes=30)
NO_SUBJECT = N_("(no subject)")  # msgid
_TOKEN = re.compile(r"\[#(\d{1,10})\]")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,296}>")


# --- inbound --------------------------------------------------------------------------------
def _text(data: dict, field: str, limit: int, errors: dict, required: bool = False):
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = tr("Required")
        return None
    if not isinstance(value, str):
        errors[field] = tr("Must be text")
    elif is_unclean(value):
        errors[field] = f"{field} {UNCLEAN_MESSAGE}"
    elif len(value) > limit:
        errors[field] = tr("Cannot exceed %(limit)s characters", limit=limit)
    else:
        return value.strip()
    return None


def _message_id(value: Optional[str]) -> Optional[str]:
    """The first <…> of a Message-ID or In-Reply-To header (the whole value when it has no
    angle brackets)."""
    if not value:
        return None
    found = _MESSAGE_ID.search(value)
    return found.group(0) if found else value.strip()[:MESSAGE_ID_MAX]


def clean_mail(data: dict[str, Any]) -> dict[str, Any]:
    """The mail's fields, checked: ValidationFailed naming each bad one."""
    errors: dict[str, str] = {}
    sender = _text(data, "from", ADDRESS_MAX, errors, required=True)
    _text(data, "to", ADDRESS_MAX, errors)
    subject = _text(data, "subject", SUBJECT_MAX, errors)
    text = _text(data, "text", TEXT_MAX, errors, required=True)
    message_id = _text(data, "message_id", MESSAGE_ID_MAX, errors, required=True)
    in_reply_to = _text(data, "in_reply_to", MESSAGE_ID_MAX * 4, errors)
    name, address = None, None
    if sender is not None:
        name, raw = parseaddr(sender)
        try:
            address = normalize_email(raw or sender)
        except InvalidValue as exc:
            errors["from"] = str(exc)
        if address is None and "from" not in errors:
            errors["from"] = tr("Required")
    if errors:
        raise ValidationFailed(errors)
    return {"name": (name or "").strip()[:tickets.REQUESTER] or None, "address": address,
            "subject": subject, "text": text, "message_id": _message_id(message_id),
            "in_reply_to": _message_id(in_reply_to)}


def customer_with_email(address: str) -> tuple[Optional[int], Optional[int]]:
    """(customer id, contact id) of the customer whose own address is `address`, else of a
    contact's (the lowest customer id when several are); owned or pooled customers only (a
    merged-away one has no holder)."""
    c, k = Customer, Contact
    rows = union_all(
        select(c.id.label("customer_id"), cast(null(), Integer).label("contact_id"),
               literal(0).label("rank")).where(c.email_norm == address),
        select(k.customer_id.label("customer_id"), k.id.label("contact_id"),
               literal(1).label("rank")).where(k.email_norm == address)).subquery()
    row = db.session.execute(
        select(rows.c.customer_id, rows.c.contact_id)
        .join(Ownership, Ownership.customer_id == rows.c.customer_id)
        .order_by(rows.c.rank, rows.c.customer_id, rows.c.contact_id).limit(1)).first()
    return (row.customer_id, row.contact_id) if row else (None, None)


def _senders_of(ticket: Ticket) -> set[str]:
    found = {ticket.requester_email}
    for record in (ticket.contact, ticket.customer):
        if record is not None:
            found.add(record.email_norm)
    return {a for a in found if a}


def thread_of(mail: dict) -> Optional[Ticket]:
    """The ticket the mail continues: by In-Reply-To, else by the subject's [#id] token —
    either way only when the sender is the ticket's (its requester, contact or customer): a
    stranger who quotes a message id or a ticket number opens a ticket of its own."""
    ref = mail["in_reply_to"]
    if ref:
        ticket_id = db.session.execute(select(TicketMessage.ticket_id).where(
            TicketMessage.mail_message_id == ref)).scalar()
        if ticket_id is None:
            ticket_id = db.session.execute(select(Ticket.id).where(
                Ticket.mail_thread_id == ref)).scalar()
        if ticket_id is not None:
            ticket = db.session.get(Ticket, ticket_id)
            if ticket is not None and mail["address"] in _senders_of(ticket):
                return ticket
    token = _TOKEN.search(mail["subject"] or "")
    if token:
        ticket = db.session.get(Ticket, int(token.group(1))) \
            if int(token.group(1)) <= 2**31 - 1 else None
        if ticket is not None and mail["address"] in _senders_of(ticket):
            return ticket
    return None


@dataclass
class Received:
    ticket_id: int
    message_id: int
    created: bool      # a new ticket
    duplicate: bool    # this Message-ID was taken before: nothing changed

    def as_dict(self) -> dict:
        return {"ticket_id": self.ticket_id, "message_id": self.message_id,
                "created": self.created, "duplicate": self.duplicate}


def _already(message_id: str) -> Optional[Received]:
    row = db.session.execute(select(TicketMessage.id, TicketMessage.ticket_id).where(
        TicketMessage.mail_message_id == message_id)).first()
    return Received(row.ticket_id, row.id, False, True) if row else None


def receive(key: Optional[ApiKey], data: dict[str, Any],
            now: Optional[dt.datetime] = None) -> Received:
    """Take one inbound mail (see the module's docstring); commits."""
    mail = clean_mail(data)
    now = now or utcnow()
    seen = _already(mail["message_id"])
    if seen is not None:
        return seen
    try:
        result = _receive(mail, now)
        audit.record(None, "inbound_mail", "ticket", result.ticket_id, {
            "message_id": (None, mail["message_id"]), "from": (None, mail["address"]),
            "api_key": (None, key.id if key is not None else None)})
        db.session.commit()
    except IntegrityError:
        # The same mail delivered twice at once: the other delivery took it.
        db.session.rollback()
        seen = _already(mail["message_id"])
        if seen is None:
            raise
        return seen
    return result


def _receive(mail: dict, now: dt.datetime) -> Received:
    ticket = thread_of(mail)
    if ticket is not None and ticket.status != "closed":
        message = tickets.customer_wrote(ticket.id, mail["text"], now, **_columns(mail))
        db.session.flush()
        return Received(ticket.id, message.id, False, False)
    customer_id, contact_id = customer_with_email(mail["address"])
    values = {"channel": "email", "priority": "P3",
              "subject": (mail["subject"] or tr(NO_SUBJECT))[:tickets.SUBJECT],
              "description": mail["text"][:tickets.DESCRIPTION],
              "customer_id": customer_id, "contact_id": contact_id,
              "requester_name": mail["name"],
              "requester_email": mail["address"],
              "mail_thread_id": mail["message_id"]}
    ticket = tickets.create(None, values, now=now, commit=False)
    message = TicketMessage(ticket_id=ticket.id, kind="inbound", body=mail["text"],
                            created_at=now, **_columns(mail))
    db.session.add(message)
    db.session.flush()
    return Received(ticket.id, message.id, True, False)


def _columns(mail: dict) -> dict:
    return {"mail_message_id": mail["message_id"], "in_reply_to": mail["in_reply_to"],
            "address": mail["address"]}


# --- outbound -------------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    interrupted: int = 0

    def summary(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "interrupted": self.interrupted}


def reply_subject(ticket: Ticket) -> str:
    """"[#id] subject": the token that threads the customer's answer back."""
    return f"[#{ticket.id}] {ticket.subject}"


def _claim(message_id: int, now: dt.datetime) -> bool:
    """pending -> sending (next_attempt_at: when it was claimed), once."""
    claimed = db.session.execute(update(TicketMessage).where(
        TicketMessage.id == message_id, TicketMessage.delivery_status == "pending")
        .values(delivery_status="sending", next_attempt_at=now)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return claimed == 1


def _recover_interrupted(now: dt.datetime) -> int:
    n = db.session.execute(update(TicketMessage).where(
        TicketMessage.delivery_status == "sending",
        TicketMessage.next_attempt_at < now - STALE_SENDING).values(
        delivery_status="failed",
        last_error=tr("Sending was interrupted; whether it arrived is unknown"))
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return n


def _settle(message: TicketMessage, error: Optional[care_channels.DeliveryError],
            mail_id: Optional[str], result: DeliveryResult, now: dt.datetime) -> None:
    message.attempts += 1
    if error is None:
        message.delivery_status, message.sent_at, message.last_error = "sent", now, None
        message.next_attempt_at, message.mail_message_id = None, mail_id
        result.sent += 1
    elif error.permanent or message.attempts >= MAX_ATTEMPTS:
        message.delivery_status, message.last_error = "failed", str(error)
        result.failed += 1
        ticket = message.ticket
        if ticket.agent_id is not None:
            notifications.notify([ticket.agent_id], "ticket_reply_failed", tr(
                "The reply on ticket #%(id)s could not be sent", id=ticket.id), str(error),
                link=tickets.page_link(ticket.id))
    else:
        message.delivery_status, message.last_error = "pending", str(error)
        message.next_attempt_at = now + backoff(message.attempts)
        result.retrying += 1
    db.session.commit()


def deliver(now: Optional[dt.datetime] = None, only: Optional[int] = None) -> DeliveryResult:
    """Send every reply due by now (`only`: that one message, if it is due); commits as it
    goes."""
    now = now or utcnow()
    result = DeliveryResult(interrupted=_recover_interrupted(now))
    due = [TicketMessage.kind == "reply", TicketMessage.delivery_status == "pending",
           or_(TicketMessage.next_attempt_at.is_(None), TicketMessage.next_attempt_at <= now)]
    if only is not None:
        due.append(TicketMessage.id == only)
    last_id = 0
    while True:
        batch = list(db.session.execute(select(TicketMessage.id).where(
            *due, TicketMessage.id > last_id).order_by(TicketMessage.id).limit(BATCH))
            .scalars())
        if not batch:
            break
        last_id = batch[-1]
        for message_id in batch:
            if not _claim(message_id, now):
                continue
            message = db.session.get(TicketMessage, message_id)
            try:
                mail_id = care_channels.send_email(message.address,
                                                   reply_subject(message.ticket), message.body)
                error = None
            except care_channels.DeliveryError as exc:
                mail_id, error = None, exc
            _settle(message, error, mail_id, result, now)
    return result
