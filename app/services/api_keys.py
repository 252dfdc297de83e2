"""API keys for machines (an SMS gateway, a mail bridge, a telephony platform, a web form
host): admins create, rotate and revoke them; webhooks authenticate with them.

A key reads "gsk_<prefix>_<secret>". Only the SHA-256 of the whole key is stored, beside the
prefix that finds the row; the key itself is shown once, when created or rotated, and never
again. Authentication compares hashes in constant time (hmac.compare_digest), also when the
prefix finds nothing, so timing does not tell a valid prefix from an invalid one. Every use,
accepted or refused, writes one audit row (without the secret) and an accepted one sets
`last_used_at`.

Refusals (app.services.errors):
    401 missing_key    no Authorization: Bearer <key> and no X-Api-Key header
    401 unknown_key    no such key, or the secret does not match (rotated away)
    401 revoked_key    the key was revoked
    403 wrong_purpose  the key serves another purpose
    429 rate_limited   more uses in the last minute than API_KEY_RATE_PER_MINUTE
                       (CTI_KEY_RATE_PER_MINUTE for keys of purpose call_events)

Signed requests (call events): besides the key, the caller signs each request with the key's
signing secret, `signing_secret(key)` = HMAC-SHA256(SECRET_KEY, "cti-signing:" + the key's
hash), derived and never stored, shown once with the key when it is created or rotated (so a
rotation changes it too). `verify_signature` checks X-Guishu-Signature "sha256=<hex>" of
"<timestamp>." + body against it and refuses a timestamp more than SIGNATURE_WINDOW seconds
away from now:
    401 bad_signature    no signature, no timestamp, or a signature that does not match
    401 stale_signature  the timestamp is older (or newer) than SIGNATURE_WINDOW seconds
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from hmac import compare_digest
from typing import Any, Optional

from flask import current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ApiKey, AuditLog, User
from app.models.api_key import PURPOSES
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, has_role
from app.services import audit, limits
from app.services.errors import (Conflict, NotFound, PermissionDenied, TooManyRequests,
                                 Unauthorized, ValidationFailed, lazy_tr, tr)
from app.services.ids import parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean

PURPOSE_LABELS = {"sms_inbound": lazy_tr("Inbound SMS"),
                  "email_inbound": lazy_tr("Inbound e-mail"),
                  "call_events": lazy_tr("Call events"),
                  "web_forms": lazy_tr("Web forms")}
NAME_MAX = 100
DEFAULT_RATE = 120  # uses per key per minute, unless API_KEY_RATE_PER_MINUTE says otherwise
DEFAULT_CTI_RATE = 6000  # call_events keys, unless CTI_KEY_RATE_PER_MINUTE says otherwise
SIGNED_PURPOSES = ("call_events",)  # keys whose requests are signed (signing_secret)
SIGNATURE_WINDOW = 300  # seconds a signed request's timestamp may be off from now
USE = "api_key_use"  # the audit action of every use
_KEY = re.compile(r"^gsk_([a-z0-9]{8})_([A-Za-z0-9_-]{20,100})$")
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def purpose_label(purpose: str) -> str:
    return str(PURPOSE_LABELS.get(purpose, purpose))


def state_label(key: ApiKey) -> str:
    return tr("Revoked") if key.revoked_at is not None else tr("Active")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _new_prefix() -> str:
    return secrets.token_hex(4)  # 8 characters of [0-9a-f]


def _new_key(prefix: str) -> str:
    return f"gsk_{prefix}_{secrets.token_urlsafe(32)}"


def require_admin(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can manage API keys"))


def _clean(name: Any, purpose: Any) -> tuple[str, str]:
    errors: dict[str, str] = {}
    name = name.strip() if isinstance(name, str) else name
    if not name or not isinstance(name, str):
        errors["name"] = tr("Required")
    elif is_unclean(name):
        errors["name"] = f"name {UNCLEAN_MESSAGE}"
    else:
        limits.check_length(errors, "name", name, NAME_MAX)
    if purpose not in PURPOSES:
        errors["purpose"] = tr("The purpose can only be one of: %(choices)s",
                               choices=", ".join(PURPOSES))
    if errors:
        raise ValidationFailed(errors)
    return name, purpose


def _load(key_id: Any) -> ApiKey:
    number = parse_pk(key_id)
    key = db.session.get(ApiKey, number) if number is not None else None
    if key is None:
        raise NotFound(tr("The API key does not exist"))
    return key


def create_key(actor: User, name: Any, purpose: Any) -> tuple[ApiKey, str]:
    """A new key for one purpose: (its row, the key in plain text - shown once, kept nowhere).
    A name already taken is Conflict `duplicate_name` (the unique index decides, also between
    two admins at once)."""
    require_admin(actor)
    name, purpose = _clean(name, purpose)
    prefix = _new_prefix()
    raw = _new_key(prefix)
    key = ApiKey(name=name, purpose=purpose, prefix=prefix, secret_hash=hash_key(raw),
                 created_by_id=actor.id, created_at=utcnow())
    try:
        db.session.add(key)
        db.session.flush()
        audit.record(actor.id, "create", "api_key", key.id,
                     {"name": (None, name), "purpose": (None, purpose),
                      "prefix": (None, prefix)})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(tr("An API key named %(name)s already exists", name=name),
                       code="duplicate_name") from None
    except Exception:
        db.session.rollback()
        raise
    return key, raw


def rotate_key(actor: User, key_id: Any) -> tuple[ApiKey, str]:
    """A new secret for the key (same name, purpose and prefix): the old key stops working at
    once. A revoked key is Conflict `revoked_key`."""
    require_admin(actor)
    key = _load(key_id)
    if key.revoked_at is not None:
        raise Conflict(tr("This API key has been revoked"), code="revoked_key")
    raw = _new_key(key.prefix)
    key.secret_hash = hash_key(raw)
    key.rotated_at = utcnow()
    audit.record(actor.id, "rotate", "api_key", key.id, {"rotated_at": (None, key.rotated_at)})
    db.session.commit()
    return key, raw


def revoke_key(actor: User, key_id: Any) -> ApiKey:
    """Revoke the key for good (the row stays, for the audit trail and the list)."""
    require_admin(actor)
    key = _load(key_id)
    if key.revoked_at is not None:
        raise Conflict(tr("This API key has been revoked"), code="revoked_key")
    key.revoked_at = utcnow()
    key.revoked_by_id = actor.id
    audit.record(actor.id, "revoke", "api_key", key.id, {"revoked_at": (None, key.revoked_at)})
    db.session.commit()
    return key


# --- authentication ---------------------------------------------------------------------------
def key_from_headers(headers) -> Optional[str]:
    """The key a request carries: `Authorization: Bearer <key>`, else `X-Api-Key`."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (headers.get("X-Api-Key") or "").strip() or None


def _rate(purpose: Optional[str] = None) -> int:
    """Uses a minute allowed per key: a telephony platform's events come far faster than any
    other machine's calls, so call_events keys have their own rate."""
    if purpose == "call_events":
        if has_app_context():
            return int(current_app.config.get("CTI_KEY_RATE_PER_MINUTE", DEFAULT_CTI_RATE))
        return DEFAULT_CTI_RATE
    if has_app_context():
        return int(current_app.config.get("API_KEY_RATE_PER_MINUTE", DEFAULT_RATE))
    return DEFAULT_RATE


def _uses_last_minute(key_id: int, now: dt.datetime) -> int:
    return db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.object_id == key_id, AuditLog.object_type == "api_key",
        AuditLog.action == USE, AuditLog.created_at > now - dt.timedelta(minutes=1))
    ).scalar_one()


def _record_use(key_id: Optional[int], purpose: str, endpoint: str, result: str,
                now: dt.datetime, prefix: Optional[str] = None) -> None:
    changes = {"purpose": (None, purpose), "endpoint": (None, endpoint),
               "result": (None, result)}
    if prefix:
        changes["prefix"] = (None, prefix)
    entry = audit.record(None, USE, "api_key", key_id, changes)
    entry.created_at = now


def authenticate(raw: Optional[str], purpose: str, endpoint: str = "",
                 rate: Optional[int] = None) -> ApiKey:
    """The key `raw` names, if it is valid, live and serves `purpose`; else the refusal (see
    the module's table). Commits its audit row either way (and `last_used_at` on success).
    `rate`: uses per minute allowed for this endpoint (default: the key purpose's rate)."""
    now = utcnow()
    key, refusal, prefix = None, None, None
    match = _KEY.match(raw) if isinstance(raw, str) and len(raw) <= 200 else None
    if not raw:
        refusal = Unauthorized(tr("An API key is required: Authorization: Bearer <key> or "
                                  "X-Api-Key"), code="missing_key")
    else:
        prefix = match.group(1) if match else None
        key = db.session.execute(select(ApiKey).where(ApiKey.prefix == prefix)
                                 ).scalar_one_or_none() if prefix else None
        # Hash and compare whether or not the prefix found a row: the same work either way.
        given = hash_key(raw)
        same = compare_digest(given, key.secret_hash if key is not None else _DUMMY_HASH)
        if key is None or not same:
            refusal = Unauthorized(tr("Unknown API key"), code="unknown_key")
        elif key.revoked_at is not None:
            refusal = Unauthorized(tr("This API key has been revoked"), code="revoked_key")
        elif key.purpose != purpose:
            refusal = PermissionDenied(tr("This API key is for %(purpose)s, not %(wanted)s",
                                          purpose=key.purpose, wanted=purpose),
                                       code="wrong_purpose")
        elif _uses_last_minute(key.id, now) >= (rate := rate or _rate(key.purpose)):
            refusal = TooManyRequests(tr("Too many requests with this API key: at most "
                                         "%(rate)s a minute", rate=rate))
    try:
        _record_use(key.id if key is not None else None, purpose, endpoint,
                    refusal.code if refusal else "ok", now, prefix)
        if refusal is None:
            key.last_used_at = now
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if refusal is not None:
        raise refusal
    return key


# --- signed requests --------------------------------------------------------------------------
def signing_secret(key: ApiKey) -> str:
    """The secret a caller signs requests with (hex): derived from the app's SECRET_KEY and the
    key's hash, so it is stored nowhere and changes when the key is rotated."""
    secret = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    return hmac.new(secret, ("cti-signing:" + key.secret_hash).encode("utf-8"),
                    hashlib.sha256).hexdigest()


def shows_signing_secret(key: ApiKey) -> bool:
    """Whether the key's requests are signed (its signing secret is shown with the key)."""
    return key.purpose in SIGNED_PURPOSES


def sign(secret: str, timestamp: Any, body: bytes) -> str:
    """X-Guishu-Signature's value for `body` sent at `timestamp` (unix seconds)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def refuse_signature(key: ApiKey, code: str, message: str, endpoint: str) -> Unauthorized:
    """The refusal, audited against the key (a forged or replayed request is worth seeing)."""
    try:
        audit.record(None, "api_key_signature_refused", "api_key", key.id,
                     {"result": (None, code), "endpoint": (None, endpoint)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return Unauthorized(message, code=code)


def check_timestamp(key: ApiKey, timestamp: Any, endpoint: str = "",
                    now: Optional[float] = None) -> str:
    """A signed request's timestamp (unix seconds, as text): 401 bad_signature when it is no
    such number, stale_signature when it is more than SIGNATURE_WINDOW seconds from now."""
    import time

    text = str(timestamp).strip() if isinstance(timestamp, (str, int)) \
        and not isinstance(timestamp, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 12:  # '²' is a digit too
        raise refuse_signature(key, "bad_signature", tr(
            "The timestamp must be the unix time in seconds"), endpoint)
    now = time.time() if now is None else now
    if abs(now - int(text)) > SIGNATURE_WINDOW:
        raise refuse_signature(key, "stale_signature", tr(
            "The request's timestamp is more than %(n)s seconds away from now (a replay, or "
            "the sender's clock is wrong)", n=SIGNATURE_WINDOW), endpoint)
    return text


def same_signature(expected: str, given: Any) -> bool:
    """Constant-time comparison of a computed signature with the one a request carries."""
    if not isinstance(given, str) or len(given) > 200:
        return False
    return compare_digest(expected.encode("utf-8"), given.strip().encode("utf-8"))


def verify_signature(key: ApiKey, timestamp: Optional[str], signature: Optional[str],
                     body: bytes, endpoint: str = "", now: Optional[float] = None) -> None:
    """Refuse (401 bad_signature / stale_signature, audited) unless `signature` is the key's
    signature of `body` at `timestamp` and `timestamp` is within SIGNATURE_WINDOW of now."""
    if not signature or not timestamp:
        raise refuse_signature(key, "bad_signature", tr(
            "A signed request needs the X-Guishu-Timestamp and X-Guishu-Signature headers"),
            endpoint)
    text = check_timestamp(key, timestamp, endpoint, now)
    if not same_signature(sign(signing_secret(key), text, body), signature):
        raise refuse_signature(key, "bad_signature", tr(
            "The request's signature does not match"), endpoint)
