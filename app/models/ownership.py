"""Who holds a customer: pools, the narrow ownership row and its append-only event log."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey,
                        Index, Integer, SmallInteger, String, Table, Text, UniqueConstraint, case,
                        text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

ACQUIRED_HOW = ("created", "assigned", "claimed", "transferred", "merged", "rule-assigned",
                "imported")
# What a pool holds: customers (公海) or leads (线索公海). Customer code never sees a lead pool
# and lead code never a customer pool; each record type has its own default pool.
POOL_RECORD_TYPES = ("customer", "lead")
# The targets' "new customer" (app.services.targets.ACQUIRED), as the SQL predicate of the
# partial index below: a query must write it literally (not as bound parameters) for the
# planner to prove the index applies.
ACQUIRED_KINDS_SQL = "kind IN ('created', 'claimed', 'assigned', 'rule-assigned')"
EVENT_KINDS = ("created", "assigned", "claimed", "released", "reclaimed", "transferred",
               "merged", "unmerged", "rule-assigned", "moved", "deleted")


class Pool(Model):
    """A public pool (公海) of customers or of leads (record_type). Exactly one of each record
    type is the default (kept by app.services.pool_admin)."""

    __tablename__ = "pool"
    __table_args__ = (
        CheckConstraint("record_type in ('customer', 'lead')", name="ck_pool_record_type"),
        Index("uq_pool_default", "record_type", "is_default", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    description = Column(Text)
    is_default = Column(Boolean, nullable=False, default=False, server_default="0")
    record_type = Column(String(16), nullable=False, default="customer",
                         server_default="customer")
    created_at = Column(DateTime, nullable=False, default=utcnow)

    members = relationship("PoolMember", back_populates="pool", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return self.name


class PoolMember(Model):
    """A department or a user who may browse and claim from a pool; `is_admin` may distribute."""

    __tablename__ = "pool_member"
    __table_args__ = (
        CheckConstraint("(department_id is null) <> (user_id is null)",
                        name="ck_pool_member_one_target"),
        UniqueConstraint("pool_id", "department_id", "user_id", name="uq_pool_member"),
    )
    id = Column(Integer, primary_key=True)
    pool_id = Column(Integer, ForeignKey("pool.id", ondelete="CASCADE"), nullable=False, index=True)
    department_id = Column(Integer, ForeignKey("department.id", ondelete="CASCADE"), index=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), index=True)
    is_admin = Column(Boolean, nullable=False, default=False, server_default="0")

    pool = relationship("Pool", back_populates="members")
    department = relationship("Department")
    user = relationship("Employee")


class Ownership(Model):
    """Exactly one row per customer; exactly one of owner_id / pool_id is set (schema-enforced).

    The customer table also holds a deferred foreign key back to this row (see the initial
    migration), so a customer without an ownership row cannot be committed.
    """

    __tablename__ = "customer_ownership"
    __table_args__ = (
        CheckConstraint("(owner_id is null) <> (pool_id is null)", name="ck_ownership_owner_xor_pool"),
        CheckConstraint("owner_id is not null or locked = false", name="ck_ownership_pool_unlocked"),
        # An owner's customers by state (locked, won, followed up or not) read from the
        # index alone: the tally's recount, and on PostgreSQL the workbench's due list under
        # segment policies (the clock, the grade and category it resolves periods by are
        # carried: 30,000 heap visits were 40% of that statement at 1M customers).
        Index("ix_customer_ownership_owner_counts", "owner_id", "locked", "won",
              "last_followup_at",
              postgresql_include=["customer_id", "acquired_at", "grade", "category"]),
        # The workbench: the owner's customers oldest held first, and the follow-ups due,
        # each in the order of its page (the id breaks ties: a keyset, migration 0050).
        Index("ix_customer_ownership_owner_acquired_id", "owner_id", "acquired_at",
              "customer_id"),
        Index("ix_customer_ownership_owner_next_contact_id", "owner_id", "next_contact_on",
              "customer_id"),
        # A scoped list of customers, newest first: a range of the owner's (or the pool's)
        # customer ids, read backwards (app.paging).
        Index("ix_customer_ownership_owner_customer", "owner_id", "customer_id"),
        Index("ix_customer_ownership_pool_customer", "pool_id", "customer_id"),
    )
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="RESTRICT"))
    pool_id = Column(Integer, ForeignKey("pool.id", ondelete="RESTRICT"), index=True)
    acquired_at = Column(DateTime, nullable=False, default=utcnow)
    acquired_how = Column(String(20), nullable=False, default="created")
    first_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    previous_owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    released_at = Column(DateTime)
    last_followup_at = Column(DateTime)
    # The next contact the customer's latest follow-up asked for (app.services.followups keeps
    # it; merges recompute it): the workbench's reminders without reading the history.
    next_contact_on = Column(Date)
    locked = Column(Boolean, nullable=False, default=False, server_default="0")
    won = Column(Boolean, nullable=False, default=False, server_default="0")
    category = Column(String(16), nullable=False, default="potential", server_default="potential")
    grade = Column(String(1))
    # A grade set by hand (A/B/C): the nightly grading keeps it instead of computing one.
    grade_override = Column(String(1))

    customer = relationship("Customer", back_populates="ownership")
    owner = relationship("Employee", foreign_keys=[owner_id])
    pool = relationship("Pool")
    previous_owner = relationship("Employee", foreign_keys=[previous_owner_id])


def last_touch_of(row):
    """When the customer was last touched: max(acquired, last follow-up), portable (SQLite has
    no GREATEST). The reclaim rule's clock (app.services.reclaim.last_touch), and the
    expression of the index below, which only serves queries that write it exactly so."""
    return case((row.last_followup_at > row.acquired_at, row.last_followup_at),
                else_=row.acquired_at)


# The workbench's "about to be reclaimed": an owner's customers by last touch, soonest first.
Index("ix_customer_ownership_owner_touch", Ownership.owner_id, last_touch_of(Ownership))


# What each owner holds, counted by the database itself (app.services.tally): triggers on
# customer_ownership (migration 0047) append a change row (base false) for every row that
# enters, leaves or changes state under an owner, whichever path wrote it; a periodic job
# folds the changes into the owner's base row. An owner's counts are the sum of their rows,
# so a claim's cap check and the manager's team view read a few rows instead of counting
# the owner's whole book. One table for both kinds of row: the base rows (one per owner
# that ever held a customer, never deleted) keep its statistics from ever saying "empty",
# which would have the planner scan it whole instead of by owner. No primary key, no
# foreign keys: every index is one more write per claim, and the triggers must never fail a
# move.
TALLY_COLUMNS = ("held", "locked", "won", "unlocked_unwon", "fresh")

owner_tally = Table(
    "owner_tally", Model.metadata,
    Column("owner_id", Integer, nullable=False, index=True),
    Column("base", Boolean, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in TALLY_COLUMNS),
    # The fold adds into the base row (ON CONFLICT); change rows are not in this index.
    Index("uq_owner_tally_base", "owner_id", unique=True, sqlite_where=text("base"),
          postgresql_where=text("base")))


class OwnershipEvent(Model):
    """Append-only history of every change of owner or pool.

    No column has a foreign key, deliberately: history outlives a deleted or merged customer,
    user or pool and keeps its ids (ON DELETE SET NULL would rewrite it), and a sweep that logs
    500,000 events would otherwise pay five referential checks per row (half the cost of the
    move). The writers are the services, which take the ids from the rows they just locked.
    """

    __tablename__ = "ownership_event"
    # "How many did this rep claim today?" is asked on every claim; "how many customers did
    # these reps acquire this month?" by the targets' progress (count of distinct customers:
    # with customer_id in the index that is read from the index alone).
    __table_args__ = (Index("ix_ownership_event_to_owner_kind_time", "to_owner_id", "kind",
                            "created_at", "customer_id"),
                      # A customer's history, newest first (the sweep's "which pool did it
                      # come from" reads the last event with a pool): without it PostgreSQL
                      # walks the primary key backwards over everyone's events.
                      Index("ix_ownership_event_customer_id_id", "customer_id", "id"),
                      # "Did this owner acquire this customer in these dates?", asked once
                      # per won customer by the conversion chart (app.services.stats).
                      Index("ix_ownership_event_acquired", "customer_id", "to_owner_id",
                            "created_at", postgresql_where=text(ACQUIRED_KINDS_SQL),
                            sqlite_where=text(ACQUIRED_KINDS_SQL)))
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, nullable=False)
    kind = Column(String(20), nullable=False)
    from_owner_id = Column(Integer)
    from_pool_id = Column(Integer)
    to_owner_id = Column(Integer)
    to_pool_id = Column(Integer)
    reason = Column(Text)
    rule = Column(String(200))
    actor_id = Column(Integer)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)

    from_owner = relationship("Employee", viewonly=True,
                              primaryjoin="foreign(OwnershipEvent.from_owner_id) == Employee.id")
    to_owner = relationship("Employee", viewonly=True,
                            primaryjoin="foreign(OwnershipEvent.to_owner_id) == Employee.id")
    from_pool = relationship("Pool", viewonly=True,
                             primaryjoin="foreign(OwnershipEvent.from_pool_id) == Pool.id")
    to_pool = relationship("Pool", viewonly=True,
                           primaryjoin="foreign(OwnershipEvent.to_pool_id) == Pool.id")
    actor = relationship("Employee", viewonly=True,
                         primaryjoin="foreign(OwnershipEvent.actor_id) == Employee.id")
    customer = relationship("Customer", primaryjoin="OwnershipEvent.customer_id == Customer.id",
                            foreign_keys=[customer_id], viewonly=True)

    @property
    def from_label(self) -> str:
        return _holder_label(self.from_owner, self.from_owner_id, self.from_pool,
                             self.from_pool_id)

    @property
    def to_label(self) -> str:
        return _holder_label(self.to_owner, self.to_owner_id, self.to_pool, self.to_pool_id)


def _holder_label(owner, owner_id, pool, pool_id) -> str:
    if owner is not None:
        return owner.display_name
    if owner_id is not None:
        return f"用户 #{owner_id}（已删除）"
    if pool is not None:
        return gettext("Pool: %(name)s", name=pool.name)
    if pool_id is not None:
        return f"公海 #{pool_id}（已删除）"
    return "—"


class ReclaimWarning(Model):
    """One pre-reclaim warning per customer, owner and cycle: `due_at` is when the customer
    would be reclaimed; a follow-up or a new owner moves it, which starts a new cycle."""

    __tablename__ = "reclaim_warning"
    __table_args__ = (UniqueConstraint("customer_id", "owner_id", "due_at",
                                       name="uq_reclaim_warning_cycle"),)
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False,
                      index=True)
    due_at = Column(DateTime, nullable=False)
    rule = Column(String(20), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
