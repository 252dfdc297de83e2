"""In-app notifications. Callers add them inside their own transaction."""
from __future__ import annotations

from typing import Iterable, Optional

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Notification
from app.models.customer import utcnow
from app.services.errors import tr


def notify(user_ids: Iterable[Optional[int]], kind: str, title: str, body: str = "",
           link: Optional[str] = None) -> int:
    """One notification per distinct user (None ids are ignored); does not commit."""
    ids = sorted({u for u in user_ids if u is not None})
    for user_id in ids:
        db.session.add(Notification(user_id=user_id, kind=kind, title=title, body=body,
                                    link=link, created_at=utcnow()))
    return len(ids)


def unread_count(user_id: int, cap: Optional[int] = None) -> int:
    """The user's unread notifications, counted up to `cap` + 1 when given (the bell shows
    "99+": counting a hundred thousand on every page costs more than the page)."""
    q = select(Notification.id).where(Notification.user_id == user_id,
                                      Notification.read_at.is_(None))
    if cap is not None:
        q = q.limit(cap + 1)
    return db.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()


def mark_read(user_id: int, notification_ids: Optional[list[int]] = None) -> int:
    q = update(Notification).where(Notification.user_id == user_id,
                                   Notification.read_at.is_(None))
    if notification_ids is not None:
        q = q.where(Notification.id.in_(notification_ids))
    n = db.session.execute(q.values(read_at=utcnow())).rowcount
    db.session.commit()
    return n


def recent(user_id: int, limit: int = 100, before: Optional[int] = None) -> list[Notification]:
    """The user's newest notifications, unread and read alike; older ones page by keyset:
    those before id `before` (a range of the (user_id, id) index at any depth)."""
    q = select(Notification).where(Notification.user_id == user_id)
    if before is not None:
        q = q.where(Notification.id < before)
    return list(db.session.execute(q.order_by(Notification.id.desc()).limit(limit)).scalars())


def open_one(user_id: int, notification_id: int) -> Optional[str]:
    """Mark one of the user's notifications read and return its link (or None). Someone
    else's notification is NotFound, like a missing one."""
    from app.services.errors import NotFound

    note = db.session.get(Notification, notification_id)
    if note is None or note.user_id != user_id:
        raise NotFound(tr("The notification does not exist"))
    if note.read_at is None:
        note.read_at = utcnow()
    link = note.link
    db.session.commit()
    return link
