"""Absences (休假): a user on leave over business dates, inclusive. Cancelled rows stay (the
history of who was away, and the audit log names them)."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import relationship

from app.models.customer import utcnow


class Absence(Model):
    __tablename__ = "absence"
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="ck_absence_dates"),
        # "Who is away today" (the pickers, the reclaim warnings): a range of ends_on.
        Index("ix_absence_ends_on", "ends_on", "starts_on"),
        # The overlap check and "this user's absences".
        Index("ix_absence_user_starts", "user_id", "starts_on"),
        # The list's keyset order.
        Index("ix_absence_starts_id", "starts_on", "id"),
    )
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    starts_on = Column(Date, nullable=False)
    ends_on = Column(Date, nullable=False)
    reason = Column(String(200))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    cancelled_at = Column(DateTime)
    cancelled_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))

    user = relationship("Employee", foreign_keys=[user_id])
    created_by = relationship("Employee", foreign_keys=[created_by_id])
    cancelled_by = relationship("Employee", foreign_keys=[cancelled_by_id])

    @property
    def period(self) -> str:
        return f"{self.starts_on}–{self.ends_on}"

    @property
    def status(self) -> str:
        from app.services.absences import status_label

        return status_label(self)
