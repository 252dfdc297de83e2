"""Birthday and holiday care (纪念日关怀): plan greetings into the outbox, deliver them.

`plan` runs daily: for every birthday and greeted holiday from today to `days_ahead` days on,
it writes one outbox row per recipient and active template channel, set-based (one
INSERT … SELECT per occasion and channel). The outbox's unique key (recipient, occasion
cycle, channel) means a re-run, an overlapping window or a second scheduler adds nothing:
no customer gets the same greeting twice.

`deliver` runs every few minutes: e-mail and SMS go out on the day itself, the owner's
in-app task at once (that is the "days ahead" reminder to call). Each message is claimed
(pending -> sending) before it is sent, so two workers never send one twice; a failure is
retried with backoff up to `max_attempts`, then stays `failed` with its error for admins.

Only owned customers are greeted: a pool customer has nobody to send on behalf of.
An address on the marketing opt-out list (退订, marketing_optout) is not planned, and a
message whose address opted out after planning is cancelled when it is due.
"""
from __future__ import annotations

import datetime as dt
import re
import string
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from flask_babel import lazy_gettext as _l
from sqlalchemy import (Integer, String, and_, cast, exists, func, literal, or_, select, true,
                        update)

from app.extensions import db
from app.models import CareMessage, CareSettings, CareTemplate, Contact, Customer, Ownership, User
from app.models.care import CARE_CHANNELS, CARE_OCCASIONS, DEFAULT_CARE_HOLIDAYS
from app.models.customer import utcnow
from app.models.marketing import MarketingOptOut
from app.security import customer_scope_clause, scope_of
from app.services import audit, care_calendar, care_channels, notifications, tasks
from app.services.errors import PermissionDenied, ValidationFailed, tr
from app.services.times import local_today, to_local

PLACEHOLDERS = {"customer": _l("customer name"),
                "contact": _l("how to address them (contact or individual customer name)"),
                "owner": _l("owner's name"), "occasion": _l("birthday / holiday name"),
                "date": _l("date (month and day)")}
SMS_MAX = 300
# A claimed message not settled within this time was interrupted mid-send (worker killed):
# it is marked failed, not sent again on its own, since it may have gone out.
STALE_SENDING = dt.timedelta(minutes=15)
BATCH = 200


# --- settings and templates ---------------------------------------------------------------
def settings() -> CareSettings:
    row = db.session.execute(select(CareSettings).order_by(CareSettings.id)).scalars().first()
    if row is None:
        row = CareSettings(days_ahead=3, holidays=DEFAULT_CARE_HOLIDAYS, max_attempts=4,
                           send_hour=9)
        db.session.add(row)
        db.session.flush()
    return row


def greeted_holidays(conf: Optional[CareSettings] = None) -> set[str]:
    conf = conf or settings()
    return {n.strip() for n in (conf.holidays or "").replace("，", ",").split(",") if n.strip()}


def known_holidays() -> list[str]:
    year = local_today().year
    names = care_calendar.holiday_names(year)
    names += [n for n in care_calendar.holiday_names(year + 1) if n not in names]
    return names


def validate_settings(row: CareSettings) -> None:
    errors = {}
    if row.days_ahead is None or not 0 <= row.days_ahead <= 60:
        errors["days_ahead"] = tr("The days ahead must be from 0 to 60")
    if row.max_attempts is None or not 1 <= row.max_attempts <= 10:
        errors["max_attempts"] = tr("The most attempts must be from 1 to 10")
    if row.send_hour is None or not 0 <= row.send_hour <= 23:
        errors["send_hour"] = tr("The sending hour must be from 0 to 23")
    known = known_holidays()
    unknown = sorted(greeted_holidays(row) - set(known))
    if unknown:
        errors["holidays"] = tr("Unknown holidays: %(names)s; choose from: %(known)s",
                                names=tr(", ").join(unknown), known=tr(", ").join(known))
    if errors:
        raise ValidationFailed(errors)
    row.holidays = ",".join(n for n in known if n in greeted_holidays(row))


def placeholders_in(text: Optional[str]) -> list[str]:
    """Field names used in a template text; ValueError for unbalanced braces."""
    return [name for _, name, _, _ in string.Formatter().parse(text or "") if name is not None]


def validate_template(row: CareTemplate) -> None:
    errors = {}
    if not (row.name or "").strip():
        errors["name"] = tr("The template name cannot be empty")
    if row.occasion not in CARE_OCCASIONS:
        errors["occasion"] = tr("The occasion can only be a birthday or a holiday")
    if row.channel not in CARE_CHANNELS:
        errors["channel"] = tr("The channel can only be e-mail, SMS or an in-app task")
    if row.occasion == "birthday" and row.holiday:
        errors["holiday"] = tr("A birthday template cannot name a holiday")
    if row.occasion == "holiday" and row.holiday and row.holiday not in known_holidays():
        errors["holiday"] = tr("Unknown holidays: %(names)s; choose from: %(known)s",
                               names=row.holiday, known=tr(", ").join(known_holidays()))
    if row.channel == "email" and not (row.subject or "").strip():
        errors["subject"] = tr("An e-mail template needs a subject")
    if not (row.body or "").strip():
        errors["body"] = tr("The text cannot be empty")
    elif row.channel == "sms" and len(row.body) > SMS_MAX:
        errors["body"] = tr("An SMS cannot exceed %(max)s characters", max=SMS_MAX)
    allowed = tr(", ").join("{" + p + "}" for p in PLACEHOLDERS)
    for name in ("subject", "body"):
        try:
            fields = [(n, spec, conv) for _, n, spec, conv
                      in string.Formatter().parse(getattr(row, name) or "") if n is not None]
        except ValueError:
            errors.setdefault(name, tr("Unpaired braces: write a placeholder as {customer} and a "
                                       "literal brace as {{ }}"))
            continue
        styled = [n for n, spec, conv in fields if spec or conv]
        if styled:
            # "{customer:>300000000}" would render 300 MB per message in the worker.
            errors.setdefault(name, tr("The placeholder {%(name)s} cannot carry a format or "
                                       "conversion; write it as {%(name)s}", name=styled[0]))
            continue
        used = [n for n, _, _ in fields]
        bad = [u for u in used if u not in PLACEHOLDERS]
        if bad:
            errors.setdefault(name, tr("Unknown placeholder {%(name)s}; available: %(allowed)s",
                                       name=bad[0], allowed=allowed))
    if errors:
        raise ValidationFailed(errors)
    row.holiday = (row.holiday or "").strip() or None


def _templates(occasion: str, holiday: Optional[str] = None) -> dict[str, CareTemplate]:
    """The active template per channel for an occasion: one naming this holiday wins over a
    generic one; among equals the lowest id."""
    rows = db.session.execute(select(CareTemplate).where(
        CareTemplate.active.is_(True), CareTemplate.occasion == occasion)
        .order_by(CareTemplate.id)).scalars().all()
    chosen: dict[str, CareTemplate] = {}
    for row in rows:
        if row.holiday and row.holiday != holiday:
            continue
        current = chosen.get(row.channel)
        if current is None or (row.holiday and not current.holiday):
            chosen[row.channel] = row
    return chosen


# --- planning -----------------------------------------------------------------------------
@dataclass
class PlanResult:
    birthdays: int = 0
    holidays: int = 0
    occasions: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"birthday_messages": self.birthdays, "holiday_messages": self.holidays,
                "occasions": self.occasions}


def _insert_ignoring_duplicates(select_stmt, columns: list[str]) -> int:
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        # psycopg reports no rowcount for INSERT … SELECT: count the RETURNING rows in SQL.
        inserted = pg_insert(CareMessage).from_select(columns, select_stmt) \
            .on_conflict_do_nothing().returning(CareMessage.id).cte("inserted")
        return db.session.execute(select(func.count()).select_from(inserted)).scalar_one()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt = sqlite_insert(CareMessage).from_select(columns, select_stmt).on_conflict_do_nothing()
    return db.session.execute(stmt).rowcount


_COLUMNS = ["customer_id", "contact_id", "recipient_key", "template_id", "occasion",
            "occasion_key", "occasion_name", "occasion_date", "channel", "owner_id", "address",
            "send_on", "status", "attempts", "created_at", "updated_at"]


def _row_values(template: CareTemplate, occasion: care_calendar.Occasion, kind: str,
                today: dt.date, now: dt.datetime) -> list:
    # Tasks remind the owner now (days ahead); e-mail and SMS go out on the day itself.
    send_on = today if template.channel == "task" else occasion.date
    return [literal(template.id), literal(kind), literal(occasion.key), literal(occasion.name),
            literal(occasion.date), literal(template.channel)], [
            literal(send_on), literal("pending"), literal(0), literal(now), literal(now)]


def _address(channel: str, email, mobile):
    return {"email": email, "sms": mobile}.get(channel)


def _not_opted_out(channel: str, address):
    """The greeting's address is not on the marketing opt-out list (e-mail and SMS only)."""
    return ~exists().where(MarketingOptOut.channel == channel,
                           MarketingOptOut.address == address)


def _plan_customers(where, template, occasion, kind, today, now, fallback_contact=False) -> int:
    """Greetings addressed to customers (their own e-mail / mobile, or for holidays the primary
    contact's when the customer has none)."""
    head, tail = _row_values(template, occasion, kind, today, now)
    email, mobile = Customer.email_norm, Customer.mobile_e164
    if fallback_contact:
        primary = select(Contact).where(Contact.customer_id == Customer.id,
                                        Contact.is_primary.is_(True)).correlate(Customer)
        email = func.coalesce(Customer.email_norm, primary.with_only_columns(
            func.min(Contact.email_norm)).scalar_subquery())
        mobile = func.coalesce(Customer.mobile_e164, primary.with_only_columns(
            func.min(Contact.mobile_e164)).scalar_subquery())
    address = _address(template.channel, email, mobile)
    cols = [Customer.id, literal(None, type_=Integer),
            literal("customer:") + cast(Customer.id, String), *head,
            Ownership.owner_id, address if address is not None else literal(None, type_=String),
            *tail]
    stmt = select(*cols).join(Ownership, Ownership.customer_id == Customer.id).where(
        Ownership.owner_id.is_not(None), where)
    if address is not None:
        stmt = stmt.where(address.is_not(None), _not_opted_out(template.channel, address))
    return _insert_ignoring_duplicates(stmt, _COLUMNS)


def _plan_contacts(where, template, occasion, kind, today, now) -> int:
    head, tail = _row_values(template, occasion, kind, today, now)
    address = _address(template.channel, Contact.email_norm, Contact.mobile_e164)
    cols = [Contact.customer_id, Contact.id, literal("contact:") + cast(Contact.id, String),
            *head, Ownership.owner_id,
            address if address is not None else literal(None, type_=String), *tail]
    stmt = select(*cols).join(Ownership, Ownership.customer_id == Contact.customer_id).where(
        Ownership.owner_id.is_not(None), where)
    if address is not None:
        stmt = stmt.where(address.is_not(None), _not_opted_out(template.channel, address))
    return _insert_ignoring_duplicates(stmt, _COLUMNS)


def plan(today: Optional[dt.date] = None) -> PlanResult:
    """Write the outbox rows for every occasion from today to today + days_ahead. Commits."""
    conf = settings()
    today = today or local_today()
    end = today + dt.timedelta(days=conf.days_ahead)
    now = utcnow()
    result = PlanResult()
    birthday_templates = _templates("birthday")
    if birthday_templates:
        for (month, day, lunar), occasion in care_calendar.birthdays_between(today, end).items():
            for template in birthday_templates.values():
                for model, planner in ((Customer, _plan_customers), (Contact, _plan_contacts)):
                    match = and_(model.birth_month == month, model.birth_day == day,
                                 model.birthday_lunar.is_(lunar))
                    result.birthdays += planner(match, template, occasion, "birthday", today,
                                                now)
    for occasion in care_calendar.holidays_between(today, end, greeted_holidays(conf)):
        templates = _templates("holiday", occasion.name)
        for template in templates.values():
            result.holidays += _plan_customers(true(), template, occasion, "holiday",
                                               today, now, fallback_contact=True)
        if templates:
            result.occasions.append(f"{occasion.name} {occasion.date.isoformat()}")
    db.session.commit()
    return result


# --- delivery -----------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    interrupted: int = 0
    opted_out: int = 0

    def summary(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "interrupted": self.interrupted, "opted_out": self.opted_out}


def _context(message: CareMessage) -> dict[str, str]:
    customer = message.customer
    if message.contact is not None:
        greeting_name = message.contact.name
    elif customer.customer_type == "person":
        greeting_name = customer.name
    else:
        primary = next((c for c in customer.contacts if c.is_primary), None)
        greeting_name = primary.name if primary else customer.name
    owner = message.owner.display_name if message.owner else ""
    date = message.occasion_date
    return {"customer": customer.name, "contact": greeting_name, "owner": owner,
            "occasion": message.occasion_name, "date": f"{date.month}月{date.day}日"}


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(" + "|".join(PLACEHOLDERS) + r")\}")


def _fill(text: Optional[str], context: dict[str, str]) -> str:
    """Placeholders replaced by plain text, {{ }} by braces: no format specs, conversions or
    attribute access whatever the stored text holds (a row saved before the check renders
    literally)."""
    def one(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(context.get(match.group(1), ""))

    return _PLACEHOLDER.sub(one, text or "")


def render(template: CareTemplate, context: dict[str, str]) -> tuple[str, str]:
    return _fill(template.subject, context), _fill(template.body, context)


def backoff(attempts: int) -> dt.timedelta:
    """5 min, 20 min, 80 min, … after the 1st, 2nd, 3rd failed attempt."""
    return dt.timedelta(minutes=5 * 4 ** max(attempts - 1, 0))


def _claim(message_id: int, now: dt.datetime) -> bool:
    claimed = db.session.execute(update(CareMessage).where(
        CareMessage.id == message_id, CareMessage.status == "pending")
        .values(status="sending", updated_at=now)).rowcount
    db.session.commit()
    return claimed == 1


def _settle(message: CareMessage, error: Optional[care_channels.DeliveryError],
            max_attempts: int, result: DeliveryResult, now: dt.datetime) -> None:
    message.attempts += 1
    message.updated_at = now
    if error is None:
        message.status, message.sent_at, message.last_error = "sent", now, None
        message.next_attempt_at = None
        result.sent += 1
    elif error.permanent or message.attempts >= max_attempts:
        message.status, message.last_error = "failed", str(error)
        result.failed += 1
    else:
        message.status, message.last_error = "pending", str(error)
        message.next_attempt_at = now + backoff(message.attempts)
        result.retrying += 1
    db.session.commit()


def _send_one(message: CareMessage) -> None:
    template = message.template
    if template is None:
        raise care_channels.DeliveryError("模板已删除", permanent=True)
    subject, body = render(template, _context(message))
    message.subject, message.body = subject or None, body
    if message.channel == "email":
        care_channels.send_email(message.address, subject, body)
    elif message.channel == "sms":
        care_channels.send_sms(message.address, body)


def _deliver_tasks(messages: list[CareMessage], today: dt.date, now: dt.datetime,
                   result: DeliveryResult) -> None:
    """In-app tasks: one notification per owner and occasion, naming the customers."""
    groups: dict[tuple, list[CareMessage]] = {}
    for m in messages:
        groups.setdefault((m.owner_id, m.occasion_name, m.occasion_date), []).append(m)
    for (owner_id, name, date), group in groups.items():
        for m in group:
            m.subject, m.body = render(m.template, _context(m)) if m.template else ("", "")
        names = "、".join(_context(m)["contact"] if m.contact else m.customer.name
                         for m in group[:10])
        more = f" 等 {len(group)} 位" if len(group) > 10 else ""
        days = (date - today).days
        when = "今天" if days <= 0 else f"{days} 天后"
        link = (f"/care/outbox/list/?_flt_0_occasion_key={group[0].occasion_key}"
                if len(group) > 1 else f"/customers/show/{group[0].customer_id}")
        notifications.notify([owner_id], "care", f"{when}（{date.month}月{date.day}日）{name}："
                             f"请问候 {names}{more}", group[0].body or "", link=link)
        for m in group:
            m.attempts += 1
            m.status, m.sent_at, m.updated_at, m.last_error = "sent", now, now, None
            # And a task on the owner's list, about the customer, due on the day.
            who = _context(m)["contact"] if m.contact else m.customer.name
            tasks.care_reminder(owner_id, m.customer_id, f"{m.subject or name}：{who}",
                                m.body or "", date, now)
        result.sent += len(group)
    db.session.commit()


def _opted_out(message: CareMessage) -> bool:
    """An address that opted out after the greeting was planned: cancelled, not sent."""
    if db.session.execute(select(MarketingOptOut.id).where(
            MarketingOptOut.channel == message.channel,
            MarketingOptOut.address == message.address)).first() is None:
        return False
    message.status, message.last_error, message.updated_at = "cancelled", "地址已退订", utcnow()
    db.session.commit()
    return True


def _recover_interrupted(now: dt.datetime) -> int:
    n = db.session.execute(update(CareMessage).where(
        CareMessage.status == "sending", CareMessage.updated_at < now - STALE_SENDING).values(
        status="failed", updated_at=now,
        last_error="发送中断（进程退出），无法确认是否送达；确认后可手动重试")).rowcount
    db.session.commit()
    return n


def deliver(now: Optional[dt.datetime] = None, limit: Optional[int] = None,
            progress: Optional[Callable[[int, Optional[int]], None]] = None) -> DeliveryResult:
    """Send every message due by now; returns the counts. Commits as it goes."""
    now = now or utcnow()
    conf = settings()
    local = to_local(now)
    today = local.date()
    # E-mail and SMS of a day go out from send_hour on; the owners' tasks at once.
    ready_day = today if local.hour >= conf.send_hour else today - dt.timedelta(days=1)
    max_attempts = conf.max_attempts
    result = DeliveryResult(interrupted=_recover_interrupted(now))
    due = and_(CareMessage.status == "pending",
               or_(CareMessage.send_on <= ready_day,
                   and_(CareMessage.channel == "task", CareMessage.send_on <= today)),
               or_(CareMessage.next_attempt_at.is_(None), CareMessage.next_attempt_at <= now))
    last_id, done = 0, 0
    while limit is None or done < limit:
        batch = db.session.execute(select(CareMessage.id, CareMessage.channel).where(
            due, CareMessage.id > last_id).order_by(CareMessage.id).limit(BATCH)).all()
        if not batch:
            break
        last_id = batch[-1].id
        claimed = [row for row in batch if _claim(row.id, now)]
        tasks = [db.session.get(CareMessage, row.id) for row in claimed if row.channel == "task"]
        if tasks:
            _deliver_tasks(tasks, today, now, result)
        for row in claimed:
            if row.channel == "task":
                continue
            message = db.session.get(CareMessage, row.id)
            if _opted_out(message):
                result.opted_out += 1
                continue
            try:
                _send_one(message)
                error = None
            except care_channels.DeliveryError as exc:
                error = exc
            _settle(message, error, max_attempts, result, now)
        done += len(claimed)
        if progress:
            progress(done, None)
    return result


# --- outbox actions (admins; owners and managers within their scope) ---------------------
def _scoped(actor: User, ids: Iterable[int]):
    return select(CareMessage).where(CareMessage.id.in_(list(ids)),
                                     customer_scope_clause(actor, CareMessage.customer_id,
                                                           include_shared=False))


def _require_actor(actor: Optional[User]) -> None:
    if actor is None or scope_of(actor) is None:
        raise PermissionDenied(tr("Please sign in first"))


def retry(actor: User, ids: Iterable[int]) -> int:
    """Failed (or cancelled) messages go back to pending, attempts from zero. A message that
    was already sent is never sent again."""
    _require_actor(actor)
    rows = [m for m in db.session.execute(_scoped(actor, ids)).scalars()
            if m.status in ("failed", "cancelled")]
    for m in rows:
        audit.record(actor.id, "retry", "care_message", m.id, {"status": (m.status, "pending")})
        m.status, m.attempts, m.next_attempt_at, m.last_error = "pending", 0, None, None
        m.send_on = max(m.send_on, local_today()) if m.channel == "task" else m.send_on
    db.session.commit()
    return len(rows)


def cancel(actor: User, ids: Iterable[int]) -> int:
    """Pending messages are not sent (e.g. the customer asked not to be contacted)."""
    _require_actor(actor)
    rows = [m for m in db.session.execute(_scoped(actor, ids)).scalars() if m.status == "pending"]
    for m in rows:
        audit.record(actor.id, "cancel", "care_message", m.id, {"status": ("pending", "cancelled")})
        m.status = "cancelled"
    db.session.commit()
    return len(rows)


# --- first run ----------------------------------------------------------------------------
DEFAULT_TEMPLATES = [
    # (name, occasion, holiday, channel, subject, body, active)
    ("生日提醒（负责人）", "birthday", None, "task", "{occasion}提醒",
     "{date}是{contact}（{customer}）的{occasion}，记得致电或送上祝福。", True),
    ("生日祝福邮件", "birthday", None, "email", "{contact}，生日快乐！",
     "尊敬的{contact}：\n\n值此生日之际，{owner}谨代表全体同事祝您生日快乐，万事如意！\n\n{owner}", False),
    ("生日祝福短信", "birthday", None, "sms", None,
     "{contact}您好，{owner}祝您生日快乐，万事如意！", False),
    ("节日提醒（负责人）", "holiday", None, "task", "{occasion}问候提醒",
     "{date}是{occasion}，记得问候{contact}（{customer}）。", True),
    ("节日祝福邮件", "holiday", None, "email", "{occasion}快乐",
     "尊敬的{contact}：\n\n{occasion}将至，{owner}祝您节日快乐，阖家幸福！\n\n{owner}", False),
    ("新春祝福邮件", "holiday", "春节", "email", "恭贺新春",
     "尊敬的{contact}：\n\n新春佳节，{owner}给您拜年了！感谢{customer}一直以来的支持，"
     "祝您新年快乐，万事如意！\n\n{owner}", False),
]


def ensure_defaults() -> None:
    """The settings row and, on a new deployment, the default templates. Only the owners'
    in-app reminders start active: mail and SMS to customers wait for an admin to switch
    them on (and to configure SMTP / the SMS gateway)."""
    settings()
    if db.session.execute(select(CareTemplate.id).limit(1)).first() is None:
        for name, occasion, holiday, channel, subject, body, active in DEFAULT_TEMPLATES:
            db.session.add(CareTemplate(name=name, occasion=occasion, holiday=holiday,
                                        channel=channel, subject=subject, body=body,
                                        active=active))
    db.session.flush()
