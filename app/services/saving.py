"""Commit a write whose uniqueness a unique index backs: the service checks first (for a clear
refusal) and the index decides a race the check could not see; both refuse the same way."""
from __future__ import annotations

from typing import Any, Callable, Optional

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.services.errors import ValidationFailed


def commit_unique(fn: Optional[Callable[[], Any]], field: str, message: str) -> Any:
    """fn() (if given), then commit; an IntegrityError becomes ValidationFailed naming
    `field`, and any failure rolls the session back."""
    try:
        result = fn() if fn is not None else None
        db.session.commit()
        return result
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({field: message}) from None
    except Exception:
        db.session.rollback()
        raise
