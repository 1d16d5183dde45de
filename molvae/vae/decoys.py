"""Decoy molecules for anomaly scores: what an applicability-domain score (``-log p(x)``,
:func:`molvae.vae.likelihood.nll`) should flag.

Random SELFIES strings over a vocabulary's alphabet (valid, small, not drug-like) and
molecules one SELFIES edit away from given ones.  Also importable from
:mod:`molvae.vae.likelihood` (``mv.likelihood.random_selfies_decoys``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from molvae.chem import canonical, to_mol
from molvae.tokenizer import SPECIAL_TOKENS, selfies_to_smiles, smiles_to_tokens

__all__ = ["random_selfies_decoys", "selfies_edit_decoys"]


def _alphabet(tokenizer) -> list[str]:
    """The vocabulary's SELFIES tokens (no specials), as the optimizer's SELFIES mutations use them."""
    return [t for t in tokenizer.itos if t not in SPECIAL_TOKENS and t.startswith("[")]


def _spellable(tokenizer, smi: str | None) -> bool:
    """A molecule the tokenizer can encode and with no radical (SELFIES leaves radicals where an
    edit breaks a bond; no training molecule has one)."""

    if not smi:
        return False
    mol = to_mol(smi)
    if mol is None or any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return False
    try:
        tokenizer.encode_one(smi)
    except ValueError:
        return False
    return True


def random_selfies_decoys(
    tokenizer, lengths: Sequence[int], seed: int = 0, unique: bool = True, exclude: Sequence[str] = (),
    max_tries: int = 50,
) -> list[str | None]:
    """One decoy per entry of ``lengths``: a random SELFIES string of ``lengths[i]`` tokens drawn
    uniformly from the vocabulary's alphabet, decoded to canonical SMILES.

    Always valid molecules (SELFIES), but not drug-like: a reference for what an
    applicability-domain score should flag.  They are small whatever the string length:
    branch and ring tokens consume the tokens after them and a halogen or ``[=O]`` ends the
    main chain, so most decode to 1-10 tokens (``ClCl``, ``N=O``, ``CN(Cl)Br``); single atoms
    recur often.  ``unique`` (default) redraws, up to ``max_tries`` times, until the decoy is
    new (not an earlier decoy, not in ``exclude``), so that the result is a set of distinct
    molecules rather than many copies of ``Cl``.  ``None`` where no spellable new molecule was
    found (the decoded molecule has tokens outside the vocabulary, e.g. ``[#S]``).
    """

    rng = np.random.default_rng(seed)
    alphabet = _alphabet(tokenizer)
    seen = {c for c in (canonical(s) for s in exclude) if c}
    out: list[str | None] = []
    for n in lengths:
        found = None
        for _ in range(max_tries if unique else 1):
            toks = [alphabet[i] for i in rng.integers(len(alphabet), size=max(1, int(n)))]
            smi = selfies_to_smiles("".join(toks))
            if (not unique or smi not in seen) and _spellable(tokenizer, smi):
                found = smi
                break
        if found is not None and unique:
            seen.add(found)
        out.append(found)
    return out


def selfies_edit_decoys(tokenizer, smiles: Sequence[str], seed: int = 0, max_tries: int = 10) -> list[str | None]:
    """One decoy per molecule: one random SELFIES edit away (replace, insert or delete one token).

    The edit is drawn from the vocabulary's alphabet like the optimizer's SELFIES mutations
    (:class:`molvae.optimization.mutations.SelfiesMutator` makes 1-3 edits; here exactly one).  Up to
    ``max_tries`` edits are drawn per molecule until one gives a different molecule that
    ``tokenizer`` can spell; ``None`` when none does (or the input cannot be tokenized).
    """

    rng = np.random.default_rng(seed)
    alphabet = _alphabet(tokenizer)
    out: list[str | None] = []
    for s in smiles:
        try:
            toks = smiles_to_tokens(s, tokenizer.standardize_input)
        except ValueError:
            out.append(None)
            continue
        original = canonical(s)
        found = None
        for _ in range(max_tries):
            edited = list(toks)
            op = int(rng.integers(3)) if len(edited) > 1 else 1  # 0 replace, 1 insert, 2 delete
            pos = int(rng.integers(len(edited) + (op == 1)))
            if op == 0:
                edited[pos] = alphabet[int(rng.integers(len(alphabet)))]
            elif op == 1:
                edited.insert(pos, alphabet[int(rng.integers(len(alphabet)))])
            else:
                del edited[pos]
            smi = selfies_to_smiles("".join(edited))
            if smi and smi != original and _spellable(tokenizer, smi):
                found = smi
                break
        out.append(found)
    return out
