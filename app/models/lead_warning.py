"""The memory of lead pre-reclaim warnings: one row per lead, owner and cycle."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, UniqueConstraint

from app.models.customer import utcnow


class LeadReclaimWarning(Model):
    """`due_at` is when the lead sweep would take the lead; a follow-up or a new owner moves
    it, which starts a new cycle (as reclaim_warning does for customers)."""

    __tablename__ = "lead_reclaim_warning"
    __table_args__ = (UniqueConstraint("lead_id", "owner_id", "due_at",
                                       name="uq_lead_reclaim_warning_cycle"),)
    id = Column(Integer, primary_key=True)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False,
                     index=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                      index=True)
    due_at = Column(DateTime, nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
