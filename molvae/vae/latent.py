"""Latent-space helpers: reconstruction (encode, then decode), paths between two molecules,
and molecules decoded near one.

``MolVAE.reconstruct``, ``MolVAE.interpolate`` and ``MolVAE.neighbors`` call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from molvae.chem import standardize
from molvae.properties import similarity

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vae.model import MolVAE

__all__ = ["reconstruct", "latent_path", "interpolate", "neighbors"]


def reconstruct(
    model: MolVAE, smiles: Sequence[str] | str, method: str = "greedy", beam_width: int = 5, progress: bool = False
) -> pd.DataFrame:
    """Encode (posterior mean) and decode each molecule: DataFrame input, canonical, reconstruction, encoded, exact.

    Rows that could not be encoded have an empty reconstruction and ``exact=False``.
    """

    if isinstance(smiles, str):
        smiles = [smiles]
    smiles = list(smiles)
    z = model.encode(smiles, progress=progress)
    ok = np.isfinite(z).all(axis=1)
    recon = [""] * len(smiles)
    if ok.any():
        dec = model.decode(z[ok], method=method, beam_width=beam_width, progress=progress)
        for i, s in zip(np.flatnonzero(ok), dec):
            recon[i] = s
    canon = [standardize(s) if isinstance(s, str) else None for s in smiles]
    return pd.DataFrame({
        "input": pd.Series(smiles, dtype=object),  # whatever the user passed, kept as given
        "canonical": canon,
        "reconstruction": recon,
        "encoded": ok,
        "exact": [c is not None and c == r for c, r in zip(canon, recon)],
    })


def latent_path(za: np.ndarray, zb: np.ndarray, steps: int, method: str = "slerp") -> tuple[np.ndarray, np.ndarray]:
    """``steps`` points from ``za`` to ``zb``: (t (steps,), points (steps, D)).

    ``slerp`` follows the great circle (it stays where N(0, I) has its mass; a straight line when
    the two points are in the same direction), ``linear`` the straight line.
    """
    t = np.linspace(0.0, 1.0, steps)
    if method == "linear":
        return t, np.outer(1 - t, za) + np.outer(t, zb)
    if method != "slerp":
        raise ValueError("method must be 'slerp' or 'linear'")
    cos = np.dot(za, zb) / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return t, np.outer(1 - t, za) + np.outer(t, zb)
    return t, (np.sin((1 - t) * omega)[:, None] * za + np.sin(t * omega)[:, None] * zb) / np.sin(omega)


def _encode_or_raise(model: MolVAE, smiles: list[str]) -> np.ndarray:
    z = model.encode(smiles)
    if not np.isfinite(z).all():
        names = " or ".join(repr(s) for s in smiles)
        raise ValueError(f"cannot encode {names}: {model.tokenizer.encode(smiles).failures.reason.tolist()}")
    return z


def interpolate(model: MolVAE, a: str, b: str, steps: int = 8, method: str = "slerp") -> pd.DataFrame:
    """Molecules decoded (greedy) along the path between the latent means of ``a`` and ``b``, with a ``t`` column."""
    if method not in ("slerp", "linear"):
        raise ValueError("method must be 'slerp' or 'linear'")
    z = _encode_or_raise(model, [a, b])
    t, path = latent_path(z[0], z[1], steps, method)
    df = model.decode_z(path.astype(np.float32))
    df.insert(0, "t", t)
    return df


def neighbors(
    model: MolVAE, smiles: str, n: int = 10, radius: float = 0.5, seed: int = 0, max_tries: int = 20,
    faithful: bool = False,
) -> pd.DataFrame:
    """Up to ``n`` distinct molecules decoded (greedy) from z + radius * N(0, I) around ``smiles``'s latent mean.

    DataFrame sorted by latent distance: smiles, distance, similarity (Tanimoto to the query);
    the query itself and, with ``faithful=True``, decodes SELFIES had to repair are left out.
    """

    z0 = _encode_or_raise(model, [smiles])
    query = standardize(smiles)
    rng = np.random.default_rng(seed)
    found: dict[str, float] = {}
    for _ in range(max_tries):
        eps = rng.standard_normal((max(2 * n, 16), model.latent_dim)).astype(np.float32)
        pts = z0 + radius * eps
        dec = model.decode_z(pts)
        for s, ok, d in zip(dec.smiles, dec.faithful, np.linalg.norm(pts - z0, axis=1)):
            if faithful and not ok:
                continue
            if s and s != query and (s not in found or d < found[s]):
                found[s] = float(d)
        if len(found) >= n:
            break
    df = pd.DataFrame({"smiles": list(found), "distance": list(found.values())})
    df = df.sort_values("distance", kind="stable").head(n).reset_index(drop=True)
    df["similarity"] = similarity(df["smiles"].tolist(), smiles)
    return df
