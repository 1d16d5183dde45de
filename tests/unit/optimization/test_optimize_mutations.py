"""SELFIES edits (molvae.optimization.mutations) on the shared search model's alphabet."""

from __future__ import annotations

import numpy as np

from molvae.chem import canonical
from molvae.optimization.mutations import SelfiesMutator
from molvae.properties import similarity


def test_selfies_mutations_are_valid_new_and_in_the_model_alphabet(search_model):
    parent = "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1"
    mut = SelfiesMutator(search_model.tokenizer, np.random.default_rng(0))
    out = mut.mutate([parent] * 200, exclude={"CCO": None})
    assert len(out) > 100 and len(set(out)) == len(out) and parent not in out
    assert mut.last_n_new == len(out)
    assert all(canonical(s) == s for s in out)
    sims = similarity(out, parent)
    # 1-3 token edits: relatives (unrelated drug-like pairs score about 0.1), some very close
    assert np.median(sims) > 0.25 and (sims >= 0.6).mean() > 0.05
    # edits use the model's tokens, so nearly all children are encodable (re-encoding can
    # still lengthen a string past the model's maximum)
    assert np.isfinite(search_model.encode(out)).all(1).mean() >= 0.9


def test_excluded_molecules_and_unencodable_parents_give_nothing(search_model):
    mut = SelfiesMutator(search_model.tokenizer, np.random.default_rng(1))
    first = mut.mutate(["c1ccccc1CCO"] * 50, exclude=set())
    assert first
    again = SelfiesMutator(search_model.tokenizer, np.random.default_rng(1)).mutate(["c1ccccc1CCO"] * 50, exclude=set(first))
    assert not set(again) & set(first)
    assert mut.mutate(["not a molecule"], exclude=set()) == [] and mut.tokens("not a molecule") is None
