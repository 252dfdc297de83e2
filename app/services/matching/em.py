"""Fellegi–Sunter m/u probabilities estimated without labels (expectation–maximisation over
the comparison levels of candidate pairs, fields assumed independent given match status)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

SMOOTH = 0.5        # pseudo-count per level: no level has probability 0 (an infinite weight)
MAX_ITER = 200
TOLERANCE = 1e-6


@dataclass
class Estimate:
    m: list[np.ndarray]       # per field: P(level | match)
    u: list[np.ndarray]       # per field: P(level | non-match)
    prior: float              # share of matches among the candidate pairs
    iterations: int
    converged: bool
    pairs: int


def patterns(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a level matrix and their counts: EM works on a few thousand patterns,
    not millions of pairs."""
    if not len(levels):
        return levels.reshape(0, levels.shape[1]), np.zeros(0)
    unique, counts = np.unique(levels, axis=0, return_counts=True)
    return unique, counts.astype(np.float64)


def initial_m(n_levels: int) -> np.ndarray:
    return _initial(n_levels)[0]


def _initial(n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """m falls and u rises from the first level (agreement) to the last (disagreement)."""
    rank = np.arange(n_levels, dtype=np.float64)
    m = 0.5 ** (rank * 1.5)
    u = 2.0 ** rank
    return m / m.sum(), u / u.sum()


def level_shares(levels_count: list[int], pats: np.ndarray, counts: np.ndarray
                 ) -> list[np.ndarray]:
    """Each field's level distribution (missing left out, smoothed) over counted patterns:
    on random record pairs, which are almost all different customers, this is u."""
    out = []
    for j, k in enumerate(levels_count):
        hits = np.array([counts[pats[:, j] == level].sum() for level in range(k)]) + SMOOTH
        out.append(hits / hits.sum())
    return out


def estimate(levels_count: list[int], pats: np.ndarray, counts: np.ndarray,
             prior: float = 0.1, max_iter: int = MAX_ITER,
             fixed_u: Optional[list[np.ndarray]] = None,
             fixed_m: Optional[list[np.ndarray]] = None,
             active: Optional[list[bool]] = None) -> Estimate:
    """EM from the level patterns (rows of level indices, -1 = missing) and their counts.
    With `fixed_u` (u measured on random pairs, as Splink does) only m and the prior are
    estimated: blocked pairs agree on their blocking key far more often than random pairs do,
    and an EM left to find u there mistakes that agreement for the mark of a duplicate.
    `active`: the fields that take part (the others neither count nor change: the fields a
    blocking pass selected its pairs on say nothing about those pairs); `fixed_m`: estimate
    the prior only."""
    fields = len(levels_count)
    init = [_initial(k) for k in levels_count]
    m = list(fixed_m) if fixed_m is not None else [mu[0] for mu in init]
    active = active or [True] * fields
    u = list(fixed_u) if fixed_u is not None else [mu[1] for mu in init]
    onehots = []
    for j, k in enumerate(levels_count):
        col = pats[:, j]
        onehots.append((col[:, None] == np.arange(k)[None, :]).astype(np.float64))
    total = counts.sum()
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        log_m = np.full(len(pats), np.log(prior))
        log_u = np.full(len(pats), np.log(1 - prior))
        for j in range(fields):
            if not active[j]:
                continue
            log_m += onehots[j] @ np.log(m[j])
            log_u += onehots[j] @ np.log(u[j])
        g = 1.0 / (1.0 + np.exp(np.clip(log_u - log_m, -700, 700)))
        wm, wu = counts * g, counts * (1 - g)
        new_m = m if fixed_m is not None else \
            [(wm @ oh + SMOOTH) / (wm @ oh + SMOOTH).sum() if on else old
             for oh, on, old in zip(onehots, active, m)]
        new_u = u if fixed_u is not None else \
            [(wu @ oh + SMOOTH) / (wu @ oh + SMOOTH).sum() for oh in onehots]
        new_prior = float(np.clip(wm.sum() / total, 1e-6, 1 - 1e-6)) if total else prior
        delta = max(max(np.abs(a - b).max() for a, b in zip(new_m, m)),
                    max(np.abs(a - b).max() for a, b in zip(new_u, u)),
                    abs(new_prior - prior))
        m, u, prior = new_m, new_u, new_prior
        if delta < TOLERANCE:
            converged = True
            break
    return Estimate(m=m, u=u, prior=prior, iterations=it, converged=converged,
                    pairs=int(total))


def posterior(weights: np.ndarray, prior: float) -> np.ndarray:
    """P(match | total weight) for a candidate pair."""
    log_odds = weights + np.log2(prior / (1 - prior))
    return 1.0 / (1.0 + np.exp2(-np.clip(log_odds, -200, 200)))
