"""The quick search's keys (app.services.search): derived from customer and contact names,
rewritten whenever those change, rebuilt by `flask crm search-rebuild`."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text, text


class CustomerSearchGram(Model):
    """One row per (two-character piece, customer): 华为 finds 华为技术有限公司 and the customer
    whose contact is 王芳 through 王芳. A B-tree on (gram, customer_id) works for every
    script and collation, unlike pg_trgm (three characters, ctype-dependent)."""

    __tablename__ = "customer_search_gram"
    gram = Column(String(2), primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"),
                         primary_key=True, index=True)
    # The piece is in the customer's own name (not only in a contact's): a two-character
    # "name contains" is then answered by the index alone, with no text check.
    in_name = Column(Boolean, nullable=False, default=False, server_default=text("false"))

    __table_args__ = (
        Index("ix_customer_search_gram_name", "gram", "customer_id",
              sqlite_where=text("in_name = 1"), postgresql_where=text("in_name")),
    )


class CustomerSearchText(Model):
    """The customer's name and its contacts' names (one a line), folded: what a candidate
    found by its grams is checked against, so that 华为 does not match 为华."""

    __tablename__ = "customer_search_text"
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"),
                         primary_key=True, autoincrement=False)
    name = Column(Text, nullable=False)
    contacts = Column(Text, nullable=False, default="")


class CustomerMatchKey(Model):
    """One row per (blocking entry, customer) of the dedupe matcher (app.services.match_keys):
    a block such as "name/core:c:华为" and the customer's position in it. The primary key
    (block, sort_key, customer_id) answers "the members just before / after this position"
    with one range read, which is all the entry check asks of a block of any size."""

    __tablename__ = "customer_match_key"
    block = Column(String(120), primary_key=True)
    # Ordered by code point on every database, as the scan orders them in memory (PostgreSQL's
    # default collation would order 华为 and huawei otherwise).
    sort_key = Column(String(60).with_variant(String(60, collation="C"), "postgresql"),
                      primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"),
                         primary_key=True, index=True)
