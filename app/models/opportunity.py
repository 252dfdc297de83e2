"""Opportunities (商机): a possible sale to a customer moving through stages that admins edit.

An open opportunity has no owner column: its owner is its customer's current owner (a join
with customer_ownership), so a transfer, a handover or a claim moves it with the customer and
a reclaim leaves it ownerless until the customer is claimed again. Closing it (won or lost)
stores the owner at that moment, so history stays with the rep who closed it.
"""
from __future__ import annotations

from decimal import Decimal

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey, Index,
                        Integer, Numeric, SmallInteger, String, text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

STAGE_KINDS = {"open": _l("In progress"), "won": _l("Closed won"), "lost": _l("Closed lost")}
OPPORTUNITY_STATUSES = tuple(STAGE_KINDS)
# The stages a fresh database starts with (app.services.bootstrap; migration 0027).
DEFAULT_STAGES = (
    # name, probability, kind, protects from reclaim
    ("初步接洽", 10, "open", False),
    ("需求确认", 30, "open", False),
    ("方案报价", 60, "open", True),
    ("商务谈判", 80, "open", True),
    ("赢单", 100, "won", False),
    ("输单", 0, "lost", False),
)


class OpportunityStage(Model):
    """A pipeline stage. Exactly one stage is 'won' and one 'lost' (a unique partial index;
    the service refuses removing them); the rest are open, ordered by position."""

    __tablename__ = "opportunity_stage"
    __table_args__ = (
        CheckConstraint("probability between 0 and 100", name="ck_opportunity_stage_probability"),
        CheckConstraint("kind in ('open', 'won', 'lost')", name="ck_opportunity_stage_kind"),
        Index("uq_opportunity_stage_closed_kind", "kind", unique=True,
              sqlite_where=text("kind <> 'open'"), postgresql_where=text("kind <> 'open'")),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)
    probability = Column(SmallInteger, nullable=False, default=0)
    position = Column(Integer, nullable=False, default=0)
    kind = Column(String(8), nullable=False, default="open", server_default="open")
    protects_from_reclaim = Column(Boolean, nullable=False, default=False, server_default="0")
    created_at = Column(DateTime, nullable=False, default=utcnow)

    @property
    def kind_label(self) -> str:
        return str(STAGE_KINDS.get(self.kind, self.kind))

    def __repr__(self) -> str:
        return f"{self.name} ({self.probability}%)"


class Opportunity(Model):
    __tablename__ = "opportunity"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="ck_opportunity_amount"),
        CheckConstraint("status in ('open', 'won', 'lost')", name="ck_opportunity_status"),
        CheckConstraint("status <> 'lost' or loss_reason is not null",
                        name="ck_opportunity_loss_reason"),
        # A customer's opportunities (its page; the reclaim exemption looks up a customer's
        # open ones); the kanban's sums join the owners' customers here and read the amount
        # from the index alone (bench/pipeline.py).
        Index("ix_opportunity_customer_status", "customer_id", "status", "stage_id", "amount"),
        # The closed columns of an owner's kanban, within the window, with their sums.
        Index("ix_opportunity_closed_owner", "closed_owner_id", "closed_at", "stage_id",
              "amount"),
        # A column's cards, largest first: a team's (or everyone's) column walks this index
        # and stops after a page instead of sorting the whole stage.
        Index("ix_opportunity_stage_amount", "stage_id", "amount", "id"),
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    title = Column(String(200), nullable=False)
    amount = Column(Numeric(14, 2), nullable=False, default=Decimal(0))
    expected_close_on = Column(Date)
    product_line = Column(String(100))
    stage_id = Column(Integer, ForeignKey("opportunity_stage.id", ondelete="RESTRICT"),
                      nullable=False)
    # The stage's kind, kept by the one service that changes stages (indexes need it here).
    status = Column(String(8), nullable=False, default="open", server_default="open")
    loss_reason = Column(String(500))
    closed_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    closed_at = Column(DateTime)
    deal_id = Column(Integer, ForeignKey("deal.id", ondelete="SET NULL"))
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")
    stage = relationship("OpportunityStage")
    closed_owner = relationship("Employee", foreign_keys=[closed_owner_id])
    created_by = relationship("Employee", foreign_keys=[created_by_id])

    @property
    def weighted_amount(self) -> Decimal:
        """amount × the stage's probability."""
        prob = self.stage.probability if self.stage is not None else 0
        return (Decimal(self.amount or 0) * prob / 100).quantize(Decimal("0.01"))

    @property
    def owner(self):
        """Open: the customer's current owner (None while it is in a pool); closed: the
        owner when it closed."""
        if self.status != "open":
            return self.closed_owner
        o = self.customer.ownership if self.customer is not None else None
        return o.owner if o is not None else None

    @property
    def owner_label(self) -> str:
        owner = self.owner
        return owner.display_name if owner is not None else "—"

    @property
    def status_label(self) -> str:
        return str(STAGE_KINDS.get(self.status, self.status))

    @property
    def stage_label(self) -> str:
        return self.stage.name if self.stage is not None else ""

    def __repr__(self) -> str:
        return self.title


class OpportunityStageChange(Model):
    """Append-only: every stage an opportunity entered, with the amount at that moment (no
    foreign keys: history outlives what it names, like ownership_event)."""

    __tablename__ = "opportunity_stage_change"
    __table_args__ = (Index("ix_opportunity_stage_change_opp_id", "opportunity_id", "id"),)
    id = Column(Integer, primary_key=True)
    opportunity_id = Column(Integer, nullable=False)
    from_stage_id = Column(Integer)
    to_stage_id = Column(Integer, nullable=False)
    amount = Column(Numeric(14, 2))
    actor_id = Column(Integer)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    from_stage = relationship(
        "OpportunityStage", viewonly=True,
        primaryjoin="foreign(OpportunityStageChange.from_stage_id) == OpportunityStage.id")
    to_stage = relationship(
        "OpportunityStage", viewonly=True,
        primaryjoin="foreign(OpportunityStageChange.to_stage_id) == OpportunityStage.id")
    actor = relationship("Employee", viewonly=True,
                         primaryjoin="foreign(OpportunityStageChange.actor_id) == Employee.id")
