"""Bulk import of customers (批量导入): who may import where, and whose batches one sees.

Who: back-office staff and admins (into any pool, or through the assignment rules) and pool
administrators (into the pools they administer).

A batch goes through app.services.import_mapping (upload the file, map its columns),
app.services.import_run (queue and run it in chunks) and app.services.import_report (the
rows it kept out, and why); each step asks this module who may act on the batch.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from app.extensions import db
from app.models import ImportBatch, Pool, User
from app.security import ROLE_ADMIN, ROLE_STAFF, has_role
from app.services import pool_admin
from app.services.errors import OutOfScope, PermissionDenied, tr


def importable_pool_ids(actor: User) -> Optional[set[int]]:
    """Pools the actor may import into: None means every pool (staff, admins)."""
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF):
        return None
    return pool_admin.admin_pool_ids(actor)


def importable_pools(actor: User) -> list[Pool]:
    """The pools the mapping form offers, the default pool first."""
    allowed = importable_pool_ids(actor)
    q = select(Pool).where(Pool.record_type == "customer").order_by(Pool.is_default.desc(),
                                                                    Pool.name)
    if allowed is not None:
        q = q.where(Pool.id.in_(allowed or {0}))
    return list(db.session.execute(q).scalars())


def importable_lead_pool_ids(actor: User) -> Optional[set[int]]:
    """Lead pools the actor may import leads into: None means every one (staff, admins)."""
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF):
        return None
    return pool_admin.admin_pool_ids(actor, "lead")


def importable_lead_pools(actor: User) -> list[Pool]:
    allowed = importable_lead_pool_ids(actor)
    q = select(Pool).where(Pool.record_type == "lead").order_by(Pool.is_default.desc(),
                                                                Pool.name)
    if allowed is not None:
        q = q.where(Pool.id.in_(allowed or {0}))
    return list(db.session.execute(q).scalars())


def may_name_lead_owner(actor: User) -> bool:
    """Importing leads straight to an owner: staff and admins (as they assign customers)."""
    return has_role(actor, ROLE_ADMIN, ROLE_STAFF)


def may_import(actor: User) -> bool:
    pools = importable_pool_ids(actor)
    return pools is None or bool(pools) or bool(importable_lead_pool_ids(actor))


def may_use_rules(actor: User) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_STAFF)


def require_importer(actor: User) -> None:
    if not may_import(actor):
        raise PermissionDenied(tr("Only back-office staff, admins and pool managers can import "
                                  "customers"))


def visible_batches(actor: User):
    """SELECT of the batches the actor may see: their own; every batch for admins."""
    q = select(ImportBatch).order_by(ImportBatch.id.desc())
    if not has_role(actor, ROLE_ADMIN):
        q = q.where(ImportBatch.created_by_id == actor.id)
    return q


def recent_batches(actor: User, limit: int = 50) -> list[ImportBatch]:
    return list(db.session.execute(visible_batches(actor).limit(limit)).scalars())


def get_batch(actor: User, batch_id: int) -> ImportBatch:
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or not (has_role(actor, ROLE_ADMIN) or batch.created_by_id == actor.id):
        raise OutOfScope(tr("The import batch does not exist or is not yours"))
    return batch
