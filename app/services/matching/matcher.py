"""Matcher: the one scorer and blocking for the entry check, the import and the batch scan."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from app.services.matching.blocking import candidate_pairs, column_keys, record_keys
from app.services.matching.explain import Explained, Part
from app.services.matching.fields import FIELDS, MISSING, NEEDS, TEXT_ORDER, compare_all
from app.services.matching.model import Model, default_model, scored
from app.services.matching.records import Columns, record_of, repeat

BATCH = 200_000   # pairs scored together by link(): bounds the level matrix and similarities


def _kind(rec: Mapping[str, Any]) -> str:
    return "person" if rec.get("customer_type") == "person" else "company"


class Matcher:
    """Fellegi–Sunter scoring with the weights of one model (the shipped default unless
    given); see app.services.matching for the fields, levels and thresholds."""

    def __init__(self, model: Optional[Model] = None):
        self.model = model or default_model()

    @classmethod
    def current(cls) -> "Matcher":
        """The deployment's active trained model (flask crm dedupe-train), else the default."""
        from app.services.matching.training import active_model

        return cls(active_model())

    @property
    def link_threshold(self) -> float:
        return self.model.link_threshold

    @property
    def review_threshold(self) -> float:
        return self.model.review_threshold

    # --- one pair, one query ------------------------------------------------------------
    def explain(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> Explained:
        """The total and each field's level, similarity and weight; a company and a person
        are never one customer (total −inf, no parts)."""
        ra, rb = record_of(a), record_of(b)
        kind = _kind(ra)
        if kind != _kind(rb):
            return Explained(total=float("-inf"), parts=[])
        levels, sims = compare_all(kind, repeat(ra, 1), repeat(rb, 1))
        total, household = scored(self.model, kind, levels)
        return self._explained(kind, levels, sims, total, household, 0)

    def _explained(self, kind: str, levels: np.ndarray, sims: list, total: np.ndarray,
                   household: np.ndarray, i: int) -> Explained:
        """Row i of a comparison as an Explained (explain and score share it)."""
        table = self.model.weights(kind)
        parts = []
        for j, field in enumerate(FIELDS[kind]):
            level = int(levels[i, j])
            sim = None if sims[j] is None or level < 0 else int(round(float(sims[j][i]) * 100))
            parts.append(Part(field=field.name,
                              level="missing" if level < 0 else field.levels[level],
                              similarity=sim, weight=float(table[j, level])))
        if household[i] < 0:
            parts.append(Part(field="household", level="capped", similarity=None,
                              weight=float(household[i])))
        return Explained(total=float(total[i]), parts=parts)

    def score(self, query: Mapping[str, Any],
              candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The total of `query` against each candidate, vectorised per field (−inf for a
        candidate of the other customer type)."""
        return self.score_explained(query, candidates)[0]

    def score_explained(self, query: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]],
                        explain_from: float = float("inf")
                        ) -> tuple[np.ndarray, dict[int, Explained]]:
        """The totals, and {candidate index: Explained} for those at or above
        `explain_from` — from the same comparison (the entry check explains its matches
        without comparing them again)."""
        cols = candidates if isinstance(candidates, Columns) else Columns(candidates)
        out = np.full(len(cols), -np.inf)
        accounts: dict[int, Explained] = {}
        q = record_of(query)
        kind = _kind(q)
        same = np.flatnonzero(cols.person == (kind == "person"))
        if len(same):
            levels, sims = compare_all(kind, repeat(q, len(same)), cols.take(same))
            total, household = scored(self.model, kind, levels)
            out[same] = total
            for i in np.flatnonzero(total >= explain_from).tolist():
                accounts[int(same[i])] = self._explained(kind, levels, sims, total, household, i)
        return out, accounts

    # --- batch ------------------------------------------------------------------------------
    def blocking_keys(self, rec: Mapping[str, Any]) -> set[tuple[str, str]]:
        return record_keys(record_of(rec))

    def columns(self, records: Iterable[Mapping[str, Any]]) -> Columns:
        """The records column by column with their blocking keys (what link() works on)."""
        return records if isinstance(records, Columns) else Columns(records, keys_of=column_keys)

    def candidates(self, cols: Columns) -> np.ndarray:
        """Candidate row pairs of every blocking pass, encoded row_a * n + row_b."""
        return candidate_pairs(cols)

    def scored_pairs(self, cols: Columns, pairs: Optional[np.ndarray] = None,
                     batch: int = BATCH, floor: Optional[float] = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(rows_a, rows_b, totals) of every candidate pair, a batch at a time. With a
        `floor`, a pair that cannot reach it is not compared to the end: its total is −inf
        (the totals at or above the floor are exactly those without one)."""
        pairs = self.candidates(cols) if pairs is None else pairs
        n = len(cols)
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            a, b = chunk // n, chunk % n
            total = np.full(len(chunk), -np.inf)
            for kind in ("company", "person"):
                # blocking keys and neighbourhoods never mix types, but say so here too
                sel = np.flatnonzero((cols.person[a] == (kind == "person"))
                                     & (cols.person[a] == cols.person[b]))
                if not len(sel):
                    continue
                if floor is None:
                    levels, _ = compare_all(kind, cols.take(a[sel], NEEDS[kind]),
                                            cols.take(b[sel], NEEDS[kind]))
                    total[sel] = scored(self.model, kind, levels)[0]
                else:
                    total[sel] = self._totals_from(kind, cols, a[sel], b[sel], floor)
            yield a, b, total

    def _totals_from(self, kind: str, cols: Columns, rows_a: np.ndarray, rows_b: np.ndarray,
                     floor: float) -> np.ndarray:
        """Totals of the pairs that reach `floor`, −inf for the others. Most candidate pairs
        of a block are two other customers: the cheap fields (hash equality, numbers) and,
        for each text field, the best weight its hashes still allow bound the total; the
        similarities are computed field by field only for the pairs still able to reach the
        floor (the household cap only lowers a total, so the bound holds)."""
        fields = FIELDS[kind]
        table = self.model.weights(kind)
        a, b = cols.take(rows_a), cols.take(rows_b)
        levels = np.full((len(rows_a), len(fields)), MISSING, dtype=np.int8)
        bound = np.zeros(len(rows_a))
        hoped: dict[int, np.ndarray] = {}
        for j, field in enumerate(fields):
            if field.exact_key is None:
                levels[:, j] = field.compare(a, b)[0]
                bound += table[j, levels[:, j]]       # MISSING (−1) is the padding's 0
                continue
            key = field.exact_key + "#"
            present = (a[key] != 0) & (b[key] != 0)
            best_other = table[j, 1:len(field.levels)].max()
            hoped[j] = np.where(present, np.where(a[key] == b[key], table[j, 0], best_other),
                                0.0)
            bound += hoped[j]
        alive = np.flatnonzero(bound >= floor)
        for name in TEXT_ORDER[kind]:
            if not len(alive):
                break
            j = next(i for i, f in enumerate(fields) if f.name == name)
            level = fields[j].compare(cols.take(rows_a[alive]), cols.take(rows_b[alive]))[0]
            levels[alive, j] = level
            bound[alive] += table[j, level] - hoped[j][alive]
            alive = alive[bound[alive] >= floor]
        total = np.full(len(rows_a), -np.inf)
        if len(alive):
            total[alive] = scored(self.model, kind, levels[alive])[0]
        return total

    def link(self, records: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, int, float]]:
        """(id_a, id_b, total), id_a < id_b, for every blocked pair scoring at least the
        review threshold."""
        cols = self.columns(records)
        for a, b, total in self.scored_pairs(cols, floor=self.review_threshold):
            keep = total >= self.review_threshold
            ia, ib = cols.ids[a[keep]], cols.ids[b[keep]]
            lo, hi = np.minimum(ia, ib), np.maximum(ia, ib)
            for x, y, t in zip(lo.tolist(), hi.tolist(), total[keep].tolist()):
                yield x, y, t
