"""API keys for machines (an SMS gateway, a mail bridge, a telephony platform, web forms):
each key serves one purpose. Only the SHA-256 of the key is stored; its prefix finds the row."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

# The purposes a key can serve (one each): the endpoints that accept keys name theirs.
PURPOSES = ("sms_inbound", "email_inbound", "call_events", "web_forms")


class ApiKey(Model):
    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint("purpose in ('sms_inbound', 'email_inbound', 'call_events', "
                        "'web_forms')", name="ck_api_key_purpose"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    purpose = Column(String(32), nullable=False)
    # The visible part of the key ("gsk_" + prefix + "_" + secret): the lookup, unique.
    prefix = Column(String(16), nullable=False, unique=True)
    secret_hash = Column(String(64), nullable=False)  # sha256 hex of the whole key
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    rotated_at = Column(DateTime)
    last_used_at = Column(DateTime)
    revoked_at = Column(DateTime)
    revoked_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))

    created_by = relationship("Employee", foreign_keys=[created_by_id])
    revoked_by = relationship("Employee", foreign_keys=[revoked_by_id])

    @property
    def purpose_label(self) -> str:
        from app.services.api_keys import purpose_label

        return purpose_label(self.purpose)

    @property
    def state_label(self) -> str:
        from app.services.api_keys import state_label

        return state_label(self)
