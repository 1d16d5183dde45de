"""Molecular optimization in the latent space of a :class:`~molvae.vae.model.MolVAE`: :func:`optimize`.

>>> import molvae as mv
>>> model = mv.load_pretrained()                                        # doctest: +SKIP
>>> res = mv.optimize(model, "qed", budget=300, seed=0)                 # doctest: +SKIP
>>> res.top(10)                                                         # doctest: +SKIP
>>> res = mv.optimize(model, {"qed": 1.0, "sa": -0.2}, start=["CCOc1ccccc1C(=O)N"],
...                   min_similarity=0.4, bounds={"mw": (None, 500)})   # doctest: +SKIP

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
    never to the point that proposed it.

Strategies (``strategy=``; the measurements behind the defaults are in ``docs/optimization.md``)
    ``"trust_region"`` (default)
        TuRBO-style local search: a box of side ``L`` (in prior standard deviations;
        ``scale="data"`` scales each coordinate by the spread of the encoded molecules)
        around the latent mean of the best molecule; candidates perturb a random subset of
        coordinates; all candidates are decoded, and the unseen feasible molecules are
        ranked by Thompson-like draws from a surrogate (default ``surrogate="tanimoto"``:
        a Gaussian process with a Tanimoto kernel on Morgan fingerprints; ``"mlp"``:
        :class:`~molvae.predictors.mlp.MLPEnsemble` on the latent means; ``"gp"``:
        :class:`~molvae.predictors.gp.GPPredictor`; ``None``: random).  ``L`` doubles after
        ``success_tolerance`` successful rounds, halves after ``failure_tolerance`` failed
        ones, and the region restarts around another of the best molecules when ``L`` falls
        below ``length_min``.  ``global_fraction`` (0.1) of the candidates are prior draws
        ranked alongside (a hedge when the region is poor), and ``mutation_fraction`` (0.25)
        are SELFIES edits (1-3 tokens replaced, inserted or deleted, from the model's
        alphabet; radicals dropped) of the center and of the 10 best molecules: the decoder
        reconstructs molecules only approximately, so latent steps alone rarely stay close
        to a good molecule, while edits keep the search local (similarity constraints) and
        still always give valid molecules.  ``crossover_fraction`` (0.25) of the candidates are
        graph crossovers (:mod:`~molvae.optimization.crossover`: chain and ring cuts) of
        pairs drawn by rank from the ``population`` (50) best molecules.  With
        ``finetune_every=N`` (default off) the decoder of a copy of the model is fine-tuned every
        N oracle calls on the best molecules (``finetune_steps`` steps; :mod:`~molvae.optimization.finetune`;
        the encoder stays fixed, so stored latent means stay valid).  When the box decodes
        to fewer than ``batch_size`` unseen molecules it is widened instead of counted as a
        failure.  ``n_regions=k`` (default 1) runs k boxes at once around distinct good
        molecules (TuRBO-m), one shared candidate ranking, each box with its own side,
        counters and restarts (``stats["region_centers"]``).  ``carry_rounds=r`` (default 0)
        keeps the candidates a round did not score in the ranking for r more rounds, so the
        surrogate picks from a pool several rounds deep for one round's generation cost
        (``stats["carried_scored"]`` counts the molecules scored from earlier rounds).
        ``early_candidates=M`` (default off) ranks M candidates a round instead of
        ``n_candidates`` while fewer than ``early_calls`` (3000) molecules are scored.
        ``graph_mutation_fraction`` and ``substituent_fraction`` (default 0) add one-move graph
        mutations (:mod:`~molvae.optimization.graph_mutations`) and substituent swaps
        (:mod:`~molvae.optimization.substituents`: F -> CF3, H -> OMe, ...) of the best molecules.
    ``"gradient"``
        LIMO-style: fit an :class:`~molvae.predictors.mlp.MLPEnsemble` on (latent mean, score),
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

Results
    :class:`~molvae.optimization.result.OptimizationResult`: ``history`` (every molecule
    considered), ``top(k)``, ``pareto_front()``, ``curve()``, ``pmo_auc()`` (PMO's AUC
    top-10, :func:`molvae.oracles.pmo_auc`) and ``top10_curve_auc()`` (the per-call curve of
    feasible molecules; a different number), ``to_csv(path)``.

Storage, resume and several workers
    Every run keeps a ledger in an Optuna study (:mod:`molvae.optimization.ledger`): one
    trial per molecule sent to the oracle, with its SMILES, scores and status in the trial's
    user attribute ``"molvae"`` (:data:`LEDGER_KEY`) and its latent mean as the params
    ``z_i``.  ``storage=None`` keeps it in memory; ``storage="sqlite:///study.db"`` (any
    Optuna RDB URL: PostgreSQL, MySQL) or ``"journal:///path/file.log"``
    (:class:`optuna.storages.JournalStorage`) or a :class:`optuna.storages.BaseStorage`
    persists it (:func:`~molvae.optimization.storage.open_storage`).  Running ``optimize``
    again with the same storage and ``study_name`` resumes: scored molecules are loaded,
    count against the budget and are never scored again.  N processes on N machines sharing
    one study form one search with one budget.  Each worker reserves a molecule by adding a
    RUNNING trial *before* calling the oracle and then scores it only if (a) fewer than
    ``budget`` reserved-or-scored trials have a smaller trial number and (b) no such trial
    holds the same molecule.  Optuna numbers trials under a lock (RDB: a row lock on the
    study; journal: the log order), so a trial with a smaller number is always visible to
    the worker that created a larger one: the total number of oracle calls recorded in a
    shared study never exceeds ``budget`` and no molecule is scored twice, whatever the
    number of workers.  A worker that dies between reserving and recording loses its
    reservations: with an RDB URL the trials carry heartbeats and are failed (freed) after
    ``grace_period`` seconds (120); for other storages pass ``stale_after`` seconds (while
    its oracle runs a worker marks its reservations alive every ``stale_after / 4``
    seconds, so only a silent worker's reservations are freed, however long the oracle
    takes).  A worker that finds the rest of the budget reserved by others waits until they
    record it or, when one of them died, until its reservations are freed, and fills them:
    the study ends with exactly ``budget`` scored molecules (without heartbeats or
    ``stale_after`` nothing frees them, and the worker stops instead).  Calls that were
    under way in a killed worker are not recorded (their results never arrived); an
    interrupted worker (``KeyboardInterrupt`` or any exception from the objective that is
    not an ``Exception``) frees its reservations before re-raising.  From the command line:
    ``molvae optimize --storage sqlite:///study.db --study run1`` on each machine.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from molvae.chem import standardize
from molvae.optimization.candidates import Candidate
from molvae.optimization.constraints import Constraints
from molvae.optimization.ledger import Ledger
from molvae.optimization.objectives import parse_objectives
from molvae.optimization.records import LEDGER_KEY, SCORED
from molvae.optimization.result import OptimizationResult, history_frame
from molvae.optimization.session import Run
from molvae.optimization.storage import open_storage
from molvae.optimization.strategies import SAMPLERS, STRATEGIES

__all__ = ["optimize", "default_batch_size", "default_n_start", "OptimizationResult", "STRATEGIES", "SAMPLERS", "open_storage", "LEDGER_KEY"]

logger = logging.getLogger(__name__)


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
    batch_size: int | None = None,
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
        objective: a property name from :data:`molvae.properties.PROPERTIES`, a PMO task of
            :data:`molvae.oracles.PMO_ORACLES`, a dict of weights ``{"qed": 1.0, "sa": -0.2}``
            (one objective: the weighted sum), a callable ``list[str] -> list[float]`` called
            on batches of canonical SMILES (NaN or inf: failed; a call that raises an
            ``Exception`` fails only that batch), or a list of these for several objectives.
        budget: distinct molecules the objective may score in the whole study (start
            molecules included).  The run stops exactly there.
        seed: seeds the proposals, the samplers and the surrogates.
        start: start molecules, scored first (they count as calls, and are scored even when
            they fail a constraint) and used as seeds and as similarity references.
            ``None``: ``n_start`` molecules decoded (greedy) from prior samples, subject to
            the constraints.
        strategy: ``"trust_region"`` (default), ``"gradient"`` or ``"optuna"`` (see the
            module docstring); ``strategy_kwargs`` go to it (e.g. ``sampler="tpe"``,
            ``surrogate="mlp"``, ``n_candidates=1024``).
        min_similarity: Tanimoto (Morgan r=2, 2048 bits) to the nearest reference molecule
            (``similarity_to``, default the start molecules) must be at least this.
        smarts: SMARTS pattern(s) every molecule must contain.
        bounds: ``{"mw": (None, 500), "sa": (None, 4)}``; properties of
            :data:`~molvae.properties.PROPERTIES` are checked before scoring, objective names
            after.
        novel: molecules in ``train_smiles`` are never scored (recorded as infeasible).
        train_smiles: the training set (any SMILES; canonicalized).  Without ``novel`` it is
            only reported, in the history's ``novel`` column.
        max_heavy_atoms: upper limit on heavy atoms.
        storage, study_name: where the ledger study lives (``None``: memory); an Optuna RDB
            URL, ``"journal:///path.log"`` or a storage object.  Same storage and name again:
            resume; several processes: one shared search and budget.
        batch_size: molecules scored per round (also CMA-ES/NSGA-II population size).
            ``None``: :func:`default_batch_size` (32, fewer for the trust region at small
            budgets, so that a 50-call search still gets 25 rounds to adapt).
        progress: tqdm bar with the best score so far.
        direction: ``"maximize"``/``"minimize"``, or one per objective.
        weights: with several objectives, the weights of the ``score`` column (default 1).
        similarity_to: reference molecule(s) of ``min_similarity`` (default: ``start``).
        n_start: number of prior start molecules (default :func:`default_n_start`: ``budget // 20``,
            at least one round and at most half the budget).
        bound: latent coordinates are kept within ``[-bound, bound]`` (prior sigmas).
        max_stall_rounds: stop after this many consecutive rounds without a new molecule.
        stale_after: seconds without a sign of life after which a reserved trial of a
            worker is failed (freed for the others): for storages without heartbeats, e.g.
            journal files (RDB URLs use heartbeats, 120 s; ``stale_after`` applies too).
        worker_id: a name for this process in the history (default host-pid-random).

    Returns:
        :class:`~molvae.optimization.result.OptimizationResult`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    budget = int(budget)
    if budget < 1:
        raise ValueError("budget must be >= 1")
    batch_size = default_batch_size(budget, strategy) if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    objectives = parse_objectives(objective, direction)
    starts = _parse_starts(start)
    refs = [similarity_to] if isinstance(similarity_to, str) else list(similarity_to or starts)
    constraints = Constraints(objectives, min_similarity, refs, smarts, bounds, novel, train_smiles, max_heavy_atoms)
    worker = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ledger = Ledger(storage, study_name, objectives, model.latent_dim, bound, stale_after, strategy)
    run = Run(model, objectives, constraints, ledger, budget, batch_size, strategy, worker, weights, progress)
    rng = np.random.default_rng(seed)
    try:
        strat = STRATEGIES[strategy](run, rng, seed, bound=bound, **strategy_kwargs)
    except TypeError as err:
        run.close()
        raise TypeError(f"strategy {strategy!r}: {err}") from None
    except BaseException:
        run.close()
        raise
    t0 = time.time()
    try:
        if run.sync():
            logger.info("resuming study %r: %d molecules already scored", ledger.study.study_name, run.n_calls())
        _start_phase(run, starts, n_start, rng)
        strat.after_start()
        _search(run, strat, max_stall_rounds)
        run.sync()
    finally:
        run.close()
    return OptimizationResult(
        history=history_frame(run.records, [o.name for o in objectives], t0),
        objectives=[o.name for o in objectives],
        directions=[o.direction for o in objectives],
        budget=budget,
        n_oracle_calls=run.n_calls(),
        n_oracle_calls_this_run=run.n_calls_here,
        strategy=strategy,
        elapsed_s=time.time() - t0,
        stats=dict(run.stats, rounds=run.round, batch_size=batch_size, worker=worker, **strat.stats()),
        study=ledger.study,
    )


def default_batch_size(budget: int, strategy: str = "trust_region") -> int:
    """Molecules a round scores when ``optimize`` is not told: ``budget // 24`` clipped to
    [2, 32] for the trust region (2 at 50 calls, 8 at 200, 32 from 768 on), 32 for the other
    strategies.

    Measured on the similarity-constrained penalized logP benchmark (50 calls per start, all
    800 starts; ``benchmarks/RESULTS.md``, ``docs/optimization.md``): the mean improvement at
    similarity 0.4 rose from 3.91 with batches of 32 to 4.90 with batches of 4, and to 5.02 with
    batches of 2 (ranking 256 candidates a round instead of 512, which the trust region does by
    default at that batch size, so the optimizer time stays about the same).  Each round costs a
    surrogate fit and a decode of its candidates: a 50-call run can afford 25 of them, a
    10,000-call one does not need them.
    """
    if strategy != "trust_region":
        return 32
    return int(min(32, max(2, int(budget) // 24)))


def _parse_starts(start: str | Sequence[str] | None) -> list[str]:
    """Standardized, distinct start molecules (unparsable ones skipped with a warning)."""
    if start is None:
        return []
    starts: list[str] = []
    for s in [start] if isinstance(start, str) else start:
        c = standardize(s)
        if c is None:
            logger.warning("start molecule %r cannot be parsed; skipped", s)
        elif c not in starts:
            starts.append(c)
    if not starts:
        raise ValueError("none of the start molecules can be parsed")
    return starts


def default_n_start(budget: int, batch_size: int) -> int:
    """Prior start molecules a run scores before its search when ``optimize`` is not told:
    ``budget // 20``, at least ``batch_size`` (one round), at most half the budget.

    The start molecules are random prior draws, and a run's top-10 hardly moves while they are
    scored: at PMO's 10,000 calls the 500 of the default keep the curves of the PMO table
    nearly flat until call 500.  Starting the search after 100 instead (``n_start=100``) measured at 10,000 calls
    on 14 PMO tasks, seed 0: a higher top-10 at call 500 on every task that is not flat, and an
    AUC top-10 sum 0.07 higher (0.005 a task), inside the noise of single runs; the smaller
    start ended lower on 8 of the 13 tasks that move, so the default stays
    (``docs/optimization.md``, "Start molecules").
    """
    budget, batch_size = int(budget), int(batch_size)
    return int(max(1, min(max(batch_size, budget // 20), budget // 2)))


def _start_phase(run: Run, starts: list[str], n_start: int | None, rng: np.random.Generator) -> None:
    """Score the start molecules (given, or decoded from prior samples)."""
    run.round = 0
    if starts:
        cands = [Candidate(s, source="start") for s in starts]
        run.ensure_means(cands)
        for c in cands:
            c.z_prop = c.z_mean
        run.evaluate(cands, force=True)
        return
    want = n_start if n_start is not None else default_n_start(run.budget, run.batch_size)
    want = min(int(want), run.budget)
    have = sum(1 for r in run.known.values() if r.get("source") == "start" and r.get("status") == SCORED)
    for _ in range(20):
        if have >= want or run.done():
            break
        Z = rng.standard_normal((max(2 * (want - have), 16), run.D)).astype(np.float32)
        cands = run.screen(Z, "start")
        have += len(run.evaluate(cands[: want - have]))


def _search(run: Run, strat: Any, max_stall_rounds: int) -> None:
    """Rounds of ``strat`` until the budget is spent (or nothing new turns up)."""
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
            logger.warning("%d rounds without a new molecule: stopping at %d of %d oracle calls",
                           stall, run.n_calls(), run.budget)
            return
        # The rest of the budget is reserved by other workers.  Wait until they record it,
        # or, when one of them died, until its reservations are freed (heartbeats or
        # stale_after) and fill them; without either, nothing would free them: stop.
        if run.done() or not run.ledger.frees_dead_reservations:
            return
        _wait_for_other_workers(run)


def _wait_for_other_workers(run: Run, poll_s: float = 0.5) -> None:
    """Sleep until the budget is spent or some of it is free again (a reservation released or freed)."""
    logger.info("%d of %d oracle calls recorded, the rest reserved by other workers: waiting for them",
                run.n_calls(), run.budget)
    t0 = time.time()
    while not run.done() and run.remaining() <= 0:
        time.sleep(poll_s)
        run.sync()
    run.stats["waited_for_others_s"] = round(run.stats.get("waited_for_others_s", 0.0) + time.time() - t0, 3)
