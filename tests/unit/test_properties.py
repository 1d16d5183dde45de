"""Tests for molvae.properties (RDKit property scorers, cache, parallel path)."""

from __future__ import annotations

import gzip
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import Crippen

from molvae import properties as P
from molvae.utils.cache import LRUCache

DATA = Path(__file__).resolve().parents[2] / "data" / "zinc"
JTVAE_FILE = DATA / "opt.test.logP-SA"

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
IBUPROFEN = "CC(C)Cc1ccc(cc1)C(C)C(=O)O"

# Computed once with RDKit 2026.9; literature cross-checks in the comments.
EXPECTED = {
    ASPIRIN: {  # MW 180.16, Crippen logP 1.31, QED 0.55 (Bickerton 2012), TPSA 63.6
        "mw": 180.159, "logp": 1.3101, "qed": 0.550122, "tpsa": 63.60, "sa": 1.580040,
        "hbd": 1, "hba": 3, "rotatable_bonds": 2, "rings": 1, "aromatic_rings": 1, "heavy_atoms": 13,
    },
    CAFFEINE: {  # MW 194.19, TPSA 61.82
        "mw": 194.194, "logp": -1.0293, "qed": 0.538463, "tpsa": 61.82, "sa": 2.297982,
        "hbd": 0, "hba": 3, "rotatable_bonds": 0, "rings": 2, "aromatic_rings": 2, "heavy_atoms": 14,
    },
    PARACETAMOL: {  # MW 151.16, TPSA 49.33
        "mw": 151.165, "logp": 1.3506, "qed": 0.595026, "tpsa": 49.33, "sa": 1.407299,
        "hbd": 2, "hba": 2, "rotatable_bonds": 1, "rings": 1, "aromatic_rings": 1, "heavy_atoms": 11,
    },
    IBUPROFEN: {  # MW 206.28, logP 3.07, TPSA 37.3
        "mw": 206.285, "logp": 3.0732, "qed": 0.821600, "tpsa": 37.30, "sa": 2.191755,
        "hbd": 1, "hba": 1, "rotatable_bonds": 4, "rings": 1, "aromatic_rings": 1, "heavy_atoms": 15,
    },
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    P.clear_cache()
    yield
    P.clear_cache()


def _jtvae_rows():
    rows = [line.split() for line in JTVAE_FILE.read_text().splitlines() if line.strip()]
    return [s for s, _ in rows], np.array([float(v) for _, v in rows])


def test_available_and_registry():
    names = P.available()
    for name in ["qed", "logp", "sa", "penalized_logp", "penalized_logp_unnormalized", "mw", "tpsa",
                 "hbd", "hba", "rotatable_bonds", "rings", "aromatic_rings", "heavy_atoms",
                 "similarity", "substructure"]:
        assert name in names
    mol = Chem.MolFromSmiles(ASPIRIN)
    for name, fn in P.PROPERTIES.items():
        assert isinstance(float(fn(mol)), float), name


def test_known_drugs():
    names = list(EXPECTED[ASPIRIN])
    df = P.compute(list(EXPECTED), names)
    assert list(df.columns) == ["smiles", *names]
    assert df["smiles"].tolist() == list(EXPECTED)
    for i, smi in enumerate(EXPECTED):
        for name, value in EXPECTED[smi].items():
            assert df.loc[i, name] == pytest.approx(value, abs=1e-3), (smi, name)
    # literature, rounded
    assert round(df.loc[0, "mw"], 2) == 180.16 and round(df.loc[0, "logp"], 2) == 1.31
    assert round(df.loc[0, "qed"], 2) == 0.55
    assert all(df[c].dtype == np.float64 for c in names)


def test_invalid_inputs_are_nan_not_zero():
    inputs = ["C1CC", "xyz", "", None, float("nan"), "CCO", 42]
    df = P.compute(inputs, ["mw", "heavy_atoms", "rings", "sa", "qed"])
    assert list(df.index) == list(range(len(inputs)))
    assert df["smiles"].iloc[3] is None
    values = df.drop(columns="smiles").to_numpy()
    assert np.isnan(values[[0, 1, 2, 3, 4, 6]]).all()
    assert not np.isnan(values[5]).any()
    assert df.loc[5, "rings"] == 0.0  # a real zero stays zero
    assert df.loc[5, "heavy_atoms"] == 3.0


def test_scorer_exception_gives_nan(monkeypatch):
    def boom(mol):
        raise RuntimeError("scorer failure")

    monkeypatch.setitem(P.PROPERTIES, "boom", boom)
    df = P.compute(["CCO", "c1ccccc1"], ["boom", "heavy_atoms"])
    assert np.isnan(df["boom"]).all()
    assert df["heavy_atoms"].tolist() == [3.0, 6.0]


def test_spellings_share_values_and_cache():
    spellings = ["OCC", "C(O)C", "[CH3][CH2][OH]", "CCO"]
    first = P.compute(spellings[:1], ["logp", "qed", "sa"])
    info = P.cache_info()
    assert info["misses"] == 3 and info["size"] == 3
    rest = P.compute(spellings[1:], ["logp", "qed", "sa"])
    info = P.cache_info()
    assert info["misses"] == 3 and info["hits"] == 9 and info["size"] == 3
    for name in ["logp", "qed", "sa"]:
        assert (rest[name] == first.loc[0, name]).all()
    P.clear_cache()
    assert P.cache_info() == {"size": 0, "maxsize": P.CACHE_SIZE, "hits": 0, "misses": 0}


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(P, "_CACHE", LRUCache(2))
    P.compute(["C", "CC", "CCC", "CCCC"], ["mw"])
    assert P.cache_info()["size"] == 2
    assert P.compute(["C"], ["mw"]).loc[0, "mw"] == pytest.approx(16.043)


def test_jtvae_file_reproduced_by_logp_sa():
    """JT-VAE's opt.test.logP-SA stores logP - SA (no cycle term, not standardized)."""
    smiles, values = _jtvae_rows()
    assert len(smiles) == 800
    got = P.score(smiles, "logp_sa", n_jobs=1)
    err = np.abs(got - values)
    assert (err < 1e-2).sum() >= 798  # one molecule differs by an SA-score change across RDKit versions
    assert np.median(err) < 1e-9


def test_penalized_logp_conventions():
    smiles, values = _jtvae_rows()
    smiles, values = smiles[:120], values[:120]
    df = P.compute(smiles, ["penalized_logp", "penalized_logp_unnormalized", "logp", "sa"], n_jobs=1)
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    cycle = np.array([P.cycle_penalty(m) for m in mols])
    assert cycle.max() >= 1  # the slice covers molecules with 7-membered rings
    # unnormalized = file value (logP - SA) - cycle
    raw = df["penalized_logp_unnormalized"].to_numpy()
    assert (np.abs(raw - (values - cycle)) < 1e-2).mean() >= 0.99
    np.testing.assert_allclose(raw, df["logp"] - df["sa"] - cycle, atol=1e-9)
    # standardized = sum of z-scored terms with the JT-VAE statistics
    expected = (
        (df["logp"] - 2.4570953396190123) / 1.434324401111988
        + (-df["sa"] + 3.0525811293166134) / 0.8335207024513095
        + (-cycle + 0.0485696876403053) / 0.2860212110245455
    )
    np.testing.assert_allclose(df["penalized_logp"], expected, atol=1e-9)
    # pinned: first molecule of the file (no ring above 6 atoms)
    assert df.loc[0, "penalized_logp"] == pytest.approx(-1.093860, abs=1e-5)
    assert df.loc[0, "penalized_logp_unnormalized"] == pytest.approx(-2.50504567445, abs=1e-6)


def test_penalized_logp_statistics_match_zinc():
    """The standardizing means/stds are ZINC statistics: terms are ~N(0, 1) on ZINC molecules."""
    with gzip.open(DATA / "valid.txt.gz", "rt") as fh:
        smiles = [next(fh).strip() for _ in range(400)]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    terms = {
        "logp": np.array([Crippen.MolLogP(m) for m in mols]),
        "sa": -np.array([P.sa_score(m) for m in mols]),
        "cycle": -np.array([P.cycle_penalty(m) for m in mols]),
    }
    for key in ("logp", "sa"):
        mean, std = P.PENALIZED_LOGP_STATS[key]
        z = (terms[key] - mean) / std
        assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2, key
    assert P.cycle_penalty(Chem.MolFromSmiles("C1CCCCCCC1")) == 2.0
    assert P.cycle_penalty(Chem.MolFromSmiles("c1ccccc1")) == 0.0


def test_similarity_and_fingerprint():
    fp = P.fingerprint(ASPIRIN)
    assert fp is not None and fp.GetNumBits() == 2048 and fp.GetNumOnBits() > 0
    assert P.fingerprint("C1CC") is None and P.fingerprint(None) is None
    sims = P.similarity([ASPIRIN, "O=C(O)c1ccccc1OC(C)=O", "CC(=O)Oc1ccccc1", CAFFEINE, "xyz", None], ASPIRIN)
    assert sims[0] == 1.0 and sims[1] == 1.0
    assert 0.0 < sims[2] < 1.0 and 0.0 < sims[3] < sims[2]
    assert np.isnan(sims[4]) and np.isnan(sims[5])
    assert np.isnan(P.similarity([ASPIRIN, CAFFEINE], "C1CC")).all()
    with pytest.raises(ValueError, match="reference"):
        P.compute([ASPIRIN], ["similarity"])


def test_substructure():
    hits = P.substructure([PARACETAMOL, ASPIRIN, "xyz", None], "c[OX2H]")
    assert hits[:2].tolist() == [1.0, 0.0]
    assert np.isnan(hits[2:]).all()
    for bad in ["[C", "", "C((", None]:
        with pytest.raises(ValueError, match="SMARTS"):
            P.substructure([ASPIRIN], bad)
    with pytest.raises(ValueError, match="smarts"):
        P.compute([ASPIRIN], ["substructure"])
    # different patterns are cached separately
    assert P.substructure([ASPIRIN], "C(=O)[OX2H]").tolist() == [1.0]


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown property 'logd'.*qed.*heavy_atoms"):
        P.compute(["CCO"], ["mw", "logd"])


def test_iterables_and_score():
    series = pd.Series(["CCO", "c1ccccc1", None], index=[10, 20, 30])
    df = P.compute(series, "heavy_atoms")
    assert list(df.index) == [0, 1, 2]
    assert df["heavy_atoms"].tolist()[:2] == [3.0, 6.0] and math.isnan(df["heavy_atoms"].iloc[2])
    gen = (s for s in ["CCO", "CC"])
    arr = P.score(gen, "mw")
    assert isinstance(arr, np.ndarray) and arr.shape == (2,) and arr.dtype == np.float64
    assert P.compute("CCO", ["mw"]).shape == (1, 2)
    assert P.compute([], ["mw"]).shape == (0, 2)


def test_parallel_matches_serial(caplog):
    with gzip.open(DATA / "valid.txt.gz", "rt") as fh:
        base = [next(fh).strip() for _ in range(600)]
    smiles = base * 10 + ["C1CC", None]  # ~6000 inputs: duplicates and failures included
    names = ["mw", "logp", "heavy_atoms", "rings", "tpsa"]
    serial = P.compute(smiles, names, n_jobs=1, parallel_threshold=100)
    P.clear_cache()
    with caplog.at_level(logging.INFO, logger="molvae.properties"):
        parallel = P.compute(smiles, names, n_jobs=2, parallel_threshold=100)
    assert any("on 2 processes" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(serial, parallel)
    assert len(parallel) == 6002 and list(parallel.index) == list(range(6002))
    assert parallel[names].iloc[-2:].isna().all().all()
    assert not parallel[names].iloc[:-2].isna().any().any()
    # the workers' results are shared with this process's cache
    assert P.cache_info()["size"] == 600 * len(names)


def test_small_lists_stay_in_process(caplog):
    with caplog.at_level(logging.INFO, logger="molvae.properties"):
        P.compute(["CCO", "CCN"], ["mw"], n_jobs=2, parallel_threshold=100)
    assert not any("processes" in r.getMessage() for r in caplog.records)
