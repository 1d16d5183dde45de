"""molvae: a SELFIES VAE toolkit for molecular design.

>>> import molvae as mv
>>> model = mv.load_pretrained()            # doctest: +SKIP
>>> model.sample(10, seed=0)                # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import chem, diagnostics, likelihood, metrics, oracles, predictors, properties  # noqa: E402
from .config import ModelConfig, TrainConfig  # noqa: E402
from .data import load_dataset, read_smiles  # noqa: E402
from .model import MolVAE, load_pretrained  # noqa: E402
from .optimize import OptimizationResult, optimize  # noqa: E402
from .prior import GaussianMixturePrior, fit_prior  # noqa: E402
from .tokenizer import SelfiesTokenizer, TokenizationError  # noqa: E402
from .train import train  # noqa: E402

__all__ = [
    "__version__",
    "chem",
    "properties",
    "metrics",
    "predictors",
    "oracles",
    "diagnostics",
    "likelihood",
    "fit_prior",
    "GaussianMixturePrior",
    "optimize",
    "OptimizationResult",
    "MolVAE",
    "load_pretrained",
    "SelfiesTokenizer",
    "TokenizationError",
    "ModelConfig",
    "TrainConfig",
    "train",
    "load_dataset",
    "read_smiles",
]
