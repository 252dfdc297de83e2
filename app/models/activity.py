"""What happens with a customer: follow-ups (跟进记录) and won deals (成交)."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Integer,
                        Numeric, String, Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

# Labels are English msgids translated per request (Chinese outside a request: the default).
FOLLOWUP_CHANNELS = {"call": _l("Phone call"), "visit": _l("Visit"),
                     "message": _l("WeChat / SMS"), "email": _l("E-mail"),
                     "meeting": _l("Meeting")}


class FollowUp(Model):
    __tablename__ = "follow_up"
    __table_args__ = (
        CheckConstraint("channel in ('call', 'visit', 'message', 'email', 'meeting')",
                        name="ck_follow_up_channel"),
        Index("ix_follow_up_happened_id", "happened_at", "id"),  # the list's sort key
        # A customer's follow-ups by time, from the index alone (the churn-risk panel reads
        # the last 180 days of thousands of customers).
        Index("ix_follow_up_customer_happened", "customer_id", "happened_at"),
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    # A follow-up logged on a contact counts for the contact's customer.
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="SET NULL"), index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    channel = Column(String(16), nullable=False)
    content = Column(Text, nullable=False)
    happened_at = Column(DateTime, nullable=False, index=True)
    next_contact_on = Column(Date, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")
    contact = relationship("Contact")
    user = relationship("Employee")

    @property
    def channel_label(self) -> str:
        return str(FOLLOWUP_CHANNELS.get(self.channel, self.channel))


class Deal(Model):
    __tablename__ = "deal"
    __table_args__ = (CheckConstraint("amount > 0", name="ck_deal_amount_positive"),
                      Index("ix_deal_won_id", "won_on", "id"),  # the list's sort key
                      # A rep's deals won in a period, summed from the index alone (the
                      # targets' progress, the team view).
                      Index("ix_deal_user_won", "user_id", "won_on", "amount"))
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    amount = Column(Numeric(14, 2), nullable=False)
    won_on = Column(Date, nullable=False, index=True)
    product_line = Column(String(100))
    notes = Column(Text)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")
    user = relationship("Employee")


class GradingSettings(Model):
    """Classification and grading thresholds (one row, edited by admins): a customer is active
    when won within `silent_after_days`, silent when won before but not since; grade A/B/C
    by the won amount of the trailing 12 months."""

    __tablename__ = "grading_settings"
    __table_args__ = (CheckConstraint("grade_a_min >= grade_b_min", name="ck_grading_a_over_b"),
                      CheckConstraint("silent_after_days > 0", name="ck_grading_silent_days"))
    id = Column(Integer, primary_key=True)
    silent_after_days = Column(Integer, nullable=False, default=180)
    grade_a_min = Column(Numeric(14, 2), nullable=False, default=500000)
    grade_b_min = Column(Numeric(14, 2), nullable=False, default=100000)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)
