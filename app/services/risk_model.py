"""The risk score's arithmetic, in numpy alone (scikit-learn is a development tool here, not a
runtime dependency): L2-regularised logistic regression fitted by Newton's method (IRLS) on
standardised features, and the AUC as the rank (Mann-Whitney) statistic with ties.

Standardised features make the coefficients comparable, so a customer's reasons are read off
directly: coefficient × standardised value is each feature's push on the log-odds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

L2 = 1.0          # penalty on the (standardised) coefficients, not on the intercept
MAX_ITER = 50
TOL = 1e-9


@dataclass
class Fitted:
    intercept: float
    coef: np.ndarray     # per standardised feature
    mean: np.ndarray
    scale: np.ndarray
    iterations: int

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) - self.mean) / self.scale

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each feature's push on the log-odds (rows × features)."""
        return self.standardise(x) * self.coef

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.standardise(x) @ self.coef

    def probability(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.log_odds(x))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # no overflow warnings


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2) -> Fitted:
    """Minimise Σ log-loss + l2/2·‖coef‖² over standardised x (a constant column gets scale 1
    and, with the penalty, a zero coefficient)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    it = 0
    for it in range(1, MAX_ITER + 1):
        p = sigmoid(z @ w)
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-12 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < TOL:
            break
    return Fitted(float(w[0]), w[1:], mean, scale, it)


def gradient(model: Fitted, x: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """The objective's gradient at the fitted weights (intercept first): zero at the optimum."""
    z = np.column_stack([np.ones(len(x)), model.standardise(x)])
    w = np.concatenate([[model.intercept], model.coef])
    penalty = np.full(len(w), l2)
    penalty[0] = 0.0
    return z.T @ (sigmoid(z @ w) - np.asarray(y, dtype=float)) + penalty * w


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half: the Mann-Whitney U over
    the number of pairs, from average ranks. NaN when a class is missing."""
    score = np.asarray(score, dtype=float)
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # Average rank of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(score)]
    avg = (starts + ends + 1) / 2.0  # ranks are 1-based: mean of start+1 .. end
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
