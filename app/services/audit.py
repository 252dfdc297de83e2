"""Writes the audit trail. Callers pass plain values; nothing here commits: the audit row goes
into the caller's transaction, committed with the change it describes or not at all."""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import AuditLog


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def record(actor_id: Optional[int], action: str, object_type: str, object_id: Optional[int],
           changes: Optional[dict[str, tuple[Any, Any]]] = None) -> AuditLog:
    """Add one audit row; `changes` maps field -> (old, new)."""
    entry = AuditLog(
        actor_id=actor_id, action=action, object_type=object_type, object_id=object_id,
        changes={k: [_plain(old), _plain(new)] for k, (old, new) in (changes or {}).items()},
    )
    db.session.add(entry)
    return entry


def record_new(actor_id: Optional[int], object_type: str, obj: Any) -> AuditLog:
    """Add a new row built by a form and its "create" audit row (flushes for the row's id)."""
    changes = {k: (None, v) for k, (_old, v) in pending_changes(obj).items()}
    db.session.add(obj)
    try:
        db.session.flush()
    except SQLAlchemyError:
        db.session.rollback()
        raise
    return record(actor_id, "create", object_type, obj.id, changes)


def diff(obj: Any, new_values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose value would change, as field -> (old, new)."""
    return {k: (getattr(obj, k), v) for k, v in new_values.items() if getattr(obj, k) != v}


def pending_changes(obj: Any) -> dict[str, tuple[Any, Any]]:
    """Column changes made to a loaded object but not yet flushed, as field -> (old, new)."""
    from sqlalchemy import inspect

    out: dict[str, tuple[Any, Any]] = {}
    state = inspect(obj)
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            out[attr.key] = (old, new)
    return out
