"""Fréchet ChemNet Distance: moments of ChemNet activations (the ``fcd`` package's model and
padding) and the Fréchet distance of two Gaussians.

The module is named ``chemnet`` rather than ``fcd``: ``molvae.metrics.fcd`` is the public
metric function.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from molvae.metrics._common import PROGRESS_MIN, torch_threads

__all__ = ["FCD_PAD", "chemnet_moments", "frechet_distance"]

logger = logging.getLogger(__name__)

FCD_PAD = 350  # ChemNet's trained padding length (fcd.utils DEFAULT_PAD_LEN)
_WIDTH = 512  # ChemNet's penultimate layer


def chemnet_moments(
    smiles: Sequence[str], device="cpu", batch_size: int = 512, chunk: int = 4096
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Mean (512,) and covariance (512, 512) of ChemNet activations; (None, None) below 2 molecules."""
    import fcd as fcd_pkg  # heavy (torch and the ChemNet weights): imported when FCD is asked for
    import torch

    from molvae.utils.device import resolve_device  # imports torch

    n = len(smiles)
    if n < 2:
        logger.warning("can't compute FCD statistics for fewer than 2 molecules (got %d)", n)
        return None, None
    device = str(resolve_device(device))
    model = fcd_pkg.load_ref_model()
    short = [s for s in smiles if len(s) < FCD_PAD]
    long_ = [s for s in smiles if len(s) >= FCD_PAD]
    total = np.zeros(_WIDTH, np.float64)
    outer = np.zeros((_WIDTH, _WIDTH), np.float64)
    # long SMILES change the padding of a whole batch in fcd, so they go one at a time
    batches = [short[i : i + chunk] for i in range(0, len(short), chunk)] + [[s] for s in long_]
    with torch.no_grad(), warnings.catch_warnings(), torch_threads(n <= 256):
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for batch in tqdm(batches, desc="ChemNet", disable=n < PROGRESS_MIN, mininterval=2):
            act = fcd_pkg.get_predictions(model, batch, batch_size=batch_size, n_jobs=0, device=device)
            act = np.asarray(act, dtype=np.float64)
            total += act.sum(0)
            outer += act.T @ act
    mu = total / n
    sigma = (outer - n * np.outer(mu, mu)) / (n - 1)
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), via symmetric eigendecompositions."""
    try:  # one BLAS thread: 512x512 is small, and threads stall on a busy machine
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    except Exception:
        limit = contextlib.nullcontext()
    with limit:
        vals, vecs = np.linalg.eigh(sigma1)
        root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
        m = root1 @ sigma2 @ root1
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(d, 0.0)
