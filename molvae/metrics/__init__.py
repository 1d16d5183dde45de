"""Distribution metrics of generated molecules (MOSES definitions): validity to FCD, the public suite.

Modules: ``suite`` (``get_all_metrics``, ``metrics_table`` and each metric), ``features``
(per-molecule descriptors), ``filters`` (MCF/PAINS), ``similarity`` (Tanimoto and count-vector
reductions), ``chemnet`` (ChemNet moments, Fréchet distance), ``references`` (cached reference
and training-set statistics).
"""

from molvae.metrics.features import fingerprints
from molvae.metrics.filters import mol_passes_filters
from molvae.metrics.references import ReferenceStats, reference_stats
from molvae.metrics.suite import (
    fcd,
    fraction_passes_filters,
    fraction_unique,
    fraction_valid,
    frag_similarity,
    get_all_metrics,
    internal_diversity,
    metrics_table,
    novelty,
    scaffold_similarity,
    snn,
    wasserstein_properties,
)

__all__ = [
    "ReferenceStats",
    "get_all_metrics",
    "metrics_table",
    "reference_stats",
    "fraction_valid",
    "fraction_unique",
    "novelty",
    "internal_diversity",
    "fraction_passes_filters",
    "mol_passes_filters",
    "snn",
    "frag_similarity",
    "scaffold_similarity",
    "fcd",
    "wasserstein_properties",
    "fingerprints",
]
