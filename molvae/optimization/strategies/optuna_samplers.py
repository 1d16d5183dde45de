"""``strategy="optuna"``: Optuna samplers over ``z_0 .. z_{D-1}`` in ``[-bound, bound]``, ask/tell in batches.

CMA-ES, NSGA-II and random search are told the score of the molecule each asked point
decodes to; TPE and GP (surrogates) are given the scored molecules at their re-encoded means
instead, and a penalty at asked points that decode to molecules already known.  Once a
surrogate sampler concentrates, most of its points decode to known molecules: a round that
finds fewer than a quarter of its points new decodes noisy copies of them as well (noise of
``jitter`` prior sigmas, doubled each such round in a row up to 2, reset by a round that finds
enough), so the search goes on instead of asking again and again (each ask slows as the study
grows).  Infeasible molecules are told a value worse than any seen.  The sampler's study lives in memory in each
process (only the ledger is shared).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from molvae.optimization.records import INFEASIBLE, SCORED
from molvae.optimization.session import Run
from molvae.optimization.storage import quiet_optuna
from molvae.optimization.strategies.base import Strategy

__all__ = ["SAMPLERS", "OptunaStrategy"]

SAMPLERS = ("cmaes", "tpe", "gp", "random", "nsga2")


class OptunaStrategy(Strategy):
    name = "optuna"

    def __init__(
        self,
        run: Run,
        rng: np.random.Generator,
        seed: int,
        sampler: str | None = None,
        sigma0: float = 0.5,
        popsize: int | None = None,
        n_ask: int | None = None,
        sampler_kwargs: Mapping[str, Any] | None = None,
        bound: float = 3.0,
        jitter: float = 0.25,
    ) -> None:
        super().__init__(run, rng, seed)
        multi = run.k > 1
        if sampler is None:
            sampler = "nsga2" if multi else "cmaes"
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
        if multi and sampler in ("cmaes", "gp"):
            raise ValueError(f"sampler {sampler!r} has one objective; use 'nsga2' or 'tpe' with several")
        if sampler == "cmaes":
            try:  # an optional dependency: checked here, used by Optuna
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
        if not jitter > 0:
            raise ValueError(f"jitter must be > 0, got {jitter}")
        self.jitter_init = float(jitter)
        self.jitter = 0.0  # the noise of the latest widened round (0: none)
        self.widened = 0
        self.dists = {f"z_{i}": FloatDistribution(-self.bound, self.bound) for i in range(run.D)}
        # surrogate samplers learn from (re-encoded mean, score); evolutionary ones from (asked point, score)
        self.reencoded = sampler in ("tpe", "gp")
        self.study: optuna.Study | None = None
        self.added: set[str] = set()

    def stats(self) -> dict[str, Any]:
        trials = len(self.study.get_trials(deepcopy=False)) if self.study is not None else 0
        return {"widened": self.widened, "trials": trials}

    def _widen(self, Z: np.ndarray, want: int) -> list[dict]:
        """Score up to ``want`` new molecules decoded from noisy copies of the asked points ``Z``."""
        run = self.run
        self.jitter = min(2.0 * self.jitter, 2.0) if self.jitter else self.jitter_init
        self.widened += 1
        Zj = np.clip(Z + self.rng.normal(0.0, self.jitter, Z.shape), -self.bound, self.bound).astype(np.float32)
        return run.evaluate(run.screen(Zj, self.name)[:want])

    def _make_sampler(self, x0: dict | None):
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
        _, _, V, _ = self.run.data.arrays()
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
        if rec.get("status") == SCORED and rec.get("feasible") and all(v is not None for v in vals):
            return [float(v) for v in vals]
        return self._penalty()

    def _add_reencoded(self) -> None:
        """Give TPE/GP every scored molecule at its own latent mean (once)."""
        smiles, Z, _, _ = self.run.data.arrays()
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
        run = self.run
        u = run.data.utilities()
        _, Z, _, _ = run.data.arrays()
        ok = np.isfinite(u) & np.isfinite(Z).all(1)
        order = [i for i in np.argsort(-np.where(ok, u, -np.inf)) if ok[i]]
        x0 = None
        if order and self.sampler_name == "cmaes":
            x0 = {k: float(v) for k, v in zip(self.dists, np.clip(Z[order[0]], -self.bound, self.bound))}
        with quiet_optuna():
            self.study = optuna.create_study(
                sampler=self._make_sampler(x0), directions=[o.direction for o in run.objectives]
            )
        if self.reencoded:
            with quiet_optuna():
                self._add_reencoded()
        for i in order[: self.popsize]:  # the start molecules' means, best first
            zc = np.clip(Z[i].astype(np.float64), -self.bound, self.bound)
            self.study.enqueue_trial({k: float(v) for k, v in zip(self.dists, zc)})

    def step(self) -> int:
        run = self.run
        if self.study is None:
            self.after_start()
        study = self.study
        n = min(self.n_ask, max(1, run.remaining()) if self.sampler_name not in ("cmaes", "nsga2") else self.n_ask)
        with quiet_optuna():
            trials = [study.ask(self.dists) for _ in range(n)]
        Z = np.array([[t.params[k] for k in self.dists] for t in trials], dtype=np.float32)
        cands = run.screen(Z, self.name)
        smiles = run.last_decoded
        new = run.evaluate(cands)
        fresh = {r["smiles"] for r in new}
        penalty = self._penalty()
        with quiet_optuna():
            for t, s in zip(trials, smiles):
                rec = run.known.get(s) if s is not None else None
                status = rec.get("status") if rec else None
                if status == INFEASIBLE:
                    vals = penalty
                elif status == SCORED and not self.reencoded:
                    vals = self._values_of(rec)
                elif status == SCORED and s not in fresh:
                    vals = penalty  # TPE/GP: nothing new decodes from here
                else:  # not scored (invalid, over budget, in flight), or TPE/GP: given at its mean below
                    study.tell(t, state=TrialState.FAIL)
                    continue
                study.tell(t, vals if run.k > 1 else vals[0])
            if self.reencoded:
                want = min(n, run.remaining())
                if len(new) < max(1, n // 4) and want > len(new):
                    new += self._widen(Z, want - len(new))
                else:
                    self.jitter = 0.0
                self._add_reencoded()
        return len(new)
