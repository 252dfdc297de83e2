"""Dedupe rules (查重规则): which keys take part, exact or fuzzy, and block or warn; the batch
scan's clusters for review and the pairs reviewers dismissed."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Index,
                        Integer, String, Text, UniqueConstraint, text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

DEDUPE_KINDS = {
    "mobile": _l("Mobile number"), "phone": _l("Landline"), "email": _l("E-mail address"),
    "company_name": _l("Company name (core)"), "person_birthday": _l("Person name + birthday"),
    "person_address": _l("Person name + address"),
}
DEDUPE_ACTIONS = {"block": _l("Block saving"), "warn": _l("Warn, save after confirming")}


class DedupeRule(Model):
    """One row per kind, seeded by `flask crm init`; admins edit match, threshold, city and
    action (rows are not added or deleted)."""

    __tablename__ = "dedupe_rule"
    __table_args__ = (
        CheckConstraint("kind in ('mobile', 'phone', 'email', 'company_name', "
                        "'person_birthday', 'person_address')", name="ck_dedupe_rule_kind"),
        CheckConstraint("action in ('block', 'warn')", name="ck_dedupe_rule_action"),
        CheckConstraint("threshold between 50 and 100", name="ck_dedupe_rule_threshold"),
    )
    id = Column(Integer, primary_key=True)
    kind = Column(String(20), nullable=False, unique=True)
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    fuzzy = Column(Boolean, nullable=False, default=False, server_default="0")
    threshold = Column(Integer, nullable=False, default=90)  # rapidfuzz ratio, 50–100
    same_city = Column(Boolean, nullable=False, default=False, server_default="0")
    action = Column(String(10), nullable=False, default="block")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @property
    def kind_label(self) -> str:
        return str(DEDUPE_KINDS.get(self.kind, self.kind))

    @property
    def action_label(self) -> str:
        return DEDUPE_ACTIONS.get(self.action, self.action)

    def __repr__(self) -> str:
        return self.kind_label


CLUSTER_STATUSES = {"open": _l("To review"), "dismissed": _l("Dismissed: not duplicates"),
                    "merged": _l("Merged")}


class DedupeCluster(Model):
    """A group of customers the batch scan found to be probably one (a review item).

    A re-scan replaces the open clusters; dismissed and merged ones are history and stay.
    """

    __tablename__ = "dedupe_cluster"
    __table_args__ = (
        CheckConstraint("status in ('open', 'dismissed', 'merged')",
                        name="ck_dedupe_cluster_status"),
        # The review page's order: open clusters, best score first.
        Index("ix_dedupe_cluster_open_order", "status", "best_score", "id"),
    )
    id = Column(Integer, primary_key=True)
    status = Column(String(10), nullable=False, default="open", index=True)
    member_count = Column(Integer, nullable=False)
    best_score = Column(Integer, nullable=False)
    reasons = Column(String(200), nullable=False)  # rule kinds, comma-separated
    created_at = Column(DateTime, nullable=False, default=utcnow)
    reviewed_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    reviewed_at = Column(DateTime)

    members = relationship("DedupeClusterMember", back_populates="cluster",
                           cascade="all, delete-orphan", passive_deletes=True,
                           order_by="DedupeClusterMember.customer_id")
    reviewed_by = relationship("Employee")

    @property
    def status_label(self) -> str:
        return str(CLUSTER_STATUSES.get(self.status, self.status))

    @property
    def reason_labels(self) -> str:
        return "、".join(str(DEDUPE_KINDS.get(k, k)) for k in self.reasons.split(",") if k)


class DedupeClusterMember(Model):
    """One customer of a cluster, with its best pair score and the rules that linked it.

    No foreign key on customer_id: a reviewed cluster keeps naming a customer after it was
    merged away or deleted (the review page calls such a cluster stale).
    """

    __tablename__ = "dedupe_cluster_member"
    __table_args__ = (UniqueConstraint("cluster_id", "customer_id",
                                       name="uq_dedupe_cluster_member"),)
    id = Column(Integer, primary_key=True)
    cluster_id = Column(Integer, ForeignKey("dedupe_cluster.id", ondelete="CASCADE"),
                        nullable=False, index=True)
    customer_id = Column(Integer, nullable=False, index=True)
    score = Column(Integer, nullable=False)
    reasons = Column(String(200), nullable=False)

    cluster = relationship("DedupeCluster", back_populates="members")


class DedupeDismissal(Model):
    """A pair of customers a reviewer said are not duplicates: the scan never proposes the
    pair again (customer_a < customer_b)."""

    __tablename__ = "dedupe_dismissal"
    __table_args__ = (CheckConstraint("customer_a < customer_b", name="ck_dedupe_dismissal_order"),)
    customer_a = Column(Integer, primary_key=True)
    customer_b = Column(Integer, primary_key=True)
    cluster_id = Column(Integer, ForeignKey("dedupe_cluster.id", ondelete="SET NULL"))
    actor_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)


class DedupeModel(Model):
    """A matching model `flask crm dedupe-train` estimated on this deployment's customers (m/u
    per field and level as JSON, app.services.matching.model). At most one is active; none
    active means the shipped default. Older ones stay as the history of what was used."""

    __tablename__ = "dedupe_model"
    __table_args__ = (
        # One active model: a partial unique index (SQLite and PostgreSQL both have them).
        Index("uq_dedupe_model_active", "active", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )
    id = Column(Integer, primary_key=True)
    model = Column(Text, nullable=False)
    link_threshold = Column(Float, nullable=False)
    review_threshold = Column(Float, nullable=False)
    pairs_used = Column(Integer, nullable=False)
    trained_at = Column(DateTime, nullable=False, default=utcnow)
    trained_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    active = Column(Boolean, nullable=False, default=False, server_default="0")
