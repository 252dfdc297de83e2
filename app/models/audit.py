"""Audit trail of configuration and record changes (who, when, what, old -> new)."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import relationship

from app.models.customer import utcnow


class AuditLog(Model):
    __tablename__ = "audit_log"
    # "The latest entry of this action" (the last dedupe scan, on the review page) reads one
    # index entry, not the log backwards.
    __table_args__ = (
        Index("ix_audit_log_action_id", "action", "id"),
        # An API key's uses in the last minute (its rate limit, asked on every webhook call
        # and every call routing question): a range on the newest rows, not all ever written.
        Index("ix_audit_log_object_action_created", "object_type", "object_id", "action",
              "created_at"),
    )
    id = Column(Integer, primary_key=True)
    actor_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    action = Column(String(40), nullable=False)
    object_type = Column(String(40), nullable=False)
    object_id = Column(Integer, index=True)
    changes = Column(JSON)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)

    actor = relationship("Employee")

    @property
    def changes_shown(self):
        """The changes, contact details masked by the rule (app.services.masking)."""
        from app.services.masking import audit_changes
        return audit_changes(self)
