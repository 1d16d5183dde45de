"""Substituent swaps of good molecules: a terminal group replaced by, or a hydrogen replaced by, a common substituent.

The move a medicinal chemist makes in a substituent scan: one position of the parent gets a
group from :data:`GROUPS` (methyl, trifluoromethyl, halogens, methoxy, amino, cyano, amide,
sulfonamide, small rings, ...).  Two kinds of site:

- ``replace``: a terminal heavy atom on a single bond (F, Cl, methyl C, hydroxyl O, ...) is
  removed and the group is bonded where it was;
- ``append``: the group is bonded to an atom with a hydrogen to spare.

A group of several atoms arrives in one move, where SELFIES edits and one-atom graph
mutations (:mod:`molvae.optimization.graph_mutations`) need several steps whose intermediates
may score worse (F -> CH2F -> CHF2 -> CF3).  Children are checked as graph mutations are: RDKit
must sanitize them, one fragment, no radicals or charges, no new 3-4 rings, at most
``max_heavy_atoms``; the survivors are canonical SMILES.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from molvae.chem import canonical, to_mol
from molvae.optimization.crossover import _odd, _small_ring
from molvae.optimization.graph_mutations import _free, new_children

__all__ = ["GROUPS", "SubstituentMutator"]

# common substituents, the attachment atom first
GROUPS = (
    "C", "CC", "C(C)C", "C(C)(C)C", "C(F)(F)F", "F", "Cl", "Br", "O", "OC", "OCC", "OC(F)(F)F", "N", "NC",
    "N(C)C", "C#N", "C=O", "CO", "C(=O)O", "C(=O)OC", "C(N)=O", "NC(C)=O", "S(N)(=O)=O", "S(C)(=O)=O", "SC",
    "c1ccccc1", "c1ccncc1", "N1CCOCC1", "N1CCCC1", "N1CCN(C)CC1",
)


def _group_mols() -> list[Chem.Mol]:
    out = []
    for smi in GROUPS:
        mol = Chem.MolFromSmiles(smi)
        Chem.Kekulize(mol, clearAromaticFlags=True)
        out.append(mol)
    return out


class SubstituentMutator:
    """Substituent swaps (module docstring) of parent molecules, as new canonical SMILES."""

    def __init__(self, rng: np.random.Generator, max_heavy_atoms: int | None = None, tries: int = 4,
                 groups: Sequence[str] | None = None) -> None:
        self.rng = rng
        self.max_heavy_atoms = max_heavy_atoms
        self.tries = int(tries)
        if groups is None:
            self.groups = _group_mols()
        else:
            self.groups = []
            for smi in groups:
                mol = to_mol(smi)
                if mol is None:
                    raise ValueError(f"substituent {smi!r} is not a valid SMILES")
                Chem.Kekulize(mol, clearAromaticFlags=True)
                self.groups.append(mol)
            if not self.groups:
                raise ValueError("groups must hold at least one substituent")
        self._mols: dict[str, Chem.Mol | None] = {}
        self.last_n_new = 0

    def _parent(self, smiles: str) -> Chem.Mol | None:
        """The kekulized parent (cached)."""
        if smiles not in self._mols:
            mol = to_mol(smiles)
            if mol is not None:
                mol = Chem.Mol(mol)
                try:
                    Chem.Kekulize(mol, clearAromaticFlags=True)
                except Exception:
                    mol = None
            self._mols[smiles] = mol
        return self._mols[smiles]

    def swap(self, mol: Chem.Mol, group: Chem.Mol, replace: bool) -> Chem.Mol | None:
        """``mol`` (kekulized) with ``group`` (kekulized, attachment atom 0) put in place of a
        random terminal atom (``replace``) or on a random atom with a hydrogen to spare;
        unsanitized, ``None`` when there is no such site."""
        rw = Chem.RWMol(mol)
        if replace:
            sites = [a for a in rw.GetAtoms() if a.GetDegree() == 1 and not a.GetFormalCharge()
                     and a.GetBonds()[0].GetBondType() == Chem.BondType.SINGLE]
            if not sites or rw.GetNumAtoms() < 3:
                return None
            t = sites[int(self.rng.integers(len(sites)))]
            ti, anchor = t.GetIdx(), t.GetNeighbors()[0].GetIdx()
            rw.RemoveAtom(ti)
            anchor -= int(anchor > ti)
        else:
            sites = [a.GetIdx() for a in rw.GetAtoms() if _free(a) >= 1]
            if not sites:
                return None
            anchor = sites[int(self.rng.integers(len(sites)))]
        n = rw.GetNumAtoms()
        rw.InsertMol(group)
        rw.AddBond(int(anchor), n, Chem.BondType.SINGLE)
        for at in rw.GetAtoms():  # hydrogens follow the new bonds
            at.SetNoImplicit(False)
            at.SetNumExplicitHs(0)
        return rw.GetMol()

    def child(self, smiles: str) -> str | None:
        """One substituent swap of ``smiles`` (canonical SMILES), ``None`` when every try failed."""
        parent = self._parent(smiles)
        if parent is None:
            return None
        small_ring = _small_ring(parent)
        for _ in range(self.tries):
            group = self.groups[int(self.rng.integers(len(self.groups)))]
            mol = self.swap(parent, group, replace=bool(self.rng.random() < 0.5))
            if mol is None:
                continue
            try:
                Chem.SanitizeMol(mol)
            except Exception:
                continue
            if len(Chem.GetMolFrags(mol)) != 1 or _odd(mol, small_ring):
                continue
            if self.max_heavy_atoms and mol.GetNumHeavyAtoms() > self.max_heavy_atoms:
                continue
            smi = canonical(Chem.MolToSmiles(mol))
            if smi and smi != smiles:
                return smi
        return None

    def mutate(self, parents: Sequence[str], exclude: Mapping[str, Any] | set[str]) -> list[str]:
        """New children (not in ``exclude``, not a parent, no repeats) of ``parents``, one try-set each."""
        out = new_children(self.child, parents, exclude)
        self.last_n_new = len(out)
        return out
