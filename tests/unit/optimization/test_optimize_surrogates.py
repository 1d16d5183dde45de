"""Surrogates (molvae.optimization.surrogates) and fingerprints of scored molecules (molvae.optimization.scored)."""

from __future__ import annotations

import numpy as np
import pytest

from molvae.chem.fingerprints import bulk_tanimoto, morgan_fingerprint
from molvae.optimization.scored import ScoredData
from molvae.optimization.surrogates import TanimotoGP, check_surrogate, thompson_pick

SMILES = ["CCO", "CCN", "c1ccccc1O", "c1ccccc1N", "CC(=O)Oc1ccccc1C(=O)O", "CCCCCCCC", "C1CCNCC1", "CC(C)Cc1ccc(C)cc1"]


def _fps(smiles):
    return ScoredData(4, np.ones(1), np.ones(1)).fingerprints(smiles)


def test_kernel_is_the_packages_tanimoto_with_zero_for_two_empty_fingerprints():
    X = _fps(SMILES + ["not a molecule"])
    assert X.dtype == np.float32 and X.shape == (len(SMILES) + 1, 2048) and not X[-1].any()
    K = TanimotoGP.kernel(X, X)
    for i, s in enumerate(SMILES):  # RDKit's bulk Tanimoto on the same Morgan bits
        ref = bulk_tanimoto(morgan_fingerprint(s), [morgan_fingerprint(t) for t in SMILES])
        np.testing.assert_allclose(K[i, : len(SMILES)], ref, rtol=1e-6)
    assert K[-1, -1] == 0.0 and (K[-1] == 0).all()  # 0/0 -> 0: no evidence an unparsable one is alike


def test_gp_interpolates_its_data_and_is_unsure_far_from_it():
    X = _fps(SMILES)
    y = np.linspace(0.0, 1.0, len(SMILES))
    gp = TanimotoGP(noise_grid=(1e-3,)).fit(X, y)
    mean, std = gp.predict(X)
    np.testing.assert_allclose(mean, y, atol=0.02)
    far_mean, far_std = gp.predict(_fps(["FC(F)(F)C(F)(F)C(F)(F)F"]))
    assert far_std[0] > 5 * std.max()
    assert abs(far_mean[0] - y.mean()) < abs(mean - y.mean()).max()  # back towards the prior mean


def test_gp_keeps_the_best_half_when_over_max_points():
    X = _fps(SMILES)
    y = np.arange(len(SMILES), dtype=float)
    gp = TanimotoGP(max_points=4).fit(X, y)
    assert len(gp.X) == 4
    kept = {tuple(np.flatnonzero(row)) for row in gp.X}
    assert {tuple(np.flatnonzero(X[i])) for i in (7, 6)} <= kept  # the two best


def test_thompson_pick_without_noise_takes_the_best_and_never_twice():
    rng = np.random.default_rng(0)
    mean = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert thompson_pick(mean, np.zeros(5), 3, rng) == [1, 3, 2]
    picks = thompson_pick(mean, np.ones(5) * 10, 4, rng)
    assert len(set(picks)) == 4
    assert sorted(thompson_pick(mean[:2], np.zeros(2), 3, rng)) == [0, 1]  # fewer than q: all of them


def test_unknown_surrogate_is_refused():
    check_surrogate("tanimoto")
    check_surrogate(None)
    with pytest.raises(ValueError, match="unknown surrogate"):
        check_surrogate("forest")
