"""Batch dedupe scan (批量查重): duplicate clusters across the whole customer table, for review.

The scan applies the admins' active dedupe rules (the ones the entry check applies) to every
pair that could match, without comparing all pairs:

- numbers and e-mail: a mobile/phone number or an e-mail address held by two customers
  (their own fields or their contacts'); the database groups them (GROUP BY … HAVING).
- the matcher (rule `scored`, app.services.matching): the candidate pairs are the ones the
  blocking entries (customer_match_key, app.services.match_keys) give in (block, sort, id)
  order — in each block, every member with the next window−1 members — which is exactly
  what the entry check and the import ask the same table for one record, so the three
  agree. The scan works them out from the customer rows it reads anyway
  (match_keys.column_pairs: the same entries, numbered and sorted in memory) rather than
  reading the table's millions of rows back in order. The pairs are scored in batches by the matcher's vectorised scorer over every customer's
  stored columns, held column by column; a pair at or above the rule's link threshold links
  its customers, with the model's probability as its score. A pair between the review and
  the link threshold is proposed on its own, as a group of two: weak pairs are not chained
  (through a few thousand of them half the table would become one group).

Matches link customers in a union-find; each connected group becomes a cluster whose
members carry their best score and the rules that linked them. Pairs a reviewer dismissed
are never linked again. Re-running replaces the open clusters and leaves dismissed and
merged ones (the history) alone.
"""
from __future__ import annotations

import gc
import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator, Optional, TextIO

import numpy as np
from sqlalchemy import delete, func, insert, select, text

from app.extensions import db
from app.models import (Customer, DedupeCluster, DedupeClusterMember, DedupeDismissal,
                        DedupeRule)
from app.models.customer import utcnow
from app.services import audit
from app.services.dedupe import active_rules
from app.services.exports import SafeCsvWriter

log = logging.getLogger("guishu.dedupe_scan")

STREAM_ROWS = 20_000       # rows fetched per round trip
NAMES_PER_QUERY = 1000     # ids per IN list when the CSV output looks up names
PROGRESS_EVERY = 50_000    # rows between two progress reports

Progress = Callable[[int, Optional[int]], None]


# --- the graph of matches -------------------------------------------------------------------
class MatchGraph:
    """Union-find over customer ids, with each id's best score and the rules that linked it."""

    def __init__(self, dismissed: Iterable[tuple[int, int]] = ()):
        dismissed = set(dismissed)
        # Pairs between the review and the link threshold: proposed one by one, never chained
        # (a chain of weak pairs would make one cluster of half the table).
        self.proposed: dict[tuple[int, int], int] = {}
        self.parent: dict[int, int] = {}
        self.best: dict[int, int] = {}
        self.kinds: dict[int, set[str]] = defaultdict(set)
        self.dismissed = set(dismissed)
        # Ids named in a dismissal: only their groups are expanded pair by pair.
        self.flagged = {i for pair in self.dismissed for i in pair}
        self.links = 0

    def _root(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def _mark(self, ids: Iterable[int], score: int, kinds: tuple[str, ...]) -> None:
        for i in ids:
            if self.best.get(i, -1) < score:
                self.best[i] = score
            self.kinds[i].update(kinds)

    def propose(self, a: int, b: int, score: int) -> None:
        """A pair the matcher puts between the review and the link threshold."""
        pair = (min(a, b), max(a, b))
        if pair not in self.dismissed:
            self.proposed[pair] = max(score, self.proposed.get(pair, 0))

    def link(self, a_ids: list[int], b_ids: list[int], score: int,
             kinds: tuple[str, ...]) -> None:
        """Every id of a_ids matches every id of b_ids (the same list for a group of equals)."""
        if not kinds:
            return
        if self.flagged and not self.flagged.isdisjoint(a_ids + b_ids):
            for a in a_ids:
                for b in b_ids:
                    if a != b and (min(a, b), max(a, b)) not in self.dismissed:
                        self._union(a, b)
                        self._mark((a, b), score, kinds)
                        self.links += 1
            return
        ids = a_ids if a_ids is b_ids else a_ids + b_ids
        if len(set(ids)) < 2:
            return
        first = ids[0]
        for other in ids[1:]:
            self._union(first, other)
        self._mark(ids, score, kinds)
        self.links += 1

    def clusters(self, proposed: bool = True) -> list[list[int]]:
        """The groups linked at the link threshold and, with `proposed`, each proposed pair
        whose two customers no group holds together, as a group of two."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i in list(self.parent):
            groups[self._root(i)].append(i)
        out = [sorted(g) for g in groups.values() if len(g) > 1]
        if proposed:
            for (a, b), score in self.proposed.items():
                if a in self.parent and b in self.parent and self._root(a) == self._root(b):
                    continue
                self._mark((a, b), score, ("scored",))
                out.append([a, b])
        return sorted(out, key=lambda g: (g[0], len(g)))


def _stream(sql: str) -> Iterator[tuple]:
    # Per statement: Connection.execution_options would stick to the session's connection.
    result = db.session.connection().execute(
        text(sql).execution_options(stream_results=True, yield_per=STREAM_ROWS))
    for row in result:
        yield tuple(row)


def _runs(rows: Iterable[tuple], key: int) -> Iterator[list[tuple]]:
    """Consecutive rows with the same value at `key` (the query orders by it)."""
    batch: list[tuple] = []
    current = object()
    for row in rows:
        if row[key] != current:
            if batch:
                yield batch
            batch, current = [], row[key]
        batch.append(row)
    if batch:
        yield batch


_NUMBERS = """
WITH k(v, cid, col) AS (
  SELECT mobile_e164, id, 'm' FROM customer WHERE mobile_e164 IS NOT NULL
  UNION ALL SELECT phone_e164, id, 'p' FROM customer WHERE phone_e164 IS NOT NULL
  UNION ALL SELECT mobile_e164, customer_id, 'm' FROM contact WHERE mobile_e164 IS NOT NULL
  UNION ALL SELECT phone_e164, customer_id, 'p' FROM contact WHERE phone_e164 IS NOT NULL)
SELECT v, cid, col FROM k
WHERE v IN (SELECT v FROM k GROUP BY v HAVING COUNT(DISTINCT cid) > 1) ORDER BY v, cid"""
_EMAILS = """
WITH k(v, cid, col) AS (
  SELECT email_norm, id, 'e' FROM customer WHERE email_norm IS NOT NULL
  UNION ALL SELECT email_norm, customer_id, 'e' FROM contact WHERE email_norm IS NOT NULL)
SELECT v, cid, col FROM k
WHERE v IN (SELECT v FROM k GROUP BY v HAVING COUNT(DISTINCT cid) > 1) ORDER BY v, cid"""
def _number_kinds(mine: set[str], theirs: set[str], rules: dict) -> tuple[str, ...]:
    """The rules under which two customers sharing a number match: the mobile rule compares a
    mobile with the other's mobile or phone, the phone rule a phone with either."""
    cols = mine | theirs
    kinds = []
    if "mobile" in rules and "m" in cols:
        kinds.append("mobile")
    if "phone" in rules and "p" in cols:
        kinds.append("phone")
    if "email" in rules and "e" in cols:
        kinds.append("email")
    return tuple(kinds)


def _scan_shared_keys(graph: MatchGraph, rules: dict) -> None:
    queries = []
    if "mobile" in rules or "phone" in rules:
        queries.append(_NUMBERS)
    if "email" in rules:
        queries.append(_EMAILS)
    for sql in queries:
        for run in _runs(db.session.connection().execute(text(sql)), 0):
            cols: dict[int, set[str]] = defaultdict(set)
            for _, cid, col in run:
                cols[cid].add(col)
            ids = list(cols)
            for other in ids[1:]:
                graph.link([ids[0]], [other], 100, _number_kinds(cols[ids[0]], cols[other],
                                                                 rules))
            if graph.flagged and not graph.flagged.isdisjoint(ids):
                # A dismissed pair with the first holder: link the others among themselves.
                for a in range(1, len(ids)):
                    for b in range(a + 1, len(ids)):
                        graph.link([ids[a]], [ids[b]], 100,
                                   _number_kinds(cols[ids[a]], cols[ids[b]], rules))


@dataclass
class ScanResult:
    customers: int = 0
    clusters: int = 0
    members: int = 0
    links: int = 0
    seconds: float = 0.0
    by_kind: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # (customer_id, cluster_id, score, reasons)
    linked: list = field(default_factory=list)  # clusters at the link threshold (id lists)

    def summary(self) -> dict:
        return {"customers": self.customers, "clusters": self.clusters,
                "members": self.members, "links": self.links,
                "seconds": round(self.seconds, 1), "by_kind": self.by_kind}


def dismissed_pairs() -> set[tuple[int, int]]:
    return {(a, b) for a, b in db.session.execute(
        select(DedupeDismissal.customer_a, DedupeDismissal.customer_b)).all()}


def candidate_pairs() -> np.ndarray:
    """(id_a, id_b) rows, id_a < id_b, distinct: in each block of customer_match_key, every
    member with the next window−1 members in (sort, id) order (the pairs the entry check
    reads for one record), read from the table. The scan works the same pairs out in memory
    (match_keys.column_pairs); the tests hold the two to each other."""
    from app.services.match_keys import window_of

    chunks: list[np.ndarray] = []
    sql = "SELECT block, customer_id FROM customer_match_key ORDER BY block, sort_key, customer_id"
    for run in _runs(_stream(sql), 0):
        if len(run) < 2:
            continue
        ids = np.fromiter((cid for _, cid in run), dtype=np.int64, count=len(run))
        for d in range(1, min(window_of(run[0][0]), len(ids))):
            chunks.append(np.stack([np.minimum(ids[:-d], ids[d:]),
                                    np.maximum(ids[:-d], ids[d:])], axis=1))
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(chunks), axis=0)


def _records() -> Iterator[dict]:
    from app.services.matching.records import RECORD_FIELDS

    sql = f"SELECT {', '.join(RECORD_FIELDS)} FROM customer ORDER BY id"
    for row in _stream(sql):
        yield dict(zip(RECORD_FIELDS, row))


def _scan_scored(graph: MatchGraph, rule: DedupeRule, advance: Callable[[int], None]) -> None:
    """Link every candidate pair the matcher scores at or above the rule's review
    threshold (score: the model's probability, percent)."""
    from app.services.dedupe import probability, thresholds
    from app.services.matching import Matcher

    from app.services.match_keys import column_pairs
    from app.services.matching.records import Columns

    matcher = Matcher.current()
    link, review = thresholds(rule, matcher)
    cols = Columns(_records())
    advance(len(cols))
    # The pairs the blocking entries give, worked out from the columns just read (reading the
    # table's entries back in block order took longer than scoring every pair).
    encoded = column_pairs(cols)
    if not len(encoded):
        return
    for a, b, totals in matcher.scored_pairs(cols, encoded, floor=review):
        keep = np.flatnonzero(totals >= review)
        for ia, ib, person, total in zip(cols.ids[a[keep]].tolist(),
                                         cols.ids[b[keep]].tolist(),
                                         cols.person[a[keep]].tolist(), totals[keep].tolist()):
            score = probability(matcher, "person" if person else "company", total)
            if total >= link:
                graph.link([ia], [ib], score, ("scored",))
            else:
                graph.propose(ia, ib, score)


def find_clusters(progress: Optional[Progress] = None) -> tuple[MatchGraph, int]:
    """Score every candidate pair under the active rules; (graph of matches, rows read)."""
    rules = active_rules()
    graph = MatchGraph(dismissed_pairs())
    total = db.session.execute(text("SELECT COUNT(*) FROM customer")).scalar_one()
    done = 0
    reported = 0

    def advance(n: int) -> None:
        nonlocal done, reported
        done += n
        if progress and done - reported >= PROGRESS_EVERY:
            reported = done
            progress(min(done, total), total)

    if progress:
        progress(0, total)
    _scan_shared_keys(graph, rules)
    rule = rules.get("scored")
    if rule is not None:
        _scan_scored(graph, rule, advance)
    if progress:
        progress(total, total)
    return graph, total


def _insert_clusters(conn, heads: list[dict]) -> list[int]:
    """Insert these clusters; their ids, in order."""
    if conn.dialect.name != "sqlite":
        return conn.execute(insert(DedupeCluster).returning(DedupeCluster.id,
                                                            sort_by_parameter_order=True),
                            heads).scalars().all()
    # SQLite cannot return a multi-row insert's ids in order, so SQLAlchemy would send one
    # statement per cluster (471,049 at 1M). Its writers take turns and this transaction
    # has written already (the open clusters' delete): the ids after the largest are ours,
    # the ones SQLite would give them itself.
    last = conn.execute(select(func.coalesce(func.max(DedupeCluster.id), 0))).scalar_one()
    ids = list(range(last + 1, last + 1 + len(heads)))
    conn.execute(insert(DedupeCluster), [dict(head, id=i) for head, i in zip(heads, ids)])
    return ids


def _store(graph: MatchGraph, clusters: list[list[int]]) -> list[tuple]:
    """Replace the open clusters with these; (customer_id, cluster_id, score, reasons) rows."""
    conn = db.session.connection()
    open_ids = select(DedupeCluster.id).where(DedupeCluster.status == "open")
    conn.execute(delete(DedupeClusterMember).where(
        DedupeClusterMember.cluster_id.in_(open_ids)))
    conn.execute(delete(DedupeCluster).where(DedupeCluster.status == "open"))
    now = utcnow()
    out: list[tuple] = []
    for start in range(0, len(clusters), 2000):
        chunk = clusters[start:start + 2000]
        heads = [{"status": "open", "member_count": len(c), "created_at": now,
                  "best_score": max(graph.best[i] for i in c),
                  "reasons": ",".join(sorted(set().union(*(graph.kinds[i] for i in c))))}
                 for c in chunk]
        ids = _insert_clusters(conn, heads)
        members = []
        for cluster_id, cluster in zip(ids, chunk):
            for cid in cluster:
                reasons = ",".join(sorted(graph.kinds[cid]))
                members.append((cluster_id, cid, graph.best[cid], reasons))
                out.append((cid, cluster_id, graph.best[cid], reasons.replace(",", ";")))
        _insert_members(conn, members)
    return out


def _insert_members(conn, rows: list[tuple[int, int, int, str]]) -> None:
    """(cluster_id, customer_id, score, reasons) rows, handed to the driver as they are: one
    per clustered customer (950,178 at 1M), and SQLAlchemy's handling of each row's
    parameters cost about as much as the insert itself."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO {DedupeClusterMember.__tablename__} (cluster_id, customer_id, score, "
        f"reasons) VALUES ({', '.join([mark] * 4)})", rows)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused: the scan makes millions of lists, dicts and arrays
    that live until it ends (a customer's columns, keys, pairs), and the collector would walk
    all of them again and again for nothing (at 100k, 40 % of the time spent working out the
    candidate pairs). Nothing the scan makes refers to itself."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def scan(actor_id: Optional[int] = None, progress: Optional[Progress] = None) -> ScanResult:
    """Find the duplicate clusters of the whole customer table and store them for review
    (replacing the open ones). Audited; commits."""
    started = time.perf_counter()
    try:
        with _no_cycle_collection():
            graph, total = find_clusters(progress)
            clusters = graph.clusters()
            rows = _store(graph, clusters)
        by_kind: dict[str, int] = defaultdict(int)
        for cluster in clusters:
            for kind in set().union(*(graph.kinds[i] for i in cluster)):
                by_kind[kind] += 1
        result = ScanResult(customers=total, clusters=len(clusters), members=len(rows),
                            links=graph.links, by_kind=dict(by_kind), rows=rows,
                            linked=graph.clusters(proposed=False),
                            seconds=time.perf_counter() - started)
        audit.record(actor_id, "dedupe_scan", "dedupe_cluster", None,
                     {k: (None, v) for k, v in result.summary().items() if k != "by_kind"})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("dedupe scan: %s", result.summary())
    return result


def write_csv(rows: Iterable[tuple], out: TextIO) -> int:
    """customer_id, cluster_id, score, reasons (rule kinds separated by ';'), name: the
    scan's rows with each customer's name, to review in Excel."""
    writer = SafeCsvWriter(out)
    writer.writerow(["customer_id", "cluster_id", "score", "reasons", "name"])
    n = 0
    rows = iter(rows)
    while chunk := list(islice(rows, NAMES_PER_QUERY)):
        names = dict(db.session.execute(select(Customer.id, Customer.name).where(
            Customer.id.in_([row[0] for row in chunk]))).all())
        for row in chunk:
            writer.writerow([*row, names.get(row[0], "")])
            n += 1
    return n
