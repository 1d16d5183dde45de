"""``make_predictor``: an unfitted predictor by kind name."""

from __future__ import annotations

from typing import Any

from molvae.predictors.base import LatentPredictor
from molvae.predictors.gp import GPPredictor
from molvae.predictors.mlp import MLPEnsemble

__all__ = ["make_predictor"]

_KINDS: dict[str, type[LatentPredictor]] = {
    "mlp": MLPEnsemble,
    "ensemble": MLPEnsemble,
    "mlp_ensemble": MLPEnsemble,
    "gp": GPPredictor,
    "gaussian_process": GPPredictor,
}


def make_predictor(kind: str = "mlp", **kwargs: Any) -> LatentPredictor:
    """Build an unfitted predictor: ``"mlp"`` (:class:`MLPEnsemble`) or ``"gp"`` (:class:`GPPredictor`)."""
    cls = _KINDS.get(kind.lower().strip())
    if cls is None:
        raise ValueError(f"unknown predictor kind {kind!r}; choose 'mlp' or 'gp'")
    return cls(**kwargs)
