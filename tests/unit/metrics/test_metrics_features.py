"""Per-molecule features of the MOSES metrics (molvae.metrics.features) on bundled molecules."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter

import numpy as np
import pytest
from metrics_molecules import MORGAN, REF, valid_mols
from rdkit import Chem, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors
from rdkit.Chem.Scaffolds import MurckoScaffold

from molvae.data import load_dataset
from molvae.metrics import features as F
from molvae.metrics.references import compute_stats


@pytest.fixture(scope="module")
def zinc():
    return load_dataset("zinc", "test", limit=300)


def test_fingerprints_are_moses_morgan_bits(zinc):
    packed = F.fingerprints(["CCO", "xyz", *zinc[:50]])
    assert packed.shape == (51, 128) and packed.dtype == np.uint8
    bits = np.unpackbits(packed, axis=1)
    for row, mol in zip(bits, valid_mols(["CCO", *zinc[:50]])):
        assert set(np.flatnonzero(row)) == set(MORGAN.GetFingerprint(mol).GetOnBits())
    assert F.fingerprints(["xyz"]).shape == (0, 128)


def test_properties_match_rdkit_and_contrib_sa(zinc):
    sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
    import sascorer

    for mol in valid_mols(zinc[:40]):
        expected = (Crippen.MolLogP(mol), sascorer.calculateScore(mol), QED.qed(mol), Descriptors.MolWt(mol))
        assert F.properties(mol) == pytest.approx(expected, rel=1e-12)


def test_fragments_and_scaffolds_of_known_molecules():
    aspirin = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    assert Counter(F.fragments(aspirin)) == Counter(["[1*]C(C)=O", "[3*]O[3*]", "[16*]c1ccccc1[16*]", "[6*]C(=O)O"])
    assert F.fragments(Chem.MolFromSmiles("CCCC")) == ["CCCC"]  # no BRICS bond
    assert F.scaffold(Chem.MolFromSmiles("Cc1ccc2ccccc2c1")) == "c1ccc2ccccc2c1"
    assert F.scaffold(Chem.MolFromSmiles("Cc1ccccc1")) is None  # one ring: below MOSES's min_rings=2
    assert F.scaffold(Chem.MolFromSmiles("Cc1ccccc1"), min_rings=1) == "c1ccccc1"
    assert F.scaffold(Chem.MolFromSmiles("CCO")) is None


def test_scaffolds_match_rdkit_murcko(zinc):
    for mol in valid_mols(zinc[:60]):
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
        expected = Chem.MolToSmiles(scaf) if scaf.GetRingInfo().NumRings() >= 2 else None
        assert F.scaffold(mol) == expected


def test_describe_gives_canonical_smiles_and_requested_parts():
    row = F.describe("OC1=CC=C(NC(C)=O)C=C1", frozenset({"fp", "filters"}))  # paracetamol, Kekulé
    assert set(row) == {"smiles", "fp", "filters"}
    assert row["smiles"] == "CC(=O)Nc1ccc(O)cc1"
    assert row["filters"] is True
    assert F.describe("xyz", frozenset({"fp"})) is None and F.describe(None, frozenset()) is None
    assert set(F.describe("CCO", frozenset({"frag", "scaf", "props"}))) == {"smiles", "frag", "scaf", "props"}


def test_describe_many_on_the_pool_equals_serial(zinc):
    smiles = load_dataset("zinc", "valid", limit=2400) + ["xyz"]  # >= PARALLEL_MIN: runs on the pool
    serial = F.describe_many(smiles, {"fp", "scaf"}, n_jobs=1)
    pooled = F.describe_many(smiles, {"fp", "scaf"}, n_jobs=2)
    assert len(serial) == len(pooled) == 2400  # the invalid one dropped
    assert [r["smiles"] for r in pooled] == [r["smiles"] for r in serial]
    assert [r["scaf"] for r in pooled] == [r["scaf"] for r in serial]
    np.testing.assert_array_equal(np.stack([r["fp"] for r in pooled]), np.stack([r["fp"] for r in serial]))


def test_frag_counts_match_rdkit_brics():
    stats = compute_stats(REF, "ref", {"frag"}, 1)[0]
    expected = Counter()
    for mol in valid_mols(REF):
        expected.update(Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split("."))
    assert stats.frag == expected


def test_properties_nan_where_rdkit_fails(monkeypatch):
    def boom(mol):
        raise ValueError("no")

    monkeypatch.setattr(F, "_PROPERTY_FUNCS", (Crippen.MolLogP, boom, QED.qed, Descriptors.MolWt))
    logp, sa, _, _ = F.properties(Chem.MolFromSmiles("CCO"))
    assert math.isnan(sa) and logp == pytest.approx(Crippen.MolLogP(Chem.MolFromSmiles("CCO")))
