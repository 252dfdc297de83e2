"""Customer merges (合并): the undo record of each merge and the redirects of merged ids."""
from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer
from sqlalchemy.orm import relationship

from app.models.customer import utcnow


class CustomerMerge(Model):
    """One customer merged into another, with all that undo needs.

    `snapshot`: the merged customer's row and its ownership row, the survivor's field values
    and ownership row as they were before, and every row dropped because it duplicated one
    of the survivor's (under a unique key). `moved`: {table: [primary keys]} of every row
    that was re-pointed from the merged customer to the survivor. No foreign key on the two
    customer ids: the merged customer no longer exists, and the record must outlive both.
    """

    __tablename__ = "customer_merge"
    __table_args__ = (Index("ix_customer_merge_survivor", "survivor_id", "id"),
                      Index("ix_customer_merge_merged", "merged_id"))
    id = Column(Integer, primary_key=True)
    survivor_id = Column(Integer, nullable=False)
    merged_id = Column(Integer, nullable=False)
    cluster_id = Column(Integer, ForeignKey("dedupe_cluster.id", ondelete="SET NULL"),
                        index=True)
    actor_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    undone_at = Column(DateTime)
    undone_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    snapshot = Column(JSON, nullable=False)
    moved = Column(JSON, nullable=False)

    actor = relationship("Employee", foreign_keys=[actor_id])
    undone_by = relationship("Employee", foreign_keys=[undone_by_id])


class CustomerRedirect(Model):
    """A merged customer's id -> the survivor's, so old links and API calls still land.

    When a survivor is itself merged later, its redirects are re-pointed (and the merge
    record remembers which, for undo), so a redirect is always one hop.
    """

    __tablename__ = "customer_redirect"
    old_id = Column(Integer, primary_key=True, autoincrement=False)
    survivor_id = Column(Integer, nullable=False, index=True)
    merge_id = Column(Integer, ForeignKey("customer_merge.id", ondelete="CASCADE"),
                      nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
