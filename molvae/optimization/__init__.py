"""Latent-space optimization with Optuna: objectives, constraints, the budget ledger, strategies, results."""

from molvae.optimization.run import *  # noqa: F401,F403
from molvae.optimization.run import __all__  # noqa: F401
