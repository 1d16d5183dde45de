"""``strategy="gradient"``: LIMO-style gradient ascent on a surrogate of the latent space.

An :class:`~molvae.predictors.mlp.MLPEnsemble` is fitted on (latent mean, utility); gradient
ascent runs from the best molecules plus noise (many starts at once); the points along the
paths are decoded and the unseen ones the ensemble's Thompson draws prefer are scored.
:mod:`molvae.predictors.mlp` (torch) is imported in :meth:`Gradient.step`, where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from molvae.optimization.session import Run
from molvae.optimization.strategies.base import Strategy
from molvae.optimization.surrogates import thompson_pick

__all__ = ["Gradient"]


class Gradient(Strategy):
    name = "gradient"

    def __init__(
        self,
        run: Run,
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
        from molvae.predictors import MLPEnsemble

        run = self.run
        lam = self.scalarization()
        u = run.data.utilities(lam)
        _, Z, _, _ = run.data.arrays()
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
        order = thompson_pick(mean, std, min(self.q, run.remaining()), self.rng)
        new = run.evaluate([cands[i] for i in order])
        self.stall = 0 if new else self.stall + 1
        return len(new)
