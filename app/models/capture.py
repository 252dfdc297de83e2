"""Public lead capture forms (/forms/<token>) and the log of what was submitted to them."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        String, Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow
from app.models.lead import LEAD_SOURCES, _codes

# What became of one submission: a lead, a duplicate of a lead or customer (no lead, the
# holder told), a filled honeypot (no lead), or input the form showed again with messages.
SUBMISSION_OUTCOMES = ("lead", "duplicate", "honeypot", "invalid")


class CaptureForm(Model):
    """One public form: its channel (a lead source), the lead pool its leads land in, the
    privacy-policy text (and version) a visitor consents to, and the unguessable token of its
    public address."""

    __tablename__ = "capture_form"
    __table_args__ = (
        CheckConstraint(f"channel in ({_codes(LEAD_SOURCES)})", name="ck_capture_form_channel"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    channel = Column(String(20), nullable=False, default="web_form")
    pool_id = Column(Integer, ForeignKey("pool.id", ondelete="RESTRICT"), nullable=False)
    policy_text = Column(Text, nullable=False)
    policy_version = Column(String(40), nullable=False)
    is_active = Column(Boolean, nullable=False, default=True, server_default="1")
    token = Column(String(64), nullable=False, unique=True)
    token_rotated_at = Column(DateTime)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    pool = relationship("Pool")
    created_by = relationship("Employee", foreign_keys=[created_by_id])

    @property
    def public_path(self) -> str:
        return f"/forms/{self.token}"

    @property
    def channel_label(self) -> str:
        return str(LEAD_SOURCES.get(self.channel, self.channel))

    @property
    def submission_summary(self) -> str:
        from app.services.lead_capture import summary_text

        return summary_text(self.id)

    def __repr__(self) -> str:
        return self.name


class CaptureSubmission(Model):
    """One accepted POST to a public form (refusals over the rate are not stored): the
    per-IP rate counts these rows, and the honeypot's catches are counted here."""

    __tablename__ = "capture_submission"
    __table_args__ = (
        CheckConstraint(f"outcome in ({_codes(SUBMISSION_OUTCOMES)})",
                        name="ck_capture_submission_outcome"),
        # The rate limit: this address's submissions in the window.
        Index("ix_capture_submission_ip_time", "client_ip", "created_at"),
        Index("ix_capture_submission_form_id", "form_id", "id"),
    )
    id = Column(Integer, primary_key=True)
    form_id = Column(Integer, ForeignKey("capture_form.id", ondelete="CASCADE"), nullable=False)
    client_ip = Column(String(64), nullable=False)
    outcome = Column(String(16), nullable=False)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
