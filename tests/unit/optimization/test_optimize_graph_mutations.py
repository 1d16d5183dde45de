"""One-move graph mutations (molvae.optimization.graph_mutations) and their use in the trust region."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from molvae.chem import canonical
from molvae.optimization.graph_mutations import MOVES, GraphMutator
from molvae.properties import similarity

PARENTS = [
    "CC(=O)Nc1ccc(O)cc1",
    "Cc1ccc(cc1)S(N)(=O)=O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1CCN(CC1)c1ccc(cc1)C(N)=O",
    "O=C1CCCN1CC(=O)N",
    "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
]


def _heavy(smiles: str) -> int:
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


def test_mutants_are_new_sane_canonical_molecules_one_move_from_their_parent():
    gm = GraphMutator(np.random.default_rng(0), max_heavy_atoms=30)
    parents = PARENTS * 60
    out = gm.mutate(parents, exclude={PARENTS[0]: None})
    assert len(out) > 150 and len(set(out)) == len(out) and gm.last_n_new == len(out)
    assert not set(out) & set(PARENTS)
    mols = [Chem.MolFromSmiles(s) for s in out]
    assert all(m is not None for m in mols) and all(canonical(s) == s for s in out)
    assert all(m.GetNumHeavyAtoms() <= 30 and len(Chem.GetMolFrags(m)) == 1 for m in mols)
    assert not any(a.GetNumRadicalElectrons() or a.GetFormalCharge() for m in mols for a in m.GetAtoms())
    for m in mols:  # no parent has a 3-4 ring, so no mutant has one; no ring over 8 atoms
        assert all(len(r) in range(5, 9) for r in m.GetRingInfo().AtomRings())
    # one move: the heavy-atom count moves by at most one, and a mutant stays close to its parent
    nearest = np.max(np.stack([similarity(out, p) for p in PARENTS]), axis=0)
    assert np.median(nearest) > 0.45
    sizes = {_heavy(p) for p in PARENTS}
    assert all(any(abs(m.GetNumHeavyAtoms() - s) <= 1 for s in sizes) for m in mols)


@pytest.mark.parametrize("move", MOVES)
def test_every_move_makes_valid_molecules_from_a_drug(move):
    """Each move alone, 60 tries on a drug-like parent with an aromatic and a saturated ring:
    many give a molecule RDKit accepts, none crashes, and each changes the atom count as it should."""
    gm = GraphMutator(np.random.default_rng(1))
    before = Chem.MolFromSmiles(PARENTS[3]).GetNumAtoms()
    made = 0
    for _ in range(60):
        mol = gm.sanitized_move(PARENTS[3], move)
        if mol is None:
            continue
        made += 1
        after = mol.GetNumAtoms()
        if move in ("append", "insert"):
            assert after == before + 1
        elif move == "delete":
            assert after == before - 1
        else:
            assert after == before
    assert made >= 10, move


def test_aromatic_rings_are_changed_only_by_element_swaps_and_substituents():
    """insert, bond and ring_open leave aromatic bonds alone: benzene's ring survives them all."""
    gm = GraphMutator(np.random.default_rng(2))
    for move in ("insert", "bond", "ring_open"):
        for _ in range(30):
            mol = gm.sanitized_move("CCc1ccccc1", move)
            if mol is None:
                continue
            assert mol.HasSubstructMatch(Chem.MolFromSmarts("c1ccccc1")), (move, Chem.MolToSmiles(mol))


def test_unparsable_parents_and_unknown_moves():
    gm = GraphMutator(np.random.default_rng(0))
    assert gm.mutate(["not a molecule", "C1CC"], exclude=set()) == []
    with pytest.raises(ValueError, match="unknown graph move"):
        gm.sanitized_move("CCO", "teleport")


def test_trust_region_with_graph_mutations_spends_the_budget_and_proposes_them(search_model):
    import molvae as mv

    res = mv.optimize(search_model, "qed", budget=120, seed=0, progress=False, graph_mutation_fraction=0.3)
    assert res.n_oracle_calls == 120
    scored = res.history[res.history.status == "scored"]
    assert (scored.source == "graph_mutation").sum() > 0
    with pytest.raises(ValueError, match="graph_mutation_fraction"):
        mv.optimize(search_model, "qed", budget=10, progress=False, graph_mutation_fraction=0.6,
                    crossover_fraction=0.3)


def test_graph_mutations_alone_search_from_a_start_the_model_cannot_encode(search_model):
    """No SELFIES edits and no prior draws: until a crossover drops the start's Si, no scored
    molecule can be encoded and the rounds have no latent center; they are graph mutations and
    crossovers (once two molecules are scored), split with an odd number of candidates (233),
    and the budget is spent."""
    import molvae as mv

    start = "CC(C)(C)c1ccc(cc1)C(=O)NCC[Si](C)(C)C"  # Si: outside the vocabulary
    res = mv.optimize(search_model, "qed", budget=40, seed=0, progress=False, start=[start], mutation_fraction=0.0,
                      crossover_fraction=0.3, graph_mutation_fraction=0.3, n_candidates=233,
                      global_fraction=0.0)
    assert res.n_oracle_calls == 40
    scored = res.history[res.history.status == "scored"]
    assert {"graph_mutation", "crossover"} <= set(scored.source) and "mutation" not in set(scored.source)
    assert scored.smiles.head(3).str.contains("Si").all()  # rounds without a center came first
