"""molvae: a SELFIES VAE toolkit for molecular design.

>>> import molvae as mv
>>> model = mv.load_pretrained()            # doctest: +SKIP
>>> model.sample(10, seed=0)                # doctest: +SKIP

Importing the package loads nothing heavy: each public name is imported on first use
(PEP 562 ``__getattr__``), so ``molvae --version`` does not wait for torch and RDKit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from molvae._version import __version__

# public name -> the module that defines it (None: the name is that module itself)
_ATTRIBUTES: dict[str, tuple[str, str | None]] = {
    "MolVAE": ("molvae.vae.model", "MolVAE"),
    "load_pretrained": ("molvae.vae.checkpoint", "load_pretrained"),
    "GaussianMixturePrior": ("molvae.vae.prior", "GaussianMixturePrior"),
    "fit_prior": ("molvae.vae.prior", "fit_prior"),
    "SelfiesTokenizer": ("molvae.tokenizer", "SelfiesTokenizer"),
    "TokenizationError": ("molvae.tokenizer", "TokenizationError"),
    "ModelConfig": ("molvae.config", "ModelConfig"),
    "TrainConfig": ("molvae.config", "TrainConfig"),
    "train": ("molvae.training.loop", "train"),
    "optimize": ("molvae.optimization.run", "optimize"),
    "OptimizationResult": ("molvae.optimization.result", "OptimizationResult"),
    "evaluate": ("molvae.evaluate", "evaluate"),
    "load_dataset": ("molvae.data.datasets", "load_dataset"),
    "read_smiles": ("molvae.data.readers", "read_smiles"),
    "chem": ("molvae.chem", None),
    "data": ("molvae.data", None),
    "properties": ("molvae.properties", None),
    "metrics": ("molvae.metrics", None),
    "predictors": ("molvae.predictors", None),
    "oracles": ("molvae.oracles", None),
    "diagnostics": ("molvae.training.diagnostics", None),
    "likelihood": ("molvae.vae.likelihood", None),
}

__all__ = ["__version__", *_ATTRIBUTES]


def __getattr__(name: str):
    try:
        module_name, attr = _ATTRIBUTES[name]
    except KeyError:
        raise AttributeError(f"module 'molvae' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from molvae import chem, metrics, oracles, predictors, properties  # noqa: F401
    from molvae.config import ModelConfig, TrainConfig  # noqa: F401
    from molvae.data.datasets import load_dataset  # noqa: F401
    from molvae.data.readers import read_smiles  # noqa: F401
    from molvae.evaluate import evaluate  # noqa: F401
    from molvae.optimization.result import OptimizationResult  # noqa: F401
    from molvae.optimization.run import optimize  # noqa: F401
    from molvae.tokenizer import SelfiesTokenizer, TokenizationError  # noqa: F401
    from molvae.training import diagnostics  # noqa: F401
    from molvae.training.loop import train  # noqa: F401
    from molvae.vae import likelihood  # noqa: F401
    from molvae.vae.checkpoint import load_pretrained  # noqa: F401
    from molvae.vae.model import MolVAE  # noqa: F401
    from molvae.vae.prior import GaussianMixturePrior, fit_prior  # noqa: F401
