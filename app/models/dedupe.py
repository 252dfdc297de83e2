"""Dedupe rules (查重规则): which keys take part, exact or fuzzy, and block or warn."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, Integer, String

from app.models.customer import utcnow

DEDUPE_KINDS = {
    "mobile": "手机号", "phone": "固定电话", "email": "邮箱",
    "company_name": "企业名称（核心名）", "person_birthday": "个人姓名 + 生日",
    "person_address": "个人姓名 + 地址",
}
DEDUPE_ACTIONS = {"block": "禁止保存", "warn": "提示，确认后可保存"}


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
        return DEDUPE_KINDS.get(self.kind, self.kind)

    @property
    def action_label(self) -> str:
        return DEDUPE_ACTIONS.get(self.action, self.action)

    def __repr__(self) -> str:
        return self.kind_label
