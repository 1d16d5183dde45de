"""The one Morgan fingerprint / Tanimoto implementation, checked against RDKit's own routines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import AllChem

from molvae.chem import canonical, canonical_many, canonical_set
from molvae.chem.fingerprints import bulk_tanimoto, morgan_bits, morgan_fingerprint, tanimoto, tanimoto_matrix
from molvae.data import load_dataset

PARACETAMOL, ASPIRIN = "CC(=O)Nc1ccc(O)cc1", "CC(=O)Oc1ccccc1C(=O)O"


def test_fingerprint_is_rdkit_morgan_radius_2_2048_bits():
    mol = Chem.MolFromSmiles(PARACETAMOL)
    expected = AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=2048)
    assert morgan_fingerprint(PARACETAMOL) == expected
    assert morgan_fingerprint(mol) == expected
    assert morgan_fingerprint("not a molecule") is None


def test_tanimoto_matrix_equals_rdkit_bulk_tanimoto_for_numpy_and_torch():
    smiles = load_dataset("zinc", "test")[:40]
    bits, ok = morgan_bits(smiles)
    assert ok.all() and bits.shape == (40, 2048)
    fps = [morgan_fingerprint(s) for s in smiles]
    expected = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
    assert np.allclose(tanimoto_matrix(bits.astype(np.float64), bits.astype(np.float64)), expected)
    t = torch.from_numpy(bits).float()
    assert np.allclose(tanimoto_matrix(t, t).numpy(), expected, atol=1e-6)
    assert np.allclose(bulk_tanimoto(fps[0], fps), expected[0])
    assert tanimoto(fps[0], fps[1]) == pytest.approx(expected[0, 1])


def test_empty_fingerprints_follow_the_callers_convention():
    empty = np.zeros((1, 16))
    assert tanimoto_matrix(empty, empty)[0, 0] == 1.0  # MOSES
    assert tanimoto_matrix(empty, empty, empty=0.0)[0, 0] == 0.0  # a GP kernel


def test_packed_bits_and_the_validity_mask():
    bits, ok = morgan_bits([PARACETAMOL, "C1CC", ASPIRIN], packed=True)
    assert ok.tolist() == [True, False, True]
    assert bits.shape == (3, 256) and not bits[1].any()
    full, _ = morgan_bits([PARACETAMOL])
    assert np.array_equal(np.unpackbits(bits[0]), full[0])


def test_canonical_many_canonicalizes_and_takes_canonical_lists_as_they_are():
    raw = ["OCC", "c1ccccc1O", "C1CC", None, ""]
    assert canonical_many(raw) == ["CCO", "Oc1ccccc1", None, None, None]
    moses = load_dataset("moses", "test")[:5000]  # already canonical: the probe lets it through
    assert canonical_many(moses, probe=500) == moses
    shuffled = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True) for s in moses[:600]]
    assert canonical_many(shuffled, probe=500) == [canonical(s) for s in shuffled]
    assert canonical_set(["OCC", "CCO", "C(O)C", "bad"]) == {"CCO"}
