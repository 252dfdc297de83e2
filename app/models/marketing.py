"""Marketing (市场管理): tags, saved segments, campaigns and their members.

A member, a tag link and (later) a touch point at one record of one kind through one of
several nullable foreign keys with a CHECK that exactly one is set: the database then removes
them with their record (ON DELETE CASCADE) and every join stays a plain indexed join, where a
(record_type, record_id) pair would need a union and could dangle.
"""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey,
                        Index, Integer, Numeric, String, Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

# SQLite gives an autoincrementing rowid only to a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

CAMPAIGN_KINDS = {
    "exhibition": _l("Exhibition"), "online_ad": _l("Online advertising"),
    "email": _l("E-mail marketing"), "sms": _l("SMS marketing"), "seminar": _l("Seminar"),
    "telemarketing": _l("Telemarketing"),
}
CAMPAIGN_STATUSES = {"planned": _l("Planned"), "running": _l("Running"),
                     "finished": _l("Finished")}
SEGMENT_RECORD_TYPES = {"customer": _l("Customers"), "lead": _l("Leads"),
                        "both": _l("Customers and leads")}
MEMBER_SOURCES = {"segment": _l("From the segment"), "manual": _l("Added by hand")}


class Tag(Model):
    """A tag (标签) from the list admins and marketing keep."""

    __tablename__ = "tag"
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)
    color = Column(String(16))  # a CSS colour name or #rrggbb for the chip
    description = Column(String(200))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)

    created_by = relationship("Employee", foreign_keys=[created_by_id])

    def __repr__(self) -> str:
        return self.name or ""


class RecordTag(Model):
    """One tag on one customer, contact or lead (exactly one of the three)."""

    __tablename__ = "record_tag"
    __table_args__ = (
        CheckConstraint("(CASE WHEN customer_id IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END) = 1",
                        name="ck_record_tag_one_record"),
        # Once per record and tag (NULLs are distinct, so each index binds its own kind).
        Index("uq_record_tag_customer", "customer_id", "tag_id", unique=True),
        Index("uq_record_tag_contact", "contact_id", "tag_id", unique=True),
        Index("uq_record_tag_lead", "lead_id", "tag_id", unique=True),
        Index("ix_record_tag_tag", "tag_id"),
    )
    id = Column(BigId, primary_key=True)
    tag_id = Column(Integer, ForeignKey("tag.id", ondelete="CASCADE"), nullable=False)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="CASCADE"))
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"))
    tagged_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    tagged_at = Column(DateTime, nullable=False, default=utcnow)

    tag = relationship("Tag")


class Segment(Model):
    """A saved filter (客户分群) over customers and / or leads. `criteria` is JSON that
    app.services.marketing_segments validates and turns into SQL; it is evaluated in its
    creator's data scope whoever looks at it."""

    __tablename__ = "segment"
    __table_args__ = (
        CheckConstraint("record_type in ('customer', 'lead', 'both')",
                        name="ck_segment_record_type"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    record_type = Column(String(10), nullable=False, default="customer",
                         server_default="customer")
    criteria = Column(Text, nullable=False, default="{}", server_default="{}")
    include_pool = Column(Boolean, nullable=False, default=False, server_default="0")
    description = Column(String(500))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    created_by = relationship("Employee", foreign_keys=[created_by_id])

    def __repr__(self) -> str:
        return self.name or ""


class Campaign(Model):
    """A marketing campaign (市场活动)."""

    __tablename__ = "campaign"
    __table_args__ = (
        CheckConstraint("kind in ('exhibition', 'online_ad', 'email', 'sms', 'seminar',"
                        " 'telemarketing')", name="ck_campaign_kind"),
        CheckConstraint("status in ('planned', 'running', 'finished')",
                        name="ck_campaign_status"),
        CheckConstraint("budget IS NULL OR budget >= 0", name="ck_campaign_budget"),
        CheckConstraint("actual_cost IS NULL OR actual_cost >= 0", name="ck_campaign_cost"),
        CheckConstraint("ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on",
                        name="ck_campaign_dates"),
        CheckConstraint("send_from_hour between 0 and 23 AND send_to_hour between 1 and 24"
                        " AND send_to_hour > send_from_hour", name="ck_campaign_send_window"),
        Index("ix_campaign_starts_id", "starts_on", "id"),  # the list's sort key
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False, unique=True)
    kind = Column(String(20), nullable=False)
    status = Column(String(12), nullable=False, default="planned", server_default="planned")
    starts_on = Column(Date)
    ends_on = Column(Date)
    budget = Column(Numeric(14, 2))
    actual_cost = Column(Numeric(14, 2))
    description = Column(Text)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    segment_id = Column(Integer, ForeignKey("segment.id", ondelete="SET NULL"), index=True)
    # Sending (app.services.campaign_sending): templates with {placeholders}, the hours of
    # the business day messages may go out in, and the token a capture form's sign-up carries.
    email_subject = Column(String(200))
    email_body = Column(Text)
    sms_body = Column(Text)
    send_from_hour = Column(Integer, nullable=False, default=9, server_default="9")
    send_to_hour = Column(Integer, nullable=False, default=20, server_default="20")
    token = Column(String(64), unique=True)
    launched_at = Column(DateTime)
    launched_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    owner = relationship("Employee", foreign_keys=[owner_id])
    segment = relationship("Segment")
    launched_by = relationship("Employee", foreign_keys=[launched_by_id])
    created_by = relationship("Employee", foreign_keys=[created_by_id])

    @property
    def kind_label(self) -> str:
        return str(CAMPAIGN_KINDS.get(self.kind, self.kind))

    @property
    def status_label(self) -> str:
        return str(CAMPAIGN_STATUSES.get(self.status, self.status))

    def __repr__(self) -> str:
        return self.name or ""


class CampaignMember(Model):
    """One customer or one lead in a campaign: frozen from the segment at launch (a snapshot
    that later changes to the segment leave alone) or added by hand."""

    __tablename__ = "campaign_member"
    __table_args__ = (
        CheckConstraint("(customer_id IS NULL) <> (lead_id IS NULL)",
                        name="ck_campaign_member_one_record"),
        CheckConstraint("source in ('segment', 'manual')", name="ck_campaign_member_source"),
        Index("uq_campaign_member_customer", "campaign_id", "customer_id", unique=True),
        Index("uq_campaign_member_lead", "campaign_id", "lead_id", unique=True),
        Index("ix_campaign_member_customer", "customer_id"),
        Index("ix_campaign_member_lead", "lead_id"),
    )
    id = Column(BigId, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"))
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"))
    source = Column(String(10), nullable=False, default="manual", server_default="manual")
    added_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    added_at = Column(DateTime, nullable=False, default=utcnow)

    campaign = relationship("Campaign")
    customer = relationship("Customer")
    lead = relationship("Lead")

    @property
    def record_type(self) -> str:
        return "customer" if self.customer_id is not None else "lead"


MESSAGE_STATUSES = {"pending": _l("Pending"), "sent": _l("Sent"), "failed": _l("Failed"),
                    "cancelled": _l("Cancelled")}
OPTOUT_SOURCES = {"link": _l("Unsubscribe link"), "sms_reply": _l("SMS reply TD"),
                  "manual": _l("Recorded by staff"), "api": _l("API")}
TOUCH_KINDS = {"click": _l("Clicked a link"), "signup": _l("Signed up"),
               "response": _l("Responded")}


class CampaignMessage(Model):
    """The campaign outbox: one e-mail or SMS to one member, at most once per member and
    channel (a unique index), delivered and retried like the care outbox."""

    __tablename__ = "campaign_message"
    __table_args__ = (
        CheckConstraint("channel in ('email', 'sms')", name="ck_campaign_message_channel"),
        CheckConstraint("status in ('pending', 'sent', 'failed', 'cancelled')",
                        name="ck_campaign_message_status"),
        Index("uq_campaign_message_once", "member_id", "channel", unique=True),
        Index("ix_campaign_message_due", "status", "next_attempt_at"),
        Index("ix_campaign_message_campaign", "campaign_id", "status"),
    )
    id = Column(BigId, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    member_id = Column(BigId, ForeignKey("campaign_member.id", ondelete="CASCADE"),
                       nullable=False)
    channel = Column(String(8), nullable=False)
    address = Column(String(200), nullable=False)  # normalised e-mail or E.164 mobile
    status = Column(String(12), nullable=False, default="pending", server_default="pending")
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime)
    last_error = Column(Text)
    subject = Column(String(200))  # as sent (rendered at delivery)
    body = Column(Text)
    sent_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    campaign = relationship("Campaign")
    member = relationship("CampaignMember")


class MarketingOptOut(Model):
    """An opt-out (退订) of one address on one channel, whichever record carries it: every
    later campaign and birthday / holiday care skip the address."""

    __tablename__ = "marketing_optout"
    __table_args__ = (
        CheckConstraint("channel in ('email', 'sms')", name="ck_marketing_optout_channel"),
        CheckConstraint("source in ('link', 'sms_reply', 'manual', 'api')",
                        name="ck_marketing_optout_source"),
        Index("uq_marketing_optout_address", "channel", "address", unique=True),
    )
    id = Column(Integer, primary_key=True)
    channel = Column(String(8), nullable=False)
    address = Column(String(200), nullable=False)  # normalised e-mail or E.164 mobile
    source = Column(String(12), nullable=False)
    # The record the opt-out came through, where known (the address binds, not the record).
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="SET NULL"))
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="SET NULL"))
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="SET NULL"))
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="SET NULL"))
    recorded_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)


class CampaignTouch(Model):
    """A recorded response to a campaign (a click, a sign-up, a response marked by hand): the
    touches attribution counts. Membership alone is not a touch."""

    __tablename__ = "campaign_touch"
    __table_args__ = (
        CheckConstraint("kind in ('click', 'signup', 'response')", name="ck_campaign_touch_kind"),
        Index("ix_campaign_touch_campaign", "campaign_id", "kind"),
        Index("ix_campaign_touch_customer", "customer_id", "occurred_at"),
        Index("ix_campaign_touch_lead", "lead_id", "occurred_at"),
        Index("ix_campaign_touch_member", "member_id"),
    )
    id = Column(BigId, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    member_id = Column(BigId, ForeignKey("campaign_member.id", ondelete="SET NULL"))
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="SET NULL"))
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="SET NULL"))
    kind = Column(String(10), nullable=False)
    url = Column(String(500))  # the tracked link's target, for a click
    note = Column(String(500))
    # The sign-up or response created lead_id (not dedupe landing on a record that existed):
    # the effect table's "leads" (migration 0036).
    lead_created = Column(Boolean, nullable=False, default=False, server_default="0")
    recorded_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    occurred_at = Column(DateTime, nullable=False, default=utcnow)

    campaign = relationship("Campaign")
    member = relationship("CampaignMember")
    customer = relationship("Customer")
    lead = relationship("Lead")
    recorded_by = relationship("Employee", foreign_keys=[recorded_by_id])

    @property
    def kind_label(self) -> str:
        return str(TOUCH_KINDS.get(self.kind, self.kind))


class MarketingSettings(Model):
    """One row: the attribution window and whether marketing needs consent (个人信息保护法)."""

    __tablename__ = "marketing_settings"
    __table_args__ = (
        CheckConstraint("attribution_days between 1 and 3650",
                        name="ck_marketing_settings_attribution_days"),
    )
    id = Column(Integer, primary_key=True)
    attribution_days = Column(Integer, nullable=False, default=180, server_default="180")
    # Send only to records with a recorded consent or an existing customer relationship.
    require_consent = Column(Boolean, nullable=False, default=True, server_default="1")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)
