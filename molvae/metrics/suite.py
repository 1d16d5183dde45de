"""MOSES distribution-learning metrics (Polykovskiy et al. 2020), computed the way the
MOSES reference implementation computes them.

``get_all_metrics(gen)`` returns validity, unique@k, novelty, IntDiv/IntDiv2, Filters,
and FCD/SNN/Frag/Scaf against the MOSES test and scaffold-test sets, plus Wasserstein
distances of logP, SA, QED and molecular weight against the test set.

Conventions (as in MOSES): invalid strings only count against ``valid``; every other
metric uses the valid generated molecules as canonical SMILES (duplicates kept, except
for unique@k and novelty).  unique@k looks at the first k *valid* molecules.  Fingerprints
are Morgan radius 2, 1024 bits.  Scaffolds with fewer than two rings are ignored, and
the ring filter rejects rings of eight or more atoms (MOSES ``len(ring) >= 8``).
IntDiv_p is MOSES's ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all ordered pairs, self
pairs included.

The per-molecule work is in :mod:`~molvae.metrics.features` (and
:mod:`~molvae.metrics.filters`), the Tanimoto and count-vector reductions in
:mod:`~molvae.metrics.similarity`, ChemNet and the Fréchet distance in
:mod:`~molvae.metrics.chemnet`, the cached reference and training-set statistics in
:mod:`~molvae.metrics.references`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from molvae.chem import canonical_many
from molvae.metrics._common import PROGRESS_MIN, as_list, nan
from molvae.metrics.chemnet import frechet_distance
from molvae.metrics.features import PROPERTY_NAMES, describe_many, fingerprints
from molvae.metrics.references import (
    ALL_PARTS,
    NAMED_REFERENCES,
    ReferenceStats,
    compute_stats,
    hash64,
    ref_for,
    reference_stats,
    train_hashes,
)
from molvae.metrics.similarity import cos_similarity, intdiv_from_fps, snn_from_fps

__all__ = [
    "get_all_metrics",
    "metrics_table",
    "fraction_valid",
    "fraction_unique",
    "novelty",
    "internal_diversity",
    "fraction_passes_filters",
    "snn",
    "frag_similarity",
    "scaffold_similarity",
    "fcd",
    "wasserstein_properties",
]

logger = logging.getLogger(__name__)


def _canonical(gen: Sequence, n_jobs: int | None) -> list[str | None]:
    """Canonical SMILES of every generated string (each one parsed: no probe shortcut)."""
    gen = as_list(gen)
    return canonical_many(gen, n_jobs=n_jobs, probe=0, progress=len(gen) >= PROGRESS_MIN)


def _valid_canonical(gen: Sequence, n_jobs: int | None) -> list[str]:
    return [c for c in _canonical(gen, n_jobs) if c is not None]


# --------------------------------------------------------------------------- reductions of computed statistics


def _unique_at(canon_valid: Sequence[str], k: int | None) -> float:
    if k is not None:
        if len(canon_valid) < k:
            logger.warning("unique@%d: only %d valid molecules; computing on those", k, len(canon_valid))
        canon_valid = canon_valid[:k]
    return len(set(canon_valid)) / len(canon_valid) if len(canon_valid) else nan()


def _novelty_from_canonical(canon: Iterable[str], hashes: np.ndarray) -> float:
    """Share of the distinct ``canon`` whose hash is not among the sorted training ``hashes``."""
    unique = hash64(set(canon))
    if len(unique) == 0:
        return nan()
    pos = np.searchsorted(hashes, unique)
    pos = np.minimum(pos, max(len(hashes) - 1, 0))
    seen = hashes[pos] == unique if len(hashes) else np.zeros(len(unique), bool)
    return float(1.0 - seen.mean())


def _fcd_from(gen: ReferenceStats, ref: ReferenceStats) -> float:
    if gen.fcd_mu is None or ref.fcd_mu is None:
        return nan()
    return frechet_distance(gen.fcd_mu, gen.fcd_sigma, ref.fcd_mu, ref.fcd_sigma)


def _wasserstein_from(gen_props, ref_props) -> dict[str, float]:
    # scipy.stats is heavy (about 1 s of import): loaded when property distances are asked for
    from scipy.stats import wasserstein_distance

    out = {}
    for k in PROPERTY_NAMES:
        g = gen_props[k][np.isfinite(gen_props[k])] if gen_props else np.zeros(0)
        r = ref_props[k][np.isfinite(ref_props[k])] if ref_props else np.zeros(0)
        out[k] = float(wasserstein_distance(r, g)) if len(g) and len(r) else nan()
    return out


# --------------------------------------------------------------------------- metrics on plain lists


def fraction_valid(gen: Sequence, n_jobs: int | None = None) -> float:
    """Fraction of entries RDKit parses into a non-empty molecule (NaN for an empty list)."""
    canon = _canonical(gen, n_jobs)
    if not canon:
        return nan()
    return sum(c is not None for c in canon) / len(canon)


def fraction_unique(gen: Sequence, k: int | None = None, n_jobs: int | None = None) -> float:
    """unique@k: distinct canonical SMILES among the first ``k`` valid molecules (MOSES
    applies it after dropping invalid ones); all valid molecules when ``k`` is None."""
    return _unique_at(_valid_canonical(gen, n_jobs), k)


def novelty(gen: Sequence, train: str | Sequence[str] = "moses", n_jobs: int | None = None) -> float:
    """Fraction of distinct valid generated molecules absent from the training set
    (``"moses"``, a SMILES file, or a list); both sides compared as canonical SMILES."""
    return _novelty_from_canonical(_valid_canonical(gen, n_jobs), train_hashes(train, n_jobs))


def internal_diversity(gen: Sequence, p: int = 1, device: str = "cpu", n_jobs: int | None = None) -> float:
    """IntDiv_p = 1 - mean_i (mean_j T_ij^p)^(1/p) over the valid molecules (MOSES), p in {1, 2}."""
    return intdiv_from_fps(fingerprints(gen, n_jobs), [p], device)[p]


def fraction_passes_filters(gen: Sequence, n_jobs: int | None = None) -> float:
    """Fraction of valid molecules passing ``mol_passes_filters`` (NaN when none are valid)."""
    rows = describe_many(gen, {"filters"}, n_jobs, "filters")
    return float(np.mean([r["filters"] for r in rows])) if rows else nan()


def snn(gen: Sequence, reference, device: str = "cpu", n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Mean over valid generated molecules of the max Tanimoto similarity to the reference."""
    ref = ref_for(reference, {"fp"}, n_jobs, device, max_reference)
    return snn_from_fps(fingerprints(gen, n_jobs), ref.fps, device, desc=f"SNN {ref.name}")


def frag_similarity(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Cosine similarity of BRICS fragment count vectors (MOSES Frag)."""
    ref = ref_for(reference, {"frag"}, n_jobs, "cpu", max_reference)
    return cos_similarity(ref.frag, compute_stats(as_list(gen), "gen", {"frag"}, n_jobs)[0].frag)


def scaffold_similarity(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Cosine similarity of Bemis-Murcko scaffold count vectors (>= 2 rings; MOSES Scaf)."""
    ref = ref_for(reference, {"scaf"}, n_jobs, "cpu", max_reference)
    return cos_similarity(ref.scaf, compute_stats(as_list(gen), "gen", {"scaf"}, n_jobs)[0].scaf)


def fcd(gen: Sequence, reference, device: str = "cpu", n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Fréchet ChemNet Distance between the valid generated molecules and the reference."""
    ref = ref_for(reference, {"fcd"}, n_jobs, device, max_reference)
    return _fcd_from(compute_stats(as_list(gen), "gen", {"fcd"}, n_jobs, device)[0], ref)


def wasserstein_properties(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> dict[str, float]:
    """Wasserstein-1 distances of logP, SA, QED and weight: ``{"logP": .., "SA": .., "QED": .., "weight": ..}``."""
    ref = ref_for(reference, {"props"}, n_jobs, "cpu", max_reference)
    return _wasserstein_from(compute_stats(as_list(gen), "gen", {"props"}, n_jobs)[0].props, ref.props)


# --------------------------------------------------------------------------- everything


def _resolve_references(reference) -> list[tuple[str, object]]:
    """[(label, reference)] from names, a SMILES list, ReferenceStats, or {label: ref}."""
    if isinstance(reference, Mapping):
        return list(reference.items())
    if isinstance(reference, ReferenceStats):
        return [("Test", reference)]
    if isinstance(reference, (str, os.PathLike)):
        reference = [reference]
    refs = list(reference)

    def is_ref(r) -> bool:
        return isinstance(r, (ReferenceStats, os.PathLike)) or (
            isinstance(r, str) and (r in NAMED_REFERENCES or (("." in r or os.sep in r) and os.path.isfile(r)))
        )

    if refs and all(is_ref(r) for r in refs):
        labels = [NAMED_REFERENCES.get(r) if isinstance(r, str) else None for r in refs]
        return [(lab or ("Test" if i == 0 else f"Test{i + 1}"), r) for i, (lab, r) in enumerate(zip(labels, refs))]
    return [("Test", refs)]


def get_all_metrics(
    gen: Sequence,
    reference=("test", "test_scaffolds"),
    train: str | Sequence[str] | None = "moses",
    k: int | Sequence[int] = (1000, 10000),
    n_jobs: int | None = None,
    device: str = "cpu",
    max_reference: int | None = None,
) -> dict[str, float]:
    """The MOSES metric suite for a list of generated SMILES.

    ``reference``: MOSES set names (``"test"`` -> ``/Test``, ``"test_scaffolds"`` ->
    ``/TestSF``), a list of SMILES (``/Test``), ReferenceStats, or ``{label: ref}``.
    Property distances (``logP/<label>`` etc.) use the first reference only, as in MOSES.
    ``train``: ``"moses"``, a SMILES list or file, or None to skip novelty.
    """
    gen = as_list(gen)
    ks = [k] if isinstance(k, int) else list(k)
    refs = _resolve_references(reference)
    metrics: dict[str, float] = {}

    parts = ALL_PARTS if refs else frozenset({"fp"})
    gen_stats, rows = compute_stats(gen, "gen", parts, n_jobs, device, extra={"filters"})
    canon = gen_stats.smiles
    metrics["valid"] = len(canon) / len(gen) if gen else nan()
    for kk in ks:
        metrics[f"unique@{kk}"] = _unique_at(canon, kk)
    if not canon:
        logger.warning("no valid molecules in the generated set; metrics are NaN")

    ref_stats = [
        (label, reference_stats(r, name=f"custom-{label}" if not isinstance(r, (str, os.PathLike)) else None,
                                max_reference=max_reference, n_jobs=n_jobs, device=device))
        for label, r in refs
    ]
    for label, ref in ref_stats:
        metrics[f"FCD/{label}"] = _fcd_from(gen_stats, ref)
        metrics[f"SNN/{label}"] = snn_from_fps(gen_stats.fps, ref.fps, device, desc=f"SNN {ref.name}")
        metrics[f"Frag/{label}"] = cos_similarity(ref.frag, gen_stats.frag)
        metrics[f"Scaf/{label}"] = cos_similarity(ref.scaf, gen_stats.scaf)
    intdiv = intdiv_from_fps(gen_stats.fps, [1, 2], device)
    metrics["IntDiv"] = intdiv[1]
    metrics["IntDiv2"] = intdiv[2]
    metrics["Filters"] = float(np.mean([r["filters"] for r in rows])) if rows else nan()
    if ref_stats:
        label, ref = ref_stats[0]
        for prop, value in _wasserstein_from(gen_stats.props, ref.props).items():
            metrics[f"{prop}/{label}"] = value
    if train is not None:
        metrics["novelty"] = _novelty_from_canonical(canon, train_hashes(train, n_jobs)) if canon else nan()
    return metrics


def metrics_table(results: Mapping[str, float] | Sequence[Mapping[str, float]]):
    """DataFrame indexed by metric with the mean, std (ddof=1) and count over runs (e.g. seeds)."""
    if isinstance(results, Mapping):
        results = [results]
    df = pd.DataFrame(list(results), dtype=float)
    table = pd.DataFrame({"mean": df.mean(), "std": df.std(ddof=1), "n": df.count()})
    table.index.name = "metric"
    return table
