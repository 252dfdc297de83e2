"""Sales targets (业绩目标): a won amount and / or a count of new customers that one user or
one department should reach in one month or quarter."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_appbuilder import Model
from sqlalchemy import (CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Integer,
                        Numeric, String)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

PERIOD_KINDS = {"month": _l("Month"), "quarter": _l("Quarter")}


class SalesTarget(Model):
    __tablename__ = "sales_target"
    __table_args__ = (
        # Whose target: one user or one department, never both, never neither.
        CheckConstraint("(user_id IS NULL) <> (department_id IS NULL)",
                        name="ck_sales_target_user_xor_department"),
        CheckConstraint("period_kind in ('month', 'quarter')", name="ck_sales_target_kind"),
        CheckConstraint("won_amount IS NULL OR won_amount >= 0",
                        name="ck_sales_target_won_amount"),
        CheckConstraint("new_customers IS NULL OR new_customers >= 0",
                        name="ck_sales_target_new_customers"),
        CheckConstraint("won_amount IS NOT NULL OR new_customers IS NOT NULL",
                        name="ck_sales_target_some_measure"),
        # One target per holder and period. NULLs are distinct in a unique index on both
        # SQLite and PostgreSQL, so each index binds only the rows of its own kind of holder
        # (a department row has user_id NULL and never collides in the first one).
        Index("uq_sales_target_user_period", "user_id", "period_kind", "period_start",
              unique=True),
        Index("uq_sales_target_department_period", "department_id", "period_kind",
              "period_start", unique=True),
        Index("ix_sales_target_period_id", "period_start", "id"),  # the list's sort key
    )
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"))
    department_id = Column(Integer, ForeignKey("department.id", ondelete="CASCADE"))
    period_kind = Column(String(8), nullable=False)
    # The first day of the month or quarter (app.services.targets checks it).
    period_start = Column(Date, nullable=False)
    won_amount = Column(Numeric(14, 2))
    new_customers = Column(Integer)
    set_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    user = relationship("Employee", foreign_keys=[user_id])
    department = relationship("Department", foreign_keys=[department_id])
    set_by = relationship("Employee", foreign_keys=[set_by_id])

    @property
    def holder_label(self) -> str:
        if self.user is not None:
            return self.user.display_name
        return self.department.name if self.department is not None else ""

    @property
    def period_label(self) -> str:
        start = self.period_start
        if start is None:
            return ""
        if self.period_kind == "quarter":
            return f"{start.year} Q{(start.month - 1) // 3 + 1}"
        return f"{start.year}-{start.month:02d}"

    def __repr__(self) -> str:
        return f"{self.holder_label} {self.period_label}"
