"""Leads (线索): possible customers not yet qualified, with the same ownership treatment as
customers: one narrow ownership row (an owner xor a lead pool, schema-enforced), an
append-only event log, and follow-ups."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        String, Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

# Stored codes; the labels are translated where shown.
LEAD_SOURCES = {
    "web_form": _l("Website form"), "phone": _l("Phone call"), "exhibition": _l("Exhibition"),
    "referral": _l("Referral"), "advertising": _l("Advertising"),
    "campaign": _l("Marketing campaign"), "other": _l("Other"),
}
LEAD_STATUSES = {
    "new": _l("New lead"), "working": _l("Following up"), "converted": _l("Converted"),
    "invalid": _l("Invalid lead"),
}
LEAD_EVENT_KINDS = ("created", "claimed", "released", "assigned", "reclaimed", "converted",
                    "invalidated")


def _codes(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Lead(Model):
    __tablename__ = "lead"
    __table_args__ = (
        CheckConstraint("person_name is not null or company_name is not null",
                        name="ck_lead_has_name"),
        CheckConstraint(f"status in ({_codes(LEAD_STATUSES)})", name="ck_lead_status"),
        CheckConstraint(f"source is null or source in ({_codes(LEAD_SOURCES)})",
                        name="ck_lead_source"),
        CheckConstraint("status <> 'invalid' or invalid_reason is not null",
                        name="ck_lead_invalid_reason"),
        # The list's sort key (app.paging): newest first, a range of (created_at, id).
        Index("ix_lead_created_id", "created_at", "id"),
        Index("ix_lead_status_id", "status", "id"),
        # The list's and the API's "priority" sort (app.services.lead_priority).
        Index("ix_lead_priority_id", "priority_score", "id"),
    )
    id = Column(Integer, primary_key=True)
    person_name = Column(String(100))
    company_name = Column(String(200))
    mobile = Column(String(60))
    mobile_e164 = Column(String(32), index=True)
    phone = Column(String(60))
    phone_e164 = Column(String(32), index=True)
    email = Column(String(200))
    email_norm = Column(String(200), index=True)
    # The company name's dedupe key (app.services.customers.text_keys), as customers keep it.
    name_core = Column(String(200), index=True)
    province = Column(String(50))
    city = Column(String(50))
    industry = Column(String(100))
    source = Column(String(20))
    # Free text (an import's, a form's); the campaigns a lead answered are its campaign_touch rows.
    campaign = Column(String(200))
    notes = Column(Text)
    status = Column(String(16), nullable=False, default="new", server_default="new")
    invalid_reason = Column(String(500))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)
    converted_customer_id = Column(Integer, ForeignKey("customer.id", ondelete="SET NULL"),
                                   index=True)
    converted_at = Column(DateTime)
    converted_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    # Consent given on a public capture form (同意隐私政策): the policy text's version and when.
    consent_version = Column(String(40))
    consented_at = Column(DateTime)
    # The priority score and its parts, one per rule (app.services.lead_priority computes
    # all of them in one statement): the explanation is the parts.
    priority_score = Column(Integer, nullable=False, default=0, server_default="0")
    priority_source = Column(Integer, nullable=False, default=0, server_default="0")
    priority_completeness = Column(Integer, nullable=False, default=0, server_default="0")
    priority_engagement = Column(Integer, nullable=False, default=0, server_default="0")
    priority_age = Column(Integer, nullable=False, default=0, server_default="0")

    created_by = relationship("Employee", foreign_keys=[created_by_id])
    converted_by = relationship("Employee", foreign_keys=[converted_by_id])
    converted_customer = relationship("Customer", foreign_keys=[converted_customer_id])
    ownership = relationship("LeadOwnership", uselist=False, back_populates="lead",
                             cascade="all, delete-orphan", passive_deletes=True)

    @property
    def name(self) -> str:
        """How a lead is named in lists and messages: the company, with the person."""
        if self.company_name and self.person_name:
            return f"{self.company_name}（{self.person_name}）"
        return self.company_name or self.person_name or f"#{self.id}"

    @property
    def status_label(self) -> str:
        return str(LEAD_STATUSES.get(self.status, self.status))

    @property
    def source_label(self) -> str:
        return str(LEAD_SOURCES.get(self.source, self.source or ""))

    @property
    def owner_label(self) -> str:
        o = self.ownership
        if o is None:
            return ""
        if o.owner is not None:
            return o.owner.display_name
        return gettext("Pool: %(name)s", name=o.pool.name) if o.pool else ""

    @property
    def priority_explanation(self) -> list:
        from app.services.lead_priority import explanation
        return explanation(self)

    @property
    def mobile_shown(self):
        from app.services.leads import shown_field
        return shown_field(self, "mobile")

    @property
    def phone_shown(self):
        from app.services.leads import shown_field
        return shown_field(self, "phone")

    @property
    def email_shown(self):
        from app.services.leads import shown_field
        return shown_field(self, "email")

    def __repr__(self) -> str:
        return self.name


class LeadOwnership(Model):
    """Exactly one row per lead; exactly one of owner_id / pool_id (a lead pool) is set."""

    __tablename__ = "lead_ownership"
    __table_args__ = (
        CheckConstraint("(owner_id is null) <> (pool_id is null)",
                        name="ck_lead_ownership_owner_xor_pool"),
        # The lead cap counts an owner's open leads; the sweep reads them by last touch.
        Index("ix_lead_ownership_owner_open", "owner_id", "is_open", "last_followup_at"),
        Index("ix_lead_ownership_owner_lead", "owner_id", "lead_id"),
        Index("ix_lead_ownership_pool_lead", "pool_id", "lead_id"),
    )
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"), primary_key=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="RESTRICT"))
    pool_id = Column(Integer, ForeignKey("pool.id", ondelete="RESTRICT"))
    # The lead pool it last sat in (or was created for): where a release or reclaim returns it.
    home_pool_id = Column(Integer, ForeignKey("pool.id", ondelete="SET NULL"))
    # Open = new or being followed up: counted against the lead cap and reclaimed when
    # neglected; a converted or invalid lead stays with its owner as history.
    is_open = Column(Boolean, nullable=False, default=True, server_default="1")
    acquired_at = Column(DateTime, nullable=False, default=utcnow)
    acquired_how = Column(String(20), nullable=False, default="created")
    previous_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    last_followup_at = Column(DateTime)

    lead = relationship("Lead", back_populates="ownership")
    owner = relationship("Employee", foreign_keys=[owner_id])
    pool = relationship("Pool", foreign_keys=[pool_id])
    previous_owner = relationship("Employee", foreign_keys=[previous_owner_id])


class LeadEvent(Model):
    """Append-only history of a lead's holders and outcome (like ownership_event: no foreign
    keys, history outlives what it names)."""

    __tablename__ = "lead_event"
    __table_args__ = (
        CheckConstraint(f"kind in ({_codes(LEAD_EVENT_KINDS)})", name="ck_lead_event_kind"),
        # "How many leads did this rep claim today?" on every claim; a lead's history.
        Index("ix_lead_event_to_owner_kind_time", "to_owner_id", "kind", "created_at"),
        Index("ix_lead_event_lead_id_id", "lead_id", "id"),
    )
    id = Column(Integer, primary_key=True)
    lead_id = Column(Integer, nullable=False)
    kind = Column(String(20), nullable=False)
    from_owner_id = Column(Integer)
    from_pool_id = Column(Integer)
    to_owner_id = Column(Integer)
    to_pool_id = Column(Integer)
    customer_id = Column(Integer)  # converted: the customer it became or was linked to
    reason = Column(Text)
    rule = Column(String(200))  # 'rule:<name>' when an assignment rule placed the lead
    actor_id = Column(Integer)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    from_owner = relationship("Employee", viewonly=True,
                              primaryjoin="foreign(LeadEvent.from_owner_id) == Employee.id")
    to_owner = relationship("Employee", viewonly=True,
                            primaryjoin="foreign(LeadEvent.to_owner_id) == Employee.id")
    from_pool = relationship("Pool", viewonly=True,
                             primaryjoin="foreign(LeadEvent.from_pool_id) == Pool.id")
    to_pool = relationship("Pool", viewonly=True,
                           primaryjoin="foreign(LeadEvent.to_pool_id) == Pool.id")
    actor = relationship("Employee", viewonly=True,
                         primaryjoin="foreign(LeadEvent.actor_id) == Employee.id")

    @property
    def from_label(self) -> str:
        from app.models.ownership import _holder_label
        return _holder_label(self.from_owner, self.from_owner_id, self.from_pool,
                             self.from_pool_id)

    @property
    def to_label(self) -> str:
        from app.models.ownership import _holder_label
        return _holder_label(self.to_owner, self.to_owner_id, self.to_pool, self.to_pool_id)


class LeadFollowUp(Model):
    """A logged contact with a lead (call, visit, message…)."""

    __tablename__ = "lead_follow_up"
    __table_args__ = (
        CheckConstraint("channel in ('call', 'visit', 'message', 'email', 'meeting')",
                        name="ck_lead_follow_up_channel"),
        Index("ix_lead_follow_up_lead_id_id", "lead_id", "id"),
    )
    id = Column(Integer, primary_key=True)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    channel = Column(String(16), nullable=False, default="call")
    content = Column(Text, nullable=False)
    happened_at = Column(DateTime, nullable=False, default=utcnow)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    user = relationship("Employee")
