"""Ownership policies (rule configuration): global default, per department, per user."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        String, text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

# The policy fields of DESIGN.md invariants 3-6. None on a department/user row means "inherit".
POLICY_FIELDS = (
    "max_customers", "count_won", "max_locked", "daily_claim_limit", "cooldown_days",
    "reclaim_no_followup_days", "reclaim_no_deal_days", "warn_before_days",
    # Leads (线索): their own cap, daily claim limit and reclaim clock.
    "lead_max", "lead_daily_claim_limit", "lead_reclaim_no_followup_days",
    # Calls (issue 18): an answered call restarts the reclaim clock only from this talk time.
    "call_min_talk_seconds",
)
# Optional segment conditions (issue 15 section 4): a policy with any of them set applies only
# to the records that match them all, and may set only SEGMENT_FIELDS.
SEGMENT_CONDITIONS = ("segment_record_type", "segment_grade", "segment_category",
                      "segment_product_line", "segment_source")
# The reclaim periods and warning days; caps and claim limits stay per user / department /
# global.
SEGMENT_FIELDS = ("reclaim_no_followup_days", "reclaim_no_deal_days", "warn_before_days",
                  "lead_reclaim_no_followup_days")


class Policy(Model):
    __tablename__ = "policy"
    __table_args__ = (
        CheckConstraint("scope in ('global', 'department', 'user')", name="ck_policy_scope"),
        CheckConstraint(
            "(scope = 'global' and department_id is null and user_id is null) or "
            "(scope = 'department' and department_id is not null and user_id is null) or "
            "(scope = 'user' and user_id is not null and department_id is null)",
            name="ck_policy_target"),
        # One policy per target and segment (segment_key '' = no segment). Partial indexes: a
        # unique constraint over the nullable target columns never fires, since NULLs are
        # distinct.
        Index("uq_policy_global_segment", "scope", "segment_key", unique=True,
              sqlite_where=text("scope = 'global'"), postgresql_where=text("scope = 'global'")),
        Index("uq_policy_department_segment", "department_id", "segment_key", unique=True,
              sqlite_where=text("department_id IS NOT NULL"),
              postgresql_where=text("department_id IS NOT NULL")),
        Index("uq_policy_user_segment", "user_id", "segment_key", unique=True,
              sqlite_where=text("user_id IS NOT NULL"),
              postgresql_where=text("user_id IS NOT NULL")),
    )
    id = Column(Integer, primary_key=True)
    scope = Column(String(16), nullable=False, default="global")
    department_id = Column(Integer, ForeignKey("department.id", ondelete="CASCADE"), index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), index=True)
    max_customers = Column(Integer)
    count_won = Column(Boolean)
    max_locked = Column(Integer)
    daily_claim_limit = Column(Integer)
    cooldown_days = Column(Integer)
    reclaim_no_followup_days = Column(Integer)
    reclaim_no_deal_days = Column(Integer)
    warn_before_days = Column(Integer)
    lead_max = Column(Integer)
    lead_daily_claim_limit = Column(Integer)
    lead_reclaim_no_followup_days = Column(Integer)
    # An answered call restarts the reclaim clock only when it lasted this long (seconds).
    call_min_talk_seconds = Column(Integer)
    # Segment conditions (all optional; None = any). Record type 'customer' or 'lead'; grade
    # A/B/C, category potential/active/silent and product line are customers' only; source is
    # compared with the customer's or the lead's stored source.
    segment_record_type = Column(String(16))
    segment_grade = Column(String(1))
    segment_category = Column(String(16))
    segment_product_line = Column(String(100))
    segment_source = Column(String(100))
    # The conditions in one canonical string ('' without any), kept by policy_config: the
    # uniqueness key of (target, segment).
    segment_key = Column(String(400), nullable=False, default="", server_default="")
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    department = relationship("Department")
    user = relationship("Employee")
