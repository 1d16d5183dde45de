"""Constraints (molvae.optimization.constraints): argument checks, checks before the oracle, novelty."""

from __future__ import annotations

import pytest
from optimize_support import Counting, scored
from rdkit import Chem

from molvae.optimization import optimize
from molvae.optimization.constraints import Constraints
from molvae.optimization.objectives import parse_objectives
from molvae.properties import compute, similarity, substructure


def test_bad_arguments(search_model):
    model = search_model
    with pytest.raises(ValueError, match="unknown objective"):
        optimize(model, "not_a_property", budget=5, progress=False)
    with pytest.raises(ValueError, match="min_similarity needs"):
        optimize(model, "qed", budget=5, min_similarity=0.4, progress=False)
    with pytest.raises(ValueError, match="bounds"):
        optimize(model, "qed", budget=5, bounds={"nonsense": (0, 1)}, progress=False)
    with pytest.raises(ValueError, match="low 2.0 > high 1.0"):
        optimize(model, "qed", budget=5, bounds={"mw": (2, 1)}, progress=False)
    with pytest.raises(ValueError, match="SMARTS"):
        optimize(model, "qed", budget=5, smarts="[[[", progress=False)
    with pytest.raises(ValueError, match="strategy"):
        optimize(model, "qed", budget=5, strategy="magic", progress=False)
    with pytest.raises(TypeError, match="trust_region"):
        optimize(model, "qed", budget=5, no_such_option=1, progress=False)
    with pytest.raises(ValueError, match="jitter must be > 0"):
        optimize(model, "qed", budget=5, strategy="optuna", sampler="tpe", jitter=0, progress=False)
    with pytest.raises(ValueError, match="novel"):
        optimize(model, "qed", budget=5, novel=True, progress=False)
    with pytest.raises(ValueError, match="budget"):
        optimize(model, "qed", budget=0, progress=False)
    with pytest.raises(ValueError, match="none of the start molecules"):
        optimize(model, "qed", budget=5, start=["not a molecule"], progress=False)


def test_constraints_hold_and_are_checked_before_scoring(search_model):
    ref = "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1"
    oracle = Counting()
    res = optimize(
        search_model, oracle, budget=20, seed=1, start=[ref], min_similarity=0.3, smarts="c1ncncc1",
        bounds={"mw": (None, 450), "sa": (None, 4.5)}, max_heavy_atoms=32, progress=False,
        n_candidates=256, max_stall_rounds=10,
    )
    h = res.history
    # SELFIES edits of the start keep close to it: the whole budget is spent under the constraints
    assert res.n_oracle_calls == len(oracle.seen) == 20
    assert set(oracle.seen) == set(scored(res)["smiles"])
    # nothing infeasible was sent to the oracle, except the start molecule itself
    sent = [s for s in oracle.seen if s != ref]
    assert len(sent) == 19
    assert (similarity(sent, ref) >= 0.3).all()
    assert (substructure(sent, "c1ncncc1") == 1.0).all()
    props = compute(sent, ["mw", "sa", "heavy_atoms"])
    assert (props["mw"] <= 450).all() and (props["sa"] <= 4.5).all() and (props["heavy_atoms"] <= 32).all()
    top = res.top(50)
    assert len(top) == 20
    assert (top["similarity"] >= 0.3).all() and top["smarts_match"].all()
    assert (top["mw"] <= 450).all() and (top["sa"] <= 4.5).all() and (top["heavy_atoms"] <= 32).all()
    # the constraint verdict is recorded for every molecule rejected before scoring
    infeasible = h[h["status"] == "infeasible"]
    assert len(infeasible) > 0
    assert (~infeasible["feasible"]).all() and infeasible["call"].isna().all()
    assert infeasible["reasons"].str.len().gt(0).all()
    assert not set(infeasible["smiles"]) & set(oracle.seen)
    assert {"similarity", "smarts_match", "mw", "sa", "heavy_atoms", "feasible", "reasons"} <= set(h.columns)


def test_bounds_on_an_objective_are_checked_after_scoring(search_model):
    def drug_score(smiles):  # an oracle, not a property: its bound can only be checked on its values
        return compute(smiles, ["qed"])["qed"].to_numpy()

    res = optimize(search_model, drug_score, budget=40, seed=2, bounds={"drug_score": (None, 0.7)}, batch_size=10,
                   progress=False)
    s = scored(res)
    assert len(s) == 40
    over = s[s["drug_score"] > 0.7]
    assert len(over) > 0  # scored (a call is spent) but not feasible
    assert (~over["feasible"]).all() and over["reasons"].str.contains("drug_score").all()
    assert len(res.top(40)) == 40 - len(over) and (res.top(40)["drug_score"] <= 0.7).all()
    # a property bound is checked before scoring instead: no call spent on a molecule over it
    res = optimize(search_model, "qed", budget=30, seed=2, bounds={"qed": (None, 0.7)}, batch_size=10, progress=False)
    assert (scored(res)["qed"] <= 0.7).all() and (res.history["status"] == "infeasible").any()


def _randomized(smiles: str, seed: int) -> str:
    """The same molecule written differently (not canonical)."""
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol, canonical=False, rootedAtAtom=(7 * seed + 3) % mol.GetNumAtoms())


def test_novel_never_scores_a_training_molecule(search_model):
    # a first run finds molecules; a second one with the same seed proposes the same ones first,
    # and with these as the training set (written non-canonically) must score none of them
    first = optimize(search_model, "qed", budget=40, seed=5, batch_size=10, progress=False)
    known = scored(first)["smiles"].tolist()
    assert len(known) == 40
    train = [_randomized(s, i) for i, s in enumerate(known)]
    assert sum(t != s for t, s in zip(train, known)) > 20
    oracle = Counting()
    res = optimize(search_model, oracle, budget=40, seed=5, batch_size=10, novel=True, train_smiles=train,
                   progress=False)
    assert res.n_oracle_calls == len(oracle.seen) == 40
    assert not set(oracle.seen) & set(known)  # the oracle never saw a training molecule
    s = scored(res)
    assert not set(s["smiles"]) & set(known) and s["novel"].all()
    assert not set(res.top(40)["smiles"]) & set(known)
    rejected = res.history[res.history["reasons"].str.contains("in the training set")]
    assert len(rejected) > 0 and set(rejected["smiles"]) <= set(known)  # they were proposed, and refused
    assert (rejected["status"] == "infeasible").all() and (~rejected["novel"].astype(bool)).all()


def test_train_smiles_without_novel_are_reported_not_enforced():
    objectives = parse_objectives("qed", "maximize")
    c = Constraints(objectives, train_smiles=["OCC", "c1ccccc1"])
    out = c.check(["CCO", "CCN"])
    assert [o["props"]["novel"] for o in out] == [False, True]
    assert all(o["feasible"] for o in out)
    enforced = Constraints(objectives, novel=True, train_smiles=["OCC"]).check(["CCO", "CCN"])
    assert [o["feasible"] for o in enforced] == [False, True] and enforced[0]["reasons"] == ["in the training set"]
