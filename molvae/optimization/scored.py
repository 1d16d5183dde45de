"""The scored molecules (this worker's and every other worker's) as arrays for the strategies.

Each molecule carries its own latent mean (NaN where the encoder cannot read it), its
objective values (NaN = failed) and whether it meets the constraints.  Utilities are
"larger is better" whatever the directions; with several objectives a strategy may ask for
an augmented Chebyshev scalarization with weights of its choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molvae.chem.fingerprints import N_BITS, morgan_bits

__all__ = ["ScoredData"]


class ScoredData:
    """Scored molecules, in the order they became known to this worker."""

    def __init__(self, latent_dim: int, signs: np.ndarray, weights: np.ndarray) -> None:
        self.D = int(latent_dim)
        self.signs = np.asarray(signs, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.k = len(self.signs)
        self.smiles: list[str] = []
        self.values: list[np.ndarray] = []
        self.z: list[np.ndarray] = []
        self.feasible: list[bool] = []
        self.index: dict[str, int] = {}  # SMILES -> row
        self._arrays: tuple | None = None
        self._fps: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.smiles)

    def add(self, smiles: str, values: Sequence[float | None], z: np.ndarray | None, feasible: bool) -> None:
        self.index[smiles] = len(self.smiles)
        self.smiles.append(smiles)
        self.values.append(np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        self.z.append(np.full(self.D, np.nan, np.float32) if z is None else np.asarray(z, np.float32))
        self.feasible.append(bool(feasible))
        self._arrays = None

    def missing_means(self) -> list[int]:
        """Rows without a latent mean (stored so by another worker, or not encodable)."""
        return [i for i, z in enumerate(self.z) if not np.isfinite(z).all()]

    def set_mean(self, row: int, z: np.ndarray) -> None:
        self.z[row] = z
        self._arrays = None

    # ------------------------------------------------------------------ values
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
            n = len(self.smiles)
            Z = np.stack(self.z) if n else np.zeros((0, self.D), np.float32)
            V = np.stack(self.values) if n else np.zeros((0, self.k))
            F = np.array(self.feasible, dtype=bool)
            self._arrays = (list(self.smiles), Z, V, F)
        return self._arrays

    def utilities(self, chebyshev: np.ndarray | None = None) -> np.ndarray:
        """Utility (larger is better) of every scored molecule; NaN for failed or infeasible ones.

        With several objectives and ``chebyshev`` weights: augmented Chebyshev scalarization
        of the direction-signed objectives scaled to [0, 1] over the data.
        """
        _, _, V, F = self.arrays()
        if not len(V):
            return np.zeros(0)
        if self.k == 1:
            u = V[:, 0] * self.signs[0]
        elif chebyshev is None:
            u = (V * self.signs * self.weights).sum(1)
        else:
            S = V * self.signs
            lo, hi = np.nanmin(S, axis=0), np.nanmax(S, axis=0)
            Sn = (S - lo) / np.where(hi > lo, hi - lo, 1.0)
            u = np.min(chebyshev * Sn, axis=1) + 0.05 * np.sum(chebyshev * Sn, axis=1)
        return np.where(F, u, np.nan)

    def best(self) -> float | None:
        """The best feasible score so far (``None``: none yet)."""
        _, _, V, F = self.arrays()
        if not len(V):
            return None
        scores = np.array([self.score_of(v) for v in V])
        scores = np.where(F, scores, np.nan)
        if np.all(np.isnan(scores)):
            return None
        u = self.utility_of_score(scores)
        return float(scores[int(np.nanargmax(u))])

    # ------------------------------------------------------------------ fingerprints
    def fingerprints(self, smiles: Sequence[str]) -> np.ndarray:
        """Morgan bits (n, 2048) as float32 (zero rows where a SMILES does not parse), cached per
        molecule, packed (256 bytes each: a long run ranks hundreds of thousands of candidates)."""
        todo = list(dict.fromkeys(s for s in smiles if s not in self._fps))
        if todo:
            bits, _ok = morgan_bits(todo, packed=True)
            for s, row in zip(todo, bits):
                self._fps[s] = row
        if not len(smiles):
            return np.zeros((0, N_BITS), dtype=np.float32)
        return np.unpackbits(np.stack([self._fps[s] for s in smiles]), axis=1, count=N_BITS).astype(np.float32)
