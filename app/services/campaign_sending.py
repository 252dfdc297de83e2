"""Campaign sending (营销发送): templates, the campaign outbox, delivery, unsubscribe, opt-outs.

Queueing (`queue_messages`) is one INSERT … SELECT per channel and record kind over the
campaign's members: no row per member crosses into Python, so a million members queue in
seconds. The unique index (member, channel) makes it idempotent: a second launch, a second
worker or a re-run adds nothing.

Who is skipped when queueing:
- an address on the opt-out list (marketing_optout) for that channel;
- a member without a usable address. A customer's own e-mail / mobile is used, else its
  primary contact's (as holiday care does): a company's mail goes to the person there;
- when marketing_settings.require_consent is on (the default, 个人信息保护法): a lead whose
  consent is not recorded (consent_version empty). A customer is an existing relationship
  (the business already deals with it, owned or in a pool) and is always allowed.

Delivery (`deliver`) uses the care outbox's machinery (care_channels, care.backoff and the care
settings' max_attempts): due messages of running campaigns go out inside the campaign's send
window (business hours, GUISHU_TIMEZONE), rendered at delivery; an opt-out recorded between
queueing and sending wins (the message is cancelled).
"""
from __future__ import annotations

import datetime as dt
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Optional

from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, exists, func, literal, or_, select, update

from app.extensions import db
from app.models import Contact, Customer, Lead, User
from app.models.customer import utcnow
from app.models.marketing import (Campaign, CampaignMember, CampaignMessage, MarketingOptOut,
                                  MarketingSettings)
from app.security import ROLE_ADMIN, ROLE_MARKETING, ROLE_STAFF, has_role
from app.services import audit, campaign_responses, care, care_channels
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed, tr
from app.services.ids import parse_id
from app.services.normalize import InvalidValue, normalize_email, normalize_phone
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import to_local

# The placeholders a campaign template may use, rendered per member at delivery.
PLACEHOLDERS = {"name": _l("the person's name (contact, individual customer or lead)"),
                "company": _l("the company (customer name or the lead's company)"),
                "owner": _l("the owner's name")}
SUBJECT_MAX, BODY_MAX, SMS_MAX = 200, 20_000, 300
SMS_OPTOUT_TAIL = "回复TD退订"
EMAIL_OPTOUT_LINE = "不想再收到此类邮件？点此退订："  # the mail is in Chinese, as care's texts
CHANNELS = ("email", "sms")
TOKEN_MAX = 400  # characters of an unsubscribe token (ours are about 100-150)
BATCH = 200
STALE_SENDING = care.STALE_SENDING
# A claimed message stays `pending` (the contract has no `sending` status) with this marker
# and a lease in next_attempt_at: a lease that lapses with the marker still set was cut off
# mid-send and is failed, not sent again on its own (it may have gone out) — as care does.
CLAIM_MARK = "发送中"
INTERRUPTED = "发送中断（进程退出），无法确认是否送达；确认后可手动重试"
OPTED_OUT = "地址已退订"


# --- settings -----------------------------------------------------------------------------
def settings() -> MarketingSettings:
    row = db.session.execute(select(MarketingSettings).order_by(MarketingSettings.id)) \
        .scalars().first()
    if row is None:
        row = MarketingSettings(attribution_days=180, require_consent=True)
        db.session.add(row)
        db.session.flush()
    return row


def validate_settings(row: MarketingSettings) -> None:
    if row.attribution_days is None or not 1 <= row.attribution_days <= 3650:
        raise ValidationFailed({"attribution_days": tr(
            "The attribution window must be from 1 to 3650 days")})
    row.require_consent = bool(row.require_consent)


# --- templates ----------------------------------------------------------------------------
def can_edit(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def _require_marketer(actor: Optional[User]) -> None:
    if not can_edit(actor):
        raise PermissionDenied(tr("Only marketing and admins may change campaign messages"))


def _campaign(campaign_id: Any) -> Campaign:
    cid = parse_id(campaign_id, "campaign_id")
    row = db.session.get(Campaign, cid)
    if row is None:
        raise NotFound(tr("No such campaign"))
    return row


def _check_text(name: str, value: Any, limit: int, errors: dict) -> Optional[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        errors[name] = tr("Must be text")
        return None
    if is_unclean(value):
        errors[name] = f"{name} {UNCLEAN_MESSAGE}"
        return None
    if len(value) > limit:
        errors[name] = tr("Cannot exceed %(limit)s characters", limit=limit)
        return None
    try:
        fields = [(n, spec, conv) for _, n, spec, conv in string.Formatter().parse(value)
                  if n is not None]
    except ValueError:
        errors[name] = tr("Unpaired braces: write a placeholder as {name} and a literal brace "
                          "as {{ }}")
        return None
    bad = [n for n, _, _ in fields if n not in PLACEHOLDERS]
    if bad:
        errors[name] = tr("Unknown placeholder {%(name)s}; available: %(allowed)s", name=bad[0],
                          allowed=tr(", ").join("{" + p + "}" for p in PLACEHOLDERS))
        return None
    # {name:>300000000} would render 300 MB and {name:d} fails every delivery: a placeholder
    # is the bare name, nothing else (render() could not apply it anyway).
    styled = [n for n, spec, conv in fields if spec or conv]
    if styled:
        errors[name] = tr("The placeholder {%(name)s} cannot carry a format or conversion; "
                          "write it as {%(name)s}", name=styled[0])
        return None
    return value.strip()


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(" + "|".join(PLACEHOLDERS) + r")\}")


def render(template: Optional[str], context: dict[str, str]) -> str:
    """The template with its placeholders replaced by plain text and {{ }} by braces: no
    format specs, conversions or attribute access, whatever the stored text holds (a
    template saved before the check, or edited in the database, renders literally)."""
    def one(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return context.get(match.group(1), "")

    return _PLACEHOLDER.sub(one, template or "")


def _hour(name: str, value: Any, low: int, high: int, errors: dict) -> Optional[int]:
    try:
        hour = int(value)
    except (TypeError, ValueError):
        hour = None
    if hour is None or isinstance(value, bool) or not low <= hour <= high:
        errors[name] = tr("The hour must be from %(low)s to %(high)s", low=low, high=high)
        return None
    return hour


def set_templates(campaign_id: Any, actor: User, *, email_subject: Any = None,
                  email_body: Any = None, sms_body: Any = None, send_from_hour: Any = None,
                  send_to_hour: Any = None) -> Campaign:
    """Save a campaign's message templates and send window (Marketing and Admin). The texts
    are all given (an empty one switches its channel off); an hour not given keeps its
    value. Refusals name the field. Audited; commits."""
    from app.services.campaigns import lock_campaign

    _require_marketer(actor)
    # Locked: a running campaign's messages are queued below, one queue run at a time.
    campaign = lock_campaign(campaign_id)
    if send_from_hour is None:
        send_from_hour = campaign.send_from_hour
    if send_to_hour is None:
        send_to_hour = campaign.send_to_hour
    errors: dict[str, str] = {}
    values = {"email_subject": _check_text("email_subject", email_subject, SUBJECT_MAX, errors),
              "email_body": _check_text("email_body", email_body, BODY_MAX, errors),
              "sms_body": _check_text("sms_body", sms_body, SMS_MAX - len(SMS_OPTOUT_TAIL) - 1,
                                      errors),
              "send_from_hour": _hour("send_from_hour", send_from_hour, 0, 23, errors),
              "send_to_hour": _hour("send_to_hour", send_to_hour, 1, 24, errors)}
    if values["email_body"] and not values["email_subject"] and "email_subject" not in errors:
        errors["email_subject"] = tr("An e-mail template needs a subject")
    if "send_from_hour" not in errors and "send_to_hour" not in errors \
            and values["send_to_hour"] <= values["send_from_hour"]:
        errors["send_to_hour"] = tr("The window must end after it starts")
    if errors:
        raise ValidationFailed(errors)
    changes = {k: (getattr(campaign, k), v) for k, v in values.items()
               if getattr(campaign, k) != v}
    for key, value in values.items():
        setattr(campaign, key, value)
    if changes:
        audit.record(actor.id, "update", "campaign", campaign.id, changes)
    if campaign.status == "running":
        # A channel switched on (or first written) after launch reaches the members now.
        queue_pending(campaign)
    db.session.commit()
    return campaign


# --- queueing -----------------------------------------------------------------------------
def _address_columns(channel: str):
    return (Customer.email_norm, Contact.email_norm, Lead.email_norm) if channel == "email" \
        else (Customer.mobile_e164, Contact.mobile_e164, Lead.mobile_e164)


def _customer_addresses(campaign_id: int, channel: str):
    own, contact, _ = _address_columns(channel)
    primary = select(func.min(contact)).where(
        Contact.customer_id == Customer.id, Contact.is_primary.is_(True)) \
        .correlate(Customer).scalar_subquery()
    return select(CampaignMember.id.label("member_id"),
                  func.coalesce(own, primary).label("address")) \
        .join(Customer, Customer.id == CampaignMember.customer_id) \
        .where(CampaignMember.campaign_id == campaign_id)


def _lead_addresses(campaign_id: int, channel: str, require_consent: bool):
    column = _address_columns(channel)[2]
    stmt = select(CampaignMember.id.label("member_id"), column.label("address")) \
        .join(Lead, Lead.id == CampaignMember.lead_id) \
        .where(CampaignMember.campaign_id == campaign_id)
    if require_consent:
        stmt = stmt.where(Lead.consent_version.is_not(None))
    return stmt


def _insert(select_stmt) -> int:
    columns = ["campaign_id", "member_id", "channel", "address", "status", "attempts",
               "created_at"]
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        inserted = pg_insert(CampaignMessage).from_select(columns, select_stmt) \
            .on_conflict_do_nothing().returning(CampaignMessage.id).cte("inserted")
        return db.session.execute(select(func.count()).select_from(inserted)).scalar_one()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return db.session.execute(sqlite_insert(CampaignMessage).from_select(
        columns, select_stmt).on_conflict_do_nothing()).rowcount


def channels_of(campaign: Campaign) -> list[str]:
    return [c for c, body in (("email", campaign.email_body), ("sms", campaign.sms_body))
            if body and body.strip()]


def _has_message(campaign_id: int, channel: str, address_column):
    """SQL: the campaign already has a message on `channel` to this address. No index holds
    (campaign, channel, address), so each database gets the form it runs set-based:
    PostgreSQL turns the correlated NOT EXISTS into a hash anti-join; SQLite would scan the
    campaign's messages once per row (a re-run of 20,000 took 72 s), but builds an index of
    an uncorrelated IN (SELECT …) once."""
    if db.session.get_bind().dialect.name == "postgresql":
        return exists().where(CampaignMessage.campaign_id == campaign_id,
                              CampaignMessage.channel == channel,
                              CampaignMessage.address == address_column)
    return address_column.in_(select(CampaignMessage.address).where(
        CampaignMessage.campaign_id == campaign_id, CampaignMessage.channel == channel))


def queue_pending(campaign: Campaign) -> int:
    """Queue what is missing of a running campaign's messages in the caller's transaction (no
    commit): launch, add_members and set_templates call it before they commit, so a campaign
    is never running with members or templates nobody was queued for. The caller holds the
    campaign's row lock (campaigns._locked or the launch claim): two queue runs of one
    campaign never overlap, which keeps the one-message-per-address rule below exact.

    One message per member and channel (the unique index), and at most one per campaign,
    channel and address: a converted lead's customer, a customer and its contact with one
    mailbox, two contacts' shared number are one person. Customers go first (a converted lead
    is its customer); within one statement the lowest member id of an address wins; an
    address the campaign already has a message to is skipped (NOT EXISTS). Set-based: one
    INSERT … SELECT per channel and record kind."""
    require_consent = settings().require_consent
    now = utcnow()
    total = 0
    for channel in channels_of(campaign):
        for addresses in (_customer_addresses(campaign.id, channel),
                          _lead_addresses(campaign.id, channel, require_consent)):
            rows = addresses.subquery()
            opted_out = exists().where(MarketingOptOut.channel == channel,
                                       MarketingOptOut.address == rows.c.address)
            sent_there = _has_message(campaign.id, channel, rows.c.address)
            total += _insert(select(
                literal(campaign.id), func.min(rows.c.member_id), literal(channel),
                rows.c.address, literal("pending"), literal(0), literal(now))
                .where(rows.c.address.is_not(None), rows.c.address != "", ~opted_out,
                       ~sent_there)
                .group_by(rows.c.address))
    return total


def queue_messages(campaign_id: int) -> int:
    """Queue one message per member and channel the campaign sends (one per address); the
    number queued now (0 on a re-run). Takes the campaign's row lock; set-based; commits."""
    from app.services.campaigns import lock_campaign

    campaign = lock_campaign(campaign_id)
    total = queue_pending(campaign)
    db.session.commit()
    return total


# --- opt-outs -----------------------------------------------------------------------------
def normalise_address(channel: Any, address: Any) -> str:
    """An address as the opt-out list keys it (lower-case e-mail, E.164 mobile), or
    ValidationFailed naming the field."""
    if channel not in CHANNELS:
        raise ValidationFailed({"channel": tr("The channel can only be e-mail or SMS")})
    if not isinstance(address, str) or not address.strip():
        raise ValidationFailed({"address": tr("Required")})
    if is_unclean(address) or len(address) > 200:
        raise ValidationFailed({"address": tr("Cannot exceed %(limit)s characters", limit=200)
                                if len(address) > 200 else f"address {UNCLEAN_MESSAGE}"})
    try:
        value = normalize_email(address) if channel == "email" else normalize_phone(
            address, current_app.config.get("PHONE_DEFAULT_REGION", "CN"))
    except InvalidValue as exc:
        raise ValidationFailed({"address": str(exc)})
    if not value:
        raise ValidationFailed({"address": tr("Required")})
    return value


def is_opted_out(channel: str, address: Optional[str]) -> bool:
    if not address:
        return False
    return db.session.execute(select(MarketingOptOut.id).where(
        MarketingOptOut.channel == channel, MarketingOptOut.address == address)).first() \
        is not None


def record_optout(channel: str, address: str, source: str, *, actor_id: Optional[int] = None,
                  customer_id: Optional[int] = None, contact_id: Optional[int] = None,
                  lead_id: Optional[int] = None, campaign_id: Optional[int] = None
                  ) -> Optional[MarketingOptOut]:
    """Put a normalised address on the list (idempotent: an address already there keeps its
    first record and None is answered). An SMS reply (TD) names no campaign: it answers the
    latest campaign SMS sent to the number, and is counted there (the effect table's
    unsubscribed). Audited; the caller commits."""
    if source == "sms_reply" and channel == "sms" and campaign_id is None:
        campaign_id = latest_sms_campaign(address)
    values = dict(channel=channel, address=address, source=source, customer_id=customer_id,
                  contact_id=contact_id, lead_id=lead_id, campaign_id=campaign_id,
                  recorded_by_id=actor_id, created_at=utcnow())
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    new_id = db.session.execute(insert(MarketingOptOut).values(**values).on_conflict_do_nothing()
                                .returning(MarketingOptOut.id)).scalar()
    if new_id is None:
        return None
    audit.record(actor_id, "opt_out", "marketing_optout", new_id,
                 {"channel": (None, channel), "address": (None, address),
                  "source": (None, source), "campaign_id": (None, campaign_id)})
    return db.session.get(MarketingOptOut, new_id)


def latest_sms_campaign(address: str) -> Optional[int]:
    """The campaign of the latest campaign SMS sent to the number, or None (one query)."""
    return db.session.execute(select(CampaignMessage.campaign_id).where(
        CampaignMessage.channel == "sms", CampaignMessage.address == address,
        CampaignMessage.status == "sent").order_by(
        CampaignMessage.sent_at.desc(), CampaignMessage.id.desc()).limit(1)).scalar()


def can_manage_optouts(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING, ROLE_STAFF)


def add_optout(actor: User, channel: Any, address: Any) -> MarketingOptOut:
    """Staff record an opt-out by hand (a customer asked on the phone). 409 when listed."""
    if not can_manage_optouts(actor):
        raise PermissionDenied(tr("Only marketing, back-office staff and admins keep the "
                                  "opt-out list"))
    value = normalise_address(channel, address)
    row = record_optout(channel, value, "manual", actor_id=actor.id)
    if row is None:
        db.session.rollback()
        raise Conflict(tr("This address has already opted out"), code="already_opted_out")
    db.session.commit()
    return row


def remove_optout(actor: User, optout_id: Any) -> None:
    """Take an address off the list (it asked to hear from us again). Audited."""
    if not can_manage_optouts(actor):
        raise PermissionDenied(tr("Only marketing, back-office staff and admins keep the "
                                  "opt-out list"))
    row = db.session.get(MarketingOptOut, parse_id(optout_id, "id"))
    if row is None:
        raise NotFound(tr("No such opt-out"))
    audit.record(actor.id, "delete", "marketing_optout", row.id,
                 {"channel": (row.channel, None), "address": (row.address, None),
                  "source": (row.source, None)})
    db.session.delete(row)
    db.session.commit()


# --- unsubscribe tokens -------------------------------------------------------------------
def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="unsubscribe")


def address_token(channel: str, address: str, *, customer_id: Optional[int] = None,
                  lead_id: Optional[int] = None, campaign_id: Optional[int] = None) -> str:
    """Signed (not guessable, not forgeable without the app secret): channel, address, the
    record (customer or lead) and the campaign, if any. Any mail we send to an address
    (a campaign message, a survey invitation) carries one."""
    return _serializer().dumps({"ch": channel, "a": address, "c": customer_id, "l": lead_id,
                                "k": campaign_id})


def unsubscribe_token(message: CampaignMessage) -> str:
    member = message.member
    return address_token(message.channel, message.address, customer_id=member.customer_id,
                         lead_id=member.lead_id, campaign_id=message.campaign_id)


def address_unsubscribe_url(channel: str, address: str, **record: Optional[int]) -> str:
    """The public /u/<token> link for an address (see address_token)."""
    return f"{campaign_responses.public_base_url()}/u/{address_token(channel, address, **record)}"


@dataclass
class Unsubscribe:
    channel: str
    address: str
    customer_id: Optional[int]
    lead_id: Optional[int]
    campaign_id: Optional[int]


def read_token(token: Any) -> Unsubscribe:
    """The token's content, or NotFound for anything we did not sign."""
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX:
        raise NotFound(tr("This unsubscribe link is not valid"))
    try:
        data = _serializer().loads(token)
        parsed = Unsubscribe(data["ch"], data["a"], data.get("c"), data.get("l"), data.get("k"))
    except (BadSignature, KeyError, TypeError, ValueError, UnicodeError):
        raise NotFound(tr("This unsubscribe link is not valid"))
    if parsed.channel not in CHANNELS or not isinstance(parsed.address, str):
        raise NotFound(tr("This unsubscribe link is not valid"))
    return parsed


def _existing(model, value: Any) -> Optional[int]:
    # The record may have been deleted since the mail went out: the address still binds.
    if not isinstance(value, int) or not 0 < value < 2 ** 31:
        return None
    return value if db.session.get(model, value) is not None else None


def unsubscribe(token: Any) -> bool:
    """Record the token's opt-out (source 'link'); True if new, False if it was listed."""
    data = read_token(token)
    row = record_optout(data.channel, data.address, "link",
                        customer_id=_existing(Customer, data.customer_id),
                        lead_id=_existing(Lead, data.lead_id),
                        campaign_id=_existing(Campaign, data.campaign_id))
    db.session.commit()
    return row is not None


_TD = re.compile(r"^(td|退订)[。.!！]?$")


def is_unsubscribe_reply(text: Optional[str]) -> bool:
    """TD / td / 退订 (full-width letters too: ＴＤ), trimmed."""
    folded = unicodedata.normalize("NFKC", text or "").strip().lower()
    return bool(_TD.match(folded))


# --- delivery -----------------------------------------------------------------------------
def _context(message: CampaignMessage) -> dict[str, str]:
    member = message.member
    if member.customer_id is not None:
        customer = member.customer
        if customer.customer_type == "person":
            name = customer.name
        else:
            primary = next((c for c in customer.contacts if c.is_primary), None)
            name = primary.name if primary else customer.name
        owner = customer.ownership.owner if customer.ownership else None
        return {"name": name, "company": customer.name,
                "owner": owner.display_name if owner else ""}
    lead = member.lead
    owner = lead.ownership.owner if lead.ownership else None
    return {"name": lead.person_name or lead.company_name or "",
            "company": lead.company_name or lead.person_name or "",
            "owner": owner.display_name if owner else ""}


def unsubscribe_url(message: CampaignMessage) -> str:
    return f"{campaign_responses.public_base_url()}/u/{unsubscribe_token(message)}"


def render_message(message: CampaignMessage) -> tuple[Optional[str], str]:
    """(subject, body) of one message as it goes out: the campaign's template filled in for
    the member; e-mail ends with its unsubscribe link, SMS with 回复TD退订."""
    campaign = message.campaign
    context = _context(message)
    if message.channel == "sms":
        return None, f"{render(campaign.sms_body, context)} {SMS_OPTOUT_TAIL}"
    subject = render(campaign.email_subject, context)
    body = render(campaign.email_body, context)
    # Click tracking, before the unsubscribe link is added (that one is never rewritten).
    body = campaign_responses.rewrite_links(body, message.member_id)
    body = f"{body}\n\n--\n{EMAIL_OPTOUT_LINE}{unsubscribe_url(message)}"
    return subject, body


@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    interrupted: int = 0

    def summary(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "cancelled": self.cancelled, "interrupted": self.interrupted}


def _recover_interrupted(now: dt.datetime) -> int:
    n = db.session.execute(update(CampaignMessage).where(
        CampaignMessage.status == "pending", CampaignMessage.last_error == CLAIM_MARK,
        CampaignMessage.next_attempt_at <= now).values(
        status="failed", last_error=INTERRUPTED)).rowcount
    db.session.commit()
    return n


def _claim(message_id: int, now: dt.datetime) -> bool:
    claimed = db.session.execute(update(CampaignMessage).where(
        CampaignMessage.id == message_id, CampaignMessage.status == "pending",
        or_(CampaignMessage.next_attempt_at.is_(None), CampaignMessage.next_attempt_at <= now))
        .values(next_attempt_at=now + STALE_SENDING, last_error=CLAIM_MARK)).rowcount
    db.session.commit()
    return claimed == 1


def _settle(message: CampaignMessage, error, max_attempts: int, result: DeliveryResult,
            now: dt.datetime) -> None:
    message.attempts += 1
    if error is None:
        message.status, message.sent_at = "sent", now
        message.last_error = message.next_attempt_at = None
        result.sent += 1
    elif error.permanent or message.attempts >= max_attempts:
        message.status, message.last_error, message.next_attempt_at = "failed", str(error), None
        result.failed += 1
    else:
        message.status, message.last_error = "pending", str(error)
        message.next_attempt_at = now + care.backoff(message.attempts)
        result.retrying += 1
    db.session.commit()


def _send_one(message: CampaignMessage) -> None:
    subject, body = render_message(message)
    message.subject, message.body = subject, body
    if message.channel == "email":
        care_channels.send_email(message.address, subject or "", body)
    else:
        care_channels.send_sms(message.address, body)


def deliver(now: Optional[dt.datetime] = None, limit: Optional[int] = None,
            progress: Optional[Callable[[int, Optional[int]], None]] = None) -> DeliveryResult:
    """Send the due messages of running campaigns whose send window is open now. Commits as
    it goes."""
    now = now or utcnow()
    hour = to_local(now).hour
    max_attempts = care.settings().max_attempts
    db.session.commit()
    result = DeliveryResult(interrupted=_recover_interrupted(now))
    due = and_(CampaignMessage.status == "pending",
               or_(CampaignMessage.next_attempt_at.is_(None),
                   CampaignMessage.next_attempt_at <= now),
               Campaign.status == "running", Campaign.send_from_hour <= hour,
               Campaign.send_to_hour > hour)
    last_id, done = 0, 0
    while limit is None or done < limit:
        batch = db.session.execute(
            select(CampaignMessage.id).join(Campaign, Campaign.id == CampaignMessage.campaign_id)
            .where(due, CampaignMessage.id > last_id).order_by(CampaignMessage.id)
            .limit(BATCH)).scalars().all()
        if not batch:
            break
        last_id = batch[-1]
        for message_id in batch:
            if not _claim(message_id, now):
                continue
            done += 1
            message = db.session.get(CampaignMessage, message_id)
            if is_opted_out(message.channel, message.address):
                # Opted out after it was queued: the opt-out wins.
                message.status, message.last_error, message.next_attempt_at = \
                    "cancelled", OPTED_OUT, None
                db.session.commit()
                result.cancelled += 1
                continue
            try:
                _send_one(message)
                error = None
            except care_channels.DeliveryError as exc:
                error = exc
            _settle(message, error, max_attempts, result, now)
        if progress:
            progress(done, None)
    return result


# --- the outbox page's verbs --------------------------------------------------------------
def status_counts(campaign_id: Any) -> dict[str, int]:
    campaign = _campaign(campaign_id)
    rows = db.session.execute(select(CampaignMessage.status, func.count()).where(
        CampaignMessage.campaign_id == campaign.id).group_by(CampaignMessage.status)).all()
    counts = {s: 0 for s in ("pending", "sent", "failed", "cancelled")}
    counts.update({status: n for status, n in rows})
    return counts


def _messages(actor: User, campaign_id: Any, ids, statuses):
    _require_marketer(actor)
    campaign = _campaign(campaign_id)
    wanted = [parse_id(i, "ids") for i in ids]
    return campaign, db.session.execute(select(CampaignMessage).where(
        CampaignMessage.campaign_id == campaign.id, CampaignMessage.id.in_(wanted),
        CampaignMessage.status.in_(statuses)).order_by(CampaignMessage.id)).scalars().all()


def retry(actor: User, campaign_id: Any, ids) -> int:
    """Failed or cancelled messages go back to pending, attempts from zero (a sent one is
    never sent again). An address that has opted out stays cancelled at delivery."""
    _, rows = _messages(actor, campaign_id, ids, ("failed", "cancelled"))
    for m in rows:
        audit.record(actor.id, "retry", "campaign_message", m.id, {"status": (m.status, "pending")})
        m.status, m.attempts, m.next_attempt_at, m.last_error = "pending", 0, None, None
    db.session.commit()
    return len(rows)


def cancel(actor: User, campaign_id: Any, ids) -> int:
    _, rows = _messages(actor, campaign_id, ids, ("pending",))
    for m in rows:
        audit.record(actor.id, "cancel", "campaign_message", m.id,
                     {"status": ("pending", "cancelled")})
        m.status, m.next_attempt_at = "cancelled", None
    db.session.commit()
    return len(rows)


def optout_clause_for(channel_column, address_column):
    """SQL: no opt-out for this (channel, address) — for the care planner and others."""
    return ~exists().where(MarketingOptOut.channel == channel_column,
                           MarketingOptOut.address == address_column)
