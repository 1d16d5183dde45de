"""Graph crossover of good molecules: cut each parent in two and join a piece of one to a piece of the other.

Two cuts, as in the graph genetic algorithms of the field (Graph GA, Jensen 2019; Mol GA,
Tripp and Hernandez-Lobato 2023), written here on RDKit's ``FragmentOnBonds`` and ``molzip``:

- chain cut: one acyclic single bond of each parent is broken; the child joins the piece of
  parent A on one side of its cut to the piece of parent B on one side of its cut.
- ring cut: two bonds of one ring of each parent (kekulized) are broken, leaving each ring in
  two arcs; the child closes an arc of A with an arc of B into a new ring, substituents
  included.

Children that RDKit cannot sanitize, with radicals, charges, cumulated double bonds on C or N
(joining kekulized arcs can make allenes), rings of 3-4 atoms that neither parent has, rings
of more than 8 atoms, more heavy atoms than ``max_heavy_atoms`` or several fragments are
dropped; the survivors are canonical SMILES.  The trust region caps children at the run's
``max_heavy_atoms``, else at two thirds of the model's maximum length in SELFIES tokens (33 heavy
atoms for the shipped models, whose limit is 50 tokens), so that most of them stay encodable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from molvae.chem import canonical, quiet_rdkit, to_mol

__all__ = ["GraphCrossover"]


def _pieces_chain(mol: Chem.Mol, rng: np.random.Generator) -> list[Chem.Mol]:
    """The two pieces left by breaking one random acyclic single bond, each with a ``[1*]``."""
    bonds = [b.GetIdx() for b in mol.GetBonds() if not b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE]
    if not bonds:
        return []
    b = int(bonds[int(rng.integers(len(bonds)))])
    frag = Chem.FragmentOnBonds(mol, [b], addDummies=True, dummyLabels=[(1, 1)])
    return list(Chem.GetMolFrags(frag, asMols=True, sanitizeFrags=False))


def _pieces_ring(mol: Chem.Mol, rng: np.random.Generator) -> list[Chem.Mol]:
    """The two arcs left by breaking two non-adjacent bonds of one ring (each arc: one ``[1*]`` and one ``[2*]``)."""
    rings = [r for r in mol.GetRingInfo().AtomRings() if 5 <= len(r) <= 7]
    if not rings:
        return []
    ring = rings[int(rng.integers(len(rings)))]
    n = len(ring)
    i = int(rng.integers(n))
    k = int(rng.integers(2, n - 1))  # arcs of at least two atoms each
    a0, a1 = ring[i], ring[(i + 1) % n]
    b0, b1 = ring[(i + k) % n], ring[(i + k + 1) % n]
    bond1, bond2 = mol.GetBondBetweenAtoms(a0, a1), mol.GetBondBetweenAtoms(b0, b1)
    if bond1 is None or bond2 is None:
        return []

    def labels(bond, first, second):  # dummy on ``first`` side gets label 1, ``second`` side 2
        return (1, 2) if bond.GetBeginAtomIdx() == first else (2, 1)

    # arc a1..b0 gets [2*] at a1 and [1*] at b0; arc b1..a0 gets [2*] at b1 and [1*] at a0
    frag = Chem.FragmentOnBonds(mol, [bond1.GetIdx(), bond2.GetIdx()], addDummies=True,
                                dummyLabels=[labels(bond1, a0, a1), labels(bond2, b0, b1)])
    pieces = list(Chem.GetMolFrags(frag, asMols=True, sanitizeFrags=False))
    return pieces if len(pieces) == 2 else []  # a fused ring stays in one piece


def _small_ring(mol: Chem.Mol) -> bool:
    return any(len(r) < 5 for r in mol.GetRingInfo().AtomRings())


def _odd(mol: Chem.Mol, parents_small_ring: bool) -> bool:
    """Radicals, charges, cumulated double bonds on C/N, new 3-4 rings, rings over 8 atoms."""
    for at in mol.GetAtoms():
        if at.GetNumRadicalElectrons() or at.GetFormalCharge():
            return True
        if at.GetAtomicNum() in (6, 7) and sum(b.GetBondType() == Chem.BondType.DOUBLE for b in at.GetBonds()) > 1:
            return True
    sizes = [len(r) for r in mol.GetRingInfo().AtomRings()]
    return any(n > 8 for n in sizes) or (not parents_small_ring and any(n < 5 for n in sizes))


def _join(a: Chem.Mol, b: Chem.Mol) -> Chem.Mol | None:
    params = Chem.MolzipParams()
    params.label = Chem.MolzipLabel.Isotope
    try:
        child = Chem.molzip(Chem.CombineMols(a, b), params)
        Chem.SanitizeMol(child)
    except Exception:
        return None
    if any(atom.GetAtomicNum() == 0 for atom in child.GetAtoms()):
        return None
    return child


class GraphCrossover:
    """Children of pairs of parents (canonical SMILES), by chain cuts and ring cuts (``ring_fraction`` of the tries)."""

    def __init__(self, rng: np.random.Generator, ring_fraction: float = 0.5, max_heavy_atoms: int | None = None,
                 tries: int = 4) -> None:
        self.rng = rng
        self.ring_fraction = float(ring_fraction)
        self.max_heavy_atoms = max_heavy_atoms
        self.tries = int(tries)
        self._mols: dict[str, Chem.Mol | None] = {}
        self.last_n_new = 0

    def _mol(self, smiles: str, kekulized: bool) -> Chem.Mol | None:
        key = ("k:" if kekulized else "") + smiles
        if key not in self._mols:
            mol = to_mol(smiles)
            if mol is not None and kekulized:
                mol = Chem.Mol(mol)
                try:
                    Chem.Kekulize(mol, clearAromaticFlags=True)
                except Exception:
                    mol = None
            self._mols[key] = mol
        return self._mols[key]

    def child(self, a: str, b: str) -> str | None:
        """One child of ``a`` and ``b`` (canonical SMILES), ``None`` when every try failed."""
        for _ in range(self.tries):
            ring = self.rng.random() < self.ring_fraction
            ma, mb = self._mol(a, ring), self._mol(b, ring)
            if ma is None or mb is None:
                return None
            cut = _pieces_ring if ring else _pieces_chain
            pa, pb = cut(ma, self.rng), cut(mb, self.rng)
            if len(pa) != 2 or len(pb) != 2:
                continue
            mol = _join(pa[int(self.rng.integers(2))], pb[int(self.rng.integers(2))])
            if mol is None or len(Chem.GetMolFrags(mol)) != 1:
                continue
            if _odd(mol, _small_ring(ma) or _small_ring(mb)):
                continue
            if self.max_heavy_atoms and mol.GetNumHeavyAtoms() > self.max_heavy_atoms:
                continue
            smi = canonical(Chem.MolToSmiles(mol))
            if smi:
                return smi
        return None

    def children(self, pairs: Sequence[tuple[str, str]], exclude: Mapping[str, Any] | set[str]) -> list[str]:
        """New children (not in ``exclude``, not a parent, no repeats) of the given parent pairs."""
        out: dict[str, None] = {}
        with quiet_rdkit():
            for a, b in pairs:
                smi = self.child(a, b)
                if smi and smi not in exclude and smi != a and smi != b:
                    out[smi] = None
        self.last_n_new = len(out)
        return list(out)
