"""Graph crossover (molvae.optimization.crossover) and decoder fine-tuning during a run (finetune)."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from molvae.chem import canonical
from molvae.optimization.crossover import GraphCrossover
from molvae.optimization.finetune import DecoderTuner
from molvae.properties import similarity

PARENTS = [
    "CC(=O)Nc1ccc(O)cc1",
    "Cc1ccc(cc1)S(N)(=O)=O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1CCN(CC1)c1ccc(cc1)C(N)=O",
    "COc1ccc2nc(S(=O)Cc3ncc(C)c(OC)c3C)[nH]c2c1",
    "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
]


def _pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(PARENTS[i], PARENTS[j]) for i, j in rng.integers(len(PARENTS), size=(n, 2)) if i != j]


@pytest.mark.parametrize("ring_fraction", [0.0, 1.0])
def test_children_are_new_canonical_molecules_made_of_both_parents(ring_fraction):
    gx = GraphCrossover(np.random.default_rng(0), ring_fraction=ring_fraction, max_heavy_atoms=40)
    pairs = _pairs(300)
    out = gx.children(pairs, exclude={PARENTS[0]: None})
    assert len(out) > 60 and len(set(out)) == len(out) and gx.last_n_new == len(out)
    assert not set(out) & set(PARENTS)
    mols = [Chem.MolFromSmiles(s) for s in out]
    assert all(m is not None for m in mols) and all(canonical(s) == s for s in out)
    assert all(m.GetNumHeavyAtoms() <= 40 and len(Chem.GetMolFrags(m)) == 1 for m in mols)
    assert not any(a.GetNumRadicalElectrons() or a.GetFormalCharge() for m in mols for a in m.GetAtoms())
    # no allenes on C/N, no new 3-4 rings (no parent has one), no ring over 8 atoms
    for m in mols:
        assert all(len(r) in range(5, 9) for r in m.GetRingInfo().AtomRings())
        for a in m.GetAtoms():
            if a.GetAtomicNum() in (6, 7):
                assert sum(b.GetBondType() == Chem.BondType.DOUBLE for b in a.GetBonds()) <= 1
    # a child is related to its parents: on average closer to its nearest parent than unrelated drugs are
    nearest = np.max(np.stack([similarity(out, p) for p in PARENTS]), axis=0)
    assert np.median(nearest) > 0.3


def test_a_chain_cut_child_keeps_a_piece_of_each_parent():
    a, b = "c1ccccc1CCCCN1CCOCC1", "Clc1ccc(cc1)C(=O)NC2CC2"
    gx = GraphCrossover(np.random.default_rng(3), ring_fraction=0.0)
    kids = gx.children([(a, b)] * 200, exclude=set())
    morpholine, chlorophenyl = Chem.MolFromSmarts("C1COCCN1"), Chem.MolFromSmarts("Clc1ccccc1")
    mixed = [k for k in kids if (Chem.MolFromSmiles(k).HasSubstructMatch(morpholine)
                                 and Chem.MolFromSmiles(k).HasSubstructMatch(chlorophenyl))]
    assert mixed, kids  # morpholine of a joined to the chlorophenyl of b


def test_unparsable_or_acyclic_parents_give_no_ring_children_and_no_crash():
    gx = GraphCrossover(np.random.default_rng(0), ring_fraction=1.0)
    assert gx.children([("not a molecule", PARENTS[0]), ("CCCCO", "CCOCC")], exclude=set()) == []
    assert gx.child("CCCCO", "CCOCC") is None


def test_decoder_fine_tuning_reproduces_top_molecules_and_leaves_the_encoder(search_model):
    import copy

    import torch

    model = copy.deepcopy(search_model)
    smiles = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "COc1ccc2cc(C(C)C(=O)O)ccc2c1",
              "CN1CCC[C@H]1c1cccnc1", "O=C(O)c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
              "NC(=O)c1cccnc1", "CCN(CC)CC(=O)Nc1c(C)cccc1C", "Clc1ccc(C(c2ccccc2)n2ccnc2)cc1"]
    before_z = model.encode(smiles)
    enc_state = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("encoder", "embedding", "to_post"))}
    dec_before = model.decode(before_z, method="greedy")
    tuner = DecoderTuner(model, every=10, steps=150, batch_size=16, lr=1e-3, seed=0)
    assert tuner.due(10) and not tuner.due(5)
    utilities = np.arange(len(smiles), dtype=float)
    assert tuner.update(smiles, utilities, n_calls=10) and not tuner.due(15)
    nll_before, nll_after = tuner.losses[0]
    assert nll_after < 0.5 * nll_before
    for k, v in model.state_dict().items():  # the encoder and embedding are untouched
        if k in enc_state:
            assert torch.equal(v, enc_state[k]), k
    assert np.allclose(model.encode(smiles), before_z, atol=1e-6)
    dec_after = model.decode(before_z, method="greedy")
    hits = lambda dec: sum(d == canonical(s) for d, s in zip(dec, smiles))  # noqa: E731
    assert hits(dec_after) > hits(dec_before)
    assert not any(p.requires_grad is False for p in model.parameters())  # requires_grad restored
    # the caller's model is another object: unchanged
    assert search_model.decode(before_z, method="greedy") == dec_before


def test_fine_tuning_needs_enough_finite_scores(search_model):
    tuner = DecoderTuner(search_model, every=1)
    assert not tuner.update(["CCO", "CCN"], np.array([1.0, np.nan]), n_calls=2)
    with pytest.raises(ValueError):
        DecoderTuner(search_model, every=0)


def test_trust_region_with_crossover_and_fine_tuning_spends_the_budget_exactly(search_model):
    import molvae as mv

    w0 = {k: v.clone() for k, v in search_model.state_dict().items()}
    res = mv.optimize(search_model, "qed", budget=160, seed=0, progress=False, crossover_fraction=0.3,
                      finetune_every=60, finetune_steps=5)
    assert res.n_oracle_calls == 160
    scored = res.history[res.history.status == "scored"]
    assert (scored.source == "crossover").sum() > 0
    assert res.stats["finetune_updates"] >= 1
    assert all(search_model.state_dict()[k].equal(v) for k, v in w0.items())  # the user's model is left alone
    with pytest.raises(ValueError, match="crossover_fraction"):
        mv.optimize(search_model, "qed", budget=10, progress=False, crossover_fraction=0.9, mutation_fraction=0.3)


def test_crossover_children_respect_crossover_max_atoms(search_model):
    import molvae as mv

    res = mv.optimize(search_model, "qed", budget=120, seed=1, progress=False, crossover_fraction=0.5,
                      crossover_max_atoms=18)
    kids = res.history[res.history.source == "crossover"].smiles.tolist()
    assert kids, "no crossover child was proposed"
    atoms = mv.properties.compute(kids, ["heavy_atoms"])["heavy_atoms"]
    assert atoms.max() <= 18
    with pytest.raises(ValueError, match="crossover_max_atoms"):
        mv.optimize(search_model, "qed", budget=10, progress=False, crossover_max_atoms=0)


def test_flat_objective_rotates_the_crossover_population(search_model, monkeypatch):
    """A SMARTS-gated objective scores nearly everything 0: the "best 50" must not stay the first
    50 molecules scored, or crossover keeps recombining the same parents for the whole run."""
    import molvae as mv

    parents: set[str] = set()
    children = GraphCrossover.children

    def spy(self, pairs, exclude=None):
        parents.update(p for pair in pairs for p in pair)
        return children(self, pairs, exclude=exclude)

    monkeypatch.setattr(GraphCrossover, "children", spy)
    res = mv.optimize(search_model, lambda smiles: [0.0] * len(smiles), budget=300, seed=0, progress=False, population=20)
    assert len(res.history) >= 250
    assert len(parents) > 60, f"crossover drew its parents from only {len(parents)} of {len(res.history)} molecules"


def test_trust_region_order_breaks_only_ties():
    from molvae.optimization.strategies.trust_region import TrustRegion

    tr = TrustRegion.__new__(TrustRegion)
    tr.tie_rng = np.random.default_rng(0)
    u = np.array([0.3, 0.1, 0.9, 0.5])
    assert tr._order(u).tolist() == np.argsort(-u).tolist() == [2, 3, 0, 1]
    flat = np.r_[1.0, np.zeros(30)]
    orders = {tuple(tr._order(flat)) for _ in range(5)}
    assert len(orders) == 5 and all(o[0] == 0 for o in orders)
