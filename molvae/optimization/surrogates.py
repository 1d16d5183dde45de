"""Surrogates that rank candidates before the oracle sees them, and Thompson-like picking.

:class:`TanimotoGP` (the default of ``strategy="trust_region"``) is a Gaussian process on
Morgan fingerprints with the Tanimoto kernel of :func:`molvae.chem.fingerprints.tanimoto_matrix`;
:func:`latent_model` builds the surrogates on latent means (``"mlp"``, ``"gp"``).

``scipy.linalg`` and :mod:`molvae.predictors` (torch) are imported where they are used:
importing the optimizer (the ``molvae`` command builds its parser from its names) stays quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from molvae.chem.fingerprints import tanimoto_matrix

__all__ = ["TanimotoGP", "thompson_pick", "check_surrogate", "latent_model", "SURROGATES"]

SURROGATES = ("tanimoto", "mlp", "gp", None)


class TanimotoGP:
    """Exact GP regression with a Tanimoto kernel on binary fingerprints (y standardized).

    The noise variance is picked from a small grid by marginal likelihood; at most
    ``max_points`` rows are used (the best half plus the most recent ones).  Two empty
    fingerprints have kernel value 0 (no evidence they are alike).
    """

    def __init__(self, max_points: int = 1500, noise_grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 0.3)) -> None:
        self.max_points = max_points
        self.noise_grid = tuple(noise_grid)

    @staticmethod
    def kernel(A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return tanimoto_matrix(A, B, empty=0.0)

    def fit(self, X: np.ndarray, y: np.ndarray) -> TanimotoGP:
        from scipy.linalg import cho_factor, cho_solve

        if len(y) > self.max_points:
            order = np.argsort(-y, kind="stable")
            half = self.max_points // 2
            rest = np.setdiff1d(np.arange(len(y)), order[:half])[-(self.max_points - half) :]
            idx = np.concatenate([order[:half], rest])
            X, y = X[idx], y[idx]
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        yn = (y - self.mu) / self.sd
        K = self.kernel(X, X).astype(np.float64)
        best = None
        for noise in self.noise_grid:
            try:
                cf = cho_factor(K + noise * np.eye(len(K)), lower=True)
            except np.linalg.LinAlgError:
                continue
            alpha = cho_solve(cf, yn)
            lml = -0.5 * yn @ alpha - np.log(np.diag(cf[0])).sum()
            if best is None or lml > best[0]:
                best = (lml, cf, alpha, noise)
        if best is None:
            raise np.linalg.LinAlgError("Tanimoto GP: no noise level gives a positive definite kernel")
        _, self.cf, self.alpha, self.noise = best
        self.X = X
        return self

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at the rows of ``Xs``."""
        from scipy.linalg import solve_triangular

        Ks = self.kernel(Xs, self.X).astype(np.float64)
        mean = Ks @ self.alpha
        v = solve_triangular(self.cf[0], Ks.T, lower=True)
        var = np.clip(1.0 - (v * v).sum(0), 1e-9, None)
        return mean * self.sd + self.mu, np.sqrt(var) * self.sd


def thompson_pick(mean: np.ndarray, std: np.ndarray, q: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``q`` candidates, each the argmax of an independent draw mean + std * N(0, 1)."""
    n = len(mean)
    if n <= q:
        return list(np.argsort(-mean))
    chosen: list[int] = []
    mask = np.zeros(n, dtype=bool)
    for _ in range(q):
        draw = mean + std * rng.standard_normal(n)
        draw[mask] = -np.inf
        j = int(np.argmax(draw))
        chosen.append(j)
        mask[j] = True
    return chosen


def check_surrogate(surrogate: Any) -> None:
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; use 'tanimoto', 'mlp', 'gp' or None")


def latent_model(surrogate: str, device: Any):
    """An unfitted predictor on latent means: ``"mlp"`` (an MLP ensemble) or ``"gp"`` (a GP)."""
    from molvae.predictors import GPPredictor, MLPEnsemble

    if surrogate == "mlp":
        return MLPEnsemble(n_members=5, hidden=(128, 128), max_epochs=150, patience=15, batch_size=64, device=device)
    if surrogate == "gp":
        return GPPredictor(max_points=800, n_restarts=0)
    raise ValueError(f"unknown latent surrogate {surrogate!r}; use 'mlp' or 'gp'")
