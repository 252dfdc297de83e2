"""Birthday and holiday care (纪念日关怀): admins' templates, the settings, and the outbox."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey, Index,
                        Integer, String, Text, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

CARE_OCCASIONS = {"birthday": _l("Birthday"), "holiday": _l("Holiday")}
CARE_CHANNELS = {"email": _l("E-mail"), "sms": _l("SMS"), "task": _l("In-app task (owner)")}
CARE_STATUSES = {"pending": _l("To send"), "sending": _l("Sending"), "sent": _l("Sent"),
                 "failed": _l("Failed"), "cancelled": _l("Cancelled")}
# Greeting customers on 清明节 (tomb-sweeping) would offend; it is not in the default list.
DEFAULT_CARE_HOLIDAYS = "元旦,春节,劳动节,端午节,中秋节,国庆节"


class CareTemplate(Model):
    """A greeting admins write. `holiday` names one holiday (e.g. 春节); empty means every
    greeted holiday. Placeholders: {customer} {contact} {owner} {occasion} {date}."""

    __tablename__ = "care_template"
    __table_args__ = (
        CheckConstraint("occasion in ('birthday', 'holiday')", name="ck_care_template_occasion"),
        CheckConstraint("channel in ('email', 'sms', 'task')", name="ck_care_template_channel"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False)
    occasion = Column(String(16), nullable=False)
    holiday = Column(String(50))
    channel = Column(String(16), nullable=False)
    subject = Column(String(200))
    body = Column(Text, nullable=False)
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def occasion_label(self) -> str:
        return str(CARE_OCCASIONS.get(self.occasion, self.occasion))

    @property
    def channel_label(self) -> str:
        return CARE_CHANNELS.get(self.channel, self.channel)

    def __repr__(self) -> str:
        return self.name


class CareSettings(Model):
    """One row: how many days ahead care is planned, which holidays are greeted, how often a
    failed delivery is tried."""

    __tablename__ = "care_settings"
    __table_args__ = (
        CheckConstraint("days_ahead between 0 and 60", name="ck_care_days_ahead"),
        CheckConstraint("max_attempts between 1 and 10", name="ck_care_max_attempts"),
        CheckConstraint("send_hour between 0 and 23", name="ck_care_send_hour"),
    )
    id = Column(Integer, primary_key=True)
    days_ahead = Column(Integer, nullable=False, default=3)
    holidays = Column(String(300), nullable=False, default=DEFAULT_CARE_HOLIDAYS)
    max_attempts = Column(Integer, nullable=False, default=4)
    # E-mail and SMS go out on the day from this hour (business time zone), not at midnight.
    send_hour = Column(Integer, nullable=False, default=9)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)


class CareMessage(Model):
    """The outbox: one greeting for one recipient (a customer or one of its contacts), one
    occasion and one channel. The unique key is what makes a greeting go out once."""

    __tablename__ = "care_message"
    __table_args__ = (
        UniqueConstraint("recipient_key", "occasion_key", "channel", name="uq_care_message_once"),
        CheckConstraint("channel in ('email', 'sms', 'task')", name="ck_care_message_channel"),
        CheckConstraint("status in ('pending', 'sending', 'sent', 'failed', 'cancelled')",
                        name="ck_care_message_status"),
        Index("ix_care_message_due", "status", "send_on"),
        Index("ix_care_message_date_id", "occasion_date", "id"),  # the list's sort key
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="SET NULL"), index=True)
    # "customer:<id>" or "contact:<id>": NULL-free, so the unique key holds on every database.
    recipient_key = Column(String(40), nullable=False)
    template_id = Column(Integer, ForeignKey("care_template.id", ondelete="SET NULL"))
    occasion = Column(String(16), nullable=False)
    # e.g. "birthday:2027", "birthday:lunar:2026", "holiday:春节:2027": one per cycle.
    occasion_key = Column(String(80), nullable=False)
    occasion_name = Column(String(50), nullable=False)
    occasion_date = Column(Date, nullable=False)
    channel = Column(String(16), nullable=False)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    address = Column(String(200))  # e-mail address or E.164 mobile; none for in-app tasks
    send_on = Column(Date, nullable=False)  # business-zone day it may go out
    subject = Column(String(200))  # as sent (rendered at delivery)
    body = Column(Text)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime)
    last_error = Column(Text)
    sent_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    customer = relationship("Customer")
    contact = relationship("Contact")
    template = relationship("CareTemplate")
    owner = relationship("Employee")

    @property
    def channel_label(self) -> str:
        return CARE_CHANNELS.get(self.channel, self.channel)

    @property
    def address_shown(self):
        """The recipient's e-mail or mobile, by the contact details rule for the customer."""
        from app.services.masking import customer_field
        return customer_field(self, "address",
                              as_field="email" if self.channel == "email" else "mobile")

    @property
    def status_label(self) -> str:
        return str(CARE_STATUSES.get(self.status, self.status))
