"""Tests for molvae.metrics.suite on small fixed molecule lists (the full MOSES sets only under -m slow)."""

from __future__ import annotations

import gzip
import logging
import math
import os
import shutil
import sys
from collections import Counter

import numpy as np
import pytest
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator
from scipy.stats import wasserstein_distance

from molvae import metrics as M
from molvae.utils.paths import data_dir

# first MOSES training molecules: 12 as "train", 12 as "reference"
TRAIN = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
    "Cn1cnc2c1c(=O)n(CC(O)CO)c(=O)n2C",
    "CC1Oc2ccc(Cl)cc2N(CC(O)CO)C1=O",
    "CCOC(=O)c1cncn1C1CCCc2ccccc21",
    "COc1ccccc1OC(=O)Oc1ccccc1OC",
    "O=C1Nc2ccc(Cl)cc2C(c2ccccc2Cl)=NC1O",
    "CN1C(=O)C(O)N=C(c2ccccc2Cl)c2cc(Cl)ccc21",
    "CCC(=O)c1ccc(OCC(O)CO)c(OC)c1",
    "Cc1nc2c([nH]1)c(=O)n(C)c(=O)n2CC1CC=CCC1",
    "COc1cc2c(cc1O)N=CC1CCC(O)N1C2=O",
]
REF = [
    "COc1c(C)cnc(CS(=O)c2nc3ccccc3[nH]2)c1C",
    "COc1cc(C)c(Cc2cnc(N)nc2N)cc1OC",
    "O=C1Nc2ccc(Cl)cc2C(c2ccccc2)=NC1O",
    "CC1CC(OC(=O)CN2CCCC2=O)CC(C)(C)C1",
    "O=C(C1CCCCC1)N1CC(=O)N2CCc3ccccc3C2C1",
    "COC(=O)c1c[nH]c2cc(OC(C)C)c(OC(C)C)cc2c1=O",
    "CCC1NC(=O)c2cc(S(N)(=O)=O)c(Cl)cc2N1",
    "CN1C(=O)C(O)N=C(c2ccccc2)c2cc(Cl)ccc21",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1cncn1",
    "COc1cc(C(=O)N2CCOCC2)cc(OC)c1OC",
    "CC(c1ncncc1F)C(O)(Cn1cncn1)c1ccc(F)cc1F",
    "COc1ccc(C=C2CCCN=C2c2cccnc2)c(OC)c1",
]
PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
GEN = [
    TRAIN[0],
    TRAIN[1],
    "OC(CO)COC(=O)c1cccnc1Nc1cccc(Cl)c1C",  # TRAIN[2] written differently
    PARACETAMOL,
    PARACETAMOL,
    "OC1=CC=C(NC(C)=O)C=C1",  # paracetamol, Kekulé form
    "Cc1ccccc1",
    "COc1ccc2[nH]cc(CCN)c2c1",
    "CN1CCC[C@H]1c1cccnc1",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CCN(CC)CC",
    "xyz",
    "",
    None,
    "C1CC",
]
N_VALID = 11
N_UNIQUE = 9  # paracetamol three times
N_NOVEL = 6  # TRAIN[0..2] are not novel

MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)


def _valid_mols(smiles):
    mols = [Chem.MolFromSmiles(s) if isinstance(s, str) and s else None for s in smiles]
    return [m for m in mols if m is not None]


def _naive_fps(smiles):
    return [MORGAN.GetFingerprint(m) for m in _valid_mols(smiles)]


def _sa(mol):
    sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
    import sascorer

    return sascorer.calculateScore(mol)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("MOLVAE_CACHE_DIR", str(path))
    return path


@pytest.fixture
def tmp_data(tmp_path, monkeypatch):
    """A data dir with tiny MOSES-like files (the real filter SMARTS copied)."""
    root = tmp_path / "data"
    (root / "moses").mkdir(parents=True)
    shutil.copytree(data_dir() / "moses" / "filters", root / "moses" / "filters")
    for name, smiles in [("train", TRAIN), ("test", REF), ("test_scaffolds", REF[6:] + TRAIN[:6])]:
        with gzip.open(root / "moses" / f"{name}.csv.gz", "wt") as fh:
            fh.write("SMILES\n" + "\n".join(smiles) + "\n")
    monkeypatch.setenv("MOLVAE_DATA_DIR", str(root))
    return root


# --------------------------------------------------------------------------- simple fractions


def test_validity_uniqueness_novelty_exact():
    assert M.fraction_valid(GEN) == pytest.approx(N_VALID / len(GEN))
    assert M.fraction_unique(GEN) == pytest.approx(N_UNIQUE / N_VALID)
    # first 5 valid: TRAIN0, TRAIN1, TRAIN2, paracetamol, paracetamol
    assert M.fraction_unique(GEN, k=5) == pytest.approx(4 / 5)
    assert M.novelty(GEN, TRAIN) == pytest.approx(N_NOVEL / N_UNIQUE)
    assert M.novelty(GEN, TRAIN + [PARACETAMOL]) == pytest.approx((N_NOVEL - 1) / N_UNIQUE)


def test_invalid_only_and_empty_inputs():
    assert M.fraction_valid([]) != M.fraction_valid([])  # NaN
    assert M.fraction_valid(["xyz", "", None]) == 0.0
    assert math.isnan(M.fraction_unique(["xyz", None]))
    assert math.isnan(M.novelty(["xyz"], TRAIN))
    assert math.isnan(M.internal_diversity(["xyz", ""]))
    assert math.isnan(M.fraction_passes_filters([None]))
    assert math.isnan(M.snn(["C1CC"], REF))


def test_unique_at_k_larger_than_set_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="molvae.metrics.suite"):
        value = M.fraction_unique(GEN, k=1000)
    assert value == pytest.approx(N_UNIQUE / N_VALID)
    assert "unique@1000" in caplog.text


# --------------------------------------------------------------------------- Tanimoto based


def test_internal_diversity_matches_naive():
    fps = _naive_fps(GEN)
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    assert M.internal_diversity(GEN) == pytest.approx(1 - sims.mean(), abs=1e-6)
    assert M.internal_diversity(GEN, p=2) == pytest.approx(1 - np.mean(np.sqrt((sims**2).mean(1))), abs=1e-6)


def test_snn_matches_naive():
    gen_fps, ref_fps = _naive_fps(GEN), _naive_fps(REF)
    expected = np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref_fps)) for f in gen_fps])
    assert M.snn(GEN, REF) == pytest.approx(expected, abs=1e-6)
    assert M.snn(REF, REF) == pytest.approx(1.0)


def test_fingerprints_are_moses_morgan_bits():
    packed = M.fingerprints(["CCO", "xyz", "c1ccccc1O"])
    assert packed.shape == (2, 128) and packed.dtype == np.uint8
    bits = np.unpackbits(packed, axis=1)
    for row, mol in zip(bits, _valid_mols(["CCO", "c1ccccc1O"])):
        assert set(np.flatnonzero(row)) == set(MORGAN.GetFingerprint(mol).GetOnBits())


@pytest.mark.parametrize("dense", [False, True])
def test_tanimoto_kernel_chunking(dense):
    rng = np.random.default_rng(1)
    p = 0.5 if dense else 0.04  # dense rows exceed 256 bits -> float32 path
    q = (rng.random((150, 1024)) < p).astype(np.uint8)
    r = (rng.random((230, 1024)) < p).astype(np.uint8)
    q[0] = 0
    r[0] = 0  # empty vs empty counts as similarity 1 (MOSES)
    inter = q.astype(float) @ r.T
    union = q.sum(1)[:, None] + r.sum(1)[None, :] - inter
    t = np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
    qp, rp = np.packbits(q, axis=1), np.packbits(r, axis=1)
    best = M._tanimoto_reduce(qp, rp, reduce="max", q_chunk=40, r_chunk=64)
    np.testing.assert_allclose(best, t.max(1), rtol=1e-6)
    inter_s = q.astype(float) @ q.T
    union_s = q.sum(1)[:, None] + q.sum(1)[None, :] - inter_s
    ts = np.where(union_s > 0, inter_s / np.where(union_s > 0, union_s, 1), 1.0)
    s1, s2 = M._tanimoto_reduce(qp, None, reduce="moments", q_chunk=32)
    np.testing.assert_allclose(s1, ts.sum(1), rtol=1e-5)
    np.testing.assert_allclose(s2, (ts**2).sum(1), rtol=1e-5)


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


def test_frag_counts_match_rdkit_brics():
    stats = M._compute_stats(REF, "ref", {"frag"}, 1, "cpu")[0]
    expected = Counter()
    for mol in _valid_mols(REF):
        expected.update(Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split("."))
    assert stats.frag == expected


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "smiles, passes",
    [
        (TRAIN[2], True),  # a clean MOSES training molecule
        (REF[0], True),
        ("C[N+](C)(C)Cc1ccccc1", False),  # charged atom
        ("Ic1ccc(CC(=O)O)cc1", False),  # iodine
        ("S=C1SC(=Cc2ccccc2)C(=O)N1", False),  # PAINS ene_rhod_A
        ("Oc1ccc(CCN)cc1O", False),  # PAINS catechol_A
        ("C=CC#N", False),  # MCF1
        ("O=C1CCCCCCN1", False),  # 8-membered ring
        ("xyz", False),
    ],
)
def test_mol_passes_filters(smiles, passes):
    assert M.mol_passes_filters(smiles) is passes


def test_fraction_passes_filters():
    gen = [TRAIN[2], "C[N+](C)(C)Cc1ccccc1", "S=C1SC(=Cc2ccccc2)C(=O)N1", REF[1], "xyz"]
    assert M.fraction_passes_filters(gen) == pytest.approx(2 / 4)


# --------------------------------------------------------------------------- FCD and properties


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd passes scipy's deprecated sqrtm(disp=)
def test_frechet_distance_matches_fcd_package():
    import fcd

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 20)), rng.normal(size=(80, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 0.2
    args = (a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert M._frechet_distance(*args) == pytest.approx(fcd.calculate_frechet_distance(*args), rel=1e-6)


def test_fcd_identical_and_different_sets():
    ref = M.reference_stats(REF, cache=False)  # ChemNet runs once for the reference
    same = M.fcd(REF, ref)
    assert abs(same) < 1e-3
    close = M.fcd(TRAIN, ref)
    far = M.fcd(["CCO", "CCCC", "CCCCCCCC", "CC(C)O", "CCN", "OCCO", "CCCCO", "CC=C", "CCOCC", "NCCN"], ref)
    assert far > close > same
    assert far > 5
    assert math.isnan(M.fcd(["CCO", "xyz"], ref))  # one valid molecule: no covariance


def test_wasserstein_properties_match_rdkit():
    gen_m, ref_m = _valid_mols(GEN), _valid_mols(REF)
    funcs = {"logP": Crippen.MolLogP, "SA": _sa, "QED": QED.qed, "weight": Descriptors.MolWt}
    got = M.wasserstein_properties(GEN, REF)
    assert set(got) == set(funcs)
    for name, fn in funcs.items():
        expected = wasserstein_distance([fn(m) for m in ref_m], [fn(m) for m in gen_m])
        assert got[name] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in M.wasserstein_properties(REF, REF).values())


# --------------------------------------------------------------------------- cache


def test_reference_stats_cache_roundtrip(tmp_cache, monkeypatch):
    first = M.reference_stats(REF)
    assert not first.from_cache and first.n == len(REF)
    files = sorted((tmp_cache / "metrics").glob("ref-custom-*-v*.npz"))
    assert len(files) == 1 and first.cache_path == files[0]

    def boom(*args, **kwargs):
        raise AssertionError("recomputed instead of loading the cache")

    original = M._compute_stats
    monkeypatch.setattr(M, "_compute_stats", boom)
    second = M.reference_stats(REF)
    assert second.from_cache
    assert second.n == first.n
    np.testing.assert_array_equal(second.fps, first.fps)
    assert second.frag == first.frag and second.scaf == first.scaf
    for k in M.PROPERTY_NAMES:
        np.testing.assert_allclose(second.props[k], first.props[k])
    np.testing.assert_allclose(second.fcd_mu, first.fcd_mu)
    np.testing.assert_allclose(second.fcd_sigma, first.fcd_sigma)
    monkeypatch.setattr(M, "_compute_stats", original)

    # another list or a subsample gets its own file; subsampling is deterministic
    sub1 = M.reference_stats(REF, max_reference=5, seed=3)
    sub2 = M.reference_stats(REF, max_reference=5, seed=3)
    assert sub1.n == 5 and not sub1.from_cache and sub2.from_cache
    np.testing.assert_array_equal(sub1.fps, sub2.fps)
    assert len(list((tmp_cache / "metrics").glob("ref-*.npz"))) == 2


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
    assert res["SNN/Test"] == pytest.approx(M.snn(GEN, REF), abs=1e-6)
    assert res["IntDiv"] == pytest.approx(M.internal_diversity(GEN), abs=1e-9)
    assert res["IntDiv2"] == pytest.approx(M.internal_diversity(GEN, p=2), abs=1e-9)
    assert res["Frag/Test"] == pytest.approx(M.frag_similarity(GEN, REF))
    assert res["Scaf/Test"] == pytest.approx(M.scaffold_similarity(GEN, REF))
    assert res["FCD/Test"] > 0 and res["FCD/TestSF"] > 0
    assert res["logP/Test"] == pytest.approx(M.wasserstein_properties(GEN, REF)["logP"])
    assert res["Filters"] == pytest.approx(M.fraction_passes_filters(GEN))
    names = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in (tmp_cache / "metrics").iterdir())
    assert names == ["ref-test", "ref-test_scaffolds", "train-moses"]
    # second call reads everything from the cache and gives the same numbers
    again = M.get_all_metrics(GEN, k=(5, 1000))
    for key in res:
        assert again[key] == pytest.approx(res[key], rel=1e-9, abs=1e-12)


def test_get_all_metrics_lists_and_no_valid(tmp_cache):
    res = M.get_all_metrics(GEN, reference=REF, train=TRAIN, k=5)
    assert res["novelty"] == pytest.approx(N_NOVEL / N_UNIQUE)
    assert "FCD/Test" in res and "FCD/TestSF" not in res
    bad = M.get_all_metrics(["xyz", "", None, "C1CC"], reference=REF, train=TRAIN, k=5)
    assert bad["valid"] == 0.0
    assert all(math.isnan(v) for key, v in bad.items() if key != "valid")
    assert set(bad) == set(res)
    res_no_train = M.get_all_metrics(GEN[:4], reference=REF, train=None, k=5)
    assert "novelty" not in res_no_train


def test_metrics_table():
    table = M.metrics_table([{"valid": 0.9, "IntDiv": 0.8}, {"valid": 1.0, "IntDiv": 0.9}])
    assert table.loc["valid", "mean"] == pytest.approx(0.95)
    assert table.loc["IntDiv", "std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert list(table.columns) == ["mean", "std", "n"]
    single = M.metrics_table({"valid": 0.5})
    assert single.loc["valid", "mean"] == 0.5


# --------------------------------------------------------------------------- full size (slow)


@pytest.mark.slow
def test_moses_references_subsampled(request):
    """The real MOSES files end to end, references subsampled to 10k (a few minutes on 2 cores;
    the suite's private cache means the full 176k references would be rebuilt, ~1 h)."""
    import pandas as pd

    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("MOSES references; run with -m slow")
    gen = pd.read_csv(data_dir() / "moses" / "test_scaffolds.csv.gz")["SMILES"].tolist()[:1000]
    res = M.get_all_metrics(gen, k=(1000,), max_reference=10000)
    assert list(res) == [k for k in EXPECTED_KEYS if k != "unique@5"]
    assert res["valid"] == 1.0 and res["unique@1000"] == 1.0
    assert 0.95 < res["Filters"] <= 1.0
    assert 0.4 < res["SNN/Test"] < res["SNN/TestSF"] <= 1.0
    assert res["Frag/TestSF"] > 0.95
    assert 0 < res["FCD/TestSF"] < res["FCD/Test"]
    assert res["novelty"] > 0.9
