"""Settings and synthetic latent data shared by the predictor tests (plain module; the fixtures
are in conftest.py)."""

from __future__ import annotations

import numpy as np

D = 16
N = 400
N_GP = 300  # the GP is cubic in the number of rows; fewer rows keep the tests fast
NOISE_STD = 0.1  # of the synthetic target

# small, fast settings for the MLP ensemble (the defaults are larger)
FAST_MLP = {"n_members": 3, "hidden": (64, 64), "lr": 3e-3, "batch_size": 128, "max_epochs": 80, "patience": 10, "device": "cpu"}
FAST_GP = {"n_restarts": 0}


def target(Z: np.ndarray) -> np.ndarray:
    return np.sin(Z[:, 0]) + 0.5 * Z[:, 1] ** 2 - Z[:, 2]


def synthetic(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, D))
    return Z, target(Z) + NOISE_STD * rng.standard_normal(n)


def far_points(n: int = 50, radius: float = 10.0, seed: int = 1) -> np.ndarray:
    """Points at distance ``radius`` from the origin, far outside the N(0, I) training data."""
    P = np.random.default_rng(seed).standard_normal((n, D))
    return radius * P / np.linalg.norm(P, axis=1, keepdims=True)


def only_plain(obj) -> bool:
    """True when ``obj`` holds only what ``torch.load(weights_only=True)`` reads without pickled classes."""
    import torch

    if isinstance(obj, dict):
        return all(isinstance(k, str) and only_plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(only_plain(v) for v in obj)
    return obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor))
