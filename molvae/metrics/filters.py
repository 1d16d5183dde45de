"""The MOSES medicinal-chemistry filters: ring size, charges, allowed atoms, MCF and PAINS.

The SMARTS come from ``data_dir()/moses/filters`` (``mcf.csv`` and ``wehi_pains.csv``, as
shipped with MOSES) and are compiled once per process.
"""

from __future__ import annotations

import csv
import logging

from rdkit import Chem, DataStructs

from molvae.chem import to_mol
from molvae.utils.paths import data_dir

__all__ = ["ALLOWED_ATOMS", "filter_patterns", "mol_passes_filters"]

logger = logging.getLogger(__name__)

ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
_PATTERNS: dict[str, list] = {}


def filter_patterns() -> list[tuple[Chem.Mol, DataStructs.ExplicitBitVect]]:
    """MCF + PAINS SMARTS as (query, pattern fingerprint) pairs, compiled once per data folder."""
    folder = data_dir() / "moses" / "filters"
    key = str(folder)
    if key not in _PATTERNS:
        smarts: list[str] = []
        with open(folder / "mcf.csv", newline="") as fh:
            smarts += [row["smarts"].strip() for row in csv.DictReader(fh)]
        with open(folder / "wehi_pains.csv", newline="") as fh:
            smarts += [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]
        patterns = []
        for s in smarts:
            p = Chem.MolFromSmarts(s)
            if p is None:
                logger.warning("skipping unparsable filter SMARTS %r", s)
            else:
                patterns.append((p, Chem.PatternFingerprint(p)))
        _PATTERNS[key] = patterns
    return _PATTERNS[key]


def mol_passes_filters(mol: Chem.Mol | str | None) -> bool:
    """MOSES ``mol_passes_filters``: no ring of >= 8 atoms, no charged atom, only
    C/N/S/O/F/Cl/Br/H, no MCF or PAINS match, and a non-empty SMILES round trip."""
    if not isinstance(mol, Chem.Mol):
        mol = to_mol(mol)
    if mol is None:
        return False
    if any(len(r) >= 8 for r in mol.GetRingInfo().AtomRings()):
        return False
    if any(a.GetFormalCharge() != 0 for a in mol.GetAtoms()):
        return False
    if any(a.GetSymbol() not in ALLOWED_ATOMS for a in mol.GetAtoms()):
        return False
    h_mol = Chem.AddHs(mol)
    h_fp = Chem.PatternFingerprint(h_mol)
    # pattern fingerprints only screen out impossible matches (no false negatives)
    if any(DataStructs.AllProbeBitsMatch(pfp, h_fp) and h_mol.HasSubstructMatch(p) for p, pfp in filter_patterns()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and to_mol(smiles) is not None
