"""The public MOSES metrics (molvae.metrics.suite) on small fixed molecule lists; the full MOSES
sets only under -m slow."""

from __future__ import annotations

import logging
import math
import os
import sys

import numpy as np
import pytest
from metrics_molecules import (
    GEN,
    N_NOVEL,
    N_UNIQUE,
    N_VALID,
    PARACETAMOL,
    REF,
    TEST_SCAFFOLDS,
    TRAIN,
    naive_fps,
    valid_mols,
)
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors
from scipy.stats import wasserstein_distance

from molvae import metrics as M
from molvae.data import load_dataset


def _contrib_sa(mol):
    """SA score straight from RDKit Contrib (not through molvae)."""
    sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
    import sascorer

    return sascorer.calculateScore(mol)


# --------------------------------------------------------------------------- simple fractions


def test_validity_uniqueness_novelty_exact():
    assert M.fraction_valid(GEN) == pytest.approx(N_VALID / len(GEN))
    assert M.fraction_unique(GEN) == pytest.approx(N_UNIQUE / N_VALID)
    # first 5 valid: TRAIN0, TRAIN1, TRAIN2, paracetamol, paracetamol
    assert M.fraction_unique(GEN, k=5) == pytest.approx(4 / 5)
    assert M.novelty(GEN, TRAIN) == pytest.approx(N_NOVEL / N_UNIQUE)
    assert M.novelty(GEN, TRAIN + [PARACETAMOL]) == pytest.approx((N_NOVEL - 1) / N_UNIQUE)


def test_invalid_only_and_empty_inputs():
    assert math.isnan(M.fraction_valid([]))
    assert M.fraction_valid(["xyz", "", None]) == 0.0
    assert math.isnan(M.fraction_unique(["xyz", None]))
    assert math.isnan(M.novelty(["xyz"], TRAIN))
    assert math.isnan(M.internal_diversity(["xyz", ""]))
    assert math.isnan(M.fraction_passes_filters([None]))
    assert math.isnan(M.snn(["C1CC"], REF))
    with pytest.raises(TypeError, match="single string"):
        M.fraction_valid("CCO")


def test_unique_at_k_larger_than_set_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="molvae.metrics.suite"):
        value = M.fraction_unique(GEN, k=1000)
    assert value == pytest.approx(N_UNIQUE / N_VALID)
    assert "unique@1000" in caplog.text


def test_non_canonical_molecules_are_canonicalized_one_by_one():
    """Every generated string is parsed: a canonical majority does not hide the rest."""
    zinc = load_dataset("zinc", "test")[:2500]  # canonical already, like a model's output
    kekule = [Chem.MolToSmiles(Chem.MolFromSmiles(s), kekuleSmiles=True) for s in zinc[:100]]
    kekule = [k for k, s in zip(kekule, zinc) if k != s][:50]  # the same molecules written differently
    assert len(kekule) == 50
    gen = zinc + kekule
    distinct = {Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in gen}
    assert len(distinct) == len(set(zinc))
    assert M.fraction_unique(gen, n_jobs=1) == pytest.approx(len(distinct) / len(gen))
    assert M.novelty(kekule, zinc, n_jobs=1) == 0.0


# --------------------------------------------------------------------------- Tanimoto based


def test_internal_diversity_matches_naive():
    fps = naive_fps(GEN)
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    assert M.internal_diversity(GEN) == pytest.approx(1 - sims.mean(), abs=1e-6)
    assert M.internal_diversity(GEN, p=2) == pytest.approx(1 - np.mean(np.sqrt((sims**2).mean(1))), abs=1e-6)
    with pytest.raises(ValueError, match="p=1 and p=2"):
        M.internal_diversity(GEN, p=3)


def test_snn_matches_naive():
    gen_fps, ref_fps = naive_fps(GEN), naive_fps(REF)
    expected = np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref_fps)) for f in gen_fps])
    assert M.snn(GEN, REF) == pytest.approx(expected, abs=1e-6)
    assert M.snn(REF, REF) == pytest.approx(1.0)


# --------------------------------------------------------------------------- count vectors


def test_frag_and_scaffold_similarity():
    assert M.frag_similarity(REF, REF) == pytest.approx(1.0)
    assert M.scaffold_similarity(REF, REF) == pytest.approx(1.0)
    assert M.frag_similarity(["CCO"], ["c1ccccc1"]) == pytest.approx(0.0)
    # naphthalene x2 + biphenyl vs naphthalene + biphenyl x2 -> (2*1 + 1*2) / 5
    gen = ["Cc1ccc2ccccc2c1", "c1ccc2ccccc2c1", "Cc1ccc(-c2ccccc2)cc1", "xyz"]
    ref = ["Oc1ccc2ccccc2c1", "c1ccc(-c2ccccc2)cc1", "Nc1ccc(-c2ccccc2)cc1"]
    assert M.scaffold_similarity(gen, ref) == pytest.approx(0.8)
    # single-ring scaffolds do not count (MOSES min_rings=2): empty counts -> NaN
    assert math.isnan(M.scaffold_similarity(["Cc1ccccc1"], ref))


# --------------------------------------------------------------------------- filters


def test_fraction_passes_filters():
    gen = [TRAIN[2], "C[N+](C)(C)Cc1ccccc1", "S=C1SC(=Cc2ccccc2)C(=O)N1", REF[1], "xyz"]
    assert M.fraction_passes_filters(gen) == pytest.approx(2 / 4)


# --------------------------------------------------------------------------- FCD and properties


def test_fcd_identical_and_different_sets():
    moses = load_dataset("moses", "test", limit=400)
    ref = M.reference_stats(moses[:200], cache=False)  # ChemNet runs once for the reference
    assert M.fcd(moses[:200], ref) == pytest.approx(0.0, abs=1e-3)
    same_distribution = M.fcd(moses[200:], ref)  # other MOSES test molecules
    related = M.fcd(load_dataset("zinc", "test", limit=200), ref)  # ZINC: MOSES is filtered ZINC
    alien = M.fcd(["CCO", "CCCC", "CCCCCCCC", "CC(C)O", "CCN", "OCCO", "CCCCO", "CC=C", "CCOCC", "NCCN"], ref)
    # measured: about 13 (the bias of 200 molecules), 20 and 57
    assert 0 < same_distribution < 0.8 * related
    assert alien > 2 * related
    assert math.isnan(M.fcd(["CCO", "xyz"], ref))  # one valid molecule: no covariance


def test_wasserstein_properties_match_rdkit():
    gen_m, ref_m = valid_mols(GEN), valid_mols(REF)
    funcs = {"logP": Crippen.MolLogP, "SA": _contrib_sa, "QED": QED.qed, "weight": Descriptors.MolWt}
    got = M.wasserstein_properties(GEN, REF)
    assert set(got) == set(funcs)
    for name, fn in funcs.items():
        expected = wasserstein_distance([fn(m) for m in ref_m], [fn(m) for m in gen_m])
        assert got[name] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in M.wasserstein_properties(REF, REF).values())


# --------------------------------------------------------------------------- get_all_metrics


EXPECTED_KEYS = [
    "valid", "unique@5", "unique@1000",
    "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
    "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
    "IntDiv", "IntDiv2", "Filters", "logP/Test", "SA/Test", "QED/Test", "weight/Test", "novelty",
]  # fmt: skip


def test_get_all_metrics_named_references(tmp_data, tmp_cache):
    res = M.get_all_metrics(GEN, k=(5, 1000))
    assert list(res) == EXPECTED_KEYS
    assert res["valid"] == pytest.approx(N_VALID / len(GEN))
    assert res["unique@5"] == pytest.approx(4 / 5)
    assert res["unique@1000"] == pytest.approx(N_UNIQUE / N_VALID)
    assert res["novelty"] == pytest.approx(N_NOVEL / N_UNIQUE)
    assert res["IntDiv"] == pytest.approx(M.internal_diversity(GEN), abs=1e-9)
    assert res["IntDiv2"] == pytest.approx(M.internal_diversity(GEN, p=2), abs=1e-9)
    assert res["Filters"] == pytest.approx(M.fraction_passes_filters(GEN))
    for label, ref in (("Test", REF), ("TestSF", TEST_SCAFFOLDS)):
        assert res[f"SNN/{label}"] == pytest.approx(M.snn(GEN, ref), abs=1e-6)
        assert res[f"Frag/{label}"] == pytest.approx(M.frag_similarity(GEN, ref))
        assert res[f"Scaf/{label}"] == pytest.approx(M.scaffold_similarity(GEN, ref))
        assert res[f"FCD/{label}"] == pytest.approx(M.fcd(GEN, ref), rel=1e-6)
    props = M.wasserstein_properties(GEN, REF)  # properties against the first reference only
    assert all(res[f"{name}/Test"] == pytest.approx(value) for name, value in props.items())
    names = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in (tmp_cache / "metrics").iterdir())
    assert names == ["ref-test", "ref-test_scaffolds", "train-moses"]
    # second call reads everything from the cache and gives the same numbers
    again = M.get_all_metrics(GEN, k=(5, 1000))
    for key in res:
        assert again[key] == pytest.approx(res[key], rel=1e-9, abs=1e-12)


def test_get_all_metrics_lists_and_no_valid(tmp_cache):
    res = M.get_all_metrics(GEN, reference=REF, train=TRAIN, k=5)
    assert res["novelty"] == pytest.approx(N_NOVEL / N_UNIQUE)
    assert res["SNN/Test"] == pytest.approx(M.snn(GEN, REF), abs=1e-6)
    assert "FCD/Test" in res and "FCD/TestSF" not in res
    bad = M.get_all_metrics(["xyz", "", None, "C1CC"], reference=REF, train=TRAIN, k=5)
    assert bad["valid"] == 0.0
    assert all(math.isnan(v) for key, v in bad.items() if key != "valid")
    assert set(bad) == set(res)
    res_no_train = M.get_all_metrics(GEN[:4], reference=REF, train=None, k=5)
    assert "novelty" not in res_no_train


def test_get_all_metrics_labels_of_a_reference_mapping(tmp_cache):
    ref = M.reference_stats(REF, cache=False)
    res = M.get_all_metrics(GEN, reference={"Mine": ref}, train=None, k=5)
    assert res["SNN/Mine"] == pytest.approx(M.snn(GEN, ref), abs=1e-6)
    assert "logP/Mine" in res and not any(k.endswith("/Test") for k in res)


def test_metrics_table():
    table = M.metrics_table([{"valid": 0.9, "IntDiv": 0.8}, {"valid": 1.0, "IntDiv": 0.9}])
    assert table.loc["valid", "mean"] == pytest.approx(0.95)
    assert table.loc["IntDiv", "std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert list(table.columns) == ["mean", "std", "n"]
    assert table.loc["valid", "n"] == 2
    single = M.metrics_table({"valid": 0.5})
    assert single.loc["valid", "mean"] == 0.5 and math.isnan(single.loc["valid", "std"])


# --------------------------------------------------------------------------- full size (slow)


@pytest.mark.slow
def test_moses_references_subsampled():
    """The real MOSES files end to end, references subsampled to 10k (a few minutes on 2 cores;
    the full 176k references would be rebuilt in the private cache, about 1 h)."""
    gen = load_dataset("moses", "test_scaffolds", limit=1000)
    res = M.get_all_metrics(gen, k=(1000,), max_reference=10000)
    assert list(res) == [k for k in EXPECTED_KEYS if k != "unique@5"]
    assert res["valid"] == 1.0 and res["unique@1000"] == 1.0
    assert 0.95 < res["Filters"] <= 1.0
    assert 0.4 < res["SNN/Test"] < res["SNN/TestSF"] <= 1.0
    assert res["Frag/TestSF"] > 0.95
    assert 0 < res["FCD/TestSF"] < res["FCD/Test"]
    assert res["novelty"] > 0.9
