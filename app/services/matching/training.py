"""Estimating a model without labels: blocked candidate pairs → comparison levels → EM per
customer type → thresholds (model.choose_thresholds). The shipped default is made this way by
scripts/train_matching_defaults.py; `flask crm dedupe-train` does it on a deployment's own
customers (train_on_customers) and stores the model as the active one."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np

from app.services.matching.em import Estimate, estimate, initial_m, level_shares, patterns
from app.services.matching.fields import FIELDS, NEEDS, compare_all
from app.services.matching.model import Model, default_model, from_estimates
from app.services.matching.records import Columns
from app.services.matching.blocking import PASSES, candidate_pairs, column_keys, pass_pairs

BATCH = 200_000
STREAM_ROWS = 20_000
MIN_PAIRS = 1000    # fewer candidate pairs of a type than this: that type keeps the default
RANDOM_PAIRS = 300_000  # random record pairs per customer type that u is measured on
SEED = 19


def random_pairs(cols: Columns, per_type: int = RANDOM_PAIRS, seed: int = SEED) -> np.ndarray:
    """Random pairs of distinct same-type rows (encoded a*n + b, a < b), seeded."""
    rng = np.random.default_rng(seed)
    n = len(cols)
    out = []
    for person in (False, True):
        rows = np.flatnonzero(cols.person == person)
        if len(rows) < 2:
            continue
        a = rows[rng.integers(0, len(rows), per_type)]
        b = rows[rng.integers(0, len(rows), per_type)]
        keep = a != b
        a, b = a[keep], b[keep]
        out.append(np.minimum(a, b) * n + np.maximum(a, b))
    return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def level_patterns(cols: Columns, pairs: Optional[np.ndarray] = None, batch: int = BATCH
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per customer type, the distinct level rows of the candidate pairs and their counts."""
    pairs = candidate_pairs(cols) if pairs is None else pairs
    n = len(cols)
    counts: dict[str, dict[bytes, float]] = {kind: {} for kind in FIELDS}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        a, b = chunk // n, chunk % n
        for kind in FIELDS:
            sel = np.flatnonzero((cols.person[a] == (kind == "person"))
                                 & (cols.person[a] == cols.person[b]))
            if not len(sel):
                continue
            levels, _ = compare_all(kind, cols.take(a[sel], NEEDS[kind]),
                                            cols.take(b[sel], NEEDS[kind]))
            rows, c = patterns(levels)
            seen = counts[kind]
            for row, k in zip(rows, c):
                key = row.tobytes()
                seen[key] = seen.get(key, 0.0) + float(k)
    out = {}
    for kind, seen in counts.items():
        width = len(FIELDS[kind])
        rows = np.array([np.frombuffer(k, dtype=np.int8) for k in seen], dtype=np.int8)
        out[kind] = (rows.reshape(-1, width), np.array(list(seen.values()), dtype=np.float64))
    return out


# The fields each keyed pass selects its pairs on: left out of that pass's EM session.
_SELECTED_ON = {
    "name": {"name", "surname", "given"}, "pinyin": {"name", "surname", "given"},
    "phone": {"phone", "mobile"}, "email": {"email"},
    "addr": {"address", "house_number", "place"},
    "birth": {"birthday"},  # the key holds only an initial of the name
}
# Passes whose pairs hold whole households (one address, one landline): a family there looks
# like one person written many ways, so they teach nothing about how a person's duplicates
# differ and no person session runs on them.
_HOUSEHOLD_PASSES = {"person": {"addr", "phone"}, "company": set()}


def estimate_type(kind: str, cols: Columns, pats_by_pass: dict[str, tuple],
                  all_pats: tuple, background: tuple) -> Estimate:
    """m/u of one customer type, Splink's way: u from random pairs; m by one EM session per
    blocking pass, each on that pass's pairs and leaving out the fields the pass selected
    them on; a field's m is the average of the sessions it took part in, weighted by the
    duplicates each session found; finally the share of duplicates among all candidate pairs
    (EM on the prior alone)."""
    fields = FIELDS[kind]
    sizes = [len(f.levels) for f in fields]
    u = level_shares(sizes, *background)
    sums = [np.zeros(k) for k in sizes]
    weights = np.zeros(len(fields))
    for pass_name, (rows, counts) in pats_by_pass.items():
        if counts.sum() < MIN_PAIRS / 10 or pass_name in _HOUSEHOLD_PASSES[kind]:
            continue
        active = [f.name not in _SELECTED_ON[pass_name] for f in fields]
        est = estimate(sizes, rows, counts, fixed_u=u, active=active)
        matches = est.prior * est.pairs
        for j, on in enumerate(active):
            if on:
                sums[j] += matches * est.m[j]
                weights[j] += matches
    # a field no session could judge (every pass selected on it) keeps EM's starting m
    m = [s / w if w > 0 else initial_m(k) for s, w, k in zip(sums, weights, sizes)]
    return estimate(sizes, *all_pats, fixed_u=u, fixed_m=m)


def train(records: Iterable[Mapping[str, Any]], provenance: dict[str, Any]
          ) -> tuple[Model, dict[str, Any]]:
    """A model estimated on `records` (a stream is read once); a customer type with fewer than
    MIN_PAIRS candidate pairs keeps the default model's m/u. Also returns the statistics."""
    cols = Columns(records, keys_of=column_keys)
    pairs = candidate_pairs(cols)
    pats = level_patterns(cols, pairs)
    background = level_patterns(cols, random_pairs(cols))
    by_pass = {p: level_patterns(cols, pass_pairs(cols, p)) for p in PASSES}
    estimates, stats = {}, {"records": len(cols), "pairs": int(len(pairs)), "types": {}}
    for kind in FIELDS:
        rows, counts = pats[kind]
        if counts.sum() >= MIN_PAIRS:
            est = estimate_type(kind, cols, {p: by_pass[p][kind] for p in PASSES},
                                pats[kind], background[kind])
            stats["types"][kind] = {"pairs": int(counts.sum()), "prior": est.prior,
                                    "converged": est.converged}
        else:
            est = _as_estimate(default_model(), kind)
            stats["types"][kind] = {"pairs": int(counts.sum()), "default": True}
        estimates[kind] = est
    provenance = dict(provenance, records=len(cols), pairs=int(len(pairs)),
                      trained_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return from_estimates(estimates, pats, provenance), stats


def _as_estimate(model: Model, kind: str) -> Estimate:
    return Estimate(m=[np.asarray(x) for x in model.m[kind]],
                    u=[np.asarray(x) for x in model.u[kind]], prior=model.prior[kind],
                    iterations=0, converged=True, pairs=0)


# --- the deployment's own model -------------------------------------------------------------
def customer_records(batch: int = STREAM_ROWS) -> Iterator[dict]:
    """Every customer's stored matching columns, streamed in id order (keyset pages)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer
    from app.services.matching.records import RECORD_FIELDS

    columns = [getattr(Customer, name) for name in RECORD_FIELDS]
    last = 0
    while True:
        rows = db.session.execute(select(*columns).where(Customer.id > last)
                                  .order_by(Customer.id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield dict(zip(RECORD_FIELDS, row))
        last = rows[-1][0]


def train_on_customers(actor_id: Optional[int]) -> tuple[Model, dict[str, Any], int]:
    """Estimate m/u on the customers (no labels), store the model as the active one (the
    previous one kept, inactive) and audit it. Returns (model, statistics, row id)."""
    from sqlalchemy import update

    from app.extensions import db
    from app.models import DedupeModel
    from app.services import audit

    model, stats = train(customer_records(), {"data": "this deployment's customers",
                                              "method": "blocking + EM (flask crm dedupe-train)"})
    try:
        db.session.execute(update(DedupeModel).where(DedupeModel.active.is_(True))
                           .values(active=False))
        row = DedupeModel(model=json.dumps(model.to_json(), ensure_ascii=False),
                          link_threshold=model.link_threshold,
                          review_threshold=model.review_threshold, pairs_used=stats["pairs"],
                          trained_by_id=actor_id, active=True)
        db.session.add(row)
        db.session.flush()
        audit.record(actor_id, "train", "dedupe_model", row.id,
                     {"link_threshold": (None, model.link_threshold),
                      "review_threshold": (None, model.review_threshold),
                      "pairs_used": (None, stats["pairs"])})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return model, stats, row.id


def active_model() -> Model:
    """The active trained model, else the shipped default (also outside an app context)."""
    from flask import has_app_context

    if not has_app_context():
        return default_model()
    from sqlalchemy import select

    from app.extensions import db
    from app.models import DedupeModel

    row = db.session.execute(select(DedupeModel.id, DedupeModel.model)
                             .where(DedupeModel.active.is_(True))
                             .order_by(DedupeModel.id.desc()).limit(1)).first()
    if row is None:
        return default_model()
    return _parsed(row.id, row.model)


_CACHE: dict[tuple[int, str], Model] = {}


def _parsed(row_id: int, text: str) -> Model:
    """Parsed once per stored model (the entry check asks for it on every save)."""
    key = (row_id, text)
    if key not in _CACHE:
        _CACHE.clear()  # one active model at a time
        _CACHE[key] = Model.from_json(json.loads(text))
    return _CACHE[key]
