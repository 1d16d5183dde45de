"""Distribution metrics of generated molecules (MOSES definitions): validity to FCD, the public suite."""

from molvae.metrics.suite import *  # noqa: F401,F403
from molvae.metrics.suite import __all__  # noqa: F401
