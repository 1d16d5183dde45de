"""RDKit property scorers on SMILES, with a canonical-SMILES cache and optional multiprocessing.

Every scorer in :data:`PROPERTIES` maps an RDKit ``Mol`` to a float.  The list-level entry
points (:func:`compute`, :func:`score`, :func:`similarity`, :func:`substructure`) take SMILES
and return NaN -- never 0 -- where RDKit cannot parse a molecule or a scorer raises.

Penalized logP comes in three clearly named conventions:

* ``"penalized_logp"`` -- standardized, as in GCPN, MoFlow, LIMO and JT-VAE's Bayesian
  optimization code: each of logP, -SA and -cycle is z-scored with ZINC250k statistics
  (see :data:`PENALIZED_LOGP_STATS`) and the three are summed.
* ``"penalized_logp_unnormalized"`` -- ``logP - SA - cycle`` without standardization.
* ``"logp_sa"`` -- ``logP - SA`` (no cycle term): the property stored in JT-VAE's
  constrained-optimization file ``opt.test.logP-SA`` (reproduced to ~1e-12 for 799/800).

>>> df = compute(["CCO", "not a smiles"], ["mw", "logp"])
>>> df.columns.tolist()
['smiles', 'mw', 'logp']
>>> round(float(df.loc[0, "mw"]), 2), bool(np.isnan(df.loc[1, "mw"]))
(46.07, True)
"""

from __future__ import annotations

import logging
import math
import functools
import os
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdMolDescriptors

from molvae.chem import canonical, quiet_rdkit, to_mol
from molvae.chem.fingerprints import morgan_fingerprint, tanimoto
from molvae.utils.cache import LRUCache
from molvae.utils.parallel import chunked_map, default_jobs

#: Morgan bit vector (radius 2, 2,048 bits) of a SMILES or Mol, None when it does not parse.
fingerprint = morgan_fingerprint

__all__ = [
    "PROPERTIES",
    "PENALIZED_LOGP_STATS",
    "available",
    "compute",
    "score",
    "similarity",
    "substructure",
    "fingerprint",
    "clear_cache",
    "cache_info",
    "sa_score",
    "cycle_penalty",
    "penalized_logp",
    "penalized_logp_raw",
    "logp_sa",
]

logger = logging.getLogger(__name__)

#: Default number of inputs from which :func:`compute` uses worker processes.
PARALLEL_THRESHOLD = 5000
#: Upper bound on cached (name, canonical SMILES) entries.
CACHE_SIZE = 200_000

#: (mean, std) used to standardize the terms of penalized logP.  They are the ZINC250k
#: statistics from JT-VAE (Jin et al. 2018), reused by GCPN, MoFlow and LIMO.  ``"sa"`` and
#: ``"cycle"`` are the statistics of the *negated* terms (-SA, -cycle).
PENALIZED_LOGP_STATS: dict[str, tuple[float, float]] = {
    "logp": (2.4570953396190123, 1.434324401111988),
    "sa": (-3.0525811293166134, 0.8335207024513095),
    "cycle": (-0.0485696876403053, 0.2860212110245455),
}


# ----------------------------------------------------------------------------- scorers

_SASCORER = None
_SASCORER_LOCK = threading.Lock()


def _sascorer():
    """The ``sascorer`` module shipped in RDKit Contrib, imported once on first use."""
    global _SASCORER
    if _SASCORER is None:
        with _SASCORER_LOCK:
            if _SASCORER is None:
                path = os.path.join(RDConfig.RDContribDir, "SA_Score")
                if path not in sys.path:
                    sys.path.append(path)
                import sascorer  # noqa: PLC0415  (RDKit Contrib, not a package)

                _SASCORER = sascorer
    return _SASCORER


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility (Ertl & Schuffenhauer 2009), 1 (easy) .. 10 (hard)."""
    return float(_sascorer().calculateScore(mol))


def cycle_penalty(mol: Chem.Mol) -> float:
    """``max(0, largest ring size - 6)`` over RDKit's symmetrized SSSR.

    JT-VAE/GCPN used ``networkx.cycle_basis``, which depends on atom order and disagrees
    with the SSSR for ~0.5% of ZINC molecules (some fused/bridged systems).
    """
    largest = max((len(ring) for ring in Chem.GetSymmSSSR(mol)), default=0)
    return float(max(0, largest - 6))


def logp_sa(mol: Chem.Mol) -> float:
    """``logP - SA`` (Crippen logP, no cycle term, unstandardized).

    The property of JT-VAE's constrained-optimization set (``opt.test.logP-SA``).
    """
    return float(Crippen.MolLogP(mol) - sa_score(mol))


def penalized_logp_raw(mol: Chem.Mol) -> float:
    """Unstandardized penalized logP, ``logP - SA - cycle`` (registered as
    ``"penalized_logp_unnormalized"``)."""
    return float(Crippen.MolLogP(mol) - sa_score(mol) - cycle_penalty(mol))


def penalized_logp(mol: Chem.Mol) -> float:
    """Standardized penalized logP (GCPN / MoFlow / LIMO convention)::

        (logP - 2.4570953396190123) / 1.434324401111988
        + (-SA + 3.0525811293166134) / 0.8335207024513095
        + (-cycle + 0.0485696876403053) / 0.2860212110245455

    with Crippen logP, SA from RDKit Contrib and ``cycle = max(0, largest ring - 6)``.
    """
    lp_mean, lp_std = PENALIZED_LOGP_STATS["logp"]
    sa_mean, sa_std = PENALIZED_LOGP_STATS["sa"]
    cy_mean, cy_std = PENALIZED_LOGP_STATS["cycle"]
    return float(
        (Crippen.MolLogP(mol) - lp_mean) / lp_std
        + (-sa_score(mol) - sa_mean) / sa_std
        + (-cycle_penalty(mol) - cy_mean) / cy_std
    )


#: name -> scorer(Mol) -> float.  ``"similarity"`` and ``"substructure"`` need extra
#: arguments and are handled by :func:`compute` (they are listed by :func:`available`).
PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": QED.qed,
    "logp": Crippen.MolLogP,
    "sa": sa_score,
    "penalized_logp": penalized_logp,
    "penalized_logp_unnormalized": penalized_logp_raw,
    "logp_sa": logp_sa,
    "mw": Descriptors.MolWt,
    "tpsa": rdMolDescriptors.CalcTPSA,
    "hbd": Lipinski.NumHDonors,
    "hba": Lipinski.NumHAcceptors,
    "rotatable_bonds": Lipinski.NumRotatableBonds,
    "rings": rdMolDescriptors.CalcNumRings,
    "aromatic_rings": rdMolDescriptors.CalcNumAromaticRings,
    "heavy_atoms": lambda mol: mol.GetNumHeavyAtoms(),
}

_SPECIAL = ("similarity", "substructure")


def available() -> list[str]:
    """Names accepted by :func:`compute`: the :data:`PROPERTIES` plus ``"similarity"`` and
    ``"substructure"``."""
    return [*PROPERTIES, *_SPECIAL]


# ----------------------------------------------------------------------------- cache


_CACHE = LRUCache(CACHE_SIZE)


def clear_cache() -> None:
    """Empty the in-process property cache and reset its counters."""
    _CACHE.clear()


def cache_info() -> dict[str, int]:
    """``{"size", "maxsize", "hits", "misses"}`` of the in-process property cache."""
    return {"size": len(_CACHE), "maxsize": _CACHE.maxsize, "hits": _CACHE.hits, "misses": _CACHE.misses}


# ----------------------------------------------------------------------------- evaluation

# A scorer ready to run: (cache key prefix, function(Mol) -> float).
_Scorer = tuple[Hashable, Callable[[Chem.Mol], float]]


def _nan_scorer(mol: Chem.Mol) -> float:
    return math.nan


def _build_scorers(names: Sequence[str], reference: object, smarts: object) -> list[_Scorer]:
    """Validate ``names`` and bind the reference / SMARTS; raises ``ValueError`` on setup errors."""
    scorers: list[_Scorer] = []
    for name in names:
        if name in PROPERTIES:
            scorers.append((name, PROPERTIES[name]))
        elif name == "similarity":
            if reference is None:
                raise ValueError("'similarity' needs reference=<SMILES>")
            ref_canon = canonical(reference)
            ref_fp = fingerprint(ref_canon) if ref_canon is not None else None
            if ref_fp is None:
                logger.warning("similarity reference %r cannot be parsed; similarity is NaN", reference)
                scorers.append((("similarity", None), _nan_scorer))
            else:
                scorers.append((("similarity", ref_canon), _tanimoto_to(ref_fp)))
        elif name == "substructure":
            if smarts is None:
                raise ValueError("'substructure' needs smarts=<SMARTS pattern>")
            scorers.append((("substructure", smarts), _matcher(_compile_smarts(smarts))))
        else:
            raise ValueError(f"unknown property {name!r}; available: {', '.join(available())}")
    return scorers


def _tanimoto_to(ref_fp: DataStructs.ExplicitBitVect) -> Callable[[Chem.Mol], float]:
    def similarity_to_reference(mol: Chem.Mol) -> float:
        return tanimoto(morgan_fingerprint(mol), ref_fp)

    return similarity_to_reference


def _compile_smarts(smarts: object) -> Chem.Mol:
    pattern = None
    if isinstance(smarts, str) and smarts.strip():
        with quiet_rdkit():
            try:
                pattern = Chem.MolFromSmarts(smarts.strip())
            except Exception:
                pattern = None
    if pattern is None or pattern.GetNumAtoms() == 0:
        raise ValueError(f"invalid SMARTS pattern {smarts!r}: RDKit cannot parse it")
    return pattern


def _matcher(pattern: Chem.Mol) -> Callable[[Chem.Mol], float]:
    def match(mol: Chem.Mol) -> float:
        return 1.0 if mol.HasSubstructMatch(pattern) else 0.0

    return match


def _run_scorer(fn: Callable[[Chem.Mol], float], mol: Chem.Mol, key: Hashable, smiles: str) -> float:
    try:
        return float(fn(mol))
    except Exception as exc:  # a failing scorer gives NaN for this molecule only
        logger.debug("scorer %r failed on %s: %s", key, smiles, exc)
        return math.nan


def _evaluate(strings: Sequence[str], scorers: list[_Scorer]) -> tuple[list[str | None], np.ndarray]:
    """Score unique SMILES strings; returns their canonical forms and an (n, n_scorers) array."""
    out = np.full((len(strings), len(scorers)), np.nan, dtype=np.float64)
    canons: list[str | None] = []
    for i, smi in enumerate(strings):
        canon = canonical(smi)
        canons.append(canon)
        if canon is None:
            continue
        mol = None
        for j, (key, fn) in enumerate(scorers):
            value = _CACHE.get((key, canon))
            if value is None:
                if mol is None:
                    # score the canonical molecule so every spelling gets the same number
                    mol = to_mol(canon) or to_mol(smi)
                value = _run_scorer(fn, mol, key, canon)
                _CACHE.put((key, canon), value)
            out[i, j] = value
    return canons, out


def _score_chunk(strings: list[str], names: list[str], reference: object, smarts: object) -> list[tuple]:
    """Worker entry point: ``(canonical, values)`` per string (the scorers are rebuilt here)."""
    canons, values = _evaluate(strings, _build_scorers(names, reference, smarts))
    return list(zip(canons, values))


def _evaluate_parallel(
    strings: list[str], names: list[str], scorers: list[_Scorer], reference: object, smarts: object, n_jobs: int
) -> np.ndarray:
    logger.info("scoring %d unique SMILES on %d processes", len(strings), n_jobs)
    work = functools.partial(_score_chunk, names=names, reference=reference, smarts=smarts)
    results = chunked_map(work, strings, n_jobs=n_jobs, min_chunk=64, max_chunk=max(64, len(strings) // (4 * n_jobs)))
    out = np.array([values for _, values in results], dtype=np.float64).reshape(len(strings), len(scorers))
    for canon, values in results:  # share the workers' results with this process's cache
        if canon is not None:
            for (key, _), v in zip(scorers, values):
                _CACHE.put((key, canon), float(v))
    return out


def compute(
    smiles: Iterable[object],
    names: str | Sequence[str],
    reference: str | None = None,
    smarts: str | None = None,
    n_jobs: int | None = None,
    *,
    parallel_threshold: int = PARALLEL_THRESHOLD,
) -> pd.DataFrame:
    """Score SMILES with the named properties.

    Args:
        smiles: any iterable of SMILES (list, ``pandas.Series``...), length n; a single
            ``str`` is one SMILES.  Non-strings (``None``, NaN) give a NaN row.
        names: property name(s) from :func:`available`.  ``"similarity"`` needs
            ``reference`` (Tanimoto, Morgan r=2, 2048 bits); ``"substructure"`` needs
            ``smarts`` (1.0 match / 0.0 no match).
        n_jobs: worker processes for inputs with ``>= parallel_threshold`` unique SMILES;
            ``None`` or ``<= 0`` means all cores (or ``MOLVAE_JOBS``), 1 keeps everything
            in-process.  Workers are forked, so plain scripts without a main guard work too.
        parallel_threshold: minimum number of unique SMILES for the process pool (5000).

    Returns:
        DataFrame with index 0..n-1, a ``smiles`` column holding the input and one float64
        column per name; NaN where RDKit cannot parse the molecule or the scorer raises.

    Raises:
        ValueError: unknown name, missing ``reference``/``smarts``, or invalid SMARTS.
    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    scorers = _build_scorers(names, reference, smarts)
    items = [smiles] if isinstance(smiles, str) else list(smiles)

    position: dict[str, int] = {}
    for item in items:
        if isinstance(item, str) and item not in position:
            position[item] = len(position)
    unique = list(position)

    if n_jobs is None or n_jobs <= 0:
        n_jobs = default_jobs()
    if n_jobs > 1 and len(unique) >= max(parallel_threshold, 2):
        values = _evaluate_parallel(unique, names, scorers, reference, smarts, n_jobs)
    else:
        _, values = _evaluate(unique, scorers)

    rows = np.array([position.get(item, -1) if isinstance(item, str) else -1 for item in items], dtype=np.int64)
    table = np.full((len(items), len(names)), np.nan, dtype=np.float64)
    hit = rows >= 0
    if hit.any():
        table[hit] = values[rows[hit]]
    n_failed = int((~hit).sum() + np.isnan(table[hit]).all(axis=1).sum()) if names else 0
    if n_failed:
        logger.debug("%d of %d inputs could not be scored", n_failed, len(items))

    frame = pd.DataFrame({"smiles": pd.Series(items, dtype=object)})
    for j, name in enumerate(names):
        frame[name] = table[:, j]
    return frame


def score(smiles: Iterable[object], name: str, **kwargs) -> np.ndarray:
    """One property as a float64 array of shape (n,), NaN for failures.

    ``kwargs`` go to :func:`compute` (``reference``, ``smarts``, ``n_jobs``...).

    >>> score(["c1ccccc1", "C1CC"], "rings").tolist()
    [1.0, nan]
    """
    return compute(smiles, [name], **kwargs)[name].to_numpy(dtype=np.float64)


def similarity(smiles: Iterable[object], reference: str, **kwargs) -> np.ndarray:
    """Tanimoto similarity (Morgan r=2, 2048 bits) of each SMILES to ``reference``; shape (n,).

    NaN where either side cannot be parsed.

    >>> similarity(["CCO", "xyz"], "OCC").tolist()
    [1.0, nan]
    """
    return score(smiles, "similarity", reference=reference, **kwargs)


def substructure(smiles: Iterable[object], smarts: str, **kwargs) -> np.ndarray:
    """1.0 where the molecule matches ``smarts``, 0.0 where not, NaN if unparsable; shape (n,).

    Raises ``ValueError`` for an invalid SMARTS.

    >>> substructure(["c1ccccc1O", "CCO", "C1CC"], "c[OX2H]").tolist()
    [1.0, 0.0, nan]
    """
    return score(smiles, "substructure", smarts=smarts, **kwargs)
