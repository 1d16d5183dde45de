"""The search strategies of :func:`molvae.optimize` (``strategy=``), by name.

``STRATEGIES`` maps each name to its class (iterating it gives the names, default first);
``SAMPLERS`` are the Optuna samplers of ``strategy="optuna"``.
"""

from __future__ import annotations

from molvae.optimization.strategies.base import Strategy
from molvae.optimization.strategies.gradient import Gradient
from molvae.optimization.strategies.optuna_samplers import SAMPLERS, OptunaStrategy
from molvae.optimization.strategies.trust_region import TrustRegion

__all__ = ["STRATEGIES", "SAMPLERS", "Strategy", "TrustRegion", "Gradient", "OptunaStrategy"]

STRATEGIES: dict[str, type[Strategy]] = {
    TrustRegion.name: TrustRegion,
    Gradient.name: Gradient,
    OptunaStrategy.name: OptunaStrategy,
}
