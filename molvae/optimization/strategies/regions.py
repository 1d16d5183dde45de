"""Several trust regions at once (``TrustRegion(n_regions > 1)``, TuRBO-m, Eriksson et al. 2019).

The boxes share one candidate pool and one ranking; each scored molecule with a latent point
counts for the box whose center it is most similar to (Tanimoto), and each box grows, shrinks,
moves to its own best molecule and restarts by itself.  The functions take the
:class:`~molvae.optimization.strategies.trust_region.TrustRegion` whose ``regions`` they drive.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from molvae.chem.fingerprints import tanimoto_matrix

__all__ = ["Box", "improves", "step_regions"]


class Box:
    """One of several trust regions: its center molecule and utility, side and counters."""

    __slots__ = ("center", "center_u", "length", "n_success", "n_failure")

    def __init__(self, length: float):
        self.center: str | None = None
        self.center_u = -math.inf
        self.length = length
        self.n_success = self.n_failure = 0


def improves(value: float, center_u: float) -> bool:
    """Whether ``value`` beats a center's utility by more than a relative 1e-3 (a success)."""
    return value > center_u + 1e-3 * max(1.0, abs(center_u))


def place(tr: Any, box: Box, u: np.ndarray, restart: bool) -> None:
    """Center ``box`` on one of the 50 best molecules, away from the other boxes' centers."""
    taken = [b.center for b in tr.regions if b is not box and b.center]
    pick = tr._pick_center(u, restart, top=50, taken=taken)
    box.center, box.center_u = pick if pick else (None, box.center_u)


def step_regions(tr: Any, lam: np.ndarray | None, u: np.ndarray) -> int:
    """One round of ``tr`` with its several boxes; returns the number of molecules scored."""
    run, data = tr.run, tr.run.data
    for box in tr.regions:
        if box.center is None:
            place(tr, box, u, restart=False)
        elif lam is not None:  # new weights: re-rank the center
            box.center_u = float(u[data.index[box.center]])
    live = [b for b in tr.regions if b.center is not None]
    if not live:
        return tr._without_center(u)
    best = max(live, key=lambda b: b.center_u)
    tr.center, tr.center_u, tr.length = best.center, best.center_u, best.length  # edits, stats
    n, n_mut, n_cross, n_graph = tr._latent_share()
    Zs = data.arrays()[1]
    sizes = [len(part) for part in np.array_split(np.arange(n), len(live))]
    Z = np.concatenate([tr._box_points(Zs[data.index[b.center]], b.length, k) for b, k in zip(live, sizes) if k])
    cands = tr._pool(tr._with_prior_draws(Z[tr.rng.permutation(len(Z))]), tr.name, n_mut, n_cross, u, n_graph)
    new = tr._rank_and_evaluate(cands, tr.surrogate, u)
    u = data.utilities(lam)
    # each new feasible molecule with a latent point (one the model can encode: a box needs
    # one to move there) counts for the box whose center it is most like
    Zs = data.arrays()[1]
    scored = [(r["smiles"], float(u[data.index[r["smiles"]]])) for r in new]
    scored = [(s, v) for s, v in scored if np.isfinite(v) and np.isfinite(Zs[data.index[s]]).all()]
    gains: dict[int, tuple[str, float]] = {}
    if scored:
        sims = tanimoto_matrix(data.fingerprints([s for s, _ in scored]), data.fingerprints([b.center for b in live]))
        for (s, v), j in zip(scored, sims.argmax(1)):
            if v > gains.get(int(j), ("", -math.inf))[1]:
                gains[int(j)] = (s, v)
    moves = [gains.get(j, ("", -math.inf)) for j in range(len(live))]
    better = [improves(v, b.center_u) for b, (_, v) in zip(live, moves)]
    if not any(better) and run.last_n_new < tr.q and min(b.length for b in live) < tr.length_max:
        for b in live:  # too few unseen molecules: widen every box, as a single box does
            b.length = min(2.0 * b.length, tr.length_max)
        tr.widened += 1
        return len(new)
    for box, (s, v), up in zip(live, moves, better):
        if up:
            box.center, box.center_u = s, v
        if tr._count(box, up):
            place(tr, box, u, restart=True)
    return len(new)
