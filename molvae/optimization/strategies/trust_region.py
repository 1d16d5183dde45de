"""``strategy="trust_region"`` (the default): TuRBO-style local search around the best molecules.

A box of side ``length`` (prior standard deviations; ``scale="data"`` scales each coordinate by
the spread of the latent means) around the latent mean of the center molecule; candidates
perturb a random subset of coordinates, ``global_fraction`` of them are prior draws,
``mutation_fraction`` are SELFIES edits of the center and of the 10 best molecules and
``crossover_fraction`` are graph crossovers of the ``population`` best molecules
(:mod:`molvae.optimization.crossover`; children of at most ``crossover_max_atoms`` heavy
atoms, default two thirds of the model's token limit) and ``graph_mutation_fraction`` are
one-move graph mutations of the center and of the 10 best molecules
(:mod:`molvae.optimization.graph_mutations`, the same size cap).  The unseen feasible ones are ranked by
Thompson-like draws from a surrogate.  With ``finetune_every`` (oracle calls), the decoder of
a copy of the model is fine-tuned on the best molecules that often
(:mod:`molvae.optimization.finetune`).  The box doubles
after ``success_tolerance`` successful rounds, halves after ``failure_tolerance`` failed
ones, restarts around another good molecule below ``length_min``, and is widened instead of
counted as a failure when it decodes to fewer than ``batch_size`` unseen molecules.  With
``n_regions`` > 1 (TuRBO-m, Eriksson et al. 2019) that many boxes run at once around distinct
good molecules, sharing one candidate pool and one ranking
(:mod:`molvae.optimization.strategies.regions`).  Until a scored molecule can be encoded
(start molecules outside the model's vocabulary or too long), there is no box: rounds are
edits and crossovers of the scored molecules and a few prior draws.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np

from molvae.chem.fingerprints import tanimoto_matrix
from molvae.optimization.candidates import Candidate
from molvae.optimization.crossover import GraphCrossover
from molvae.optimization.finetune import DecoderTuner
from molvae.optimization.graph_mutations import GraphMutator
from molvae.optimization.mutations import SelfiesMutator
from molvae.optimization.session import Run
from molvae.optimization.substituents import SubstituentMutator
from molvae.optimization.strategies.base import Strategy
from molvae.optimization.strategies.regions import Box, improves, step_regions
from molvae.optimization.surrogates import check_surrogate

__all__ = ["TrustRegion"]

logger = logging.getLogger(__name__)


class TrustRegion(Strategy):
    name = "trust_region"

    def __init__(
        self,
        run: Run,
        rng: np.random.Generator,
        seed: int,
        n_candidates: int | None = None,
        early_candidates: int | None = None,
        early_calls: int = 3000,
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
        crossover_fraction: float = 0.25,
        graph_mutation_fraction: float = 0.0,
        substituent_fraction: float = 0.0,
        population: int = 50,
        crossover_max_atoms: int | None = None,
        finetune_every: int | None = None,
        finetune_steps: int = 50,
        finetune_top: int = 256,
        bound: float = 3.0,
        n_regions: int = 1,
        carry_rounds: int = 0,
    ) -> None:
        super().__init__(run, rng, seed)
        if not 0.0 <= global_fraction < 1.0:
            raise ValueError("global_fraction must be within [0, 1)")
        for name, f in (("mutation_fraction", mutation_fraction), ("crossover_fraction", crossover_fraction),
                        ("graph_mutation_fraction", graph_mutation_fraction),
                        ("substituent_fraction", substituent_fraction)):
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if mutation_fraction + crossover_fraction + graph_mutation_fraction + substituent_fraction > 1.0:
            raise ValueError("mutation_fraction + crossover_fraction + graph_mutation_fraction + substituent_fraction "
                             "must be <= 1")
        if population < 2:
            raise ValueError("population must be >= 2")
        if int(n_regions) != n_regions or n_regions < 1:
            raise ValueError(f"n_regions must be an integer >= 1, got {n_regions}")
        if int(carry_rounds) != carry_rounds or carry_rounds < 0:
            raise ValueError(f"carry_rounds must be an integer >= 0, got {carry_rounds}")
        self.global_fraction = float(global_fraction)
        self.mutation_fraction = float(mutation_fraction)
        self.crossover_fraction = float(crossover_fraction)
        self.graph_mutation_fraction = float(graph_mutation_fraction)
        self.substituent_fraction = float(substituent_fraction)
        self.population = int(population)
        self.mutator = SelfiesMutator(run.model.tokenizer, rng) if mutation_fraction > 0 else None
        # children beyond about 2/3 of the token limit rarely encode; a run's max_heavy_atoms wins
        if crossover_max_atoms is not None and int(crossover_max_atoms) < 1:
            raise ValueError(f"crossover_max_atoms must be >= 1, got {crossover_max_atoms}")
        max_atoms = (run.constraints.max_heavy_atoms or crossover_max_atoms
                     or 2 * run.model.tokenizer.max_length // 3)
        self.crosser = GraphCrossover(rng, max_heavy_atoms=max_atoms) if crossover_fraction > 0 else None
        self.graph_mutator = GraphMutator(rng, max_heavy_atoms=max_atoms) if graph_mutation_fraction > 0 else None
        self.substituter = SubstituentMutator(rng, max_heavy_atoms=max_atoms) if substituent_fraction > 0 else None
        self.tuner = None
        if finetune_every:
            run.model = copy.deepcopy(run.model)  # the user's model is left as it is
            self.tuner = DecoderTuner(run.model, every=finetune_every, steps=finetune_steps, top=finetune_top,
                                      seed=seed)
        if scale not in ("prior", "data"):
            raise ValueError("scale must be 'prior' (box sides in prior sigmas) or 'data' (scaled by the spread of the latent means)")
        self.scale = scale
        check_surrogate(surrogate)
        if not 0 < length_min <= length_init <= length_max:
            raise ValueError("need 0 < length_min <= length_init <= length_max")
        # candidates ranked a round: 512, or 256 for rounds of 1-2 molecules (the same ranking
        # at batch 2 for half the decoding: measured on the constrained penalized logP starts)
        self.n_candidates = int(n_candidates) if n_candidates is not None else (256 if self.q <= 2 else 512)
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        # early_candidates: a larger pool (more selection pressure) while fewer than
        # ``early_calls`` molecules are scored, when the top of the run moves fastest, at the
        # optimizer cost of a large pool for that part of the run only
        if early_candidates is not None and int(early_candidates) < 1:
            raise ValueError(f"early_candidates must be >= 1, got {early_candidates}")
        if int(early_calls) < 0:
            raise ValueError(f"early_calls must be >= 0, got {early_calls}")
        self.late_candidates = self.n_candidates
        self.early_candidates = int(early_candidates) if early_candidates is not None else None
        self.early_calls = int(early_calls)
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
        # ties in utility (a flat objective such as a SMARTS gate scores most molecules 0) are
        # broken at random each round, from a stream of their own so that runs without ties are
        # unchanged: otherwise the same first-scored molecules would stay "best" for a whole run
        self.tie_rng = np.random.default_rng([int(seed), 7919])
        # n_regions > 1: the boxes (their centers are filled in by the first rounds)
        self.regions = [Box(self.length_init) for _ in range(int(n_regions))] if n_regions > 1 else []
        # carry_rounds > 0: the candidates a round did not score stay in the ranking that many
        # more rounds (newest first), so the surrogate chooses from a pool several rounds deep
        # for the cost of generating one round's candidates
        self.carry_rounds = int(carry_rounds)
        self._carried: list[list[Candidate]] = []
        self.n_carried_scored = 0  # molecules scored from an earlier round's candidates

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"restarts": self.restarts, "widened": self.widened, "final_length": self.length,
                               "n_candidates": self.n_candidates}
        if self.early_candidates is not None:
            out.update(early_candidates=self.early_candidates, early_calls=self.early_calls)
        if self.carry_rounds:
            out.update(carry_rounds=self.carry_rounds, carried_scored=self.n_carried_scored)
        if self.regions:
            out.update(n_regions=len(self.regions), final_length=[b.length for b in self.regions],
                       region_centers=[b.center for b in self.regions])
        if self.tuner is not None:
            out.update(finetune_updates=self.tuner.n_updates, finetune_s=round(self.tuner.seconds, 2),
                       finetune_nll=[(round(a, 3), round(b, 3)) for a, b in self.tuner.losses])
        return out

    def _pick_center(self, u: np.ndarray, restart: bool, top: int = 20,
                     taken: list[str] | None = None) -> tuple[str, float] | None:
        """The molecule (and its utility) to center a box on, recorded as used: among the ``top``
        best feasible molecules the model can encode, leaving out ``taken`` (the other boxes'
        centers) and preferring ones unlike them (Tanimoto < 0.6), the best one, or after a
        restart one of the five best not used as a center before.  None: no such molecule."""
        smiles, Z, _, _ = self.run.data.arrays()
        ok = np.isfinite(u) & np.isfinite(Z).all(1)
        taken = taken or []
        order = [i for i in self._order(np.where(ok, u, -np.inf))[:top] if ok[i] and smiles[i] not in taken]
        if taken and order:
            sims = tanimoto_matrix(self.run.data.fingerprints([smiles[i] for i in order]),
                                   self.run.data.fingerprints(taken)).max(1)
            order = [i for i, sim in zip(order, sims) if sim < 0.6] or order
        if not order:
            return None
        if restart:
            pool = [i for i in order if smiles[i] not in self.used_centers] or order
            i = int(pool[int(self.rng.integers(min(len(pool), 5)))])
        else:
            i = int(order[0])
        self.used_centers.append(smiles[i])
        return smiles[i], float(u[i])

    def _choose_center(self, u: np.ndarray, restart: bool) -> None:
        pick = self._pick_center(u, restart)
        self.center, self.center_u = pick if pick else (None, self.center_u)

    def _order(self, u: np.ndarray) -> np.ndarray:
        """Indices by decreasing utility, equal utilities in random order."""
        return np.lexsort((self.tie_rng.random(len(u)), -u))

    def _best(self, u: np.ndarray, k: int) -> list[str]:
        """The ``k`` scored molecules of highest finite utility, best first (ties at random)."""
        smiles = self.run.data.arrays()[0]
        ok = np.flatnonzero(np.isfinite(u))
        return [smiles[i] for i in ok[self._order(u[ok])][:k]]

    def _mutants(self, n: int, u: np.ndarray, mutator: Any = None, source: str = "mutation") -> list[Candidate]:
        """Edits by ``mutator`` (default: the SELFIES one) of the center (half) and of the 10 best molecules (the rest)."""
        run = self.run
        mutator = mutator or self.mutator
        top = self._best(u, 10) or list(run.data.arrays()[0][:10])  # none feasible: the first scored
        if not top:
            return []
        parents = [self.center if (self.center and self.rng.random() < 0.5) else top[int(self.rng.integers(len(top)))]
                   for _ in range(n)]
        out = mutator.mutate(parents, exclude=run.known)
        return run.check([Candidate(s, source=source) for s in out])

    def _children(self, n: int, u: np.ndarray) -> list[Candidate]:
        """Graph crossovers of pairs drawn from the ``population`` best molecules (rank weights)."""
        run = self.run
        pop = self._best(u, self.population)
        if len(pop) < 2:
            return []
        w = 1.0 / (0.1 * len(pop) + np.arange(len(pop)))
        w /= w.sum()
        a = self.rng.choice(len(pop), size=n, p=w)
        b = self.rng.choice(len(pop), size=n, p=w)
        pairs = [(pop[i], pop[j]) for i, j in zip(a, b) if i != j]
        out = self.crosser.children(pairs, exclude=run.known)
        return run.check([Candidate(s, source="crossover") for s in out])

    def _pool(self, Z: np.ndarray, source: str, n_mut: int, n_cross: int, u: np.ndarray,
              n_graph: int = 0, n_sub: int | None = None) -> list[Candidate]:
        """A round's candidates: the molecules decoded from ``Z``, ``n_mut`` SELFIES edits, ``n_cross``
        crossovers, ``n_graph`` graph mutations and ``n_sub`` substituent swaps (None: the share
        of ``substituent_fraction``); ``run.last_n_new`` counts the new molecules of all."""
        run = self.run
        if n_sub is None:
            n_sub = self._n_sub()
        cands = run.screen(Z, source)
        n_new = run.last_n_new
        if n_mut:
            cands += self._mutants(n_mut, u)
            n_new += self.mutator.last_n_new
        if n_cross:
            cands += self._children(n_cross, u)
            n_new += self.crosser.last_n_new
        if n_graph:
            cands += self._mutants(n_graph, u, self.graph_mutator, "graph_mutation")
            n_new += self.graph_mutator.last_n_new
        if n_sub:
            cands += self._mutants(n_sub, u, self.substituter, "substituent")
            n_new += self.substituter.last_n_new
        run.last_n_new = n_new
        return cands

    def _scales(self) -> np.ndarray:
        _, Z, _, _ = self.run.data.arrays()
        Z = Z[np.isfinite(Z).all(1)]
        if self.scale == "prior" or len(Z) < 5:
            return np.ones(self.run.D)
        s = Z.std(0) + 1e-3
        s = s / np.exp(np.log(s).mean())  # geometric mean 1, as TuRBO's length scales
        return np.clip(s, 0.1, 3.0)

    def _without_center(self, u: np.ndarray) -> int:
        """No encodable feasible molecule to center a box on (nothing scored yet, or only start
        molecules the model cannot encode: out of its vocabulary or too long).  With molecules
        scored, the round is SELFIES edits and graph crossovers of them (a search in molecule
        space, ranked by the surrogate) beside ``global_fraction`` prior draws: prior draws
        rarely satisfy a similarity constraint to such a start.  Before anything is scored: prior draws."""
        run = self.run
        n_edit = 0
        if run.data.smiles and (self.mutator or self.crosser or self.graph_mutator or self.substituter):
            n_edit = self.n_candidates - int(round(self.global_fraction * self.n_candidates))
        # the edits split in proportion to the fractions (crossover needs two feasible parents)
        cross = self.crossover_fraction if self.crosser and np.isfinite(u).sum() >= 2 else 0.0
        mut = self.mutation_fraction if self.mutator else 0.0
        graph = self.graph_mutation_fraction if self.graph_mutator else 0.0
        sub = self.substituent_fraction if self.substituter else 0.0
        total = cross + mut + graph + sub
        if n_edit and total == 0:  # only a crossover, and fewer than two feasible parents
            n_edit = 0
        n_cross = int(round(cross / total * n_edit)) if n_edit else 0
        n_graph = int(round(graph / total * n_edit)) if n_edit else 0
        n_sub = int(round(sub / total * n_edit)) if n_edit else 0
        n_mut = n_edit - n_cross - n_graph - n_sub
        if not mut:  # no SELFIES edits: the rounding remainder goes to a source that is on
            if sub and not graph:
                n_sub, n_mut = n_sub + n_mut, 0
            elif graph:
                n_graph, n_mut = n_graph + n_mut, 0
            else:
                n_cross, n_mut = n_cross + n_mut, 0
        Z = self.rng.standard_normal((self.n_candidates - n_edit, run.D)).astype(np.float32)
        cands = self._pool(Z, "prior", n_mut, n_cross, u, n_graph, n_sub)
        return len(self._rank_and_evaluate(cands, self.surrogate if n_edit else None, u))

    def _box_points(self, zc: np.ndarray, length: float, n: int) -> np.ndarray:
        """``n`` latent points in the box of side ``length`` around ``zc``: a random subset of
        coordinates (at least one) moved uniformly within the box."""
        D = self.run.D
        mask = self.rng.random((n, D)) < self.perturb_prob
        none = ~mask.any(1)
        mask[none, self.rng.integers(D, size=int(none.sum()))] = True
        delta = self.rng.uniform(-0.5, 0.5, (n, D)) * length * self._scales()
        return zc + mask * delta

    def _n_sub(self) -> int:
        """The substituent swaps of a round with a box (``substituent_fraction`` of the candidates)."""
        return int(round(self.substituent_fraction * self.n_candidates)) if self.substituter else 0

    def _latent_share(self) -> tuple[int, int, int, int]:
        """How a round's candidates split: latent points, SELFIES edits, crossovers, graph
        mutations (the substituent swaps, :meth:`_n_sub`, come out of the latent points' share)."""
        n_mut = int(round(self.mutation_fraction * self.n_candidates)) if self.mutator else 0
        n_cross = int(round(self.crossover_fraction * self.n_candidates)) if self.crosser else 0
        n_graph = int(round(self.graph_mutation_fraction * self.n_candidates)) if self.graph_mutator else 0
        return max(self.n_candidates - n_mut - n_cross - n_graph - self._n_sub(), 1), n_mut, n_cross, n_graph

    def _with_prior_draws(self, Z: np.ndarray) -> np.ndarray:
        """``global_fraction`` of the rows replaced by prior draws (a hedge when the region is
        poor: they compete in the same ranking), clipped to the latent bound."""
        n_global = int(round(self.global_fraction * len(Z)))
        if n_global:
            Z[:n_global] = self.rng.standard_normal((n_global, self.run.D))
        return np.clip(Z, -self.bound, self.bound).astype(np.float32)

    def _count(self, box: Any, improved: bool) -> bool:
        """Success and failure counts of ``box`` (this strategy itself, or one of its regions, a
        :class:`~molvae.optimization.strategies.regions.Box`), doubling and halving its side;
        True when it must restart."""
        if improved:
            box.n_success += 1
            box.n_failure = 0
        else:
            box.n_failure += 1
            box.n_success = 0
        if box.n_success >= self.success_tolerance:
            box.length = min(2.0 * box.length, self.length_max)
            box.n_success = 0
        elif box.n_failure >= self.failure_tolerance:
            box.length /= 2.0
            box.n_failure = 0
        if box.length < self.length_min:
            self.restarts += 1
            box.length = self.length_init
            box.n_success = box.n_failure = 0
            return True
        return False

    def step(self) -> int:
        run = self.run
        data = run.data
        if self.early_candidates is not None:
            early = run.n_calls() < self.early_calls
            self.n_candidates = self.early_candidates if early else self.late_candidates
        lam = self.scalarization()
        u = data.utilities(lam)
        if self.tuner is not None and self.tuner.due(run.n_calls()):
            self.tuner.update(data.arrays()[0], u, run.n_calls())
        if self.regions:
            return step_regions(self, lam, u)
        if lam is not None and self.center is not None:  # new weights: re-rank the center
            self.center_u = float(u[data.index[self.center]])
        if self.center is None:
            self._choose_center(u, restart=False)
        if self.center is None:
            return self._without_center(u)
        zc = data.arrays()[1][data.index[self.center]]
        n, n_mut, n_cross, n_graph = self._latent_share()
        Z = self._with_prior_draws(self._box_points(zc, self.length, n))
        cands = self._pool(Z, self.name, n_mut, n_cross, u, n_graph)
        new = self._rank_and_evaluate(cands, self.surrogate, u)
        # success: a better molecule than the center
        best_new = -math.inf
        u = data.utilities(lam)
        for rec in new:
            val = u[data.index[rec["smiles"]]]
            if np.isfinite(val):
                best_new = max(best_new, float(val))
        improved = improves(best_new, self.center_u)
        if improved:
            self._choose_center(data.utilities(lam), restart=False)
        elif run.last_n_new < self.q and self.length < self.length_max:
            # the box decodes to too few unseen molecules (feasible or not): the decoder is
            # coarser than the box.  (Many unseen but infeasible ones: shrink, as a failure.)
            self.length = min(2.0 * self.length, self.length_max)
            self.widened += 1
            return len(new)
        if self._count(self, improved):
            self._choose_center(data.utilities(lam), restart=True)
            logger.debug("trust region restarts around %s", self.center)
        return len(new)

    def _rank_and_evaluate(self, cands: list[Candidate], surrogate: str | None, u: np.ndarray) -> list[dict]:
        """The shared ranking, over this round's candidates and, with ``carry_rounds``, those
        of the rounds before that are still unscored (a fresh copy of a molecule wins)."""
        if not self.carry_rounds or surrogate is None:
            return super()._rank_and_evaluate(cands, surrogate, u)
        known = self.run.known
        fresh = {c.smiles for c in cands}
        seen = set(fresh)
        pool = list(cands)
        for old in self._carried:
            for c in old:
                if c.smiles not in seen and c.smiles not in known:
                    seen.add(c.smiles)
                    pool.append(c)
        new = super()._rank_and_evaluate(pool, surrogate, u)
        self.n_carried_scored += sum(r["smiles"] not in fresh for r in new)
        self._carried.insert(0, cands)
        del self._carried[self.carry_rounds:]
        return new
