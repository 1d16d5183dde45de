"""RDKit helpers. Every function returns ``None`` on failure instead of raising.

Molecule policy (applied the same way in training, encoding and optimization):
``standardize`` keeps the largest organic fragment (carbon-containing fragments first, then
by heavy atoms: salts and counter-ions dropped), removes isotope labels and atom-map
numbers, keeps stereochemistry and formal charges, and rejects molecules RDKit cannot
sanitize and SMILES longer than ``MAX_SMILES_LENGTH`` characters (RDKit's writer can
exhaust the stack on such giants).  What the model cannot represent (atoms outside its
vocabulary, too many tokens) is rejected later by the tokenizer with a reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rdkit import Chem, RDLogger, rdBase

MAX_SMILES_LENGTH = 5000

__all__ = ["MAX_SMILES_LENGTH", "quiet_rdkit", "to_mol", "canonical", "standardize", "heavy_atoms", "is_valid"]


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's C++ log (parse errors, sanitization warnings) inside the block.

    >>> with quiet_rdkit():
    ...     to_mol("not a smiles") is None
    True
    """
    before = dict(line.split(":") for line in rdBase.LogStatus().splitlines() if ":" in line)
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        for name, state in before.items():
            (RDLogger.EnableLog if state == "enabled" else RDLogger.DisableLog)(name)


def to_mol(smiles: object) -> Chem.Mol | None:
    """Parse a SMILES string into a sanitized RDKit molecule, or ``None``."""
    if not isinstance(smiles, str):
        return None
    s = smiles.strip()
    if not s or len(s) > MAX_SMILES_LENGTH:
        return None
    with quiet_rdkit():
        try:
            mol = Chem.MolFromSmiles(s)
        except Exception:  # RDKit raises on a few pathological inputs
            return None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def canonical(smiles: object, isomeric: bool = True) -> str | None:
    """Canonical SMILES of ``smiles``, or ``None`` when RDKit cannot parse it."""
    mol = to_mol(smiles)
    if mol is None:
        return None
    try:
        return Chem.MolToSmiles(mol, isomericSmiles=isomeric)
    except Exception:
        return None


def standardize(smiles: object, largest_fragment: bool = True, strip_isotopes: bool = True) -> str | None:
    """Canonical SMILES after the molvae molecule policy, or ``None``.

    Keeps the largest organic fragment of a multi-fragment SMILES (fragments with carbon
    first, then by heavy atoms), drops isotope labels and atom maps; charges and
    stereochemistry are kept.

    >>> standardize("CC(=O)[O-].[Na+]")
    'CC(=O)[O-]'
    """
    mol = to_mol(smiles)
    if mol is None:
        return None
    try:
        if largest_fragment and "." in str(smiles):
            frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
            mol = max(frags, key=lambda m: (any(a.GetAtomicNum() == 6 for a in m.GetAtoms()),
                                            m.GetNumHeavyAtoms(), Chem.MolToSmiles(m)))
        for atom in mol.GetAtoms():
            if atom.GetAtomMapNum():
                atom.SetAtomMapNum(0)
        if strip_isotopes:
            labelled = [atom for atom in mol.GetAtoms() if atom.GetIsotope()]
            for atom in labelled:
                atom.SetIsotope(0)
            if labelled:  # deuterium etc. become plain explicit hydrogens: fold them back in
                mol = Chem.RemoveHs(mol)
        return Chem.MolToSmiles(mol)
    except Exception:
        return None


def heavy_atoms(smiles: object) -> int | None:
    """Number of heavy atoms, or ``None`` for an unparsable SMILES."""
    mol = to_mol(smiles)
    return None if mol is None else mol.GetNumHeavyAtoms()


def is_valid(smiles: object) -> bool:
    """True when RDKit parses ``smiles`` into a non-empty molecule."""
    return to_mol(smiles) is not None
