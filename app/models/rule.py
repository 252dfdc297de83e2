"""Assignment rules (归属规则): an ordered list; the first active rule whose conditions all
match a customer decides who gets it."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

RULE_CONDITIONS = ("province", "city", "industry", "customer_type", "grade", "product_line",
                   "source", "lifecycle")
# A lead has no type, grade, product line or lifecycle: a lead rule may set only these
# (app.services.rules.validate_rule refuses the others).
LEAD_RULE_CONDITIONS = ("province", "city", "industry", "source")
RULE_RECORD_TYPES = {"customer": _l("Customers"), "lead": _l("Leads")}
RULE_STRATEGIES = {"round_robin": _l("Round robin"), "least_loaded": _l("Fewest customers first"),
                   "even": _l("Even by rule")}


class AssignmentRule(Model):
    __tablename__ = "assignment_rule"
    __table_args__ = (
        CheckConstraint("target_type in ('user', 'department', 'pool')",
                        name="ck_rule_target_type"),
        CheckConstraint("strategy in ('round_robin', 'least_loaded', 'even')",
                        name="ck_rule_strategy"),
        CheckConstraint("record_type in ('customer', 'lead')", name="ck_rule_record_type"),
    )
    id = Column(Integer, primary_key=True)
    position = Column(Integer, nullable=False, default=100, index=True)
    name = Column(String(100), nullable=False, unique=True)
    active = Column(Boolean, nullable=False, default=True, server_default="1")
    # What the rule places: new customers, or new leads (its pool then a lead pool).
    record_type = Column(String(10), nullable=False, default="customer",
                         server_default="customer")
    # Conditions: empty means "any".
    province = Column(String(50))
    city = Column(String(50))
    industry = Column(String(100))
    customer_type = Column(String(16))
    grade = Column(String(1))
    product_line = Column(String(100))
    source = Column(String(100))
    lifecycle = Column(String(16))  # potential / active / silent
    target_type = Column(String(12), nullable=False, default="pool")
    target_user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    target_department_id = Column(Integer, ForeignKey("department.id", ondelete="SET NULL"))
    target_pool_id = Column(Integer, ForeignKey("pool.id", ondelete="SET NULL"))
    strategy = Column(String(16), nullable=False, default="round_robin")
    last_user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    target_user = relationship("Employee", foreign_keys=[target_user_id])
    target_department = relationship("Department")
    target_pool = relationship("Pool")

    def __repr__(self) -> str:
        return self.name
