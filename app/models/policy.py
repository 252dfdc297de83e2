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
)


class Policy(Model):
    __tablename__ = "policy"
    __table_args__ = (
        CheckConstraint("scope in ('global', 'department', 'user')", name="ck_policy_scope"),
        CheckConstraint(
            "(scope = 'global' and department_id is null and user_id is null) or "
            "(scope = 'department' and department_id is not null and user_id is null) or "
            "(scope = 'user' and user_id is not null and department_id is null)",
            name="ck_policy_target"),
        # One policy per target. Partial indexes: a unique constraint over the nullable target
        # columns never fires, since NULLs are distinct.
        Index("uq_policy_global", "scope", unique=True,
              sqlite_where=text("scope = 'global'"), postgresql_where=text("scope = 'global'")),
        Index("uq_policy_department", "department_id", unique=True,
              sqlite_where=text("department_id IS NOT NULL"),
              postgresql_where=text("department_id IS NOT NULL")),
        Index("uq_policy_user", "user_id", unique=True, sqlite_where=text("user_id IS NOT NULL"),
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
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    department = relationship("Department")
    user = relationship("Employee")
