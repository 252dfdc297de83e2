"""Domain errors raised by services and mapped to 4xx / form errors by callers.

    GuishuError                     code, message (zh), http status
    ├── ValidationFailed            400: bad input; .fields maps field -> message
    ├── OutOfScope                  404: the record is outside the actor's data scope
    ├── PermissionDenied            403: the actor's role may not do this
    ├── NotFound                    404
    ├── CapExceeded                 409: a rep would hold more than the cap
    ├── LockCapExceeded             409: more locked customers than the lock cap
    ├── DailyLimitReached           409: more claims today than the daily limit
    ├── InCooldown                  409: claiming back within the previous-owner cooldown
    ├── NotInPool                   409: the customer is no longer in that pool
    ├── Duplicate                   409: a dedupe rule that blocks matched (names the holder)
    ├── DuplicateWarning            409: a warning rule matched; save again with confirmation
    └── Conflict                    409: state changed underneath
"""
from __future__ import annotations

from typing import Optional


UNKNOWN_FIELD = "不能修改或不存在的字段"  # the one refusal of a field nobody may write


class GuishuError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: Optional[str] = None, **details):
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
        self.fields = dict(fields)
        message = "；".join(f"{msg}" for msg in self.fields.values())
        super().__init__(message, fields=self.fields)


class OutOfScope(GuishuError):
    code = "out_of_scope"
    status = 404


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
