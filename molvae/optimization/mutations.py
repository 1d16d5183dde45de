"""SELFIES edits: small string changes of good molecules that always give valid molecules.

The decoder reconstructs molecules only approximately, so latent steps alone rarely stay
close to a good molecule; replacing, inserting or deleting 1-3 SELFIES tokens (drawn from
the model's own alphabet) keeps the search local, which is what similarity constraints need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import selfies as sf

from molvae.chem import mol_smiles
from molvae.tokenizer import SPECIAL_TOKENS, selfies_to_mol

__all__ = ["SelfiesMutator"]


class SelfiesMutator:
    """Random SELFIES edits (replace, insert or delete 1-3 tokens) drawn from the model's alphabet."""

    def __init__(self, tokenizer: Any, rng: np.random.Generator) -> None:
        self.rng = rng
        self.alphabet = [t for t in tokenizer.itos if t not in SPECIAL_TOKENS and t.startswith("[")]
        self._tokens: dict[str, list[str] | None] = {}
        self.last_n_new = 0  # new molecules of the latest mutate()

    def tokens(self, smiles: str) -> list[str] | None:
        """The SELFIES tokens of ``smiles`` (cached), ``None`` when it cannot be encoded."""
        if smiles not in self._tokens:
            try:
                toks = list(sf.split_selfies(sf.encoder(smiles)))
            except Exception:
                toks = None
            self._tokens[smiles] = toks or None
        return self._tokens[smiles]

    def edit(self, toks: list[str]) -> list[str]:
        toks = list(toks)
        for _ in range(min(3, int(self.rng.geometric(0.6)))):  # 1 edit (60%), 2 (24%), 3 (16%)
            op = self.rng.integers(3) if len(toks) > 1 else 1
            pos = int(self.rng.integers(len(toks) + (op == 1)))
            if op == 0:
                toks[pos] = self.alphabet[int(self.rng.integers(len(self.alphabet)))]
            elif op == 1:
                toks.insert(pos, self.alphabet[int(self.rng.integers(len(self.alphabet)))])
            else:
                del toks[pos]
        return toks

    def mutate(self, parents: Sequence[str], exclude: Mapping[str, Any] | set[str]) -> list[str]:
        """Canonical SMILES of new molecules (not in ``exclude``, no repeats, no radicals) made by editing ``parents``."""
        out: dict[str, None] = {}
        for p in parents:
            toks = self.tokens(p)
            if not toks or not self.alphabet:
                continue
            mol = selfies_to_mol("".join(self.edit(toks)))  # parsed once: canonical SMILES and radicals
            smi = mol_smiles(mol)
            if not smi or smi in exclude or smi == p or smi in out:
                continue
            # SELFIES keeps valences legal by leaving radicals where an edit removed a bond:
            # not molecules anyone wants (nor in the model's vocabulary)
            if not any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
                out[smi] = None
        self.last_n_new = len(out)
        return list(out)
