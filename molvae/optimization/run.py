"""Molecular optimization in the latent space of a :class:`~molvae.vae.model.MolVAE`.

>>> import molvae as mv
>>> from molvae.optimization.run import optimize
>>> model = mv.load_pretrained()                                        # doctest: +SKIP
>>> res = optimize(model, "qed", budget=300, seed=0)                   # doctest: +SKIP
>>> res.top(10)                                                         # doctest: +SKIP
>>> res = optimize(model, {"qed": 1.0, "sa": -0.2}, start=["CCOc1ccccc1C(=O)N"],
...                min_similarity=0.4, bounds={"mw": (None, 500)})      # doctest: +SKIP

One budget, counted in distinct molecules
    Every strategy spends the same currency: a call of the objective ("oracle") on one
    molecule never scored before (canonical SMILES).  Duplicates, molecules already scored
    (by this run, a previous run of the same study or another worker) and molecules that
    fail a constraint checkable without the oracle (similarity, SMARTS, heavy atoms,
    novelty, RDKit property bounds) cost nothing.  ``n_oracle_calls`` is exact and the run
    stops exactly at ``budget``.

Consistent data
    Decoding is greedy (deterministic); every scored molecule is re-encoded (posterior
    mean) and its score is attached to *its own* latent mean when surrogates are trained,
    never to the point that proposed it (see ``shared/OPTIMIZATION_NOTES.md``).

Strategies (``strategy=``)
    ``"trust_region"`` (default)
        TuRBO-style local search: a box of side ``L`` (in prior standard deviations;
        ``scale="data"`` scales each coordinate by the spread of the encoded molecules)
        around the latent mean of the best molecule; candidates perturb a random subset of
        coordinates; all candidates are decoded, and the unseen feasible molecules are
        ranked by Thompson-like draws from a surrogate (default ``surrogate="tanimoto"``:
        a Gaussian process with a Tanimoto kernel on Morgan fingerprints; ``"mlp"``: :class:`~molvae.predictors.all.MLPEnsemble` on
        the latent means; ``"gp"``: :class:`~molvae.predictors.all.GPPredictor`; ``None``:
        random).  ``L`` doubles after ``success_tolerance`` successful rounds, halves after
        ``failure_tolerance`` failed ones, and the region restarts around another of the
        best molecules when ``L`` falls below ``length_min``.
        ``global_fraction`` (0.1) of the candidates are prior draws ranked alongside (a
        hedge when the region is poor), and ``mutation_fraction`` (0.25) are SELFIES edits
        (1-3 tokens replaced, inserted or deleted, from the model's alphabet; radicals
        dropped) of the center and of the 10 best molecules: the decoder reconstructs
        molecules only approximately, so latent steps alone rarely stay close to a good
        molecule, while edits keep the search local (similarity constraints) and still
        always give valid molecules.  When the box decodes to fewer than ``batch_size``
        unseen molecules it is widened instead of counted as a failure.

        Why it is the default (measured; QED, budget 300, prior start of 32 molecules,
        32-d VAE trained 8 epochs on 24k ZINC molecules, 4 seeds, 2-core CPU):

        ==================  ==============  =============  ====================
        strategy            top-10 mean     AUC top-10     CPU s / run
        ==================  ==============  =============  ====================
        trust_region        0.933           0.887          10
        gradient            0.939           0.888          12
        optuna cmaes        0.918 (2 seeds) 0.871          11
        optuna tpe          0.943 (2 seeds) 0.887          130-360 (stalls)
        optuna random       0.914           0.872          2
        ==================  ==============  =============  ====================

        (QED tops out at 0.948: the spread is small.)  ``trust_region`` and ``gradient``
        tie within seed noise and beat CMA-ES and latent random screening; TPE matches them
        but is 10-30 times slower and stalls once its proposals decode to known molecules.
        ``trust_region`` is the default because it ties for best while staying local (a
        box around the best molecules, which is what similarity constraints need), ranks
        candidates by a fingerprint model that does not depend on the quality of the
        latent space, and recovers from a poor region by restarts and prior candidates.

        ``mutation_fraction`` (measured with the shipped MOSES model, budget 1,000, seed 0,
        AUC top-10 (per call, :meth:`OptimizationResult.auc_top10`) / final top-10 mean;
        ``python benchmarks/mutation_fraction.py``; 2-core CPU shared with other jobs):

        ======================  ==============  ==============  ==============
        objective               0               0.25            0.5
        ======================  ==============  ==============  ==============
        celecoxib_rediscovery   0.293 / 0.329   0.379 / 0.425   0.376 / 0.415
        osimertinib_mpo         0.673 / 0.734   0.697 / 0.747   0.697 / 0.763
        median1                 0.165 / 0.175   0.264 / 0.337   0.258 / 0.294
        pen. logP (<= 38 atoms) 3.07 / 3.43     3.77 / 4.83     3.59 / 4.49
        qed                     0.933 / 0.947   0.932 / 0.947   0.933 / 0.948
        ======================  ==============  ==============  ==============

        Edits help everywhere but QED (already at its maximum); 0.25 is best or tied.
    ``"gradient"``
        LIMO-style: fit an :class:`~molvae.predictors.all.MLPEnsemble` on (latent mean, score),
        run gradient ascent from the best molecules plus noise (many starts at once),
        decode the points along the paths, score the best unseen predicted ones, refit.
    ``"optuna"``
        Optuna samplers over ``z_0 .. z_{D-1}`` in ``[-bound, bound]``, ask/tell in batches:
        ``sampler="cmaes"`` (default; needs the ``cmaes`` package), ``"tpe"``, ``"gp"``,
        ``"random"``, ``"nsga2"`` (default with several objectives).  The start molecules'
        latent means are enqueued.  CMA-ES, NSGA-II and random are told the score of the
        molecule each asked point decodes to; TPE and GP (surrogates) are given the scored
        molecules at their re-encoded means instead, and a penalty at asked points that
        decode to molecules already known (nothing new there).  Infeasible molecules are
        told a value worse than any seen.  Samplers run in memory in each process (only
        the ledger is shared), so each worker of a shared study runs its own sampler.

Several objectives
    ``objective=["qed", "sa"], direction=["maximize", "minimize"]`` runs a multi-objective
    search (NSGA-II / TPE for ``"optuna"``, random Chebyshev scalarizations per round for
    the others); :meth:`OptimizationResult.pareto_front` gives the non-dominated feasible
    molecules.  ``score`` is then the sum of the direction-signed objectives (times
    ``weights=`` if given), used only to order :meth:`~OptimizationResult.top`.

Storage, resume and several workers
    Every run keeps a ledger in an Optuna study: one trial per molecule sent to the oracle,
    with its SMILES, scores and status in the trial's user attribute ``"molvae"`` and its
    latent mean as the params ``z_i``.  ``storage=None`` keeps it in memory;
    ``storage="sqlite:///study.db"`` (any Optuna RDB URL: PostgreSQL, MySQL) or
    ``"journal:///path/file.log"`` (:class:`optuna.storages.JournalStorage`) or a
    :class:`optuna.storages.BaseStorage` persists it.  Running ``optimize`` again with the
    same storage and ``study_name`` resumes: scored molecules are loaded, count against the
    budget and are never scored again.  N processes on N machines sharing one study form
    one search with one budget.  Each worker reserves a molecule by adding a RUNNING trial
    *before* calling the oracle and then scores it only if (a) fewer than ``budget``
    reserved-or-scored trials have a smaller trial number and (b) no such trial holds the
    same molecule.  Optuna numbers trials under a lock (RDB: a row lock on the study;
    journal: the log order), so a trial with a smaller number is always visible to the
    worker that created a larger one: the total number of oracle calls recorded in a
    shared study never exceeds ``budget`` and no molecule is scored twice, whatever the
    number of workers.  A worker that dies between reserving and recording loses its
    reservations: with an RDB URL the trials carry heartbeats and are failed (freed) after
    ``grace_period`` seconds (120); for other storages pass ``stale_after`` seconds (while
    its oracle runs a worker marks its reservations alive every ``stale_after / 4``
    seconds, so only a silent worker's reservations are freed, however long the oracle
    takes).  A worker that finds the rest of the budget reserved by others waits until they
    record it or, when one of them died, until its reservations are freed, and fills them:
    the study ends with exactly ``budget`` scored molecules (without heartbeats or
    ``stale_after`` nothing frees them, and the worker stops instead).  Calls
    that were under way in a killed worker are not recorded (their results never
    arrived); an interrupted worker (``KeyboardInterrupt`` or any exception from the
    objective that is not an ``Exception``) frees its reservations before re-raising.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from molvae.chem import canonical, standardize

__all__ = ["optimize", "OptimizationResult", "STRATEGIES", "SAMPLERS", "open_storage", "LEDGER_KEY"]

logger = logging.getLogger(__name__)

STRATEGIES = ("trust_region", "gradient", "optuna")
SAMPLERS = ("cmaes", "tpe", "gp", "random", "nsga2")
#: Trial user attribute holding a molecule's record in the ledger study.
LEDGER_KEY = "molvae"
_ALIVE_KEY = "molvae:alive"  # trial user attribute: last sign of life of its worker (stale_after)
DEFAULT_STUDY_NAME = "molvae-optimize"

# record statuses
_SCORED = "scored"  # the oracle was called (score may be NaN when it failed)
_PENDING = "pending"  # reserved, oracle call under way
_INFEASIBLE = "infeasible"  # failed a constraint checked without the oracle; never scored
_OVER_BUDGET = "over_budget"
_DUPLICATE = "duplicate"
_INTERRUPTED = "interrupted"


# =============================================================================== objectives
@dataclass
class _Objective:
    """One objective: ``fn(list[str]) -> values``, NaN = failed."""

    name: str
    fn: Callable[[list[str]], Any]
    direction: str = "maximize"
    components: tuple[str, ...] = ()

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    def __call__(self, smiles: list[str]) -> tuple[np.ndarray, str | None]:
        if not smiles:
            return np.empty(0), None
        try:
            out = self.fn(list(smiles))
            if isinstance(out, pd.Series):
                out = out.to_numpy()
            arr = np.asarray(out, dtype=float).reshape(-1)
            if arr.shape[0] != len(smiles):
                raise ValueError(f"returned {arr.shape[0]} values for {len(smiles)} molecules")
        except Exception as exc:  # a failing objective fails this batch only
            msg = f"{type(exc).__name__}: {exc}"
            logger.error("objective %r failed on a batch of %d molecules (%s); they get NaN", self.name, len(smiles), msg)
            return np.full(len(smiles), np.nan), msg
        arr = arr.astype(np.float64, copy=True)
        arr[~np.isfinite(arr)] = np.nan
        return arr, None


def _property_fn(name: str) -> Callable[[list[str]], np.ndarray]:
    from molvae.properties import score

    def fn(smiles: list[str]) -> np.ndarray:
        return score(smiles, name, n_jobs=1)

    fn.__name__ = name
    return fn


def _weighted_fn(weights: dict[str, float]) -> Callable[[list[str]], np.ndarray]:
    from molvae.properties import compute

    def fn(smiles: list[str]) -> np.ndarray:
        table = compute(smiles, list(weights), n_jobs=1)
        total = np.zeros(len(smiles))
        for name, w in weights.items():
            total = total + w * table[name].to_numpy(dtype=np.float64)
        return total

    return fn


def _weighted_name(weights: dict[str, float]) -> str:
    parts = []
    for name, w in weights.items():
        term = name if w == 1 else f"-{name}" if w == -1 else f"{w:g}*{name}"
        parts.append(term if not parts or term.startswith("-") else "+" + term)
    return "".join(parts)


def _parse_one_objective(spec: Any, direction: str, index: int) -> _Objective:
    from molvae.properties import PROPERTIES

    if isinstance(spec, str):
        from molvae.oracles import PMO_ORACLES, get_oracle

        if spec in PROPERTIES:
            return _Objective(spec, _property_fn(spec), direction)
        if spec in PMO_ORACLES:  # GuacaMol / PMO tasks by name (needs the guacamol package)
            return _Objective(spec, get_oracle(spec), direction)
        raise ValueError(
            f"unknown objective {spec!r}; use a property ({', '.join(PROPERTIES)}), a PMO task "
            f"({', '.join(PMO_ORACLES)}), a dict of weights or a callable"
        )
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("an objective given as weights needs at least one property")
        weights = {str(k): float(v) for k, v in spec.items()}
        unknown = [k for k in weights if k not in PROPERTIES]
        if unknown:
            raise ValueError(f"unknown properties in the objective weights: {unknown}; available: {', '.join(PROPERTIES)}")
        return _Objective(_weighted_name(weights), _weighted_fn(weights), direction, components=tuple(weights))
    if callable(spec):
        name = getattr(spec, "__name__", None) or type(spec).__name__
        if not name.isidentifier() or name == "<lambda>":
            name = f"objective_{index}" if index else "objective"
        return _Objective(name, spec, direction)
    raise TypeError(f"objective must be a property name, a dict of weights or a callable, got {type(spec).__name__}")


def _parse_objectives(objective: Any, direction: str | Sequence[str]) -> list[_Objective]:
    specs = list(objective) if isinstance(objective, (list, tuple)) else [objective]
    if not specs:
        raise ValueError("no objective given")
    directions = [direction] * len(specs) if isinstance(direction, str) else list(direction)
    if len(directions) != len(specs):
        raise ValueError(f"{len(specs)} objectives but {len(directions)} directions")
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {d!r}")
    objs = [_parse_one_objective(s, d, i) for i, (s, d) in enumerate(zip(specs, directions))]
    seen: dict[str, int] = {}
    for o in objs:  # unique column names
        if o.name in seen:
            seen[o.name] += 1
            o.name = f"{o.name}_{seen[o.name]}"
        else:
            seen[o.name] = 0
    return objs


# =============================================================================== constraints
class _Constraints:
    """Constraints; all but objective bounds are checked without the oracle."""

    def __init__(
        self,
        objectives: list[_Objective],
        min_similarity: float | None = None,
        references: Sequence[str] = (),
        smarts: str | Sequence[str] | None = None,
        bounds: Mapping[str, Sequence[float | None]] | None = None,
        novel: bool = False,
        train_smiles: Iterable[str] | None = None,
        max_heavy_atoms: int | None = None,
    ) -> None:
        from molvae.properties import PROPERTIES, _compile_smarts, fingerprint

        self.min_similarity = None if min_similarity is None else float(min_similarity)
        self.references = [r for r in (standardize(s) for s in references) if r]
        self.ref_fps = [fingerprint(r) for r in self.references]
        if self.min_similarity is not None and not self.references:
            raise ValueError("min_similarity needs reference molecules: give start=[...] or similarity_to=...")
        smarts_list = [smarts] if isinstance(smarts, str) else list(smarts or [])
        for s in smarts_list:
            _compile_smarts(s)  # raises ValueError on an invalid pattern
        self.smarts = smarts_list
        self.pre_bounds: dict[str, tuple[float, float]] = {}
        self.post_bounds: dict[str, tuple[float, float]] = {}
        names = {o.name for o in objectives}
        for key, value in dict(bounds or {}).items():
            try:
                lo, hi = value
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{key!r}] must be a pair (low, high); use None for an open side") from None
            lo = -math.inf if lo is None else float(lo)
            hi = math.inf if hi is None else float(hi)
            if lo > hi:
                raise ValueError(f"bounds[{key!r}]: low {lo} > high {hi}")
            if key in PROPERTIES:
                self.pre_bounds[key] = (lo, hi)
            elif key in names:
                self.post_bounds[key] = (lo, hi)
            else:
                raise ValueError(f"bounds: unknown property {key!r}; use a property ({', '.join(PROPERTIES)}) or an objective name")
        self.novel = bool(novel)
        self.train_set: set[str] | None = None
        if novel:
            if train_smiles is None:
                raise ValueError("novel=True needs train_smiles (the canonical SMILES of the training set)")
            self.train_set = _canonical_set(train_smiles)
        elif train_smiles is not None:
            self.train_set = _canonical_set(train_smiles)  # reported (column novel), not enforced
        self.max_heavy_atoms = None if max_heavy_atoms is None else int(max_heavy_atoms)

    @property
    def property_columns(self) -> list[str]:
        return list(self.pre_bounds)

    def check(self, smiles: list[str]) -> list[dict[str, Any]]:
        """Cheap values and verdicts: one dict per molecule with ``props``, ``feasible``, ``reasons``."""
        from rdkit import DataStructs

        from molvae.properties import compute, fingerprint, substructure

        n = len(smiles)
        names = list(dict.fromkeys(["heavy_atoms", *self.pre_bounds]))
        table = compute(smiles, names, n_jobs=1) if n else pd.DataFrame(columns=names)
        matches = [substructure(smiles, s, n_jobs=1) for s in self.smarts] if n else []
        out = []
        for i, smi in enumerate(smiles):
            props: dict[str, Any] = {k: _f(table[k].iat[i]) for k in names}
            reasons: list[str] = []
            ha = props["heavy_atoms"]
            if self.max_heavy_atoms is not None and (ha is None or ha > self.max_heavy_atoms):
                reasons.append(f"heavy_atoms {ha} > {self.max_heavy_atoms}")
            if self.smarts:
                ok = all(m[i] == 1.0 for m in matches)
                props["smarts_match"] = bool(ok)
                if not ok:
                    missing = [s for s, m in zip(self.smarts, matches) if m[i] != 1.0]
                    reasons.append(f"no match for SMARTS {', '.join(missing)}")
            if self.references:
                fp = fingerprint(smi)
                sims = DataStructs.BulkTanimotoSimilarity(fp, self.ref_fps) if fp is not None else []
                sim = float(max(sims)) if len(sims) else None
                props["similarity"] = sim
                if self.min_similarity is not None and (sim is None or sim < self.min_similarity):
                    reasons.append(f"similarity {sim if sim is None else round(sim, 3)} < {self.min_similarity}")
            for k, (lo, hi) in self.pre_bounds.items():
                v = props[k]
                if v is None or not lo <= v <= hi:
                    reasons.append(f"{k} {v if v is None else round(v, 3)} outside [{lo:g}, {hi:g}]")
            if self.train_set is not None:
                props["novel"] = smi not in self.train_set
                if self.novel and not props["novel"]:
                    reasons.append("in the training set")
            out.append({"props": props, "feasible": not reasons, "reasons": reasons})
        return out

    def check_post(self, values: dict[str, float | None]) -> list[str]:
        reasons = []
        for k, (lo, hi) in self.post_bounds.items():
            v = values.get(k)
            if v is None or not lo <= v <= hi:
                reasons.append(f"{k} {v if v is None else round(v, 4)} outside [{lo:g}, {hi:g}]")
        return reasons


def _canonical_set(smiles: Iterable[str]) -> set[str]:
    """Canonical SMILES of a (possibly large) set; sets already canonical are used as they are."""
    items = [s for s in smiles if isinstance(s, str)]
    probe = items[:500]
    if probe and all(canonical(s) == s for s in probe):
        return set(items)
    return {c for c in (canonical(s) for s in items) if c}


def _f(v: Any) -> float | None:
    """A finite float or None (JSON-friendly)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna at WARNING inside the block (no "A new study created" lines for internal studies)."""
    import optuna

    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(min(max(old, optuna.logging.WARNING), optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


# =============================================================================== storage / ledger
def open_storage(storage: Any, heartbeat_interval: int = 30, grace_period: int = 120):
    """An Optuna storage from ``None`` (in memory), an RDB URL, ``journal:///path`` or a storage object.

    RDB URLs get heartbeats (``heartbeat_interval``/``grace_period`` seconds) so that the
    reservations of a dead worker are freed; SQLite files are opened in WAL mode with a
    60 s lock timeout so that several processes can share them.
    """
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise TypeError(f"storage must be None, a URL or an optuna storage, got {type(storage).__name__}")
    if storage.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = storage[len("journal://") :]
        if not path:
            raise ValueError("journal storage needs a file: journal:///path/to/file.log")
        return JournalStorage(JournalFileBackend(path))
    engine_kwargs: dict[str, Any] = {}
    if storage.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat is "experimental"
                rdb = optuna.storages.RDBStorage(
                    storage, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
                )
            break
        except Exception as exc:  # workers starting together race to create the tables
            import sqlalchemy.exc

            racy = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, optuna.exceptions.StorageInternalError)
            # PostgreSQL: CREATE TYPE of an enum another worker has just created (DuplicateObject)
            raced = isinstance(exc, sqlalchemy.exc.ProgrammingError) and "already exists" in str(exc)
            if attempt == 5 or not (isinstance(exc, racy) or raced):
                raise
            time.sleep(0.2 + random.random())
    if storage.startswith("sqlite"):
        import sqlalchemy

        def _pragmas(conn, _record) -> None:
            cur = conn.cursor()
            try:  # WAL: readers do not block the writer; NORMAL: one fsync per checkpoint
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            except Exception as exc:  # another process holds a lock: keep the defaults
                logger.debug("SQLite pragmas not applied: %s", exc)
            finally:
                cur.close()

        sqlalchemy.event.listen(rdb.engine, "connect", _pragmas)
        rdb.engine.dispose()  # connections opened so far did not get the pragmas
    return rdb


class _Heartbeat:
    """Signs of life of this worker's reserved trials while the oracle runs.

    RDB storages: Optuna heartbeats (``fail_stale_trials`` frees the trials of a dead worker).
    With ``stale_after``: the time, in the trial's user attribute ``molvae:alive``, every
    ``stale_after / 4`` seconds, so that only a silent worker's trials count as stale, never
    those of a live worker whose oracle call takes longer than ``stale_after``.
    """

    def __init__(self, storage: Any, stale_after: float | None = None) -> None:
        self.storage = storage
        interval = None
        if hasattr(storage, "get_heartbeat_interval"):
            with contextlib.suppress(Exception):
                interval = storage.get_heartbeat_interval()
        self.interval = interval
        self.alive_every = stale_after / 4 if stale_after else None
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.interval)

    def add(self, trial_ids: Iterable[int]) -> None:
        if not (self.enabled or self.alive_every):
            return
        ids = list(trial_ids)
        for tid in ids if self.enabled else ():
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(tid)
        with self._lock:
            self.trial_ids.update(ids)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="molvae-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, trial_ids: Iterable[int]) -> None:
        with self._lock:
            self.trial_ids.difference_update(trial_ids)

    def _run(self) -> None:
        tick = min(x for x in (self.interval, self.alive_every) if x)
        while not self._stop.wait(tick):
            with self._lock:
                ids = list(self.trial_ids)
            for tid in ids:
                with contextlib.suppress(Exception):  # a trial finished meanwhile refuses updates
                    if self.enabled:
                        self.storage.record_heartbeat(tid)
                    if self.alive_every:
                        self.storage.set_trial_user_attr(tid, _ALIVE_KEY, round(time.time(), 3))

    def close(self) -> None:
        self._stop.set()


class _Ledger:
    """The study that records molecules sent to the oracle and arbitrates the shared budget."""

    def __init__(
        self,
        storage: Any,
        study_name: str | None,
        objectives: list[_Objective],
        latent_dim: int,
        bound: float,
        stale_after: float | None,
        strategy: str,
    ) -> None:
        import optuna
        from optuna.distributions import FloatDistribution

        self.raw_storage = open_storage(storage)
        self.storage = optuna.storages.get_storage(self.raw_storage)  # RDB: with the trial cache
        name = study_name or (DEFAULT_STUDY_NAME if storage is not None else None)
        with _quiet_optuna():
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=name,
                directions=[o.direction for o in objectives],
                load_if_exists=True,
            )
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        self.persistent = storage is not None
        self._check_attrs(objectives, latent_dim, strategy)
        self.dists = {f"z_{i}": FloatDistribution(-bound, bound) for i in range(latent_dim)}
        self.bound = float(bound)
        self.stale_after = stale_after
        self.heartbeat = _Heartbeat(self.storage, stale_after)
        self.finished: dict[int, dict] = {}  # trial number -> record, finished trials
        self.z: dict[int, np.ndarray | None] = {}  # trial number -> stored latent mean
        self.running: dict[int, dict] = {}  # trial number -> record, RUNNING (any worker)
        self.inbox: list[tuple[int, dict, np.ndarray | None]] = []  # finished, not yet taken by the run

    def _check_attrs(self, objectives: list[_Objective], latent_dim: int, strategy: str) -> None:
        attrs = self.study.user_attrs
        want = {
            "molvae:objectives": [o.name for o in objectives],
            "molvae:directions": [o.direction for o in objectives],
            "molvae:latent_dim": int(latent_dim),
        }
        # Key by key: workers that start together may see another's attributes half written,
        # so a missing key is written (the same value by every compatible worker), never an error.
        for k, v in want.items():
            if k not in attrs:
                self.study.set_user_attr(k, v)
            elif attrs[k] != v:
                raise ValueError(
                    f"study {self.study.study_name!r} was run with {k.split(':')[1]}={attrs[k]!r}, "
                    f"this run has {v!r}; use another study_name"
                )
        if "molvae:strategy" not in attrs:
            self.study.set_user_attr("molvae:strategy", strategy)
        elif attrs["molvae:strategy"] != strategy:
            logger.warning("study %r was started with strategy %r, continuing with %r",
                           self.study.study_name, attrs["molvae:strategy"], strategy)

    # ------------------------------------------------------------------ reading
    def sync(self) -> None:
        """Read the study; newly finished records ``(number, record, z)`` of any worker go to ``inbox``."""
        import optuna
        from optuna.trial import TrialState

        if self.heartbeat.enabled:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental"
                optuna.storages.fail_stale_trials(self.study)
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        self.running = {}
        now = time.time()
        stale: list[Any] = []
        for t in trials:
            if t.number in self.finished:
                continue
            rec = t.user_attrs.get(LEDGER_KEY)
            if not isinstance(rec, dict):
                continue  # not written by molvae
            if t.state == TrialState.RUNNING:
                # the last sign of life: the reservation, or its worker's latest "alive" time
                alive = [t.datetime_start.timestamp()] if t.datetime_start is not None else []
                if isinstance(t.user_attrs.get(_ALIVE_KEY), (int, float)):
                    alive.append(float(t.user_attrs[_ALIVE_KEY]))
                if self.stale_after is not None and alive and now - max(alive) > self.stale_after:
                    stale.append(t)
                    continue
                self.running[t.number] = rec
                continue
            if t.state == TrialState.WAITING:
                continue
            rec = dict(rec)
            if t.state == TrialState.FAIL and rec.get("status") == _PENDING:
                rec["status"] = _INTERRUPTED  # failed by a heartbeat check: the worker died
            self.finished[t.number] = rec
            z = None
            if rec.get("z") == "mean" and len(t.params) == len(self.dists):
                z = np.array([t.params[f"z_{i}"] for i in range(len(self.dists))], dtype=np.float32)
            self.z[t.number] = z
            self.inbox.append((t.number, rec, z))
        for t in stale:
            with contextlib.suppress(Exception):
                self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                logger.warning("trial %d of a worker silent for more than %.0f s marked failed", t.number, self.stale_after)

    def drain(self) -> list[tuple[int, dict, np.ndarray | None]]:
        out, self.inbox = self.inbox, []
        return out

    def eligible_numbers(self) -> list[int]:
        """Trial numbers holding or reserving an oracle call, sorted.

        A RUNNING trial whose record already says "scored" is being finished (its user
        attribute is written before its state) and counts too.
        """
        nums = [n for n, r in self.finished.items() if r.get("status") == _SCORED]
        nums += [n for n, r in self.running.items() if r.get("status") in (_PENDING, _SCORED)]
        return sorted(nums)

    def in_flight(self) -> set[str]:
        """Molecules reserved by a RUNNING trial (any worker)."""
        return {r.get("smiles") for r in self.running.values() if r.get("status") in (_PENDING, _SCORED)}

    def n_scored(self) -> int:
        return sum(1 for r in self.finished.values() if r.get("status") == _SCORED)

    @property
    def frees_dead_reservations(self) -> bool:
        """Whether the reservations of a dead worker are ever freed (heartbeats or ``stale_after``)."""
        return self.heartbeat.enabled or self.stale_after is not None

    # ------------------------------------------------------------------ writing
    def reserve(self, records: list[dict], zs: list[np.ndarray | None]) -> list[tuple[int, int]]:
        """Add RUNNING trials for ``records``; returns ``(trial_id, number)`` per record."""
        from optuna.trial import TrialState, create_trial

        out = []
        for rec, z in zip(records, zs):
            params = {}
            if z is not None:
                zc = np.clip(np.asarray(z, dtype=np.float64), -self.bound, self.bound)
                params = {k: float(v) for k, v in zip(self.dists, zc)}
            ft = create_trial(
                state=TrialState.RUNNING,
                params=params,
                distributions=dict(self.dists) if params else {},
                user_attrs={LEDGER_KEY: rec},
            )
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=ft)
            number = self.storage.get_trial_number_from_id(trial_id)
            out.append((trial_id, number))
        self.heartbeat.add(tid for tid, _ in out)
        return out

    def finish(self, trial_id: int, rec: dict, values: list[float] | None) -> None:
        from optuna.trial import TrialState

        self.storage.set_trial_user_attr(trial_id, LEDGER_KEY, rec)
        if values is not None and all(v is not None and math.isfinite(v) for v in values):
            self.storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[float(v) for v in values])
        else:
            self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        self.heartbeat.discard([trial_id])

    def release(self, trial_id: int, rec: dict) -> None:
        """Fail a reserved trial that will not be scored."""
        with contextlib.suppress(Exception):
            self.finish(trial_id, rec, None)

    def close(self) -> None:
        self.heartbeat.close()


# =============================================================================== the run
@dataclass
class _Cand:
    smiles: str
    z_prop: np.ndarray | None = None  # the point that proposed it
    z_mean: np.ndarray | None = None  # its own posterior mean
    source: str = ""
    check: dict | None = None


class _Run:
    """State shared by the strategies: oracle, constraints, budget, records, latent data."""

    def __init__(
        self,
        model: Any,
        objectives: list[_Objective],
        constraints: _Constraints,
        ledger: _Ledger,
        budget: int,
        batch_size: int,
        strategy: str,
        worker: str,
        weights: Sequence[float] | None,
        progress: bool,
    ) -> None:
        self.model = model
        self.D = int(model.latent_dim)
        self.objectives = objectives
        self.k = len(objectives)
        self.constraints = constraints
        self.ledger = ledger
        self.budget = int(budget)
        self.batch_size = int(batch_size)
        self.strategy = strategy
        self.worker = worker
        self.round = 0
        w = np.ones(self.k) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (self.k,):
            raise ValueError(f"weights must have one value per objective ({self.k})")
        self.weights = w
        self.signs = np.array([o.sign for o in objectives])
        self.t0 = time.time()
        # every molecule this worker knows: canonical SMILES -> record
        self.known: dict[str, dict] = {}
        self.records: list[dict] = []  # history rows (ledger records + local infeasible ones)
        # scored molecules (any worker): data for the strategies
        self.d_smiles: list[str] = []
        self.d_values: list[np.ndarray] = []
        self.d_z: list[np.ndarray] = []
        self.d_feasible: list[bool] = []
        self.d_index: dict[str, int] = {}
        self._arrays: tuple | None = None
        self.n_calls_here = 0  # molecules this process sent to the oracle
        self.last_n_new = 0
        self.stats = dict.fromkeys(["decoded", "invalid", "known", "infeasible", "over_budget", "duplicate_in_flight"], 0)
        self._fps: dict[str, np.ndarray] = {}
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.budget, desc=f"optimize ({strategy})", unit="call", dynamic_ncols=True)

    # ------------------------------------------------------------------ utilities
    def score_of(self, values: Sequence[float | None]) -> float:
        """The scalar ``score`` of objective values (NaN if any failed)."""
        v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
        if self.k == 1:
            return float(v[0])
        return float(np.sum(self.signs * self.weights * v))

    def utility_of_score(self, score: np.ndarray | float) -> np.ndarray | float:
        """Larger is better."""
        return score * (self.signs[0] if self.k == 1 else 1.0)

    def arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Scored data: smiles, Z (n, D; NaN rows where not encodable), values (n, k), feasible (n,)."""
        if self._arrays is None:
            n = len(self.d_smiles)
            Z = np.stack(self.d_z) if n else np.zeros((0, self.D), np.float32)
            V = np.stack(self.d_values) if n else np.zeros((0, self.k))
            F = np.array(self.d_feasible, dtype=bool)
            self._arrays = (list(self.d_smiles), Z, V, F)
        return self._arrays

    def utilities(self, chebyshev: np.ndarray | None = None) -> np.ndarray:
        """Utility (larger is better) of every scored molecule; NaN for failed or infeasible ones.

        With several objectives and ``chebyshev`` weights: augmented Chebyshev scalarization
        of the direction-signed objectives scaled to [0, 1] over the data.
        """
        _, _, V, F = self.arrays()
        if not len(V):
            return np.zeros(0)
        if self.k == 1 or chebyshev is None:
            if self.k == 1:
                u = V[:, 0] * self.signs[0]
            else:
                u = (V * self.signs * self.weights).sum(1)
        else:
            S = V * self.signs
            lo, hi = np.nanmin(S, axis=0), np.nanmax(S, axis=0)
            Sn = (S - lo) / np.where(hi > lo, hi - lo, 1.0)
            u = np.min(chebyshev * Sn, axis=1) + 0.05 * np.sum(chebyshev * Sn, axis=1)
        u = np.where(F, u, np.nan)
        return u

    def best(self) -> float | None:
        _, _, V, F = self.arrays()
        if not len(V):
            return None
        scores = np.array([self.score_of(v) for v in V])
        scores = np.where(F, scores, np.nan)
        if np.all(np.isnan(scores)):
            return None
        u = self.utility_of_score(scores)
        return float(scores[int(np.nanargmax(u))])

    def fingerprints(self, smiles: Sequence[str]) -> np.ndarray:
        from rdkit.Chem import rdFingerprintGenerator

        from molvae.chem import to_mol

        gen = getattr(self, "_fpgen", None)
        if gen is None:
            gen = self._fpgen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        out = np.zeros((len(smiles), 2048), dtype=np.float32)
        for i, s in enumerate(smiles):
            fp = self._fps.get(s)
            if fp is None:
                mol = to_mol(s)
                fp = gen.GetFingerprintAsNumPy(mol).astype(bool) if mol is not None else np.zeros(2048, bool)
                self._fps[s] = fp
            out[i] = fp
        return out

    # ------------------------------------------------------------------ model
    def decode(self, Z: np.ndarray) -> list[str | None]:
        if not len(Z):
            return []
        raw = self.model.decode(np.asarray(Z, dtype=np.float32), method="greedy")
        out = [s or None for s in raw]  # the model returns canonical SMILES ("" when none)
        self.stats["decoded"] += len(raw)
        self.stats["invalid"] += sum(c is None for c in out)
        return out

    def encode(self, smiles: Sequence[str]) -> np.ndarray:
        if not len(smiles):
            return np.zeros((0, self.D), np.float32)
        mlog = logging.getLogger("molvae.vae.model")
        level = mlog.level
        mlog.setLevel(logging.ERROR)  # molecules too long for the tokenizer are expected here
        try:
            return self.model.encode(list(smiles))
        finally:
            mlog.setLevel(level)

    # ------------------------------------------------------------------ records
    def _add_record(self, rec: dict, z: np.ndarray | None) -> None:
        self.records.append(rec)
        self.known[rec["smiles"]] = rec
        if rec["status"] == _SCORED:
            self.d_index[rec["smiles"]] = len(self.d_smiles)
            self.d_smiles.append(rec["smiles"])
            self.d_values.append(np.array([np.nan if v is None else v for v in rec["values"]], dtype=np.float64))
            self.d_z.append(np.full(self.D, np.nan, np.float32) if z is None else np.asarray(z, np.float32))
            self.d_feasible.append(bool(rec["feasible"]))
            self._arrays = None

    def sync(self) -> int:
        """Load molecules scored by other workers (or earlier runs); returns how many."""
        n = 0
        self.ledger.sync()
        for number, rec, z in self.ledger.drain():
            if rec.get("status") != _SCORED or rec.get("smiles") in self.known:
                continue
            rec = dict(rec, trial=number)
            self._add_record(rec, z)
            n += 1
        if n:
            missing = [i for i, z in enumerate(self.d_z) if not np.isfinite(z).all()]
            if missing:  # molecules stored without a latent mean: try to encode them
                Z = self.encode([self.d_smiles[i] for i in missing])
                for i, z in zip(missing, Z):
                    self.d_z[i] = z
                self._arrays = None
        return n

    def n_calls(self) -> int:
        return self.ledger.n_scored()

    def remaining(self) -> int:
        return self.budget - len(self.ledger.eligible_numbers())

    def done(self) -> bool:
        return self.n_calls() >= self.budget

    def _new_record(self, c: _Cand, status: str) -> dict:
        chk = c.check or {"props": {}, "feasible": True, "reasons": []}
        return {
            "smiles": c.smiles,
            "status": status,
            "call": None,
            "values": [None] * self.k,
            "score": None,
            "feasible": bool(chk["feasible"]),
            "reasons": "; ".join(chk["reasons"]),
            "props": dict(chk["props"]),
            "source": c.source,
            "strategy": self.strategy,
            "round": self.round,
            "worker": self.worker,
            "z": "mean" if c.z_mean is not None and np.isfinite(c.z_mean).all() else "none",
            "time": round(time.time(), 3),
        }

    # ------------------------------------------------------------------ candidates
    def screen(self, Z: np.ndarray, source: str) -> list[_Cand]:
        """Decode ``Z``; record new molecules that fail a cheap constraint; return the new feasible ones.

        Each molecule keeps the first point that produced it (``z_prop``); the decoded
        molecules of all rows are left in ``self.last_decoded``.
        """
        smiles = self.last_decoded = self.decode(Z)
        first: dict[str, int] = {}
        for i, s in enumerate(smiles):
            if s is None:
                continue
            if s in self.known:
                self.stats["known"] += 1
                continue
            first.setdefault(s, i)
        self.last_n_new = len(first)  # unseen molecules, feasible or not
        cands = [_Cand(s, z_prop=np.asarray(Z[i], np.float32), source=source) for s, i in first.items()]
        return self.check(cands)

    def check(self, cands: list[_Cand], force: bool = False) -> list[_Cand]:
        """Cheap constraint checks; infeasible molecules are recorded (never scored) unless ``force``."""
        todo = [c for c in cands if c.check is None]
        for c, chk in zip(todo, self.constraints.check([c.smiles for c in todo])):
            c.check = chk
        keep = []
        for c in cands:
            if c.check["feasible"] or force:
                keep.append(c)
            elif c.smiles not in self.known:
                self.stats["infeasible"] += 1
                self._add_record(self._new_record(c, _INFEASIBLE), None)
        return keep

    def ensure_means(self, cands: list[_Cand]) -> None:
        todo = [c for c in cands if c.z_mean is None]
        if todo:
            for c, z in zip(todo, self.encode([c.smiles for c in todo])):
                c.z_mean = z if np.isfinite(z).all() else None

    # ------------------------------------------------------------------ the oracle
    def evaluate(self, cands: list[_Cand], force: bool = False) -> list[dict]:
        """Score new molecules (at most the remaining budget); returns their records.

        ``cands`` must be canonical; known molecules and in-batch duplicates are dropped.
        ``force`` scores molecules that fail cheap constraints (the user's start molecules).
        """
        seen: set[str] = set()
        uniq = []
        for c in cands:
            if c.smiles in self.known or c.smiles in seen:
                continue
            seen.add(c.smiles)
            uniq.append(c)
        uniq = self.check(uniq, force=force)
        if not uniq:
            return []
        self.sync()
        uniq = [c for c in uniq if c.smiles not in self.known]
        pending_smiles = self.ledger.in_flight()
        n_flight = sum(c.smiles in pending_smiles for c in uniq)
        if n_flight:  # another worker is scoring them right now
            self.stats["duplicate_in_flight"] += n_flight
            uniq = [c for c in uniq if c.smiles not in pending_smiles]
        room = self.remaining()
        if room <= 0 or not uniq:
            return []
        uniq = uniq[:room]
        self.ensure_means(uniq)
        recs = [self._new_record(c, _PENDING) for c in uniq]
        ids = self.ledger.reserve(recs, [c.z_mean for c in uniq])
        try:
            allowed = self._arbitrate(uniq, recs, ids)
            results = self._call_oracle([uniq[i] for i in allowed], [recs[i] for i in allowed], [ids[i] for i in allowed])
        except BaseException:
            for (tid, _), rec in zip(ids, recs):
                if rec["status"] == _PENDING:
                    rec["status"] = _INTERRUPTED
                    self.ledger.release(tid, rec)
            raise
        return results

    def _arbitrate(self, cands: list[_Cand], recs: list[dict], ids: list[tuple[int, int]]) -> list[int]:
        """Which reserved trials may call the oracle (rank < budget, first holder of the molecule)."""
        import bisect

        self.ledger.sync()
        eligible = self.ledger.eligible_numbers()
        holder: dict[str, int] = {}
        for n in eligible:
            rec = self.ledger.finished.get(n) or self.ledger.running.get(n)
            s = rec.get("smiles") if rec else None
            if s is not None and s not in holder:
                holder[s] = n
        allowed = []
        for i, (c, rec, (tid, number)) in enumerate(zip(cands, recs, ids)):
            rank = bisect.bisect_left(eligible, number)
            if holder.get(c.smiles, number) < number:
                rec["status"] = _DUPLICATE
                self.stats["duplicate_in_flight"] += 1
                self.ledger.release(tid, rec)
            elif rank >= self.budget:
                rec["status"] = _OVER_BUDGET
                self.stats["over_budget"] += 1
                self.ledger.release(tid, rec)
            else:
                rec["call"] = rank + 1
                allowed.append(i)
        return allowed

    def _call_oracle(self, cands: list[_Cand], recs: list[dict], ids: list[tuple[int, int]]) -> list[dict]:
        if not cands:
            return []
        smiles = [c.smiles for c in cands]
        self.n_calls_here += len(smiles)
        table = np.full((len(smiles), self.k), np.nan)
        errors: list[str | None] = [None] * self.k
        for j, obj in enumerate(self.objectives):
            table[:, j], errors[j] = obj(smiles)
        comp_names = [n for o in self.objectives for n in o.components]
        comps = None
        if comp_names:
            from molvae.properties import compute

            comps = compute(smiles, list(dict.fromkeys(comp_names)), n_jobs=1)
        out = []
        for i, (c, rec, (tid, number)) in enumerate(zip(cands, recs, ids)):
            values = [_f(v) for v in table[i]]
            rec["status"] = _SCORED
            rec["values"] = values
            score = self.score_of(values)
            rec["score"] = _f(score)
            if comps is not None:
                for name in comps.columns[1:]:
                    rec["props"][name] = _f(comps[name].iat[i])
            reasons = [r for r in rec["reasons"].split("; ") if r]
            if any(v is None for v in values):
                failed = [o.name for o, v in zip(self.objectives, values) if v is None]
                err = "; ".join(e for e in errors if e)
                reasons.append(f"objective failed ({', '.join(failed)}{': ' + err[:200] if err else ''})")
            reasons += self.constraints.check_post({o.name: v for o, v in zip(self.objectives, values)})
            rec["reasons"] = "; ".join(reasons)
            rec["feasible"] = not reasons
            rec["time"] = round(time.time(), 3)
            self.ledger.finish(tid, rec, values)
            self.ledger.finished[number] = dict(rec)
            self.ledger.z[number] = c.z_mean
            self.ledger.running.pop(number, None)
            rec = dict(rec, trial=number)
            self._add_record(rec, c.z_mean)
            out.append(rec)
        if self.bar is not None:
            self.bar.n = min(self.n_calls(), self.budget)
            best = self.best()
            self.bar.set_postfix(best=f"{best:.4g}" if best is not None else "n/a", refresh=False)
            self.bar.refresh()
        return out

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.ledger.close()


# =============================================================================== surrogates
class _TanimotoGP:
    """Exact GP regression with a Tanimoto kernel on binary fingerprints (y standardized).

    The noise variance is picked from a small grid by marginal likelihood; at most
    ``max_points`` rows are used (the best half plus the most recent ones).
    """

    def __init__(self, max_points: int = 1500, noise_grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 0.3)) -> None:
        self.max_points = max_points
        self.noise_grid = tuple(noise_grid)

    @staticmethod
    def kernel(A: np.ndarray, B: np.ndarray) -> np.ndarray:
        ab = A @ B.T
        na = A.sum(1)[:, None]
        nb = B.sum(1)[None, :]
        return ab / np.maximum(na + nb - ab, 1e-9)

    def fit(self, X: np.ndarray, y: np.ndarray) -> _TanimotoGP:
        from scipy.linalg import cho_factor, cho_solve

        if len(y) > self.max_points:
            order = np.argsort(-y, kind="stable")
            half = self.max_points // 2
            rest = np.setdiff1d(np.arange(len(y)), order[:half])[-(self.max_points - half) :]
            idx = np.concatenate([order[:half], rest])
            X, y = X[idx], y[idx]
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        yn = (y - self.mu) / self.sd
        K = self.kernel(X, X).astype(np.float64)
        best = None
        for noise in self.noise_grid:
            try:
                cf = cho_factor(K + noise * np.eye(len(K)), lower=True)
            except np.linalg.LinAlgError:
                continue
            alpha = cho_solve(cf, yn)
            lml = -0.5 * yn @ alpha - np.log(np.diag(cf[0])).sum()
            if best is None or lml > best[0]:
                best = (lml, cf, alpha, noise)
        if best is None:
            raise np.linalg.LinAlgError("Tanimoto GP: no noise level gives a positive definite kernel")
        _, self.cf, self.alpha, self.noise = best
        self.X = X
        return self

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import solve_triangular

        Ks = self.kernel(Xs, self.X).astype(np.float64)
        mean = Ks @ self.alpha
        v = solve_triangular(self.cf[0], Ks.T, lower=True)
        var = np.clip(1.0 - (v * v).sum(0), 1e-9, None)
        return mean * self.sd + self.mu, np.sqrt(var) * self.sd


def _thompson_pick(mean: np.ndarray, std: np.ndarray, q: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``q`` candidates, each the argmax of an independent draw mean + std * N(0, 1)."""
    n = len(mean)
    if n <= q:
        return list(np.argsort(-mean))
    chosen: list[int] = []
    mask = np.zeros(n, dtype=bool)
    for _ in range(q):
        draw = mean + std * rng.standard_normal(n)
        draw[mask] = -np.inf
        j = int(np.argmax(draw))
        chosen.append(j)
        mask[j] = True
    return chosen


# =============================================================================== strategies
class _Strategy:
    name = ""

    def __init__(self, run: _Run, rng: np.random.Generator, seed: int) -> None:
        self.run = run
        self.rng = rng
        self.seed = seed

    @property
    def q(self) -> int:
        return self.run.batch_size

    def scalarization(self) -> np.ndarray | None:
        """Random Chebyshev weights for this round (several objectives), else None."""
        if self.run.k == 1:
            return None
        return self.rng.dirichlet(np.ones(self.run.k))

    def after_start(self) -> None:
        pass

    def step(self) -> int:
        raise NotImplementedError

    # shared: rank candidates with a surrogate and evaluate the best q
    def _rank_and_evaluate(self, cands: list[_Cand], surrogate: str | None, u: np.ndarray) -> list[dict]:
        run = self.run
        if not cands:
            return []
        q = min(self.q, run.remaining())
        if q <= 0:
            return []
        smiles, Z, _, _ = run.arrays()
        ok = np.isfinite(u)
        order: list[int]
        if surrogate is None or ok.sum() < 5 or len(cands) <= q:
            order = list(self.rng.permutation(len(cands)))
        else:
            mean, std = self._predict(surrogate, cands, [s for s, o in zip(smiles, ok) if o], Z[ok], u[ok])
            order = _thompson_pick(mean, std, q, self.rng)
        chosen = [cands[i] for i in order[: max(q, 0)]]
        return run.evaluate(chosen)

    def _predict(self, surrogate: str, cands: list[_Cand], smiles: list[str], Z: np.ndarray, u: np.ndarray):
        run = self.run
        if surrogate == "tanimoto":
            gp = _TanimotoGP().fit(run.fingerprints(smiles), u)
            return gp.predict(run.fingerprints([c.smiles for c in cands]))
        # latent surrogates: train and predict on posterior means
        run.ensure_means(cands)
        zok = np.isfinite(Z).all(1)
        if zok.sum() < 5:
            return np.zeros(len(cands)), np.ones(len(cands))
        # a mutation the encoder cannot read has no latent point: ranked last, with the
        # widest uncertainty of the batch (it can still win a Thompson draw)
        Zc = np.stack([c.z_mean if c.z_mean is not None else c.z_prop if c.z_prop is not None
                       else np.full(run.D, np.nan, np.float32) for c in cands])
        has_z = np.isfinite(Zc).all(1)
        from molvae.predictors.all import GPPredictor, MLPEnsemble

        if surrogate == "mlp":
            model = MLPEnsemble(n_members=5, hidden=(128, 128), max_epochs=150, patience=15, batch_size=64,
                                device=run.model.device)
        elif surrogate == "gp":
            model = GPPredictor(max_points=800, n_restarts=0)
        else:
            raise ValueError(f"unknown surrogate {surrogate!r}; use 'tanimoto', 'mlp', 'gp' or None")
        model.fit(Z[zok], u[zok], cv=0, seed=int(self.rng.integers(2**31)))
        mean, std = np.zeros(len(cands)), np.zeros(len(cands))
        if has_z.any():
            mean[has_z], std[has_z] = model.predict(Zc[has_z])
        if not has_z.all():
            mean[~has_z] = mean[has_z].min() if has_z.any() else 0.0
            std[~has_z] = std[has_z].max() if has_z.any() else 1.0
        return mean, std


class _SelfiesMutator:
    """Random SELFIES edits (replace, insert or delete 1-3 tokens) drawn from the model's alphabet."""

    def __init__(self, tokenizer: Any, rng: np.random.Generator) -> None:
        import selfies as sf

        self.sf = sf
        self.rng = rng
        from molvae.tokenizer import SPECIAL_TOKENS

        self.alphabet = [t for t in tokenizer.itos if t not in SPECIAL_TOKENS and t.startswith("[")]
        self._tokens: dict[str, list[str] | None] = {}
        self.last_n_new = 0

    def tokens(self, smiles: str) -> list[str] | None:
        if smiles not in self._tokens:
            try:
                toks = list(self.sf.split_selfies(self.sf.encoder(smiles)))
            except Exception:
                toks = None
            self._tokens[smiles] = toks or None
        return self._tokens[smiles]

    def edit(self, toks: list[str]) -> list[str]:
        toks = list(toks)
        for _ in range(min(3, int(self.rng.geometric(0.6)))):  # 1 edit (60%), 2 (24%), 3 (16%)
            op = self.rng.integers(3) if len(toks) > 1 else 1
            pos = int(self.rng.integers(len(toks) + (op == 1)))
            if op == 0:
                toks[pos] = self.alphabet[int(self.rng.integers(len(self.alphabet)))]
            elif op == 1:
                toks.insert(pos, self.alphabet[int(self.rng.integers(len(self.alphabet)))])
            else:
                del toks[pos]
        return toks

    def mutate(self, parents: Sequence[str], exclude: Mapping[str, Any] | set[str]) -> list[str]:
        """Canonical SMILES of new molecules (not in ``exclude``, no repeats, no radicals) made by editing ``parents``."""
        from molvae.chem import to_mol
        from molvae.tokenizer import selfies_to_smiles

        out: dict[str, None] = {}
        for p in parents:
            toks = self.tokens(p)
            if not toks or not self.alphabet:
                continue
            smi = selfies_to_smiles("".join(self.edit(toks)))
            if not smi or smi in exclude or smi == p or smi in out:
                continue
            mol = to_mol(smi)
            # SELFIES keeps valences legal by leaving radicals where an edit removed a bond:
            # not molecules anyone wants (nor in the model's vocabulary)
            if mol is not None and not any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
                out[smi] = None
        self.last_n_new = len(out)
        return list(out)


class _TrustRegion(_Strategy):
    name = "trust_region"

    def __init__(
        self,
        run: _Run,
        rng: np.random.Generator,
        seed: int,
        n_candidates: int = 512,
        surrogate: str | None = "tanimoto",
        length_init: float = 1.0,
        length_min: float = 0.1,
        length_max: float = 4.0,
        success_tolerance: int = 3,
        failure_tolerance: int | None = None,
        perturb_prob: float | None = None,
        scale: str = "prior",
        global_fraction: float = 0.1,
        mutation_fraction: float = 0.25,
        bound: float = 3.0,
    ) -> None:
        super().__init__(run, rng, seed)
        if not 0.0 <= global_fraction < 1.0:
            raise ValueError("global_fraction must be within [0, 1)")
        if not 0.0 <= mutation_fraction <= 1.0 or global_fraction + mutation_fraction > 1.0:
            raise ValueError("mutation_fraction must be within [0, 1] and global_fraction + mutation_fraction <= 1")
        self.global_fraction = float(global_fraction)
        self.mutation_fraction = float(mutation_fraction)
        self.mutator = _SelfiesMutator(run.model.tokenizer, rng) if mutation_fraction > 0 else None
        if scale not in ("prior", "data"):
            raise ValueError("scale must be 'prior' (box sides in prior sigmas) or 'data' (scaled by the spread of the latent means)")
        self.scale = scale
        if surrogate not in ("tanimoto", "mlp", "gp", None):
            raise ValueError(f"unknown surrogate {surrogate!r}; use 'tanimoto', 'mlp', 'gp' or None")
        if not 0 < length_min <= length_init <= length_max:
            raise ValueError("need 0 < length_min <= length_init <= length_max")
        self.n_candidates = int(n_candidates)
        self.surrogate = surrogate
        self.length_init, self.length_min, self.length_max = float(length_init), float(length_min), float(length_max)
        self.length = self.length_init
        self.success_tolerance = int(success_tolerance)
        D = run.D
        self.failure_tolerance = int(failure_tolerance or max(2, math.ceil(D / max(self.q, 1))))
        self.perturb_prob = float(perturb_prob) if perturb_prob else min(1.0, 20.0 / D)
        self.bound = float(bound)
        self.n_success = self.n_failure = 0
        self.center: str | None = None
        self.center_u = -math.inf
        self.used_centers: list[str] = []
        self.restarts = 0
        self.widened = 0

    def _choose_center(self, u: np.ndarray, restart: bool) -> None:
        smiles, Z, _, _ = self.run.arrays()
        ok = np.isfinite(u) & np.isfinite(Z).all(1)
        if not ok.any():
            self.center = None
            return
        order = [i for i in np.argsort(-np.where(ok, u, -np.inf)) if ok[i]]
        if restart:
            fresh = [i for i in order[:20] if smiles[i] not in self.used_centers]
            pool = fresh or order[:20]
            i = int(pool[int(self.rng.integers(min(len(pool), 5)))])
        else:
            i = int(order[0])
        self.center, self.center_u = smiles[i], float(u[i])
        self.used_centers.append(self.center)

    def _mutants(self, n: int, u: np.ndarray) -> list[_Cand]:
        """SELFIES edits of the center (half) and of the 10 best molecules (the rest).

        The decoder reconstructs a molecule only approximately, so latent steps rarely stay
        within a tight similarity of it; small string edits do, and every edited SELFIES is
        still a valid molecule.
        """
        run = self.run
        smiles = run.arrays()[0]
        ok = np.flatnonzero(np.isfinite(u))
        top = [smiles[i] for i in ok[np.argsort(-u[ok])][:10]] or list(smiles[:10])  # none feasible: the first scored
        if not top:
            return []
        parents = [self.center if (self.center and self.rng.random() < 0.5) else top[int(self.rng.integers(len(top)))]
                   for _ in range(n)]
        out = self.mutator.mutate(parents, exclude=run.known)
        return run.check([_Cand(s, source="mutation") for s in out])

    def _scales(self) -> np.ndarray:
        _, Z, _, _ = self.run.arrays()
        Z = Z[np.isfinite(Z).all(1)]
        if self.scale == "prior" or len(Z) < 5:
            return np.ones(self.run.D)
        s = Z.std(0) + 1e-3
        s = s / np.exp(np.log(s).mean())  # geometric mean 1, as TuRBO's length scales
        return np.clip(s, 0.1, 3.0)

    def step(self) -> int:
        run = self.run
        lam = self.scalarization()
        u = run.utilities(lam)
        if lam is not None and self.center is not None:  # new weights: re-rank the center
            self.center_u = float(u[run.d_index[self.center]])
        if self.center is None:
            self._choose_center(u, restart=False)
        if self.center is None:
            # no encodable feasible molecule to center a box on (nothing scored yet, or only
            # start molecules outside the model's vocabulary): prior draws, and edits of the
            # molecules scored so far
            n_mut = int(round(self.mutation_fraction * self.n_candidates)) if self.mutator and run.d_smiles else 0
            Z = self.rng.standard_normal((self.n_candidates - n_mut, run.D)).astype(np.float32)
            cands = run.screen(Z, "prior")
            if n_mut:
                cands += self._mutants(n_mut, u)
            return len(self._rank_and_evaluate(cands, self.surrogate if n_mut else None, u))
        zc = run.arrays()[1][run.d_index[self.center]]
        D = run.D
        n_mut = int(round(self.mutation_fraction * self.n_candidates)) if self.mutator else 0
        n = self.n_candidates - n_mut
        mask = self.rng.random((n, D)) < self.perturb_prob
        none = ~mask.any(1)
        mask[none, self.rng.integers(D, size=int(none.sum()))] = True
        delta = self.rng.uniform(-0.5, 0.5, (n, D)) * self.length * self._scales()
        Z = zc + mask * delta
        # a few prior draws compete in the same ranking: a hedge when the region is poor
        n_global = int(round(self.global_fraction * n))
        if n_global:
            Z[:n_global] = self.rng.standard_normal((n_global, D))
        Z = np.clip(Z, -self.bound, self.bound).astype(np.float32)
        cands = run.screen(Z, self.name)
        if n_mut:
            n_latent_new = run.last_n_new
            cands += self._mutants(n_mut, u)
            run.last_n_new = n_latent_new + self.mutator.last_n_new
        new = self._rank_and_evaluate(cands, self.surrogate, u)
        # success: a better molecule than the center
        best_new = -math.inf
        u = run.utilities(lam)
        for rec in new:
            val = u[run.d_index[rec["smiles"]]]
            if np.isfinite(val):
                best_new = max(best_new, float(val))
        tol = 1e-3 * max(1.0, abs(self.center_u))
        if best_new > self.center_u + tol:
            self.n_success += 1
            self.n_failure = 0
            self._choose_center(run.utilities(lam), restart=False)
        elif run.last_n_new < self.q and self.length < self.length_max:
            # the box decodes to too few unseen molecules (feasible or not): the decoder is
            # coarser than the box.  (Many unseen but infeasible ones: shrink, as a failure.)
            self.length = min(2.0 * self.length, self.length_max)
            self.widened += 1
            return len(new)
        else:
            self.n_failure += 1
            self.n_success = 0
        if self.n_success >= self.success_tolerance:
            self.length = min(2.0 * self.length, self.length_max)
            self.n_success = 0
        elif self.n_failure >= self.failure_tolerance:
            self.length /= 2.0
            self.n_failure = 0
        if self.length < self.length_min:
            self.restarts += 1
            self.length = self.length_init
            self.n_success = self.n_failure = 0
            self._choose_center(run.utilities(lam), restart=True)
            logger.debug("trust region restarts around %s", self.center)
        return len(new)


class _Gradient(_Strategy):
    name = "gradient"

    def __init__(
        self,
        run: _Run,
        rng: np.random.Generator,
        seed: int,
        n_starts: int | None = None,
        steps: Sequence[int] = (5, 15, 30),
        lr: float = 0.05,
        noise: float = 0.3,
        prior_weight: float = 0.05,
        kappa: float = 0.0,
        top_k: int = 10,
        ensemble: Mapping[str, Any] | None = None,
        bound: float = 3.0,
    ) -> None:
        super().__init__(run, rng, seed)
        self.n_starts = int(n_starts or 2 * self.q)
        self.steps = sorted(int(s) for s in steps)
        self.lr, self.noise, self.prior_weight, self.kappa = float(lr), float(noise), float(prior_weight), float(kappa)
        self.top_k = int(top_k)
        self.ensemble_kwargs = dict(n_members=5, hidden=(128, 128), max_epochs=150, patience=15, batch_size=64)
        self.ensemble_kwargs.update(ensemble or {})
        self.bound = float(bound)
        self.stall = 0

    def step(self) -> int:
        from molvae.predictors.all import MLPEnsemble

        run = self.run
        lam = self.scalarization()
        u = run.utilities(lam)
        smiles, Z, _, _ = run.arrays()
        ok = np.isfinite(u) & np.isfinite(Z).all(1)
        if ok.sum() < 5:
            Zp = self.rng.standard_normal((4 * self.q, run.D)).astype(np.float32)
            return len(self._rank_and_evaluate(run.screen(Zp, "prior"), None, u))
        ens = MLPEnsemble(**self.ensemble_kwargs, device=run.model.device)
        ens.fit(Z[ok], u[ok], cv=0, seed=int(self.rng.integers(2**31)))
        idx = np.flatnonzero(ok)[np.argsort(-u[ok])][: self.top_k]
        noise = self.noise * (1.0 + 0.5 * self.stall)  # wider when rounds find nothing new
        pick = idx[self.rng.integers(len(idx), size=self.n_starts)]
        z = Z[pick] + noise * self.rng.standard_normal((self.n_starts, run.D)).astype(np.float32)
        z = np.clip(z, -self.bound, self.bound)
        points = [z]
        done = 0
        for s in self.steps:
            z, _ = ens.gradient_ascent(z, steps=s - done, lr=self.lr, maximize=True, kappa=self.kappa,
                                       prior_weight=self.prior_weight, bound=self.bound)
            done = s
            points.append(z)
        Zp = np.concatenate(points).astype(np.float32)
        cands = run.screen(Zp, self.name)
        if not cands:
            self.stall += 1
            return 0
        run.ensure_means(cands)
        Zc = np.stack([c.z_mean if c.z_mean is not None else c.z_prop for c in cands])
        mean, std = ens.predict(Zc)
        order = _thompson_pick(mean, std, min(self.q, run.remaining()), self.rng)
        new = run.evaluate([cands[i] for i in order])
        self.stall = 0 if new else self.stall + 1
        return len(new)


class _OptunaStrategy(_Strategy):
    name = "optuna"

    def __init__(
        self,
        run: _Run,
        rng: np.random.Generator,
        seed: int,
        sampler: str | None = None,
        sigma0: float = 0.5,
        popsize: int | None = None,
        n_ask: int | None = None,
        sampler_kwargs: Mapping[str, Any] | None = None,
        bound: float = 3.0,
    ) -> None:
        import optuna
        from optuna.distributions import FloatDistribution

        super().__init__(run, rng, seed)
        multi = run.k > 1
        if sampler is None:
            sampler = "nsga2" if multi else "cmaes"
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
        if multi and sampler in ("cmaes", "gp"):
            raise ValueError(f"sampler {sampler!r} has one objective; use 'nsga2' or 'tpe' with several")
        if sampler == "cmaes":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise ImportError("sampler='cmaes' needs the 'cmaes' package: pip install cmaes") from None
        self.sampler_name = sampler
        self.sigma0 = float(sigma0)
        self.popsize = int(popsize or self.q)
        if n_ask is None:  # GP proposes one point per fit: few asks per round
            n_ask = min(self.q, 4) if sampler == "gp" else self.popsize if sampler in ("cmaes", "nsga2") else self.q
        self.n_ask = int(n_ask)
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.bound = float(bound)
        self.dists = {f"z_{i}": FloatDistribution(-self.bound, self.bound) for i in range(run.D)}
        # surrogate samplers learn from (re-encoded mean, score); evolutionary ones from (asked point, score)
        self.reencoded = sampler in ("tpe", "gp")
        self.study: optuna.Study | None = None
        self.added: set[str] = set()

    def _make_sampler(self, x0: dict | None):
        import optuna

        kw = dict(self.sampler_kwargs)
        s = self.sampler_name
        if s == "cmaes":
            kw.setdefault("popsize", self.popsize)
            kw.setdefault("n_startup_trials", 0)
            kw.setdefault("warn_independent_sampling", False)
            if x0 is not None:
                kw.setdefault("x0", x0)
                kw.setdefault("sigma0", self.sigma0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # x0/sigma0 are deprecated since Optuna 4.9
                return optuna.samplers.CmaEsSampler(seed=self.seed, **kw)
        if s == "tpe":
            kw.setdefault("constant_liar", True)
            kw.setdefault("n_startup_trials", 10)
            return optuna.samplers.TPESampler(seed=self.seed, **kw)
        if s == "gp":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.samplers.GPSampler(seed=self.seed, **kw)
        if s == "nsga2":
            kw.setdefault("population_size", self.popsize)
            return optuna.samplers.NSGAIISampler(seed=self.seed, **kw)
        return optuna.samplers.RandomSampler(seed=self.seed)

    def _penalty(self) -> list[float]:
        """Objective values worse than anything seen (told for infeasible molecules)."""
        _, _, V, _ = self.run.arrays()
        out = []
        for j, o in enumerate(self.run.objectives):
            col = V[:, j][np.isfinite(V[:, j])] if len(V) else np.array([])
            if not len(col):
                out.append(-1e3 * o.sign)
                continue
            spread = max(1.0, float(col.max() - col.min()))
            out.append(float(col.min() - spread) if o.sign > 0 else float(col.max() + spread))
        return out

    def _values_of(self, rec: dict) -> list[float]:
        vals = rec.get("values") or []
        if rec.get("status") == _SCORED and rec.get("feasible") and all(v is not None for v in vals):
            return [float(v) for v in vals]
        return self._penalty()

    def _add_reencoded(self) -> None:
        """Give TPE/GP every scored molecule at its own latent mean (once)."""
        from optuna.trial import create_trial

        smiles, Z, _, _ = self.run.arrays()
        for i, s in enumerate(smiles):
            if s in self.added or not np.isfinite(Z[i]).all():
                continue
            self.added.add(s)
            zc = np.clip(Z[i].astype(np.float64), -self.bound, self.bound)
            self.study.add_trial(create_trial(
                params={k: float(v) for k, v in zip(self.dists, zc)}, distributions=self.dists,
                values=self._values_of(self.run.known[s]),
            ))

    def after_start(self) -> None:
        import optuna

        run = self.run
        u = run.utilities()
        smiles, Z, _, _ = run.arrays()
        ok = np.isfinite(u) & np.isfinite(Z).all(1)
        order = [i for i in np.argsort(-np.where(ok, u, -np.inf)) if ok[i]]
        x0 = None
        if order and self.sampler_name == "cmaes":
            x0 = {k: float(v) for k, v in zip(self.dists, np.clip(Z[order[0]], -self.bound, self.bound))}
        with _quiet_optuna():
            self.study = optuna.create_study(
                sampler=self._make_sampler(x0), directions=[o.direction for o in run.objectives]
            )
        if self.reencoded:
            with _quiet_optuna():
                self._add_reencoded()
        for i in order[: self.popsize]:  # the start molecules' means, best first
            zc = np.clip(Z[i].astype(np.float64), -self.bound, self.bound)
            self.study.enqueue_trial({k: float(v) for k, v in zip(self.dists, zc)})

    def step(self) -> int:
        from optuna.trial import TrialState

        run = self.run
        if self.study is None:
            self.after_start()
        study = self.study
        n = min(self.n_ask, max(1, run.remaining()) if self.sampler_name not in ("cmaes", "nsga2") else self.n_ask)
        with _quiet_optuna():
            trials = [study.ask(self.dists) for _ in range(n)]
        Z = np.array([[t.params[k] for k in self.dists] for t in trials], dtype=np.float32)
        cands = run.screen(Z, self.name)
        smiles = run.last_decoded
        new = run.evaluate(cands)
        fresh = {r["smiles"] for r in new}
        penalty = self._penalty()
        with _quiet_optuna():
            for t, s in zip(trials, smiles):
                rec = run.known.get(s) if s is not None else None
                status = rec.get("status") if rec else None
                if status == _INFEASIBLE:
                    vals = penalty
                elif status == _SCORED and not self.reencoded:
                    vals = self._values_of(rec)
                elif status == _SCORED and s not in fresh:
                    vals = penalty  # TPE/GP: nothing new decodes from here
                else:  # not scored (invalid, over budget, in flight), or TPE/GP: given at its mean below
                    study.tell(t, state=TrialState.FAIL)
                    continue
                study.tell(t, vals if run.k > 1 else vals[0])
            if self.reencoded:
                self._add_reencoded()
        return len(new)


_STRATEGY_CLASSES = {"trust_region": _TrustRegion, "gradient": _Gradient, "optuna": _OptunaStrategy}


# =============================================================================== result
@dataclass
class OptimizationResult:
    """What :func:`optimize` returns.

    ``history``: one row per molecule considered: every molecule scored in the study (this
    run, earlier runs of the same study and other workers) and every molecule this run
    rejected by a constraint before scoring (``status="infeasible"``, no call spent).
    Columns: ``round`` (0 = start molecules), ``call`` (oracle call index, 1..budget in
    the study; empty when not scored), ``smiles``, ``score``, one column per objective,
    the property columns of constraints (``heavy_atoms``, ``similarity``,
    ``smarts_match``, bounded properties, ``novel``), ``feasible``, ``status``,
    ``reasons`` (why infeasible), ``strategy``, ``source`` ("start", "prior",
    "trust_region", "gradient", "optuna"), ``worker``, ``trial`` (ledger trial number),
    ``time_s`` (seconds since the run started; negative for earlier runs).
    """

    history: pd.DataFrame
    objectives: list[str]
    directions: list[str]
    budget: int
    n_oracle_calls: int
    n_oracle_calls_this_run: int
    strategy: str
    elapsed_s: float
    stats: dict[str, Any] = field(default_factory=dict)
    study: Any = None

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def _feasible(self) -> pd.DataFrame:
        h = self.history
        if h.empty:
            return h
        return h[(h["status"] == _SCORED) & h["feasible"].astype(bool) & h["score"].notna()]

    def _ascending(self) -> bool:
        return not self.multi_objective and self.directions[0] == "minimize"

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best feasible scored molecules (all constraints met), best first.

        With several objectives, Pareto-optimal molecules come first (column
        ``pareto_rank``, 0 = on the front), then by ``score``.
        """
        df = self._feasible().copy()
        if self.multi_objective and len(df):
            df["pareto_rank"] = _pareto_ranks(df[self.objectives].to_numpy(float), self.directions)
            df = df.sort_values(["pareto_rank", "score"], ascending=[True, False], kind="stable")
        else:
            df = df.sort_values("score", ascending=self._ascending(), kind="stable")
        return df.drop_duplicates("smiles").head(k).reset_index(drop=True)

    def pareto_front(self) -> pd.DataFrame:
        """Feasible molecules that no other feasible molecule dominates (all objectives)."""
        df = self._feasible()
        if not len(df):
            return df.copy()
        ranks = _pareto_ranks(df[self.objectives].to_numpy(float), self.directions)
        front = df[ranks == 0].drop_duplicates("smiles")
        return front.sort_values(self.objectives[0], ascending=self.directions[0] == "minimize").reset_index(drop=True)

    @property
    def best(self) -> pd.Series | None:
        top = self.top(1)
        return None if top.empty else top.iloc[0]

    @property
    def best_score(self) -> float | None:
        b = self.best
        return None if b is None else float(b["score"])

    @property
    def best_smiles(self) -> str | None:
        b = self.best
        return None if b is None else str(b["smiles"])

    def curve(self) -> pd.DataFrame:
        """Best-so-far and top-10 mean (feasible molecules) after each oracle call."""
        h = self.history
        scored = h[h["status"] == _SCORED].sort_values("call", kind="stable") if len(h) else h
        rows = []
        best: list[float] = []
        sign = -1.0 if self._ascending() else 1.0
        import heapq

        for _, r in scored.iterrows():
            if bool(r["feasible"]) and pd.notna(r["score"]):
                heapq.heappush(best, sign * float(r["score"]))
                if len(best) > 10:
                    heapq.heappop(best)
            top = sorted(best, reverse=True)
            rows.append({
                "call": int(r["call"]),
                "best": sign * top[0] if top else np.nan,
                "top10_mean": sign * float(np.mean(top)) if len(top) >= 10 else np.nan,
                "top10_mean_so_far": sign * float(np.mean(top)) if top else np.nan,
            })
        return pd.DataFrame(rows, columns=["call", "best", "top10_mean", "top10_mean_so_far"])

    def auc_top10(self) -> float:
        """Area under the top-10-mean curve over the budget, divided by the budget (PMO's AUC top-10).

        Missing values (fewer than 10 molecules yet) count as 0; after the last call the
        final value is carried to the budget.
        """
        c = self.curve()
        if c.empty:
            return 0.0
        vals = c["top10_mean"].fillna(0.0).to_numpy()
        total = vals.sum() + vals[-1] * max(0, self.budget - len(vals))
        return float(total / self.budget)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the history (all molecules) to ``path``."""
        from pathlib import Path

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.history.to_csv(p, index=False)

    def summary(self) -> str:
        best = self.best_score
        return (
            f"{self.strategy}: {self.n_oracle_calls}/{self.budget} oracle calls "
            f"({self.n_oracle_calls_this_run} by this run) in {self.elapsed_s:.1f} s; "
            f"best {'n/a' if best is None else f'{best:.4g}'} ({self.best_smiles}); "
            f"{len(self._feasible())} feasible molecules scored"
        )

    def __repr__(self) -> str:
        return f"OptimizationResult({self.summary()})"


def _pareto_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting rank of each row (0 = Pareto front); NaN rows rank last."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    S = values * signs
    n = len(S)
    ranks = np.full(n, -1, dtype=int)
    finite = np.isfinite(S).all(1)
    ranks[~finite] = n
    remaining = np.flatnonzero(finite)
    r = 0
    while len(remaining):
        sub = S[remaining]
        ge = (sub[:, None, :] >= sub[None, :, :]).all(-1)
        gt = (sub[:, None, :] > sub[None, :, :]).any(-1)
        dominated = (ge & gt).any(0)  # column j dominated by some row i
        front = remaining[~dominated]
        ranks[front] = r
        remaining = remaining[dominated]
        r += 1
    return ranks


# =============================================================================== entry point
def optimize(
    model: Any,
    objective: Any = "qed",
    budget: int = 500,
    seed: int = 0,
    start: Sequence[str] | None = None,
    strategy: str = "trust_region",
    min_similarity: float | None = None,
    smarts: str | Sequence[str] | None = None,
    bounds: Mapping[str, Sequence[float | None]] | None = None,
    novel: bool = False,
    train_smiles: Iterable[str] | None = None,
    max_heavy_atoms: int | None = None,
    storage: Any = None,
    study_name: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    *,
    direction: str | Sequence[str] = "maximize",
    weights: Sequence[float] | None = None,
    similarity_to: str | Sequence[str] | None = None,
    n_start: int | None = None,
    bound: float = 3.0,
    max_stall_rounds: int = 30,
    stale_after: float | None = None,
    worker_id: str | None = None,
    **strategy_kwargs: Any,
) -> OptimizationResult:
    """Optimize molecules for ``objective`` by searching the latent space of ``model``.

    Args:
        model: a :class:`~molvae.vae.model.MolVAE`.
        objective: a property name from :data:`molvae.properties.PROPERTIES`, a dict of
            weights ``{"qed": 1.0, "sa": -0.2}`` (one objective: the weighted sum), a callable
            ``list[str] -> list[float]`` called on batches of canonical SMILES (NaN or inf:
            failed; a call that raises an ``Exception`` fails only that batch), or a list of
            these for several objectives.
        budget: distinct molecules the objective may score in the whole study (start
            molecules included).  The run stops exactly there.
        seed: seeds the proposals, the samplers and the surrogates.
        start: start molecules, scored first (they count as calls) and used as seeds and
            as similarity references.  ``None``: ``n_start`` molecules decoded (greedy) from
            prior samples, subject to the constraints.
        strategy: ``"trust_region"`` (default), ``"gradient"`` or ``"optuna"`` (see the
            module docstring); ``strategy_kwargs`` go to it (e.g. ``sampler="tpe"``,
            ``surrogate="mlp"``, ``n_candidates=1024``).
        min_similarity: Tanimoto (Morgan r=2, 2048 bits) to the nearest reference molecule
            (``similarity_to``, default the start molecules) must be at least this.
        smarts: SMARTS pattern(s) every molecule must contain.
        bounds: ``{"mw": (None, 500), "sa": (None, 4)}``; properties of
            :data:`~molvae.properties.PROPERTIES` are checked before scoring, objective names
            after.
        novel: molecules must not be in ``train_smiles``.
        max_heavy_atoms: upper limit on heavy atoms.
        storage, study_name: where the ledger study lives (``None``: memory); an Optuna RDB
            URL, ``"journal:///path.log"`` or a storage object.  Same storage and name again:
            resume; several processes: one shared search and budget.
        batch_size: molecules scored per round (also CMA-ES/NSGA-II population size).
        progress: tqdm bar with the best score so far.
        direction: ``"maximize"``/``"minimize"``, or one per objective.
        weights: with several objectives, the weights of the ``score`` column (default 1).
        n_start: number of prior start molecules (default ``min(max(batch_size, budget // 20), budget // 2)``).
        bound: latent coordinates are kept within ``[-bound, bound]`` (prior sigmas).
        max_stall_rounds: stop after this many consecutive rounds without a new molecule.
        stale_after: seconds without a sign of life after which a reserved trial of a
            worker is failed (freed for the others): for storages without heartbeats, e.g.
            journal files (RDB URLs use heartbeats, 120 s; ``stale_after`` applies too).
        worker_id: a name for this process in the history (default host-pid-random).

    Returns:
        :class:`OptimizationResult`.
    """
    if strategy not in _STRATEGY_CLASSES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    budget = int(budget)
    if budget < 1:
        raise ValueError("budget must be >= 1")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    objectives = _parse_objectives(objective, direction)
    starts: list[str] = []
    if start is not None:
        if isinstance(start, str):
            start = [start]
        for s in start:
            c = standardize(s)
            if c is None:
                logger.warning("start molecule %r cannot be parsed; skipped", s)
            elif c not in starts:
                starts.append(c)
        if not starts:
            raise ValueError("none of the start molecules can be parsed")
    refs = [similarity_to] if isinstance(similarity_to, str) else list(similarity_to or starts)
    constraints = _Constraints(objectives, min_similarity, refs, smarts, bounds, novel, train_smiles, max_heavy_atoms)
    cls = _STRATEGY_CLASSES[strategy]
    worker = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ledger = _Ledger(storage, study_name, objectives, model.latent_dim, bound, stale_after, strategy)
    run = _Run(model, objectives, constraints, ledger, budget, batch_size, strategy, worker, weights, progress)
    rng = np.random.default_rng(seed)
    try:
        strat = cls(run, rng, seed, bound=bound, **strategy_kwargs)
    except TypeError as err:
        run.close()
        raise TypeError(f"strategy {strategy!r}: {err}") from None
    t0 = time.time()
    try:
        n_before = run.sync()
        if n_before:
            logger.info("resuming study %r: %d molecules already scored", ledger.study.study_name, run.n_calls())
        _start_phase(run, starts, n_start, rng)
        strat.after_start()
        stall = 0
        while True:
            while run.remaining() > 0:
                run.round += 1
                got = strat.step()
                got += run.sync()
                stall = 0 if got else stall + 1
                if stall >= max_stall_rounds:
                    break
            if stall >= max_stall_rounds:
                logger.warning(
                    "%d rounds without a new molecule: stopping at %d of %d oracle calls", stall, run.n_calls(), budget
                )
                break
            # The rest of the budget is reserved by other workers.  Wait until they record it,
            # or, when one of them died, until its reservations are freed (heartbeats or
            # stale_after) and fill them; without either, nothing would free them: stop.
            if run.done() or not ledger.frees_dead_reservations:
                break
            _wait_for_other_workers(run)
        run.sync()
    finally:
        run.close()
    elapsed = time.time() - t0
    history = _history(run, constraints, t0)
    return OptimizationResult(
        history=history,
        objectives=[o.name for o in objectives],
        directions=[o.direction for o in objectives],
        budget=budget,
        n_oracle_calls=run.n_calls(),
        n_oracle_calls_this_run=run.n_calls_here,
        strategy=strategy,
        elapsed_s=elapsed,
        stats=dict(run.stats, rounds=run.round, worker=worker, **_strategy_stats(strat)),
        study=ledger.study,
    )


def _wait_for_other_workers(run: _Run, poll_s: float = 0.5) -> None:
    """Sleep until the budget is spent or some of it is free again (a reservation released or freed)."""
    logger.info("%d of %d oracle calls recorded, the rest reserved by other workers: waiting for them",
                run.n_calls(), run.budget)
    t0 = time.time()
    while not run.done() and run.remaining() <= 0:
        time.sleep(poll_s)
        run.sync()
    run.stats["waited_for_others_s"] = round(run.stats.get("waited_for_others_s", 0.0) + time.time() - t0, 3)


def _strategy_stats(strat: _Strategy) -> dict[str, Any]:
    if isinstance(strat, _TrustRegion):
        return {"restarts": strat.restarts, "widened": strat.widened, "final_length": strat.length}
    return {}


def _start_phase(run: _Run, starts: list[str], n_start: int | None, rng: np.random.Generator) -> None:
    """Score the start molecules (given, or decoded from prior samples)."""
    run.round = 0
    if starts:
        cands = [_Cand(s, source="start") for s in starts]
        run.ensure_means(cands)
        for c in cands:
            c.z_prop = c.z_mean
        run.evaluate(cands, force=True)
        return
    want = n_start if n_start is not None else min(max(run.batch_size, run.budget // 20), max(1, run.budget // 2))
    want = min(int(want), run.budget)
    have = sum(1 for r in run.known.values() if r.get("source") == "start" and r.get("status") == _SCORED)
    for _ in range(20):
        if have >= want or run.done():
            break
        Z = rng.standard_normal((max(2 * (want - have), 16), run.D)).astype(np.float32)
        cands = run.screen(Z, "start")
        got = run.evaluate(cands[: want - have])
        have += len(got)


def _history(run: _Run, constraints: _Constraints, t0: float) -> pd.DataFrame:
    rows = []
    obj_names = [o.name for o in run.objectives]
    for rec in run.records:
        row = {
            "round": rec.get("round"),
            "call": rec.get("call"),
            "smiles": rec.get("smiles"),
            "score": rec.get("score"),
        }
        for name, v in zip(obj_names, rec.get("values") or [None] * run.k):
            row[name] = v
        props = rec.get("props") or {}
        for k, v in props.items():
            if k not in row:
                row[k] = v
        row.update({
            "feasible": bool(rec.get("feasible")),
            "status": rec.get("status"),
            "reasons": rec.get("reasons", ""),
            "strategy": rec.get("strategy"),
            "source": rec.get("source"),
            "worker": rec.get("worker"),
            "trial": rec.get("trial"),
            "time_s": round(float(rec.get("time", t0)) - t0, 3),
        })
        rows.append(row)
    base = ["round", "call", "smiles", "score", *obj_names]
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=[*base, "feasible", "status", "reasons", "strategy", "source", "worker", "trial", "time_s"])
    for col in ("score", *obj_names):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["call"] = pd.array(df["call"], dtype="Int64")
    df["trial"] = pd.array(df["trial"], dtype="Int64")
    df["round"] = pd.array(df["round"], dtype="Int64")
    df = df.sort_values("time_s", kind="stable").reset_index(drop=True)
    return df
