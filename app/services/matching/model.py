"""The scorer's parameters: per customer type and field, the m and u probability of each
comparison level and the weight log2(m/u) a level adds to a pair's total; the two thresholds.

Stored as JSON: the shipped default (default_model.json, made by
scripts/train_matching_defaults.py) and the models `flask crm dedupe-train` estimates on a
deployment's own customers (table dedupe_model).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from app.services.matching.em import Estimate
from app.services.matching.fields import FIELDS

DEFAULT_PATH = Path(__file__).with_name("default_model.json")
FORMAT = 1
# Review: pairs whose probability of being one customer is at least this
# (under the estimated share of duplicates among the candidate pairs) go to the review page.
REVIEW_POSTERIOR = 0.5
# Link: the total at which a pair is this likely to be one customer (see choose_thresholds).
LINK_POSTERIOR = 0.99
HOUSEHOLD_MARGIN = 1.0


@dataclass
class Model:
    m: dict[str, list[list[float]]]          # kind -> field -> level -> P(level | match)
    u: dict[str, list[list[float]]]          # kind -> field -> level -> P(level | non-match)
    prior: dict[str, float]                  # kind -> share of matches among candidate pairs
    link_threshold: float
    review_threshold: float
    provenance: dict[str, Any] = field(default_factory=dict)
    _tables: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def weights(self, kind: str) -> np.ndarray:
        """fields × (levels + 1): log2(m/u), padded with 0 for the missing level (index -1).

        For a field whose levels run from the closest agreement to the farthest, a level
        weighs at most what the one before it weighs: EM estimates a rare level (a close but
        not equal address, the same province but not the same city) from a handful of pairs,
        and such a level weighing more than an exact agreement would be noise, not evidence."""
        if kind not in self._tables:
            fields = FIELDS[kind]
            table = np.zeros((len(fields), max(len(f.levels) for f in fields) + 1))
            for j, f in enumerate(fields):
                m, u = np.asarray(self.m[kind][j]), np.asarray(self.u[kind][j])
                weights = np.log2(m / u)
                table[j, :len(f.levels)] = np.minimum.accumulate(weights) if f.ordered \
                    else weights
            self._tables[kind] = table
        return self._tables[kind]

    @property
    def household_cap(self) -> float:
        return self.link_threshold - HOUSEHOLD_MARGIN

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "link_threshold": self.link_threshold,
                "review_threshold": self.review_threshold, "prior": self.prior,
                "fields": {kind: [{"field": f.name, "levels": list(f.levels),
                                   "m": [round(x, 6) for x in self.m[kind][j]],
                                   "u": [round(x, 6) for x in self.u[kind][j]]}
                                  for j, f in enumerate(FIELDS[kind])] for kind in FIELDS},
                "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Model":
        m: dict[str, list[list[float]]] = {}
        u: dict[str, list[list[float]]] = {}
        for kind, fields in FIELDS.items():
            stored = {f["field"]: f for f in data["fields"][kind]}
            m[kind], u[kind] = [], []
            for f in fields:
                entry = _upgraded(f.levels, stored[f.name])
                if list(entry["levels"]) != list(f.levels):
                    raise ValueError(f"model levels of {kind}.{f.name} do not match the code")
                m[kind].append([float(x) for x in entry["m"]])
                u[kind].append([float(x) for x in entry["u"]])
        return cls(m=m, u=u, prior={k: float(v) for k, v in data["prior"].items()},
                   link_threshold=float(data["link_threshold"]),
                   review_threshold=float(data["review_threshold"]),
                   provenance=dict(data.get("provenance") or {}))


# Levels added to a field after models were stored, each with the level it was split from:
# a stored model lacking one weighs it as that level (what the code did before the split)
# until `flask crm dedupe-train` estimates it on the deployment's data.
SPLIT_FROM = {"far_han": "far"}   # a person's given name: two different Chinese names


def _upgraded(levels: tuple[str, ...], entry: dict[str, Any]) -> dict[str, Any]:
    """A stored field whose levels are the code's but for levels of SPLIT_FROM added at the
    end: those appended, as copies of the level each was split from."""
    stored = list(entry["levels"])
    added = levels[len(stored):]
    if not added or stored != list(levels[:len(stored)]) \
            or any(SPLIT_FROM.get(level) not in stored for level in added):
        return entry
    source = [stored.index(SPLIT_FROM[level]) for level in added]
    return {**entry, "levels": list(levels),
            "m": [*entry["m"], *(entry["m"][i] for i in source)],
            "u": [*entry["u"], *(entry["u"][i] for i in source)]}


def level_weights(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """pairs × fields: each field's level weight (missing: 0)."""
    index = np.where(levels < 0, table.shape[1] - 1, levels)
    return table[np.arange(table.shape[0])[None, :], index]


def totals(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each pair's total weight before the household cap: the sum of its level weights."""
    return level_weights(table, levels).sum(axis=1)


# A person's household fields: a family shares them — the surname too (siblings, a parent
# and child) — so together they say "same household", not "same person".
HOUSEHOLD = ("surname", "place", "address", "house_number", "phone")


def household_columns(kind: str) -> list[int]:
    return [j for j, f in enumerate(FIELDS[kind]) if kind == "person" and f.name in HOUSEHOLD]


def scored(model: "Model", kind: str, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(totals, household adjustment ≤ 0): for persons the household fields together add at
    most HOUSEHOLD_MARGIN less than the link threshold, so that family members who share an
    address and a landline link only when their names or birthdays agree too (they still
    reach the review threshold)."""
    weights = level_weights(model.weights(kind), levels)
    total = weights.sum(axis=1)
    cols = household_columns(kind)
    if not cols:
        return total, np.zeros(len(total))
    excess = np.maximum(weights[:, cols].sum(axis=1) - model.household_cap, 0.0)
    return total - excess, -excess


def from_estimates(estimates: dict[str, Estimate], pats: dict[str, tuple[np.ndarray, np.ndarray]],
                   provenance: dict[str, Any]) -> Model:
    """A model from one EM estimate per customer type, with thresholds chosen from it (see
    choose_thresholds)."""
    model = Model(m={k: [list(map(float, x)) for x in e.m] for k, e in estimates.items()},
                  u={k: [list(map(float, x)) for x in e.u] for k, e in estimates.items()},
                  prior={k: float(e.prior) for k, e in estimates.items()},
                  link_threshold=0.0, review_threshold=0.0, provenance=provenance)
    model.link_threshold, model.review_threshold = choose_thresholds(model, pats)
    return model


def choose_thresholds(model: Model, pats: dict[str, tuple[np.ndarray, np.ndarray]]
                      ) -> tuple[float, float]:
    """Thresholds read off the model itself, without labels.

    A pair's probability of being one customer follows from its total and the estimated share
    of duplicates among the candidate pairs of its type (prior): log2 odds = total +
    log2(prior / (1 − prior)). Link: the total at which that probability reaches
    LINK_POSTERIOR (99 %) for the customer type with the rarest duplicates (the highest such
    total: one threshold must hold for both types, and precision comes first). Review: the
    total at which it reaches REVIEW_POSTERIOR (50 %) for the type with the most duplicates
    (the lowest), never above the link threshold. Types without candidate pairs are left out.
    """
    def total_at(p: float, prior: float) -> float:
        return float(np.log2(p / (1 - p)) - np.log2(prior / (1 - prior)))

    kinds = [k for k, (levels, counts) in pats.items() if len(levels) and counts.sum()] \
        or list(model.prior)
    link = max(total_at(LINK_POSTERIOR, model.prior[k]) for k in kinds)
    review = min(total_at(REVIEW_POSTERIOR, model.prior[k]) for k in kinds)
    link = float(np.floor(link * 10) / 10)
    return link, float(min(np.floor(review * 10) / 10, link))


@lru_cache(maxsize=1)
def default_model() -> Model:
    """The shipped model (weights estimated once by EM; provenance inside the file)."""
    return Model.from_json(json.loads(DEFAULT_PATH.read_text(encoding="utf-8")))
