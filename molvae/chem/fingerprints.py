"""The one Morgan fingerprint and the one Tanimoto similarity of the package.

Every similarity molvae reports (property ``similarity``, the optimizer's constraints and
surrogate, SNN and IntDiv in the metrics, neighbours in latent space) is computed here:
Morgan (ECFP-like) bits of radius 2, 2,048 bits unless a caller needs MOSES's 1,024.

>>> round(tanimoto(morgan_fingerprint("CCO"), morgan_fingerprint("CCN")), 3)
0.333
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molvae.chem.molecules import to_mol

__all__ = [
    "RADIUS",
    "N_BITS",
    "morgan_generator",
    "morgan_fingerprint",
    "morgan_bits",
    "tanimoto",
    "bulk_tanimoto",
    "tanimoto_matrix",
]

RADIUS = 2
N_BITS = 2048


@functools.lru_cache(maxsize=8)
def morgan_generator(radius: int = RADIUS, n_bits: int = N_BITS):
    """RDKit's Morgan generator for these settings, built once per process."""
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def _mol(molecule: object) -> Chem.Mol | None:
    return molecule if isinstance(molecule, Chem.Mol) else to_mol(molecule)


def morgan_fingerprint(molecule: object, radius: int = RADIUS, n_bits: int = N_BITS) -> DataStructs.ExplicitBitVect | None:
    """Morgan bit vector of a SMILES or ``Mol``; ``None`` when it does not parse."""
    mol = _mol(molecule)
    return None if mol is None else morgan_generator(radius, n_bits).GetFingerprint(mol)


def morgan_bits(
    molecules: Sequence[object], radius: int = RADIUS, n_bits: int = N_BITS, packed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints as a uint8 array and a validity mask: ``(bits, ok)``.

    ``bits`` is (n, n_bits) of 0/1, or (n, n_bits / 8) with ``packed=True`` (``np.packbits``);
    rows of molecules that do not parse are zero and ``ok`` is False there.
    """
    gen = morgan_generator(radius, n_bits)
    out = np.zeros((len(molecules), n_bits // 8 if packed else n_bits), dtype=np.uint8)
    ok = np.zeros(len(molecules), dtype=bool)
    for i, molecule in enumerate(molecules):
        mol = _mol(molecule)
        if mol is None:
            continue
        row = gen.GetFingerprintAsNumPy(mol).astype(np.uint8, copy=False)
        out[i] = np.packbits(row) if packed else row
        ok[i] = True
    return out, ok


def tanimoto(a: DataStructs.ExplicitBitVect, b: DataStructs.ExplicitBitVect) -> float:
    """Tanimoto similarity of two bit vectors."""
    return float(DataStructs.TanimotoSimilarity(a, b))


def bulk_tanimoto(query: DataStructs.ExplicitBitVect, references: Sequence[DataStructs.ExplicitBitVect]) -> np.ndarray:
    """Tanimoto similarity of one bit vector to each of ``references`` (RDKit's bulk routine)."""
    if not len(references):
        return np.zeros(0)
    return np.asarray(DataStructs.BulkTanimotoSimilarity(query, list(references)), dtype=np.float64)


def tanimoto_matrix(a, b, a_counts=None, b_counts=None, empty: float = 1.0):
    """Tanimoto matrix (len(a), len(b)) of dense 0/1 rows; numpy arrays or torch tensors alike.

    ``a_counts``/``b_counts`` (bits set per row) may be given when already known.  Two empty
    fingerprints have similarity ``empty`` (1, as in MOSES; a GP kernel may want 0).
    """
    inter = a @ b.T
    na = a.sum(1) if a_counts is None else a_counts
    nb = b.sum(1) if b_counts is None else b_counts
    if isinstance(inter, np.ndarray):
        inter = inter.astype(np.float64, copy=False)
        denom = na[:, None] + nb[None, :] - inter
        zero = denom == 0
        return inter / (denom + zero) + zero * empty
    # torch: in place on the (possibly large) block, counting in float32 whatever the matmul type
    inter = inter.float()
    denom = (na.float()[:, None] + nb.float()[None, :]).sub_(inter)
    return inter.div_(denom).nan_to_num_(nan=empty)  # 0/0 (two empty fingerprints) -> ``empty``
