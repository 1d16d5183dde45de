"""The PMO benchmark oracles (Gao et al. 2022, "Sample Efficiency Matters") and its AUC top-10.

>>> from molvae.oracles import get_oracle, pmo_auc
>>> oracle = get_oracle("celecoxib_rediscovery")                                   # doctest: +SKIP
>>> oracle(["CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"])            # doctest: +SKIP
array([1.])
>>> res = molvae.optimize(model, objective=oracle, budget=10_000, seed=0)          # doctest: +SKIP
>>> pmo_auc(res.history.query("status == 'scored'").sort_values("call")["score"], 10_000)  # doctest: +SKIP

The oracles
    :data:`PMO_ORACLES` are the 20 PMO tasks that need no downloaded model (PMO's other
    three, drd2, gsk3b and jnk3, are classifiers).  All are GuacaMol tasks (Brown et al.
    2019) and are scored here by the ``guacamol`` package itself: 17 are the objectives of
    ``guacamol.benchmark_suites.goal_directed_suite_v2()`` (the same SMILES, fingerprints,
    thresholds and modifiers), ``qed`` is ``standard_benchmarks.qed_benchmark()`` (RDKit's
    QED) and ``isomers_c7h8n2o2`` is ``standard_benchmarks.isomers_c7h8n2o2()`` (geometric
    mean, as in the suites).  guacamol is installed with ``--no-deps`` by ``setup.sh`` (it
    pins the retired ``rdkit-pypi``); its one incompatibility with current SciPy, ``from
    scipy import histogram`` (removed from SciPy), is bridged by setting
    ``scipy.histogram = numpy.histogram`` before the import when SciPy lacks it.

    PMO scored these tasks through TDC, whose molecular-formula scoring differs from
    GuacaMol's; that changes the four tasks of :data:`TDC_DIFFERS` (the two isomer tasks,
    and sitagliptin_mpo and zaleplon_mpo, which contain a formula term).  On the other 16
    the two agree, so only those 16 compare with PMO's published numbers.

Invalid molecules: NaN
    A SMILES that RDKit cannot parse (or an empty one) gets NaN without calling guacamol,
    and so does a molecule guacamol cannot score (its ``corrupt_score``, -1).  NaN is what
    :func:`molvae.optimize` reads as a failed call (kept out of the top molecules and of
    the surrogates), and it keeps "no score" apart from a true 0, which many of these
    tasks give to valid molecules (valsartan_smarts without the SMARTS match, for one).
    PMO gives invalid molecules 0; :func:`pmo_auc` therefore counts NaN as 0.  The
    optimizer only sends canonical SMILES that RDKit parsed, so in a benchmark run NaN
    does not occur unless guacamol itself fails on a molecule.

The metric (:func:`pmo_auc`)
    PMO's AUC top-10: the mean score of the 10 best distinct molecules found so far,
    taken every ``freq`` (100) oracle calls and after the last call, joined by trapezoids
    from (0 calls, 0), plus the last value held flat up to the budget when a run stops
    early, divided by the budget.  It lies in [0, 1] for scores in [0, 1].
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from molvae.chem import canonical, kept_rdkit_log, quiet_rdkit, to_mol
from molvae.data.datasets import load_dataset

__all__ = [
    "PMO_ORACLES",
    "TDC_DIFFERS",
    "PMO_COMPARABLE",
    "Oracle",
    "get_oracle",
    "pmo_auc",
    "top_n_curve",
    "zinc_screening_pool",
    "random_screening",
]

#: The 20 PMO tasks scored without a downloaded model, in the (alphabetical) order of PMO's tables.
PMO_ORACLES: tuple[str, ...] = (
    "albuterol_similarity",
    "amlodipine_mpo",
    "celecoxib_rediscovery",
    "deco_hop",
    "fexofenadine_mpo",
    "isomers_c7h8n2o2",
    "isomers_c9h10n2o2pf2cl",
    "median1",
    "median2",
    "mestranol_similarity",
    "osimertinib_mpo",
    "perindopril_mpo",
    "qed",
    "ranolazine_mpo",
    "scaffold_hop",
    "sitagliptin_mpo",
    "thiothixene_rediscovery",
    "troglitazone_rediscovery",
    "valsartan_smarts",
    "zaleplon_mpo",
)

#: Tasks whose PMO (TDC) scoring differs from GuacaMol's (molecular-formula terms).
TDC_DIFFERS: tuple[str, ...] = ("isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "sitagliptin_mpo", "zaleplon_mpo")

#: The 16 tasks on which GuacaMol's scoring agrees with PMO's: compare with PMO's tables on these.
PMO_COMPARABLE: tuple[str, ...] = tuple(n for n in PMO_ORACLES if n not in TDC_DIFFERS)

# PMO name -> name of the benchmark in guacamol's goal_directed_suite_v2()
_SUITE_V2_NAMES = {
    "albuterol_similarity": "Albuterol similarity",
    "amlodipine_mpo": "Amlodipine MPO",
    "celecoxib_rediscovery": "Celecoxib rediscovery",
    "deco_hop": "Deco Hop",
    "fexofenadine_mpo": "Fexofenadine MPO",
    "isomers_c9h10n2o2pf2cl": "C9H10N2O2PF2Cl",
    "median1": "Median molecules 1",
    "median2": "Median molecules 2",
    "mestranol_similarity": "Mestranol similarity",
    "osimertinib_mpo": "Osimertinib MPO",
    "perindopril_mpo": "Perindopril MPO",
    "ranolazine_mpo": "Ranolazine MPO",
    "scaffold_hop": "Scaffold Hop",
    "sitagliptin_mpo": "Sitagliptin MPO",
    "thiothixene_rediscovery": "Thiothixene rediscovery",
    "troglitazone_rediscovery": "Troglitazone rediscovery",
    "valsartan_smarts": "Valsartan SMARTS",
    "zaleplon_mpo": "Zaleplon MPO",
}

_GUACAMOL_HELP = (
    "the PMO oracles need the guacamol package (GuacaMol's scoring functions): run `bash setup.sh`, "
    "or `pip install --no-deps guacamol==0.5.5` (--no-deps: guacamol pins the retired rdkit-pypi; "
    "what it needs, numpy, scipy, joblib, tqdm and rdkit, is already installed with molvae)"
)


def _guacamol() -> tuple[Any, Any]:
    """Import guacamol's ``standard_benchmarks`` and ``benchmark_suites`` (with the SciPy shim)."""
    import scipy

    if not hasattr(scipy, "histogram"):  # removed from SciPy; guacamol.utils.chemistry imports it
        scipy.histogram = np.histogram
    # guacamol turns RDKit's log off for the whole process on import: put it back as it was
    with kept_rdkit_log():
        try:
            from guacamol import benchmark_suites, standard_benchmarks
        except ImportError as err:
            raise ImportError(f"{_GUACAMOL_HELP} ({type(err).__name__}: {err})") from err
    return standard_benchmarks, benchmark_suites


def _guacamol_benchmark(name: str) -> Any:
    standard, suites = _guacamol()
    with quiet_rdkit():  # the targets' fingerprints use RDKit calls that log deprecation warnings
        if name == "qed":
            return standard.qed_benchmark()
        if name == "isomers_c7h8n2o2":
            return standard.isomers_c7h8n2o2()
        wanted = _SUITE_V2_NAMES[name]
        suite = suites.goal_directed_suite_v2()
    for bench in suite:
        if bench.name == wanted:
            return bench
    raise RuntimeError(f"guacamol's goal_directed_suite_v2 has no benchmark named {wanted!r}")  # pragma: no cover


class Oracle:
    """One PMO task: ``oracle(list_of_smiles) -> np.ndarray`` of scores in [0, 1], NaN = invalid.

    ``n_scored`` counts the molecules given to guacamol and ``seconds`` the time spent in
    the calls, so a benchmark can split its wall time into oracle and optimizer time.
    """

    def __init__(self, name: str):
        if name not in PMO_ORACLES:
            raise ValueError(f"unknown PMO oracle {name!r}; available: {', '.join(PMO_ORACLES)}")
        self.name = name
        self.__name__ = name  # molvae.optimize names the objective column after it
        self.benchmark = _guacamol_benchmark(name)
        self.scoring_function = self.benchmark.objective
        self.n_scored = 0
        self.seconds = 0.0

    def __call__(self, smiles: Iterable[str]) -> np.ndarray:
        t0 = time.perf_counter()
        smiles = list(smiles)
        out = np.full(len(smiles), np.nan)
        ok = [i for i, s in enumerate(smiles) if to_mol(s) is not None]
        if ok:
            with quiet_rdkit():
                raw = self.scoring_function.score_list([smiles[i].strip() for i in ok])
            vals = np.asarray(raw, dtype=float)
            vals[(vals == self.scoring_function.corrupt_score) | ~np.isfinite(vals)] = np.nan
            out[ok] = vals
        self.n_scored += len(ok)
        self.seconds += time.perf_counter() - t0
        return out

    def score(self, smiles: str) -> float:
        """Score of one molecule (NaN when invalid)."""
        return float(self([smiles])[0])

    def __repr__(self) -> str:
        return f"Oracle({self.name!r}: guacamol {self.benchmark.name!r})"


def get_oracle(name: str) -> Oracle:
    """The PMO oracle ``name`` (one of :data:`PMO_ORACLES`), scored by guacamol.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (saying how to install
    it) when guacamol is missing.
    """
    return Oracle(name)


# =============================================================================== metric
def _clean(scores: Sequence[float] | np.ndarray, budget: int) -> np.ndarray:
    if budget < 1:
        raise ValueError("budget must be >= 1")
    arr = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=float).reshape(-1)
    arr = arr[: int(budget)].copy()
    arr[~np.isfinite(arr)] = 0.0  # PMO scores invalid molecules 0
    return arr


def _top_mean(sorted_desc: np.ndarray, top_n: int) -> float:
    return float(np.mean(sorted_desc[:top_n])) if len(sorted_desc) else 0.0


def top_n_curve(
    scores: Sequence[float] | np.ndarray, budget: int, top_n: int = 10, freq: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """``(calls, values)``: the top-``top_n`` mean after ``freq``, ``2 freq``, ... calls and after the last call.

    ``scores`` are in call order; only the first ``budget`` count; NaN counts as 0.  With
    fewer than ``top_n`` molecules the mean is over those there are.
    """
    if top_n < 1 or freq < 1:
        raise ValueError("top_n and freq must be >= 1")
    arr = _clean(scores, budget)
    n = len(arr)
    calls = list(range(freq, n, freq)) + ([n] if n else [])
    values = []
    best = np.empty(0)
    done = 0
    for c in calls:  # keep only the top_n best seen so far, merged with each new chunk
        best = np.sort(np.concatenate([best, arr[done:c]]))[::-1][:top_n]
        done = c
        values.append(_top_mean(best, top_n))
    return np.asarray(calls, dtype=int), np.asarray(values, dtype=float)


def pmo_auc(scores: Sequence[float] | np.ndarray, budget: int, top_n: int = 10, freq: int = 100) -> float:
    """PMO's AUC top-``top_n`` of one run, in [0, 1] for scores in [0, 1].

    ``scores``: the oracle's scores in call order (one per distinct molecule; NaN = invalid,
    counted as 0; calls beyond ``budget`` are ignored).  The top-``top_n`` mean is taken
    every ``freq`` calls and after the last call; the area under these points, joined by
    straight lines from (0, 0), plus the last value held up to ``budget`` when the run
    used fewer calls, is divided by ``budget``.

    >>> pmo_auc([1.0] * 200, budget=200, top_n=1)   # (100 * 0.5 + 100 * 1) / 200
    0.75
    """
    calls, values = top_n_curve(scores, budget, top_n, freq)
    if not len(calls):
        return 0.0
    x = np.concatenate([[0], calls]).astype(float)
    y = np.concatenate([[0.0], values])
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    area += (budget - calls[-1]) * values[-1]
    return float(area / budget)


# =============================================================================== screening
def zinc_screening_pool() -> list[str]:
    """The bundled ZINC250k molecules (``zinc`` valid and test splits), canonical, distinct."""
    seen: dict[str, None] = {}
    for split in ("valid", "test"):
        for s in load_dataset("zinc", split):
            c = canonical(s)
            if c is not None:
                seen.setdefault(c, None)
    return list(seen)


def random_screening(
    names: Sequence[str] = PMO_ORACLES,
    n: int = 10_000,
    seed: int = 0,
    pool: Sequence[str] | None = None,
    top_n: int = 10,
    freq: int = 100,
) -> list[dict[str, Any]]:
    """PMO's random-screening baseline: ``n`` molecules drawn at random (``seed``) from ``pool``.

    ``pool`` defaults to :func:`zinc_screening_pool` (about 29,400 ZINC250k molecules
    bundled with molvae; PMO screened all of ZINC250k).  The molecules are scored in the
    drawn order and the AUC is taken with ``budget = n``.  Returns one dict per oracle:
    ``oracle``, ``auc``, ``top1``, ``top10`` (mean of the ``top_n`` best), ``n``,
    ``seconds`` (time in the oracle).
    """
    pool = list(pool) if pool is not None else zinc_screening_pool()
    if n > len(pool):
        raise ValueError(f"n={n} is larger than the pool ({len(pool)} molecules)")
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in rng.permutation(len(pool))[:n]]
    rows = []
    for name in names:
        oracle = get_oracle(name)
        scores = oracle(picked)
        clean = np.sort(np.nan_to_num(scores, nan=0.0))[::-1]
        rows.append({
            "oracle": name,
            "auc": pmo_auc(scores, n, top_n, freq),
            "top1": float(clean[0]) if len(clean) else 0.0,
            "top10": _top_mean(clean, top_n),
            "n": n,
            "seconds": oracle.seconds,
        })
    return rows
