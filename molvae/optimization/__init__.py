"""Latent-space optimization: :func:`optimize` and what it is made of.

``run`` (:func:`optimize`, the how-to in its docstring), ``objectives``, ``constraints``,
``storage`` (Optuna storages), ``ledger`` (the shared study and its budget), ``candidates``,
``scored``, ``session`` (one worker's run), ``surrogates``, ``mutations`` (SELFIES edits),
``strategies`` (one module per strategy) and ``result`` (:class:`OptimizationResult`).
"""

from molvae.optimization.records import LEDGER_KEY
from molvae.optimization.result import OptimizationResult
from molvae.optimization.run import optimize
from molvae.optimization.storage import open_storage
from molvae.optimization.strategies import SAMPLERS, STRATEGIES

__all__ = ["optimize", "OptimizationResult", "STRATEGIES", "SAMPLERS", "open_storage", "LEDGER_KEY"]
