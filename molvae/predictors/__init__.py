"""Property predictors on latent vectors: a Tanimoto/latent GP and an MLP ensemble."""

from molvae.predictors.all import *  # noqa: F401,F403
from molvae.predictors.all import __all__  # noqa: F401
