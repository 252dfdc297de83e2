"""Domain errors raised by services and mapped to 4xx / form errors by callers.

    GuishuError                     code, message (the reader's language), http status
    ├── ValidationFailed            400: bad input; .fields maps field -> message
    ├── OutOfScope                  404: the record is outside the actor's data scope
    ├── Unauthorized                401: no credentials, or ones that do not hold (API keys)
    ├── PermissionDenied            403: the actor's role may not do this
    ├── NotFound                    404
    ├── CapExceeded                 409: a rep would hold more than the cap
    ├── LockCapExceeded             409: more locked customers than the lock cap
    ├── DailyLimitReached           409: more claims today than the daily limit
    ├── InCooldown                  409: claiming back within the previous-owner cooldown
    ├── NotInPool                   409: the customer is no longer in that pool
    ├── Duplicate                   409: a dedupe rule that blocks matched (names the holder)
    ├── DuplicateWarning            409: a warning rule matched; save again with confirmation
    ├── Conflict                    409: state changed underneath
    └── TooManyRequests             429: a machine's key used more often than its rate allows
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Optional

from babel.support import Translations
from flask import has_app_context
from flask_babel import gettext
from flask_babel.speaklater import LazyString


def tr(msgid: str, **params) -> str:
    """A refusal in the reader's language: `msgid` is English with %(name)s placeholders and
    its Chinese is in messages.po. In a request the session's locale (default zh); in a job or
    CLI command the default locale; outside any app (a script) the zh catalogue itself, so a
    message never falls back to the English msgid where Chinese is expected."""
    if has_app_context():
        return gettext(msgid, **params)
    text = _zh().gettext(msgid)
    return text % params if params else text


def N_(msgid: str) -> str:
    """Marks a msgid kept in a constant, so that extraction (make translations) finds it."""
    return msgid


def lazy_tr(msgid: str, **params) -> LazyString:
    """tr at the time the text is read: for module constants shared by several callers."""
    return LazyString(tr, msgid, **params)


@lru_cache(maxsize=1)
def _zh() -> Translations:
    folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "translations")
    return Translations.load(folder, ["zh"])


# The refusal of a record the actor cannot see, whether or not it exists (msgid: tr it).
NO_SUCH_CUSTOMER = N_("The customer does not exist or is outside your data scope")
# A claim that lost the race for some customers (msgid).
CLAIMED_MEANWHILE = N_("Someone else just claimed some of these customers; refresh and try again")
# the one refusal of a field nobody may write
UNKNOWN_FIELD = lazy_tr("This field cannot be changed or does not exist")


class GuishuError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: Optional[str] = None, **details):
        message = str(message)  # a lazy constant is read now, in the raiser's language
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message}
        out.update({k: v for k, v in self.details.items() if v is not None})
        return out


class ValidationFailed(GuishuError):
    code = "invalid"
    status = 400

    def __init__(self, fields: dict[str, str]):
        self.fields = {name: str(msg) for name, msg in fields.items()}
        message = tr("; ").join(self.fields.values())
        super().__init__(message, fields=self.fields)


class OutOfScope(GuishuError):
    code = "out_of_scope"
    status = 404


class Unauthorized(GuishuError):
    code = "unauthorized"
    status = 401


class TooManyRequests(GuishuError):
    code = "rate_limited"
    status = 429


class PermissionDenied(GuishuError):
    code = "forbidden"
    status = 403


class NotFound(GuishuError):
    code = "not_found"
    status = 404


class CapExceeded(GuishuError):
    code = "cap_exceeded"
    status = 409


class Conflict(GuishuError):
    code = "conflict"
    status = 409


class DailyLimitReached(GuishuError):
    code = "daily_limit"
    status = 409


class InCooldown(GuishuError):
    code = "cooldown"
    status = 409


class NotInPool(GuishuError):
    code = "not_in_pool"
    status = 409


class LockCapExceeded(GuishuError):
    code = "lock_cap_exceeded"
    status = 409


class Duplicate(GuishuError):
    code = "duplicate"
    status = 409


class DuplicateWarning(GuishuError):
    code = "duplicate_warning"
    status = 409
