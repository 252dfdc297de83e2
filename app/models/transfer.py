"""Transfer requests (转移 / 交接) and in-app notifications."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        String, Text, UniqueConstraint, text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

TRANSFER_STATES = ("pending", "approved", "rejected", "cancelled", "completed")
# What the pages call each state (the transfer pages, the workbench).
STATUS_LABELS = {"pending": _l("Awaiting approval"), "approved": _l("First approval given"),
                 "rejected": _l("Rejected"), "cancelled": _l("Withdrawn"), "completed": _l("Done")}
TRANSFER_TRIGGERS = {
    "departure": _l("Employee departure"), "customer_request": _l("Customer request"),
    "org_change": _l("Reorganisation"), "poor_service": _l("Poor service"), "other": _l("Other"),
}


class TransferRequest(Model):
    __tablename__ = "transfer_request"
    __table_args__ = (
        CheckConstraint("status in ('pending', 'approved', 'rejected', 'cancelled', 'completed')",
                        name="ck_transfer_status"),
        CheckConstraint("trigger in ('departure', 'customer_request', 'org_change', "
                        "'poor_service', 'other')", name="ck_transfer_trigger"),
    )
    id = Column(Integer, primary_key=True)
    applicant_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    from_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="RESTRICT"), nullable=False,
                           index=True)
    to_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="RESTRICT"), nullable=False,
                         index=True)
    reason = Column(Text, nullable=False)
    trigger = Column(String(20), nullable=False, default="other")
    handover_note = Column(Text)
    keep_read_days = Column(Integer, nullable=False, default=0, server_default="0")
    status = Column(String(12), nullable=False, default="pending", index=True)
    needs_second_approval = Column(Boolean, nullable=False, default=False, server_default="0")
    first_approver_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    first_approved_at = Column(DateTime)
    second_approver_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    second_approved_at = Column(DateTime)
    decided_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    decision_note = Column(Text)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    completed_at = Column(DateTime)

    applicant = relationship("Employee", foreign_keys=[applicant_id])
    from_owner = relationship("Employee", foreign_keys=[from_owner_id])
    to_owner = relationship("Employee", foreign_keys=[to_owner_id])
    first_approver = relationship("Employee", foreign_keys=[first_approver_id])
    second_approver = relationship("Employee", foreign_keys=[second_approver_id])
    items = relationship("TransferItem", back_populates="transfer", cascade="all, delete-orphan")

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS.get(self.status, self.status))

    @property
    def trigger_label(self) -> str:
        return str(TRANSFER_TRIGGERS.get(self.trigger, self.trigger))


class TransferItem(Model):
    __tablename__ = "transfer_item"
    __table_args__ = (UniqueConstraint("transfer_id", "customer_id", name="uq_transfer_item"),)
    id = Column(Integer, primary_key=True)
    transfer_id = Column(Integer, ForeignKey("transfer_request.id", ondelete="CASCADE"),
                         nullable=False, index=True)
    # No foreign key to customer: the request stays readable after a merge or deletion.
    customer_id = Column(Integer, nullable=False, index=True)

    transfer = relationship("TransferRequest", back_populates="items")
    customer = relationship("Customer", primaryjoin="TransferItem.customer_id == Customer.id",
                            foreign_keys=[customer_id], viewonly=True)


class OpenTransfer(Model):
    """A customer held by an open (pending or approved) transfer request. The primary key
    lets one request at a time hold a customer: of two simultaneous applications the second
    cannot commit. app.services.transfers writes the rows with the request and deletes them
    in the transaction that ends it. Like transfer_item, no foreign key to customer (a merge
    or deletion leaves the row to its request, which clears it when it ends)."""
    __tablename__ = "open_transfer"
    customer_id = Column(Integer, primary_key=True, autoincrement=False)
    transfer_id = Column(Integer, ForeignKey("transfer_request.id", ondelete="CASCADE"),
                         nullable=False, index=True)


class Notification(Model):
    __tablename__ = "notification"
    __table_args__ = (
        # The page's newest first, and the navbar's unread count on every page, both read
        # only the user's index entries (a rep may hold tens of thousands of read ones).
        Index("ix_notification_user_id_id", "user_id", "id"),
        Index("ix_notification_unread", "user_id", sqlite_where=text("read_at IS NULL"),
              postgresql_where=text("read_at IS NULL")),
    )
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                     index=True)
    kind = Column(String(30), nullable=False)
    title = Column(String(200), nullable=False)
    body = Column(Text)
    link = Column(String(300))
    read_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)

    user = relationship("Employee")
