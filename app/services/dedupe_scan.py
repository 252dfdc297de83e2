"""Batch dedupe scan (批量查重): duplicate clusters across the whole customer table, for review.

The scan applies the admins' active dedupe rules (the ones the entry check applies) to every
pair that could match, without comparing all pairs. Blocking:

- numbers and e-mail: a mobile/phone number or an e-mail address held by two customers
  (their own fields or their contacts'); the database groups them (GROUP BY … HAVING).
- company names: rows stream ordered by name_block (the core's first two characters, the
  block the entry check uses too). Equal cores are grouped first; the distinct cores of a
  block are scored with rapidfuzz's cdist (fuzz.ratio, the entry check's scorer) at the
  company_name rule's threshold, and the rule's same_city applies (the region in the name,
  else the city; an unknown city is no evidence of another city, as in the check). A
  second, cheap pass catches names that differ in their first characters (another block):
  sorted by the reversed core, each name is scored with its NEIGHBOURS next names.
- persons: rows stream ordered by name pinyin (one name across scripts, as the check looks
  them up); within a name, birthday parts are compared and folded addresses are scored.

Big blocks (a common first two characters): a block costing more than CELLS comparisons is
split twice — by the value's third character, and by its last character. Two strings that
are ≥ 90 % similar differ by about one edit, so they rarely differ in both places; a pair
found by either split is kept. A sub-block still above CAP rows is scored in sorted-
neighbourhood windows of CAP rows, each overlapping the next by half (sorted by the value
for the third-character split, by the reversed value for the last-character one). Blocks
under the limit are scored exactly like the entry check would score them.

Matches link customers in a union-find; each connected group becomes a cluster whose
members carry their best score and the rules that linked them. Pairs a reviewer dismissed
are never linked again. Re-running replaces the open clusters and leaves dismissed and
merged ones (the history) alone.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator, Optional, TextIO

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.process import cdist, cpdist
from sqlalchemy import delete, insert, select, text

from app.extensions import db
from app.models import (Customer, DedupeCluster, DedupeClusterMember, DedupeDismissal,
                        DedupeRule)
from app.models.customer import utcnow
from app.services import audit
from app.services.dedupe import active_rules
from app.services.exports import SafeCsvWriter

log = logging.getLogger("guishu.dedupe_scan")

CAP = 2000                 # rows scored together at most (a window of a big block)
CELLS = CAP * CAP          # comparisons one block may cost before it is split
PARALLEL_CELLS = 250_000   # from this size cdist's threads pay for themselves
NEIGHBOURS = 20            # suffix neighbours each company name is scored with
STREAM_ROWS = 20_000       # rows fetched per round trip
NAMES_PER_QUERY = 1000     # ids per IN list when the CSV output looks up names
PROGRESS_EVERY = 50_000    # rows between two progress reports

Progress = Callable[[int, Optional[int]], None]


# --- the graph of matches -------------------------------------------------------------------
class MatchGraph:
    """Union-find over customer ids, with each id's best score and the rules that linked it."""

    def __init__(self, dismissed: Iterable[tuple[int, int]] = ()):
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

    def clusters(self) -> list[list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for i in list(self.parent):
            groups[self._root(i)].append(i)
        return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


# --- fuzzy scoring within a block -------------------------------------------------------------
def _city_key(region: Optional[str], city: Optional[str]) -> Optional[str]:
    """The entry check's same-city key: the region in the name, else the city, without 市."""
    value = region or city
    return value.rstrip("市") or None if value else None


def _cost(idx: list[int], cities: Optional[list]) -> int:
    if cities is None:
        return len(idx) * len(idx)
    sizes: dict = defaultdict(int)
    for i in idx:
        sizes[cities[i]] += 1
    unknown = sizes.pop(None, 0)
    return sum(n * n for n in sizes.values()) + unknown * len(idx)


def _units(idx: list[int], cities: Optional[list]) -> Iterator[tuple[list[int], list[int]]]:
    """(queries, choices) to compare: everything with everything, or, with the same-city rule,
    each city with itself and the rows of unknown city with all."""
    if cities is None:
        yield idx, idx
        return
    by_city: dict = defaultdict(list)
    for i in idx:
        by_city[cities[i]].append(i)
    unknown = by_city.pop(None, [])
    for group in by_city.values():
        if len(group) > 1:
            yield group, group
    if unknown:
        yield unknown, idx


def _score_unit(values: list[str], queries: list[int], choices: list[int], threshold: int
                ) -> Iterator[tuple[int, int, int]]:
    if len(queries) * len(choices) <= 16:  # a handful: cdist's set-up costs more
        for i in queries:
            for j in choices:
                if i < j or (i > j and queries is not choices):
                    score = fuzz.ratio(values[i], values[j], score_cutoff=threshold)
                    if score:
                        yield i, j, int(score)
        return
    cells = len(queries) * len(choices)
    matrix = cdist([values[i] for i in queries], [values[j] for j in choices],
                   scorer=fuzz.ratio, score_cutoff=threshold, dtype=np.float32,
                   workers=-1 if cells >= PARALLEL_CELLS else 1)
    rows, cols = np.nonzero(matrix)
    same = queries is choices
    for r, c in zip(rows.tolist(), cols.tolist()):
        i, j = queries[r], choices[c]
        if i == j or (same and i > j):
            continue
        # int() truncates, as the entry check does: 89.9 is not 90.
        yield i, j, int(matrix[r, c])


def _windows(idx: list[int], order: Callable[[int], str]) -> Iterator[list[int]]:
    ordered = sorted(idx, key=order)
    step = CAP // 2
    for start in range(0, max(len(ordered) - step, 1), step):
        yield ordered[start:start + CAP]


def similar_pairs(values: list[str], threshold: int, cities: Optional[list] = None
                  ) -> Iterator[tuple[int, int, int]]:
    """(i, j, score) for the values (distinct, of one block) that are at least `threshold`
    similar and, if `cities` is given, of the same or an unknown city. Exact below CELLS
    comparisons; above, split and windowed (see the module docstring)."""
    everything = list(range(len(values)))
    if len(everything) < 2:
        return
    if _cost(everything, cities) <= CELLS:
        for queries, choices in _units(everything, cities):
            yield from _score_unit(values, queries, choices, threshold)
        return
    seen: set[tuple[int, int]] = set()
    splits = ((lambda v: v[2:3], lambda i: values[i]),
              (lambda v: v[-1:], lambda i: values[i][::-1]))
    for sub_key, order in splits:
        subs: dict[str, list[int]] = defaultdict(list)
        for i in everything:
            subs[sub_key(values[i])].append(i)
        for sub in subs.values():
            if len(sub) < 2:
                continue
            parts = [sub] if _cost(sub, cities) <= CELLS else list(_windows(sub, order))
            for part in parts:
                for queries, choices in _units(part, cities):
                    for i, j, score in _score_unit(values, queries, choices, threshold):
                        pair = (min(i, j), max(i, j))
                        if pair not in seen:
                            seen.add(pair)
                            yield i, j, score


# --- reading the keys -------------------------------------------------------------------------
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
_COMPANIES = """
SELECT id, name_block, name_core, name_region, city FROM customer
WHERE customer_type = 'company' AND name_block IS NOT NULL AND name_core IS NOT NULL
ORDER BY name_block"""
_PERSONS = """
SELECT id, name_pinyin, name_core, birth_year, birth_month, birth_day, birthday_lunar,
       address_norm
FROM customer WHERE customer_type = 'person' AND name_core IS NOT NULL
ORDER BY name_pinyin"""


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


def _scan_company_block(graph: MatchGraph, rows: list[tuple], rule: DedupeRule) -> None:
    """One name_block: equal cores of agreeing cities, then fuzzy cores."""
    groups: dict[tuple[str, Optional[str]], list[int]] = defaultdict(list)
    for cid, _, core, region, city in rows:
        groups[(core, _city_key(region, city) if rule.same_city else None)].append(cid)
    keys = list(groups)
    for key in keys:
        if len(groups[key]) > 1:
            graph.link(groups[key], groups[key], 100, ("company_name",))
    if len(keys) < 2:
        return
    values = [k[0] for k in keys]
    cities = [k[1] for k in keys] if rule.same_city else None
    if not rule.fuzzy:
        by_core: dict[str, list[int]] = defaultdict(list)
        for i, core in enumerate(values):
            by_core[core].append(i)
        pairs = ((i, j, 100) for idx in by_core.values() if len(idx) > 1
                 for q, c in _units(idx, cities) for i in q for j in c
                 if i < j or (i > j and q is not c))
    else:
        pairs = similar_pairs(values, rule.threshold, cities)
    for i, j, score in pairs:
        graph.link(groups[keys[i]], groups[keys[j]], score, ("company_name",))


def _scan_person_name(graph: MatchGraph, rows: list[tuple], rules: dict) -> None:
    """One name (same pinyin): birthday parts, then folded addresses."""
    if "person_birthday" in rules:
        by_day: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
        for cid, _, _, year, month, day, lunar, _ in rows:
            if month:
                by_day[(month, day, bool(lunar))][year].append(cid)
        for years in by_day.values():
            everyone = [c for ids in years.values() for c in ids]
            for year, ids in years.items():
                # An unknown year agrees with any year; two known years must be equal.
                graph.link(ids, everyone if year is None else ids, 100, ("person_birthday",))
    rule = rules.get("person_address")
    if rule is None:
        return
    groups: dict[str, list[int]] = defaultdict(list)
    for cid, *_, address in rows:
        if address:
            groups[address].append(cid)
    for ids in groups.values():
        if len(ids) > 1:
            graph.link(ids, ids, 100, ("person_address",))
    if rule.fuzzy and len(groups) > 1:
        values = list(groups)
        for i, j, score in similar_pairs(values, rule.threshold):
            graph.link(groups[values[i]], groups[values[j]], score, ("person_address",))


def _scan_suffix_neighbours(graph: MatchGraph, names: list[tuple], rule: DedupeRule) -> None:
    """A name whose first characters differ (聪瑞数码 / 瑞数码) is in another block. Sorted by
    the reversed core, such names are neighbours; each is scored with the next NEIGHBOURS
    (rapidfuzz cpdist along the diagonals: ratio is the same on reversed strings)."""
    names.sort()
    reversed_cores = [n[0] for n in names]
    for offset in range(1, min(NEIGHBOURS, len(names) - 1) + 1):
        scores = cpdist(reversed_cores[:-offset], reversed_cores[offset:], scorer=fuzz.ratio,
                        score_cutoff=rule.threshold, dtype=np.float32, workers=-1)
        for i in np.nonzero(scores)[0].tolist():
            (core_a, city_a, a), (core_b, city_b, b) = names[i], names[i + offset]
            if core_a == core_b or (city_a and city_b and city_a != city_b):
                continue  # equal cores were linked in their block
            graph.link([a], [b], int(scores[i]), ("company_name",))


# --- the scan ---------------------------------------------------------------------------------
@dataclass
class ScanResult:
    customers: int = 0
    clusters: int = 0
    members: int = 0
    links: int = 0
    seconds: float = 0.0
    by_kind: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # (customer_id, cluster_id, score, reasons)

    def summary(self) -> dict:
        return {"customers": self.customers, "clusters": self.clusters,
                "members": self.members, "links": self.links,
                "seconds": round(self.seconds, 1), "by_kind": self.by_kind}


def dismissed_pairs() -> set[tuple[int, int]]:
    return {(a, b) for a, b in db.session.execute(
        select(DedupeDismissal.customer_a, DedupeDismissal.customer_b)).all()}


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
    rule = rules.get("company_name")
    if rule is not None:
        suffixes: list[tuple] = []
        for block in _runs(_stream(_COMPANIES), 1):
            if len(block) > 1:
                _scan_company_block(graph, block, rule)
            if rule.fuzzy:
                suffixes.extend((core[::-1], _city_key(region, city) if rule.same_city
                                 else None, cid) for cid, _, core, region, city in block)
            advance(len(block))
        if suffixes:
            _scan_suffix_neighbours(graph, suffixes, rule)
            del suffixes
    if "person_birthday" in rules or "person_address" in rules:
        unnamed: dict[str, list[tuple]] = defaultdict(list)  # no pinyin: grouped by name
        for name in _runs(_stream(_PERSONS), 1):
            if name[0][1] is None:
                for row in name:
                    unnamed[row[2]].append(row)
            elif len(name) > 1:
                _scan_person_name(graph, name, rules)
            advance(len(name))
        for name in unnamed.values():
            if len(name) > 1:
                _scan_person_name(graph, name, rules)
    if progress:
        progress(total, total)
    return graph, total


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
        ids = conn.execute(insert(DedupeCluster).returning(DedupeCluster.id,
                                                           sort_by_parameter_order=True),
                           heads).scalars().all()
        members = []
        for cluster_id, cluster in zip(ids, chunk):
            for cid in cluster:
                reasons = ",".join(sorted(graph.kinds[cid]))
                members.append({"cluster_id": cluster_id, "customer_id": cid,
                                "score": graph.best[cid], "reasons": reasons})
                out.append((cid, cluster_id, graph.best[cid], reasons.replace(",", ";")))
        conn.execute(insert(DedupeClusterMember), members)
    return out


def scan(actor_id: Optional[int] = None, progress: Optional[Progress] = None) -> ScanResult:
    """Find the duplicate clusters of the whole customer table and store them for review
    (replacing the open ones). Audited; commits."""
    started = time.perf_counter()
    try:
        graph, total = find_clusters(progress)
        clusters = graph.clusters()
        rows = _store(graph, clusters)
        by_kind: dict[str, int] = defaultdict(int)
        for cluster in clusters:
            for kind in set().union(*(graph.kinds[i] for i in cluster)):
                by_kind[kind] += 1
        result = ScanResult(customers=total, clusters=len(clusters), members=len(rows),
                            links=graph.links, by_kind=dict(by_kind), rows=rows,
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
