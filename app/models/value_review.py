"""Value re-evaluation proposals (价值复评建议): what the periodic review found about a
customer's grade and who holds it, for a manager to accept or dismiss. A proposal never acts
by itself; accepting one files a transfer request (the usual approvals), a grade change or a
campaign membership through the services that own those."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import relationship

from flask_appbuilder import Model

from app.models.customer import utcnow

PROPOSAL_KINDS = ("grade_review", "grade_a_overloaded", "grade_a_neglected", "reactivate")
PROPOSAL_STATUSES = ("open", "accepted", "dismissed", "expired")


class ValueProposal(Model):
    __tablename__ = "value_proposal"
    __table_args__ = (
        CheckConstraint("kind in ('grade_review', 'grade_a_overloaded', 'grade_a_neglected',"
                        " 'reactivate')", name="ck_value_proposal_kind"),
        CheckConstraint("status in ('open', 'accepted', 'dismissed', 'expired')",
                        name="ck_value_proposal_status"),
        # One open proposal per customer and kind, however often the review runs (and when
        # two runs overlap): the database refuses the second.
        Index("uq_value_proposal_open", "customer_id", "kind", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
        # The page: open proposals, newest first.
        Index("ix_value_proposal_status_id", "status", "id"),
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(20), nullable=False)
    status = Column(String(10), nullable=False, default="open", server_default="open")
    # The owner when the review ran: accepting refuses if the customer has changed hands since.
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    grade = Column(String(1))              # the grade when the review ran
    proposed_grade = Column(String(1))     # grade_review: what the deals say
    proposed_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    detail = Column(Text)                  # the finding in words, with its numbers
    created_at = Column(DateTime, nullable=False, default=utcnow)
    decided_at = Column(DateTime)
    decided_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    decision_note = Column(Text)           # the dismissal's reason
    transfer_id = Column(Integer, ForeignKey("transfer_request.id", ondelete="SET NULL"))
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="SET NULL"))

    customer = relationship("Customer", viewonly=True)
    owner = relationship("Employee", foreign_keys=[owner_id], viewonly=True)
    proposed_owner = relationship("Employee", foreign_keys=[proposed_owner_id], viewonly=True)
