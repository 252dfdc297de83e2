"""Reviewing the batch scan's clusters: list, look at one, merge it or dismiss it.

Admins and back-office staff review (auditors read). Every action loads the cluster again
and checks that its members still exist: a member merged or deleted since the scan makes
the cluster stale, and the reviewer is told which and why instead of merging half of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import func, select

from app.extensions import db
from app.models import (Customer, CustomerMerge, CustomerRedirect, DedupeCluster,
                        DedupeClusterMember, DedupeDismissal, User)
from app.models.customer import utcnow
from app.queue import enqueue
from app.security import can_see_customer
from app.services import audit, merge as merge_service
from app.services.errors import Conflict, NotFound, ValidationFailed, tr

PAGE_SIZE = 50


@dataclass
class Member:
    customer_id: int
    score: int
    reasons: str
    customer: Optional[Customer]  # None: merged or deleted since the scan
    gone: str = ""                # why it is missing, for the stale message
    account: str = ""             # the matcher's account of it against the first member


def open_clusters(actor: User, page: int = 0) -> tuple[list[DedupeCluster], int]:
    """Open clusters, best score first: (one page, total)."""
    merge_service.require_reader(actor)
    q = select(DedupeCluster).where(DedupeCluster.status == "open")
    total = db.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    # Best score first, newest first among equals: one backward range of the
    # (status, best_score, id) index.
    rows = db.session.execute(q.order_by(DedupeCluster.best_score.desc(), DedupeCluster.id.desc())
                              .offset(page * PAGE_SIZE).limit(PAGE_SIZE)).scalars().all()
    return rows, total


def last_scan() -> Optional[dict]:
    from app.models import AuditLog

    row = db.session.execute(select(AuditLog).where(AuditLog.action == "dedupe_scan")
                             .order_by(AuditLog.id.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return None
    return {"at": row.created_at, **{k: v[1] for k, v in (row.changes or {}).items()}}


def _why_gone(customer_id: int) -> str:
    survivor = db.session.execute(select(CustomerRedirect.survivor_id).where(
        CustomerRedirect.old_id == customer_id)).scalar_one_or_none()
    if survivor is not None:
        return tr("Customer #%(id)s was merged into #%(survivor)s", id=customer_id,
                  survivor=survivor)
    return tr("Customer #%(id)s was deleted", id=customer_id)


def cluster(actor: User, cluster_id: int) -> tuple[DedupeCluster, list[Member]]:
    """The cluster and its members (with their current rows), for the review page."""
    merge_service.require_reader(actor)
    found = db.session.get(DedupeCluster, cluster_id)
    if found is None:
        raise NotFound(tr("Duplicate group #%(id)s does not exist (a new scan may have replaced "
                          "it)", id=cluster_id))
    members = []
    for m in found.members:
        customer = db.session.get(Customer, m.customer_id)
        if customer is not None and not can_see_customer(actor, m.customer_id):
            customer = None
        members.append(Member(m.customer_id, m.score, m.reasons, customer,
                              "" if customer else _why_gone(m.customer_id)))
    _explain(members)
    return found, members


ACCOUNTS = 20  # members of a cluster explained against the first (a bigger one is rare)


def _explain(members: list[Member]) -> None:
    """Each present member's account against the first present one, field by field, as the
    matcher scored them ("名称 相似 88%（+4.1）· 同城（+1.2）… → 5.8"): what the reviewer
    weighs before merging."""
    from app.services.matching import Matcher

    present = [m for m in members if m.customer is not None][:ACCOUNTS]
    if len(present) < 2:
        return
    matcher = Matcher.current()
    columns = [c.name for c in Customer.__table__.c]

    def stored(c: Customer) -> dict:
        return {name: getattr(c, name) for name in columns}

    first = stored(present[0].customer)
    for m in present[1:]:
        m.account = matcher.explain(first, stored(m.customer)).text()


def stale_reason(members: list[Member]) -> Optional[str]:
    gone = [m.gone for m in members if m.customer is None]
    if not gone:
        return None
    return tr("This duplicate group is out of date: %(gone)s. Scan again or mark it as not "
              "duplicates", gone=tr("; ").join(gone))


def _open_cluster(actor: User, cluster_id: int) -> tuple[DedupeCluster, list[Member]]:
    merge_service.require_reviewer(actor)
    found, members = cluster(actor, cluster_id)
    if found.status != "open":
        raise Conflict(tr("Duplicate group #%(id)s is already handled (%(status)s)", id=cluster_id,
                          status=found.status_label))
    return found, members


def merge_cluster(actor: User, cluster_id: int, survivor_id: int, merged_ids: Iterable[int],
                  choices: dict[str, int]) -> list[CustomerMerge]:
    """Merge the chosen members into the survivor; members left out are recorded as not
    duplicates of the survivor. Commits."""
    found, members = _open_cluster(actor, cluster_id)
    stale = stale_reason(members)
    if stale:
        raise Conflict(stale, code="stale_cluster")
    ids = {m.customer_id for m in members}
    merged_ids = [i for i in dict.fromkeys(merged_ids) if i != survivor_id]
    if survivor_id not in ids:
        raise ValidationFailed({"survivor": tr("The kept customer #%(id)s is not in duplicate "
                                               "group #%(cluster)s", id=survivor_id,
                                               cluster=cluster_id)})
    outside = [i for i in merged_ids if i not in ids]
    if outside:
        raise ValidationFailed({"merged": tr(
            "Customers to merge are not in this duplicate group: %(ids)s",
            ids=tr(", ").join(f"#{i}" for i in outside))})
    kept_apart = ids - set(merged_ids) - {survivor_id}
    try:
        _remember_apart(actor, cluster_id, [(survivor_id, i) for i in kept_apart])
        found.status, found.reviewed_by_id, found.reviewed_at = "merged", actor.id, utcnow()
        # merge.merge commits the cluster's status with the merge.
        return merge_service.merge(actor, survivor_id, merged_ids, choices,
                                   cluster_id=cluster_id)
    except Exception:
        db.session.rollback()
        raise


def _remember_apart(actor: User, cluster_id: int, pairs: Iterable[tuple[int, int]]) -> int:
    have = set()
    added = 0
    for a, b in pairs:
        key = (min(a, b), max(a, b))
        if key in have or a == b or db.session.get(DedupeDismissal, key) is not None:
            continue
        have.add(key)
        db.session.add(DedupeDismissal(customer_a=key[0], customer_b=key[1],
                                       cluster_id=cluster_id, actor_id=actor.id,
                                       created_at=utcnow()))
        added += 1
    return added


def dismiss(actor: User, cluster_id: int) -> int:
    """"Not duplicates": every pair of the cluster is remembered, so no scan proposes it
    again. Works on a stale cluster too (its remaining members). Commits."""
    found, members = _open_cluster(actor, cluster_id)
    ids = sorted(m.customer_id for m in members)
    try:
        added = _remember_apart(actor, cluster_id,
                                [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]])
        found.status, found.reviewed_by_id, found.reviewed_at = "dismissed", actor.id, utcnow()
        audit.record(actor.id, "dedupe_dismiss", "dedupe_cluster", cluster_id,
                     {"customers": (None, ",".join(map(str, ids)))})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return added


def queue_scan(actor: User):
    """Queue the batch scan as a job (its progress shows on the jobs page); None when
    Redis is unreachable."""
    merge_service.require_reviewer(actor)
    return enqueue("jobs.dedupe.scan_duplicates", actor.id, job_timeout=3600)
