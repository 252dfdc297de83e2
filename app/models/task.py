"""Tasks (待办): something a user has to do by a time, optionally about one record."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

TASK_STATUSES = {"open": _l("To do"), "done": _l("Done"), "cancelled": _l("Cancelled")}
# Who opened it: a person, a follow-up's next contact date, or a care reminder.
TASK_SOURCES = {"manual": _l("Added by hand"), "followup": _l("Follow-up reminder"),
                "care": _l("Care reminder"), "call": _l("Call back")}


class Task(Model):
    __tablename__ = "task"
    __table_args__ = (
        CheckConstraint("status in ('open', 'done', 'cancelled')", name="ck_task_status"),
        CheckConstraint("source in ('manual', 'followup', 'care', 'call')",
                        name="ck_task_source"),
        # A link names both the kind of record and its id, or neither.
        CheckConstraint("(record_type IS NULL) = (record_id IS NULL)", name="ck_task_record"),
        CheckConstraint("status <> 'done' OR done_at IS NOT NULL", name="ck_task_done_at"),
        Index("ix_task_due_id", "due_at", "id"),  # the list's sort key
        # An owner's open tasks by due time: the workbench panel and its counts.
        Index("ix_task_owner_status_due", "owner_id", "status", "due_at"),
        Index("ix_task_record", "record_type", "record_id", "status"),
        # What the reminder job looks for: open, not yet reminded, by due time.
        Index("ix_task_to_remind", "status", "reminded_at", "due_at"),
    )
    id = Column(Integer, primary_key=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="RESTRICT"), nullable=False)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    subject = Column(String(200), nullable=False)
    notes = Column(Text)
    due_at = Column(DateTime, nullable=False)  # stored UTC; typed and shown in business time
    # A generic link (customer now; leads, tickets later): app.services.tasks resolves it.
    record_type = Column(String(20))
    record_id = Column(Integer)
    source = Column(String(16), nullable=False, default="manual", server_default="manual")
    status = Column(String(12), nullable=False, default="open", server_default="open")
    done_at = Column(DateTime)
    reminded_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    owner = relationship("Employee", foreign_keys=[owner_id])
    created_by = relationship("Employee", foreign_keys=[created_by_id])
    customer = relationship(
        "Customer", primaryjoin="and_(Task.record_type == 'customer', "
                                "foreign(Task.record_id) == Customer.id)", viewonly=True)

    @property
    def status_label(self) -> str:
        return str(TASK_STATUSES.get(self.status, self.status))

    @property
    def source_label(self) -> str:
        return str(TASK_SOURCES.get(self.source, self.source))

    def __repr__(self) -> str:
        return self.subject or ""
