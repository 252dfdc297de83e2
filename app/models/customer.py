"""Customers (companies or persons), their contacts, and read shares."""
from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        SmallInteger, String, Text, UniqueConstraint)
from sqlalchemy.orm import relationship

CUSTOMER_TYPES = {"company": _l("Company customer"), "person": _l("Individual customer")}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class ShownContactDetails:
    """mobile_shown / phone_shown / email_shown: the contact details as the signed-in user may
    see them, by the one rule of app.services.masking (a contact follows its customer)."""

    @property
    def mobile_shown(self):
        from app.services.masking import customer_field
        return customer_field(self, "mobile")

    @property
    def phone_shown(self):
        from app.services.masking import customer_field
        return customer_field(self, "phone")

    @property
    def email_shown(self):
        from app.services.masking import customer_field
        return customer_field(self, "email")


class Customer(ShownContactDetails, Model):
    __tablename__ = "customer"
    __table_args__ = (
        CheckConstraint("customer_type in ('company', 'person')", name="ck_customer_type"),
        Index("ix_customer_birthday", "birth_month", "birth_day"),
        # The list's sort keys (app.paging): a page is a range of one of these.
        Index("ix_customer_name_id", "name", "id"),
        Index("ix_customer_created_id", "created_at", "id"),
        # The fuzzy name check's candidates: "companies of this block, LIMIT 200" stops after
        # 200 entries (on name_block alone PostgreSQL read a crowded block's 7,000 entries
        # and filtered the type on the heap); on PostgreSQL the scored fields ride along, so
        # the look-up is index-only.
        Index("ix_customer_type_block", "customer_type", "name_block",
              postgresql_include=["name_core", "name_region", "city"]),
        CheckConstraint("birth_month is null or (birth_month between 1 and 12)",
                        name="ck_customer_birth_month"),
        CheckConstraint("birth_day is null or (birth_day between 1 and 31)",
                        name="ck_customer_birth_day"),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False, index=True)
    customer_type = Column(String(16), nullable=False, default="company")
    industry = Column(String(100), index=True)
    province = Column(String(50), index=True)
    city = Column(String(50), index=True)
    address = Column(String(300))
    phone = Column(String(60))
    phone_e164 = Column(String(32), index=True)
    mobile = Column(String(60))
    mobile_e164 = Column(String(32), index=True)
    email = Column(String(200))
    email_norm = Column(String(200), index=True)
    source = Column(String(100))
    # Dedupe keys (app/services/normalize.py, version in norm_version): a company's core name
    # and region (北京 / 百度网讯科技 / 有限公司) or a person's folded name, its pinyin, and
    # the folded address.
    name_core = Column(String(200), index=True)
    # The fuzzy name check's block: the core's first two characters (an equality lookup works
    # under every collation, unlike a range over CJK text).
    name_block = Column(String(8), index=True)
    name_region = Column(String(50))
    legal_form = Column(String(50))
    name_pinyin = Column(String(300), index=True)
    address_norm = Column(String(300), index=True)
    product_line = Column(String(100), index=True)
    # Birthday as parts: a lunar 2/30 has no solar Date. Year is optional (many know only the day).
    birth_year = Column(SmallInteger)
    birth_month = Column(SmallInteger)
    birth_day = Column(SmallInteger)
    birthday_lunar = Column(Boolean, nullable=False, default=False, server_default="0")
    notes = Column(Text)
    # Version of the normaliser that wrote the *_e164/_norm keys; a job refreshes stale rows.
    norm_version = Column(SmallInteger, nullable=False, default=0, server_default="0")
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    # The consent its lead gave on a public form (text version, time), kept on conversion.
    consent_version = Column(String(40))
    consented_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    created_by = relationship("Employee", foreign_keys=[created_by_id])
    ownership = relationship("Ownership", uselist=False, back_populates="customer",
                             cascade="all, delete-orphan", passive_deletes=True)
    contacts = relationship("Contact", back_populates="customer",
                            cascade="all, delete-orphan", passive_deletes=True)

    @property
    def birthday_display(self) -> str:
        if not self.birth_month:
            return ""
        year = f"{self.birth_year}-" if self.birth_year else ""
        text = f"{year}{self.birth_month:02d}-{self.birth_day:02d}"
        return f"农历 {text}" if self.birthday_lunar else text

    @property
    def type_label(self) -> str:
        return CUSTOMER_TYPES.get(self.customer_type, self.customer_type)


    @property
    def owner_label(self) -> str:
        o = self.ownership
        if o is None:
            return ""
        if o.owner is not None:
            return o.owner.display_name
        return gettext("Pool: %(name)s", name=o.pool.name) if o.pool else ""

    def __repr__(self) -> str:
        return self.name


class Contact(ShownContactDetails, Model):
    __tablename__ = "contact"
    __table_args__ = (
        CheckConstraint("birth_month is null or (birth_month between 1 and 12)",
                        name="ck_contact_birth_month"),
        CheckConstraint("birth_day is null or (birth_day between 1 and 31)",
                        name="ck_contact_birth_day"),
        Index("ix_contact_birthday", "birth_month", "birth_day"),
        Index("ix_contact_name_id", "name", "id"),  # the list's sort key (app.paging)
    )
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    name = Column(String(100), nullable=False)
    title = Column(String(100))
    phone = Column(String(60))
    phone_e164 = Column(String(32), index=True)
    mobile = Column(String(60))
    mobile_e164 = Column(String(32), index=True)
    email = Column(String(200))
    email_norm = Column(String(200), index=True)
    is_primary = Column(Boolean, nullable=False, default=False, server_default="0")
    # A company's people have birthdays too (纪念日关怀); same parts as the customer's.
    birth_year = Column(SmallInteger)
    birth_month = Column(SmallInteger)
    birth_day = Column(SmallInteger)
    birthday_lunar = Column(Boolean, nullable=False, default=False, server_default="0")
    notes = Column(Text)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer", back_populates="contacts")

    birthday_display = Customer.birthday_display

    def __repr__(self) -> str:
        return self.name


class CustomerShare(Model):
    """Read access to a customer for someone other than its owner (e.g. the old owner after a
    transfer, for N days)."""

    __tablename__ = "customer_share"
    __table_args__ = (UniqueConstraint("customer_id", "user_id", name="uq_customer_share"),)
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                     index=True)
    expires_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")
    user = relationship("Employee")
