"""Substituent swaps (molvae.optimization.substituents) and their use in the trust region."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from molvae.chem import canonical
from molvae.optimization.substituents import GROUPS, SubstituentMutator

CELECOXIB = canonical("Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1")
FLUORO_ANALOG = "Cc1ccc(-c2cc(F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"  # where PMO runs stalled: F for CF3
PARENTS = ["CC(=O)Nc1ccc(O)cc1", "CN1CCN(CC1)c1ccc(cc1)C(N)=O", "O=C1CCCN1CC(=O)N", FLUORO_ANALOG]


def test_swaps_are_new_sane_canonical_molecules_that_keep_the_parent_core():
    sm = SubstituentMutator(np.random.default_rng(0), max_heavy_atoms=30)
    out = sm.mutate(PARENTS * 80, exclude={PARENTS[0]: None})
    assert len(out) > 150 and len(set(out)) == len(out) and sm.last_n_new == len(out)
    assert not set(out) & set(PARENTS)
    mols = [Chem.MolFromSmiles(s) for s in out]
    assert all(m is not None for m in mols) and all(canonical(s) == s for s in out)
    assert all(m.GetNumHeavyAtoms() <= 30 and len(Chem.GetMolFrags(m)) == 1 for m in mols)
    assert not any(a.GetNumRadicalElectrons() or a.GetFormalCharge() for m in mols for a in m.GetAtoms())
    # a swap changes one position: every child keeps the ring systems of one of the parents
    cores = [Chem.MolFromSmarts(s) for s in ("c1ccccc1", "C1CCNCC1", "O=C1CCCN1")]
    assert all(any(m.HasSubstructMatch(c) for c in cores) for m in mols)


def test_a_multi_atom_group_arrives_in_one_move():
    """The fluoro analogue of celecoxib is one swap (F -> CF3) from celecoxib; a SELFIES edit needs
    three tokens and a branch-length change, a one-atom graph mutation three moves."""
    sm = SubstituentMutator(np.random.default_rng(1))
    kids = [sm.child(FLUORO_ANALOG) for _ in range(2000)]
    assert kids.count(CELECOXIB) >= 2
    assert all(k is None or Chem.MolFromSmiles(k) is not None for k in kids)


def test_custom_groups_unparsable_parents_and_bad_groups():
    sm = SubstituentMutator(np.random.default_rng(0), groups=["C#N"])
    kids = {sm.child("c1ccccc1O") for _ in range(50)} - {None}
    assert kids and all(Chem.MolFromSmiles(k).HasSubstructMatch(Chem.MolFromSmarts("C#N")) for k in kids)
    assert sm.mutate(["not a molecule", "C1CC"], exclude=set()) == []
    with pytest.raises(ValueError, match="not a valid SMILES"):
        SubstituentMutator(np.random.default_rng(0), groups=["C(("])
    assert len(GROUPS) == len(set(GROUPS))


def test_trust_region_with_substituent_swaps(search_model):
    import molvae as mv

    res = mv.optimize(search_model, "qed", budget=120, seed=0, progress=False, substituent_fraction=0.2)
    assert res.n_oracle_calls == 120
    scored = res.history[res.history.status == "scored"]
    assert (scored.source == "substituent").sum() > 0
    assert scored.smiles.is_unique
    plain = mv.optimize(search_model, "qed", budget=40, seed=3, progress=False)
    off = mv.optimize(search_model, "qed", budget=40, seed=3, progress=False, substituent_fraction=0.0)
    assert list(plain.history["smiles"]) == list(off.history["smiles"])
    with pytest.raises(ValueError, match="substituent_fraction"):
        mv.optimize(search_model, "qed", budget=10, progress=False, substituent_fraction=0.6, crossover_fraction=0.3)
    with pytest.raises(ValueError, match="substituent_fraction must be within"):
        mv.optimize(search_model, "qed", budget=10, progress=False, substituent_fraction=-0.1)
