"""Graph mutations of good molecules: one atom or bond changed on the molecular graph.

The moves of graph genetic algorithms (Graph GA, Jensen 2019; Mol GA, Tripp and
Hernandez-Lobato 2023), written here on an RDKit ``RWMol`` of the kekulized parent:

- ``element``: an atom becomes another element whose valence still fits its bonds;
- ``append``: a new atom is bonded to an atom with a hydrogen to spare;
- ``insert``: a new atom is put into a single bond (A-B becomes A-X-B);
- ``delete``: a terminal atom is removed, or a chain atom whose two neighbours are then joined;
- ``bond``: a bond order goes up by one (both atoms with a hydrogen to spare; no triple bond in
  a ring) or down by one;

``insert``, ``bond`` and ``ring_open`` leave aromatic bonds alone, so that an aromatic ring is
changed only by an element swap or a new substituent.
- ``ring_close``: two atoms 4-6 bonds apart, one of them outside every ring, are joined (a new
  ring of 5-7 atoms, not a bridge across existing rings);
- ``ring_open``: a single bond of a non-aromatic ring is broken.

Unlike a SELFIES edit, each move is one chemical change: a ring stays a ring unless the move
opens it.  Children are checked as crossovers are (:mod:`molvae.optimization.crossover`): RDKit
must sanitize them, one fragment, no radicals or charges, no cumulated double bonds on C or N,
no new 3-4 rings, no ring over 8 atoms, at most ``max_heavy_atoms``; the survivors are
canonical SMILES.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from molvae.chem import canonical, quiet_rdkit, to_mol
from molvae.optimization.crossover import _odd, _small_ring

__all__ = ["GraphMutator", "MOVES"]

MOVES = ("element", "append", "insert", "delete", "bond", "ring_close", "ring_open")
# elements a move may place and how often (drug-like organic chemistry, C first), with the
# valence each is given
ELEMENTS = np.array([6, 7, 8, 9, 16, 17, 35])
ELEMENT_WEIGHTS = np.array([0.45, 0.2, 0.15, 0.05, 0.07, 0.05, 0.03])
VALENCE = {6: 4, 7: 3, 8: 2, 9: 1, 16: 2, 17: 1, 35: 1}
_ORDER = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


def _used(atom: Chem.Atom) -> int:
    """Sum of the bond orders of a kekulized atom."""
    return int(sum(b.GetBondTypeAsDouble() for b in atom.GetBonds()))


def _free(atom: Chem.Atom) -> int:
    """Hydrogens an atom could give up for a new bond (its valence in :data:`VALENCE` minus its bonds)."""
    v = VALENCE.get(atom.GetAtomicNum())
    return 0 if v is None or atom.GetFormalCharge() else max(v - _used(atom), 0)


def new_children(child: Any, parents: Sequence[str], exclude: Mapping[str, Any] | set[str]) -> list[str]:
    """``child(p)`` for each parent, keeping the new ones (not None, not in ``exclude``, no repeats)."""
    out: dict[str, None] = {}
    with quiet_rdkit():
        for p in parents:
            smi = child(p)
            if smi and smi not in exclude and smi not in out:
                out[smi] = None
    return list(out)


class GraphMutator:
    """One-move graph mutations (:data:`MOVES`) of parent molecules, as new canonical SMILES."""

    def __init__(self, rng: np.random.Generator, max_heavy_atoms: int | None = None, tries: int = 4) -> None:
        self.rng = rng
        self.max_heavy_atoms = max_heavy_atoms
        self.tries = int(tries)
        self._mols: dict[str, tuple[Chem.Mol, frozenset[int]] | None] = {}
        self.last_n_new = 0

    def _parent(self, smiles: str) -> tuple[Chem.Mol, frozenset[int]] | None:
        """The kekulized parent and the indices of its aromatic bonds (cached)."""
        if smiles not in self._mols:
            mol, out = to_mol(smiles), None
            if mol is not None:
                aromatic = frozenset(b.GetIdx() for b in mol.GetBonds() if b.GetIsAromatic())
                mol = Chem.Mol(mol)
                try:
                    Chem.Kekulize(mol, clearAromaticFlags=True)
                    out = (mol, aromatic)
                except Exception:
                    pass
            self._mols[smiles] = out
        return self._mols[smiles]

    def _element(self, fits: int) -> int | None:
        """A random element whose valence is at least ``fits``."""
        ok = np.array([VALENCE[int(e)] >= fits for e in ELEMENTS])
        if not ok.any():
            return None
        w = ELEMENT_WEIGHTS * ok
        return int(self.rng.choice(ELEMENTS, p=w / w.sum()))

    def _pick(self, items: list) -> Any:
        return items[int(self.rng.integers(len(items)))] if items else None

    def move(self, mol: Chem.Mol, move: str, aromatic: frozenset[int] = frozenset()) -> Chem.Mol | None:
        """``mol`` (kekulized; ``aromatic``: the indices of the bonds aromatic before) after one
        ``move``, unsanitized; ``None`` when the move has no site."""
        rw = Chem.RWMol(mol)
        atoms = list(rw.GetAtoms())
        if move == "element":
            at = self._pick([a for a in atoms if a.GetAtomicNum() in VALENCE and not a.GetFormalCharge()])
            if at is None:
                return None
            e = self._element(_used(at))
            if e is None or e == at.GetAtomicNum():
                return None
            at.SetAtomicNum(e)
        elif move == "append":
            at = self._pick([a for a in atoms if _free(a) >= 1])
            e = self._element(1)
            if at is None or e is None:
                return None
            order = 2 if (_free(at) >= 2 and VALENCE[e] >= 2 and self.rng.random() < 0.15) else 1
            rw.AddBond(at.GetIdx(), rw.AddAtom(Chem.Atom(e)), _ORDER[order])
        elif move == "insert":
            bond = self._pick([b for b in rw.GetBonds() if b.GetBondType() == Chem.BondType.SINGLE
                               and b.GetIdx() not in aromatic])
            e = self._element(2)
            if bond is None or e is None:
                return None
            a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            rw.RemoveBond(a, b)
            x = rw.AddAtom(Chem.Atom(e))
            rw.AddBond(a, x, Chem.BondType.SINGLE)
            rw.AddBond(x, b, Chem.BondType.SINGLE)
        elif move == "delete":
            at = self._pick([a for a in atoms if a.GetDegree() == 1
                             or (a.GetDegree() == 2 and not a.IsInRing()
                                 and all(b.GetBondType() == Chem.BondType.SINGLE for b in a.GetBonds()))])
            if at is None or rw.GetNumAtoms() < 3:
                return None
            nbrs = [n.GetIdx() for n in at.GetNeighbors()]
            if len(nbrs) == 2:
                rw.AddBond(nbrs[0], nbrs[1], Chem.BondType.SINGLE)
            rw.RemoveAtom(at.GetIdx())
        elif move == "bond":
            bond = self._pick([b for b in rw.GetBonds() if b.GetIdx() not in aromatic])
            if bond is None:
                return None
            order = int(bond.GetBondTypeAsDouble())
            a, b = bond.GetBeginAtom(), bond.GetEndAtom()
            up = order < (2 if bond.IsInRing() else 3) and _free(a) >= 1 and _free(b) >= 1
            down = order > 1
            if not (up or down):
                return None
            new = order + 1 if up and (not down or self.rng.random() < 0.5) else order - 1
            bond.SetBondType(_ORDER[new])
        elif move == "ring_close":
            dist = Chem.GetDistanceMatrix(rw)
            free = [a.GetIdx() for a in atoms if _free(a) >= 1]
            ring = {a.GetIdx() for a in atoms if a.IsInRing()}
            pairs = [(i, j) for k, i in enumerate(free) for j in free[k + 1:]
                     if 4 <= dist[i, j] <= 6 and not (i in ring and j in ring)]
            pair = self._pick(pairs)
            if pair is None:
                return None
            rw.AddBond(int(pair[0]), int(pair[1]), Chem.BondType.SINGLE)
        elif move == "ring_open":
            bond = self._pick([b for b in rw.GetBonds() if b.IsInRing() and b.GetBondType() == Chem.BondType.SINGLE
                               and b.GetIdx() not in aromatic])
            if bond is None:
                return None
            rw.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
        else:
            raise ValueError(f"unknown graph move {move!r}; use one of {', '.join(MOVES)}")
        for at in rw.GetAtoms():  # hydrogens follow the new bonds
            at.SetNoImplicit(False)
            at.SetNumExplicitHs(0)
        return rw.GetMol()

    def sanitized_move(self, smiles: str, move: str) -> Chem.Mol | None:
        """``smiles`` after one ``move``, sanitized by RDKit; ``None`` where the parent cannot be
        read, the move has no site or RDKit rejects the result."""
        got = self._parent(smiles)
        if got is None:
            return None
        mol = self.move(got[0], move, got[1])
        if mol is None:
            return None
        try:
            Chem.SanitizeMol(mol)
        except Exception:
            return None
        return mol

    def child(self, smiles: str) -> str | None:
        """One mutant of ``smiles`` (canonical SMILES), ``None`` when every try failed."""
        got = self._parent(smiles)
        if got is None:
            return None
        small_ring = _small_ring(got[0])
        for _ in range(self.tries):
            mol = self.sanitized_move(smiles, MOVES[int(self.rng.integers(len(MOVES)))])
            if mol is None or len(Chem.GetMolFrags(mol)) != 1 or _odd(mol, small_ring):
                continue
            if self.max_heavy_atoms and mol.GetNumHeavyAtoms() > self.max_heavy_atoms:
                continue
            smi = canonical(Chem.MolToSmiles(mol))
            if smi and smi != smiles:
                return smi
        return None

    def mutate(self, parents: Sequence[str], exclude: Mapping[str, Any] | set[str]) -> list[str]:
        """New mutants (not in ``exclude``, not a parent, no repeats) of ``parents``, one try-set each."""
        out = new_children(self.child, parents, exclude)
        self.last_n_new = len(out)
        return out
