"""Per-molecule features of the MOSES metrics: canonical SMILES, packed Morgan bits (radius 2,
1,024 bits), BRICS fragments, Bemis-Murcko scaffolds (two rings or more), the four properties
(logP, SA, QED, weight) and the filter verdict, computed from one parse of each molecule on
the package's process pool.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np
from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors
from rdkit.Chem.Scaffolds import MurckoScaffold

from molvae.chem import quiet_rdkit, to_mol
from molvae.chem.fingerprints import morgan_bits
from molvae.metrics._common import PARALLEL_MIN, PROGRESS_MIN, as_list
from molvae.metrics.filters import mol_passes_filters
from molvae.properties import sa_score
from molvae.utils.parallel import map_items

__all__ = [
    "FP_RADIUS",
    "FP_BITS",
    "PROPERTY_NAMES",
    "properties",
    "fragments",
    "scaffold",
    "packed_fingerprint",
    "describe",
    "describe_many",
    "fingerprints",
]

FP_RADIUS = 2
FP_BITS = 1024
PROPERTY_NAMES = ("logP", "SA", "QED", "weight")
_PROPERTY_FUNCS = (Crippen.MolLogP, sa_score, QED.qed, Descriptors.MolWt)


def properties(mol: Chem.Mol) -> tuple[float, float, float, float]:
    """(logP, SA, QED, weight) as in MOSES; NaN where RDKit fails."""
    out = []
    for fn in _PROPERTY_FUNCS:
        try:
            out.append(float(fn(mol)))
        except Exception:
            out.append(math.nan)
    return tuple(out)  # type: ignore[return-value]


def fragments(mol: Chem.Mol) -> list[str]:
    """SMILES of the BRICS fragments (with dummy atoms), duplicates kept."""
    try:
        return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")
    except Exception:
        return []


def scaffold(mol: Chem.Mol, min_rings: int = 2) -> str | None:
    """Bemis-Murcko scaffold SMILES, or None below ``min_rings`` rings."""
    try:
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
        smi = Chem.MolToSmiles(scaf)
    except Exception:
        return None
    if not smi or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return smi


def packed_fingerprint(mol: Chem.Mol) -> np.ndarray:
    """MOSES Morgan bits of one molecule, packed: (FP_BITS / 8,) uint8."""
    return morgan_bits([mol], FP_RADIUS, FP_BITS, packed=True)[0][0]


def describe(smiles: object, parts: frozenset) -> dict | None:
    """``{"smiles": canonical, <part>: ...}`` for ``parts`` among fp, frag, scaf, props and
    filters; None when ``smiles`` does not parse."""
    mol = to_mol(smiles)
    if mol is None:
        return None
    try:
        canon = Chem.MolToSmiles(mol)
    except Exception:
        return None
    out: dict = {"smiles": canon}
    with quiet_rdkit():
        if "fp" in parts:
            out["fp"] = packed_fingerprint(mol)
        if "frag" in parts:
            out["frag"] = fragments(mol)
        if "scaf" in parts:
            out["scaf"] = scaffold(mol)
        if "props" in parts:
            out["props"] = properties(mol)
        if "filters" in parts:
            try:
                out["filters"] = mol_passes_filters(mol)
            except Exception:
                out["filters"] = False
    return out


def describe_many(smiles: Iterable, parts: Iterable[str], n_jobs: int | None = None, desc: str = "describe") -> list[dict]:
    """:func:`describe` of each input on the process pool (from PARALLEL_MIN molecules), in
    order; the rows of the valid molecules only."""
    items = as_list(smiles)
    rows = map_items(
        partial(describe, parts=frozenset(parts)),
        items,
        n_jobs=n_jobs,
        min_chunk=PARALLEL_MIN // 2,
        max_chunk=1000,
        progress=len(items) >= PROGRESS_MIN,
        desc=desc,
    )
    return [r for r in rows if r is not None]


def fingerprints(smiles: Sequence, n_jobs: int | None = None) -> np.ndarray:
    """Packed Morgan (r=2, 1024 bits) fingerprints of the valid molecules, shape (n, 128) uint8."""
    rows = describe_many(smiles, {"fp"}, n_jobs, "fingerprints")
    return np.stack([r["fp"] for r in rows]) if rows else np.zeros((0, FP_BITS // 8), np.uint8)
