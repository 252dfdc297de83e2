"""Public lead capture forms (/forms/<token>, 公开线索表单): admins manage the forms; anyone
with the address submits one without signing in, and a lead lands in the form's lead pool.

A submission, in this order:
    1. the form: active and its token known, else NotFound (the same for both);
    2. the rate: at most CAPTURE_FORM_RATE_PER_HOUR accepted submissions per client address in
       the last hour (counted after the form row's lock, so parallel posts to one form count
       each other; tests/test_race_capture.py), else TooManyRequests (429, code rate_limited) — not stored;
    3. the honeypot: a filled hidden field is a robot — the visitor sees the thank-you, no
       lead is made, the submission is stored as 'honeypot' and audited;
    4. the input: the lead fields (clean_lead_data's bounds, NUL bytes refused), a way to
       reach the visitor, and the consent (同意隐私政策) — else ValidationFailed naming the
       fields, the submission stored as 'invalid';
    5. dedupe against leads and customers (app.services.leads.find_duplicates): a blocking
       match makes no lead — the holder is notified, the submission stored as 'duplicate',
       and the visitor sees the same thank-you (never whether a record exists); warning
       matches make the lead and are audited;
    6. the lead (app.services.leads.insert_lead) in the form's lead pool, its source the
       form's channel, the consent's policy version and time on the lead;
    7. a campaign's sign-up (the link carries ?c=<campaign token>): a 'signup' touch
       (app.services.campaign_responses) on the new lead — or, when step 5 found a blocking
       match, on that customer or lead — in the same transaction. An unknown or rotated
       campaign token is ignored: the visitor's sign-up still counts as a lead.

The client address is the connection's peer; X-Forwarded-For is read only when
GUISHU_TRUSTED_PROXIES (TRUSTED_PROXY_COUNT) says how many proxies of ours stand in front:
the address that many hops from the right, which a visitor cannot forge.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Optional

from flask import current_app, has_app_context
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CaptureForm, CaptureSubmission, LeadOwnership, Ownership, User
from app.models.customer import utcnow
from app.models.lead import LEAD_SOURCES
from app.security import ROLE_ADMIN, has_role
from app.services import audit, limits, notifications
from app.services import leads as lead_service
from app.services.errors import (NotFound, PermissionDenied, TooManyRequests,
                                 ValidationFailed, tr)
from app.services.ids import parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean

DEFAULT_RATE = 10          # accepted submissions per client address per hour
RATE_WINDOW = dt.timedelta(hours=1)
HONEYPOT = "website"       # the hidden field's name: people leave it empty, robots fill it
NAME_MAX, VERSION_MAX, POLICY_MAX = 100, 40, limits.NOTE
# The public form's fields -> the lead's.
PUBLIC_FIELDS = {"name": "person_name", "company": "company_name", "mobile": "mobile",
                 "phone": "phone", "email": "email", "province": "province", "city": "city",
                 "notes": "notes"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
OUTCOME_LEAD, OUTCOME_DUPLICATE, OUTCOME_HONEYPOT, OUTCOME_INVALID = (
    "lead", "duplicate", "honeypot", "invalid")


# --- the forms (admins) -----------------------------------------------------------------------
def _require_admin(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins manage capture forms"))


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 32 characters, 192 bits


def clean_form_data(data: dict[str, Any]) -> dict[str, Any]:
    """Validate an admin's form settings; ValidationFailed naming every bad field."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name, limit, required in (("name", NAME_MAX, True), ("policy_text", POLICY_MAX, True),
                                  ("policy_version", VERSION_MAX, True)):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = tr("Must be text")
            continue
        if is_unclean(value):
            errors[name] = str(UNCLEAN_MESSAGE)
            continue
        value = (value or "").strip()
        if required and not value:
            errors[name] = tr("Required")
            continue
        limits.check_length(errors, name, value, limit)
        out[name] = value
    channel = data.get("channel") or "web_form"
    if channel not in LEAD_SOURCES:
        errors["channel"] = tr("The source can only be: %(choices)s",
                               choices=", ".join(LEAD_SOURCES))
    out["channel"] = channel
    try:
        out["pool_id"] = lead_service.lead_pool(data.get("pool_id")).id
    except ValidationFailed as exc:
        errors.update(exc.fields)
    out["is_active"] = bool(data.get("is_active", True))
    if errors:
        raise ValidationFailed(errors)
    return out


def _save(fn):
    try:
        result = fn()
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({"name": tr("A capture form with this name already exists")})
    except Exception:
        db.session.rollback()
        raise
    return result


def create_form(actor: User, data: dict[str, Any]) -> CaptureForm:
    _require_admin(actor)
    values = clean_form_data(data)

    def go() -> CaptureForm:
        form = CaptureForm(token=new_token(), created_by_id=actor.id, **values)
        db.session.add(form)
        db.session.flush()
        audit.record(actor.id, "create", "capture_form", form.id,
                     {k: (None, v) for k, v in values.items()})
        return form

    return _save(go)


def get_form(form_id: Any) -> CaptureForm:
    pk = parse_pk(form_id)
    form = db.session.get(CaptureForm, pk) if pk is not None else None
    if form is None:
        raise NotFound(tr("The capture form does not exist"))
    return form


def update_form(actor: User, form_id: Any, data: dict[str, Any]) -> CaptureForm:
    """Edit a form's settings (its token only by rotate_token). A new policy text needs a
    new version: consents already given name the version they agreed to."""
    _require_admin(actor)
    form = get_form(form_id)
    values = clean_form_data(data)
    if values["policy_text"] != form.policy_text \
            and values["policy_version"] == form.policy_version:
        raise ValidationFailed({"policy_version": tr(
            "The privacy policy text changed: give it a new version (consents name the "
            "version they agreed to)")})
    if values["policy_version"] != form.policy_version \
            and values["policy_version"] in versions_used(form.id):
        raise ValidationFailed({"policy_version": tr(
            "Version %(version)s was used before for another text: give the new text a new "
            "version (consents name the version they agreed to)",
            version=values["policy_version"])})

    def go() -> CaptureForm:
        changes = audit.diff(form, values)
        for key, value in values.items():
            setattr(form, key, value)
        if changes:
            # The policy text is kept whole: the audit log is the record of what each
            # version said.
            audit.record(actor.id, "update", "capture_form", form.id, changes)
        return form

    return _save(go)


def versions_used(form_id: int) -> set[str]:
    """Every privacy-policy version the form has carried (its audit log: created with one,
    changed to others)."""
    from app.models import AuditLog

    used: set[str] = set()
    for changes in db.session.execute(select(AuditLog.changes).where(
            AuditLog.object_type == "capture_form", AuditLog.object_id == form_id)).scalars():
        for value in (changes or {}).get("policy_version") or ():
            if isinstance(value, str):
                used.add(value)
    return used


def rotate_token(actor: User, form_id: Any) -> CaptureForm:
    """A new public address; the old one answers 404 from now on."""
    _require_admin(actor)
    form = get_form(form_id)

    def go() -> CaptureForm:
        form.token = new_token()
        form.token_rotated_at = utcnow()
        audit.record(actor.id, "rotate", "capture_form", form.id,
                     {"token_rotated_at": (None, form.token_rotated_at)})
        return form

    return _save(go)


def submission_counts(form_id: int) -> dict[str, int]:
    """Submissions of a form by outcome (the admin page: leads, duplicates, robots caught)."""
    return {outcome: n for outcome, n in db.session.execute(
        select(CaptureSubmission.outcome, func.count()).where(
            CaptureSubmission.form_id == form_id).group_by(CaptureSubmission.outcome))}


def summary_text(form_id: int) -> str:
    counts = submission_counts(form_id)
    return tr("%(leads)s leads, %(dups)s duplicates, %(robots)s caught by the honeypot, "
              "%(invalid)s with errors", leads=counts.get(OUTCOME_LEAD, 0),
              dups=counts.get(OUTCOME_DUPLICATE, 0), robots=counts.get(OUTCOME_HONEYPOT, 0),
              invalid=counts.get(OUTCOME_INVALID, 0))


# --- the public side --------------------------------------------------------------------------
def form_by_token(token: Any) -> CaptureForm:
    """The active form with this token; NotFound alike for unknown, malformed and inactive."""
    form = None
    if isinstance(token, str) and _TOKEN.match(token):
        form = db.session.execute(select(CaptureForm).where(
            CaptureForm.token == token, CaptureForm.is_active.is_(True))).scalar_one_or_none()
    if form is None:
        raise NotFound(tr("This form does not exist or is closed"))
    return form


def trusted_proxy_count() -> int:
    if not has_app_context():
        return 0
    try:
        return max(0, int(current_app.config.get("TRUSTED_PROXY_COUNT", 0)))
    except (TypeError, ValueError):
        return 0


def client_address(remote_addr: Optional[str], forwarded_for: Optional[str]) -> str:
    """Whom the rate counts: the peer, or behind N proxies of ours the address N hops from
    the right of X-Forwarded-For (entries left of it are the visitor's to forge)."""
    hops = trusted_proxy_count()
    if hops and forwarded_for:
        chain = [p.strip() for p in forwarded_for.split(",") if p.strip()]
        if len(chain) >= hops:
            return chain[-hops][:64]
    return (remote_addr or "unknown")[:64]


def rate_per_hour() -> int:
    if has_app_context():
        return int(current_app.config.get("CAPTURE_FORM_RATE_PER_HOUR", DEFAULT_RATE))
    return DEFAULT_RATE


def clean_public_data(data: dict[str, Any]) -> dict[str, Any]:
    """The visitor's fields as lead values; ValidationFailed keyed by the public field names
    (the form shows each message under its field)."""
    errors: dict[str, str] = {}
    lead_data: dict[str, Any] = {}
    for public, field in PUBLIC_FIELDS.items():
        value = data.get(public)
        if value not in (None, ""):
            lead_data[field] = value
    back = {v: k for k, v in PUBLIC_FIELDS.items()}
    values: dict[str, Any] = {}
    try:
        values = lead_service.clean_lead_data(lead_data)
    except ValidationFailed as exc:
        errors.update({back.get(k, k): v for k, v in exc.fields.items()})
    if not any(lead_data.get(f) for f in ("mobile", "phone", "email")) \
            and not any(k in errors for k in ("mobile", "phone", "email")):
        errors["mobile"] = tr("Give a mobile, a phone or an e-mail so that we can reach you")
    if data.get("consent") not in ("y", "on", "1", "true", True):
        errors["consent"] = tr("Please agree to the privacy policy")
    if errors:
        raise ValidationFailed(errors)
    return values


@dataclass
class Submitted:
    outcome: str
    lead_id: Optional[int] = None


def submit(token: Any, data: dict[str, Any], client_ip: str,
           now: Optional[dt.datetime] = None, campaign_token: Any = None) -> Submitted:
    """One visitor's submission (see the module's steps). Commits what it stores; raises
    NotFound, TooManyRequests or ValidationFailed for the page to show."""
    form = form_by_token(token)
    now = now or utcnow()
    try:
        return _submit(form.id, data, client_ip, now, campaign_token)
    except Exception:
        db.session.rollback()
        raise


def _store(form_id: int, client_ip: str, outcome: str, now: dt.datetime,
           lead_id: Optional[int] = None) -> None:
    db.session.add(CaptureSubmission(form_id=form_id, client_ip=client_ip, outcome=outcome,
                                     lead_id=lead_id, created_at=now))


def address_lock_key(client_ip: str) -> int:
    """A signed 64-bit advisory-lock key for one client address (capture-form rate)."""
    import hashlib

    digest = hashlib.blake2b(f"guishu:capture:{client_ip}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _submit(form_id: int, data: dict[str, Any], client_ip: str, now: dt.datetime,
            campaign_token: Any = None) -> Submitted:
    # The form row's lock first (an UPDATE: the row lock on PostgreSQL, the write lock on
    # SQLite), so parallel posts to the form count each other's submissions.
    db.session.execute(update(CaptureForm).where(CaptureForm.id == form_id)
                       .values(updated_at=CaptureForm.updated_at)
                       .execution_options(synchronize_session=False))
    if db.session.get_bind().dialect.name == "postgresql":
        # The rate is per address over every form: posts from one address to two forms at
        # once count each other too (SQLite's write lock already covers every form).
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                           {"k": address_lock_key(client_ip)})
    form = db.session.get(CaptureForm, form_id)
    rate = rate_per_hour()
    used = db.session.execute(select(func.count()).select_from(CaptureSubmission).where(
        CaptureSubmission.client_ip == client_ip,
        CaptureSubmission.created_at > now - RATE_WINDOW)).scalar_one()
    if used >= rate:
        raise TooManyRequests(tr("Too many submissions from your network: at most %(rate)s an "
                                 "hour. Please try again later", rate=rate))
    if not isinstance(data, dict):
        data = {}
    if data.get(HONEYPOT):
        _store(form.id, client_ip, OUTCOME_HONEYPOT, now)
        audit.record(None, "honeypot", "capture_form", form.id, {"client_ip": (None, client_ip)})
        db.session.commit()
        return Submitted(OUTCOME_HONEYPOT)
    try:
        values = clean_public_data(data)
    except ValidationFailed:
        _store(form.id, client_ip, OUTCOME_INVALID, now)
        db.session.commit()
        raise
    values["source"] = form.channel
    from app.services import campaign_responses

    campaign = campaign_responses.campaign_by_token(campaign_token)
    if campaign is not None and not values.get("campaign"):
        values["campaign"] = campaign.name[:200]
    matches = lead_service.find_duplicates(values)
    blocking = [m for m in matches if m.action == "block"]
    if blocking:
        _store(form.id, client_ip, OUTCOME_DUPLICATE, now)
        _tell_holders(form, blocking, values)
        audit.record(None, "capture_duplicate", "capture_form", form.id,
                     {"matches": (None, ",".join(f"{m.record}:{m.id}" for m in blocking))})
        if campaign is not None:
            # The record that exists answered the campaign (a customer before a lead).
            found = next((m for m in blocking if m.record == "customer"), blocking[0])
            campaign_responses.record_signup(campaign, now=now,
                                             **{f"{found.record}_id": found.id})
        db.session.commit()
        return Submitted(OUTCOME_DUPLICATE)
    lead = lead_service.insert_lead(
        values, actor_id=None, owner_id=None, pool_id=form.pool_id,
        reason=f"公开表单：{form.name}",
        extra={"consent_version": form.policy_version, "consented_at": now})
    if matches:
        audit.record(None, "dedupe_warning", "lead", lead.id,
                     {"matches": (None, ",".join(f"{m.record}:{m.id}" for m in matches))})
    _store(form.id, client_ip, OUTCOME_LEAD, now, lead.id)
    if campaign is not None:
        campaign_responses.record_signup(campaign, lead_id=lead.id, lead_created=True, now=now)
    db.session.commit()
    return Submitted(OUTCOME_LEAD, lead.id)


def _tell_holders(form: CaptureForm, matches: list, values: dict[str, Any]) -> None:
    """The owners of the matched records hear of the enquiry (a record in a pool: nobody —
    the submission is counted as a duplicate on the form's page)."""
    for m in matches[:3]:
        if m.record == "customer":
            owner = db.session.execute(select(Ownership.owner_id).where(
                Ownership.customer_id == m.id)).scalar_one_or_none()
            link = f"/customers/show/{m.id}"
            what = f"客户「{m.name}」"
        else:
            owner = db.session.execute(select(LeadOwnership.owner_id).where(
                LeadOwnership.lead_id == m.id)).scalar_one_or_none()
            link = f"/leads/show/{m.id}"
            what = f"线索「{m.name}」"
        notes = (values.get("notes") or "")[:500]
        notifications.notify([owner], "capture_duplicate",
                             f"公开表单「{form.name}」收到与您的{what}重复的提交",
                             f"留言：{notes}" if notes else "", link=link)
