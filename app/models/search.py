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
