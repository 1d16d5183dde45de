"""What every strategy shares: the batch size, random scalarizations, surrogate ranking of candidates."""

from __future__ import annotations

from typing import Any

import numpy as np

from molvae.optimization.candidates import Candidate
from molvae.optimization.session import Run
from molvae.optimization.surrogates import TanimotoGP, latent_model, thompson_pick

__all__ = ["Strategy"]


class Strategy:
    """A search strategy: :meth:`step` proposes, screens and scores one round of molecules."""

    name = ""

    def __init__(self, run: Run, rng: np.random.Generator, seed: int) -> None:
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
        """Called once the start molecules are scored."""

    def step(self) -> int:
        """One round; returns the number of molecules scored."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Strategy-specific entries of :attr:`OptimizationResult.stats`."""
        return {}

    # ------------------------------------------------------------------ shared
    def _rank_and_evaluate(self, cands: list[Candidate], surrogate: str | None, u: np.ndarray) -> list[dict]:
        """Score the ``q`` candidates a surrogate's Thompson draws prefer (random order without one)."""
        run = self.run
        if not cands:
            return []
        q = min(self.q, run.remaining())
        if q <= 0:
            return []
        smiles, Z, _, _ = run.data.arrays()
        ok = np.isfinite(u)
        order: list[int]
        if surrogate is None or ok.sum() < 5 or len(cands) <= q:
            order = list(self.rng.permutation(len(cands)))
        else:
            mean, std = self._predict(surrogate, cands, [s for s, o in zip(smiles, ok) if o], Z[ok], u[ok])
            order = thompson_pick(mean, std, q, self.rng)
        chosen = [cands[i] for i in order[: max(q, 0)]]
        return run.evaluate(chosen)

    def _predict(self, surrogate: str, cands: list[Candidate], smiles: list[str], Z: np.ndarray, u: np.ndarray):
        run = self.run
        if surrogate == "tanimoto":
            gp = TanimotoGP().fit(run.data.fingerprints(smiles), u)
            return gp.predict(run.data.fingerprints([c.smiles for c in cands]))
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
        model = latent_model(surrogate, run.model.device)
        model.fit(Z[zok], u[zok], cv=0, seed=int(self.rng.integers(2**31)))
        mean, std = np.zeros(len(cands)), np.zeros(len(cands))
        if has_z.any():
            mean[has_z], std[has_z] = model.predict(Zc[has_z])
        if not has_z.all():
            mean[~has_z] = mean[has_z].min() if has_z.any() else 0.0
            std[~has_z] = std[has_z].max() if has_z.any() else 1.0
        return mean, std
