"""Gaussian-process property predictor on latent vectors (scikit-learn, imported when a GP is
built: importing molvae.predictors for the MLP ensemble does not load it).

Saved state: the kernel structure name, the fitted kernel hyperparameters (``theta``) and
the training rows actually used; the process is rebuilt on load from these, without running
the optimizer.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch

from molvae.predictors.base import PREDICT_CHUNK, LatentPredictor

__all__ = ["GPPredictor"]

logger = logging.getLogger(__name__)


class GPPredictor(LatentPredictor):
    """Gaussian process regression on latent vectors (scikit-learn).

    Kernel ``ConstantKernel * RBF + WhiteKernel`` with one length scale (``ard=False``,
    the default, suited to D ~ 64-128 with few hundred points) or one per dimension.
    The length scale starts at the median pairwise distance of the training points.
    At most ``max_points`` rows are used: a fraction ``best_fraction`` of the best-y
    rows (highest when ``best="max"``, lowest when ``"min"``, none when ``None``) and
    a random remainder.

    ``predict`` returns the latent-function std by default (epistemic; the fitted
    white noise excluded); ``predict(Z, include_noise=True)`` adds the noise.
    """

    kind = "gp"
    kernel_name = "constant*rbf+white"

    def __init__(
        self,
        max_points: int = 2000,
        ard: bool = False,
        n_restarts: int = 2,
        best: str | None = "max",
        best_fraction: float = 0.5,
        alpha: float = 1e-10,
    ) -> None:
        super().__init__()
        if best not in ("max", "min", None):
            raise ValueError(f"best must be 'max', 'min' or None, got {best!r}")
        if max_points < 2:
            raise ValueError("max_points must be >= 2")
        if not 0.0 <= best_fraction <= 1.0:
            raise ValueError("best_fraction must be within [0, 1]")
        self.max_points = int(max_points)
        self.ard = bool(ard)
        self.n_restarts = int(n_restarts)
        self.best = best
        self.best_fraction = float(best_fraction)
        self.alpha = float(alpha)
        self.gp_: Any = None
        self.X_train_: np.ndarray | None = None  # rows actually used (after subsampling)
        self.y_train_: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "ard": self.ard,
            "n_restarts": self.n_restarts,
            "best": self.best,
            "best_fraction": self.best_fraction,
            "alpha": self.alpha,
        }

    # ---------------------------------------------------------------- internals
    def _kernel(self, dim: int, length_scale: float) -> Any:
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        ls = np.full(dim, length_scale) if self.ard else length_scale
        return ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            ls, (length_scale * 1e-2, length_scale * 1e2)
        ) + WhiteKernel(0.1, (1e-6, 1e1))

    def _subsample(self, Z: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(y)
        if n <= self.max_points:
            return Z, y
        rng = np.random.default_rng(seed)
        n_best = int(round(self.best_fraction * self.max_points)) if self.best else 0
        order = np.argsort(-y if self.best == "max" else y, kind="stable")
        chosen = order[:n_best]
        rest = order[n_best:]
        chosen = np.concatenate([chosen, rng.choice(rest, self.max_points - n_best, replace=False)])
        chosen.sort()
        logger.info("GP: using %d of %d rows (%d best-y + random)", self.max_points, n, n_best)
        return Z[chosen], y[chosen]

    def _fit(self, Z: np.ndarray, y: np.ndarray, seed: int) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        Z, y = self._subsample(Z, y, seed)
        sub = Z[np.random.default_rng(seed).permutation(len(Z))[:500]]
        d = np.sqrt(((sub[:, None, :] - sub[None, :, :]) ** 2).sum(-1))
        d = d[np.triu_indices(len(sub), 1)]
        ls0 = float(np.median(d[d > 0])) if np.any(d > 0) else 1.0
        gp = GaussianProcessRegressor(
            kernel=self._kernel(Z.shape[1], ls0),
            alpha=self.alpha,
            normalize_y=True,
            n_restarts_optimizer=self.n_restarts,
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            gp.fit(Z, y)
        for w in caught:
            logger.debug("GP fit: %s", w.message)
        self.gp_ = gp
        self.X_train_, self.y_train_ = Z, y
        logger.debug("GP kernel: %s", gp.kernel_)

    def _predict(self, Z: np.ndarray, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        means, stds = [], []
        # sklearn's normalize_y divides by std(y); its predicted std includes the white noise
        y_scale = getattr(self.gp_, "_y_train_std", None)
        if y_scale is None:
            y_scale = float(np.std(self.y_train_)) or 1.0
        y_scale = float(np.squeeze(y_scale))
        noise_var = float(self.gp_.kernel_.k2.noise_level) * y_scale**2
        for start in range(0, len(Z), PREDICT_CHUNK):
            m, s = self.gp_.predict(Z[start : start + PREDICT_CHUNK], return_std=True)
            if not include_noise:
                s = np.sqrt(np.clip(s**2 - noise_var, 0.0, None))
            means.append(m)
            stds.append(s)
        return np.concatenate(means), np.concatenate(stds)

    def predict(self, Z: Any, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``Z (N, D)`` -> ``(mean (N,), std (N,))``; std excludes the noise unless asked."""
        return self._checked_predict(Z, include_noise=include_noise)

    @property
    def kernel_(self) -> Any:
        """The fitted scikit-learn kernel."""
        return None if self.gp_ is None else self.gp_.kernel_

    # ---------------------------------------------------------------- serialization
    def _state(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel_name,
            "theta": [float(t) for t in self.gp_.kernel_.theta],
            "X": torch.tensor(self.X_train_, dtype=torch.float64),
            "y": torch.tensor(self.y_train_, dtype=torch.float64),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor

        if state.get("kernel") != self.kernel_name:
            raise ValueError(f"unknown GP kernel structure {state.get('kernel')!r}")
        X = state["X"].detach().cpu().numpy().astype(np.float64)
        y = state["y"].detach().cpu().numpy().astype(np.float64)
        theta = np.asarray(state["theta"], dtype=np.float64)
        if X.ndim != 2 or y.shape != (len(X),):
            raise ValueError(f"bad GP training data shapes {X.shape}, {y.shape}")
        template = self._kernel(X.shape[1], 1.0)
        if theta.shape != template.theta.shape:
            raise ValueError(f"GP theta has {theta.size} values, the kernel needs {template.theta.size}")
        gp = GaussianProcessRegressor(
            kernel=template.clone_with_theta(theta), alpha=self.alpha, normalize_y=True, optimizer=None
        )
        gp.fit(X, y)
        self.gp_ = gp
        self.X_train_, self.y_train_ = X, y
