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
import logging
from collections.abc import Iterable, Iterator

from rdkit import Chem, RDLogger, rdBase

from molvae.utils.parallel import map_items

MAX_SMILES_LENGTH = 5000

__all__ = [
    "MAX_SMILES_LENGTH",
    "quiet_rdkit",
    "kept_rdkit_log",
    "to_mol",
    "canonical", "mol_smiles",
    "canonical_many",
    "canonical_set",
    "standardize",
    "heavy_atoms",
    "is_valid",
]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def kept_rdkit_log() -> Iterator[None]:
    """Put RDKit's log switches back as they were when the block ends (for code that changes them)."""
    before = dict(line.split(":") for line in rdBase.LogStatus().splitlines() if ":" in line)
    try:
        yield
    finally:
        for name, state in before.items():
            (RDLogger.EnableLog if state == "enabled" else RDLogger.DisableLog)(name)


class quiet_rdkit:  # noqa: N801 - used like a function: ``with quiet_rdkit(): ...``
    """Silence RDKit's C++ log (parse errors, sanitization warnings) inside the block.

    Holds an RDKit ``BlockLogs`` for the block: it puts the log switches back as they were
    when the block ends, nests, and costs a few microseconds, so it can wrap every single
    parse (the log-status round trip of :func:`kept_rdkit_log` costs about 20 µs, a sixth
    of parsing a molecule).

    >>> with quiet_rdkit():
    ...     to_mol("not a smiles") is None
    True
    """

    __slots__ = ("_block",)

    def __enter__(self) -> None:
        self._block = rdBase.BlockLogs()

    def __exit__(self, *exc: object) -> None:
        del self._block  # BlockLogs restores the switches when it is destroyed


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


def mol_smiles(mol: Chem.Mol | None, isomeric: bool = True) -> str | None:
    """Canonical SMILES of a parsed molecule, or ``None`` (no molecule, or RDKit cannot write it)."""
    if mol is None:
        return None
    try:
        return Chem.MolToSmiles(mol, isomericSmiles=isomeric)
    except Exception:
        return None


def canonical(smiles: object, isomeric: bool = True) -> str | None:
    """Canonical SMILES of ``smiles``, or ``None`` when RDKit cannot parse it."""
    return mol_smiles(to_mol(smiles), isomeric)


def canonical_many(
    smiles: Iterable[object], n_jobs: int | None = None, probe: int = 2000, progress: bool = False
) -> list[str | None]:
    """Canonical SMILES of each input (``None`` where RDKit cannot parse it), on the process pool.

    The one "is it already canonical?" shortcut of the package: when a list is longer than
    ``probe`` and an evenly spread sample of ``probe`` of its strings is canonical already
    (a bundled dataset, a previous run's output), the list is returned as it is (non-strings
    and empty strings as ``None``) instead of parsing every molecule.
    """
    items = list(smiles)
    if probe and len(items) > probe:
        sample = items[:: max(1, len(items) // probe)]
        if all(isinstance(x, str) and x and canonical(x) == x for x in sample):
            logger.debug("%d SMILES look canonical (%d probed); used as they are", len(items), len(sample))
            return [x if isinstance(x, str) and x else None for x in items]
    return map_items(canonical, items, n_jobs=n_jobs, progress=progress, desc="canonicalize")


def canonical_set(smiles: Iterable[object], n_jobs: int | None = None) -> set[str]:
    """The set of canonical SMILES of the parsable inputs (see :func:`canonical_many`)."""
    return {c for c in canonical_many(smiles, n_jobs=n_jobs) if c}


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
