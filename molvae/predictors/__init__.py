"""Property predictors on latent vectors: a Gaussian process and an MLP ensemble.

Modules: ``base`` (:class:`LatentPredictor`: fit with cross-validation, checks, the
pickle-free file format), ``gp`` (:class:`GPPredictor`), ``mlp`` (:class:`MLPEnsemble`),
``factory`` (:func:`make_predictor`).
"""

from molvae.predictors.base import FORMAT, FORMAT_VERSION, LatentPredictor
from molvae.predictors.factory import make_predictor
from molvae.predictors.gp import GPPredictor
from molvae.predictors.mlp import MLPEnsemble

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LatentPredictor",
    "GPPredictor",
    "MLPEnsemble",
    "make_predictor",
]
