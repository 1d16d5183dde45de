"""ChemNet moments and the Fréchet distance (molvae.metrics.chemnet) against the fcd package."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from molvae.data import load_dataset
from molvae.metrics import chemnet


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd passes scipy's deprecated sqrtm(disp=)
def test_frechet_distance_matches_fcd_package():
    import fcd

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 20)), rng.normal(size=(80, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 0.2
    args = (a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert chemnet.frechet_distance(*args) == pytest.approx(fcd.calculate_frechet_distance(*args), rel=1e-6)
    assert chemnet.frechet_distance(*args[:2], *args[:2]) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_chemnet_moments_are_mean_and_covariance_of_fcd_activations():
    import fcd

    smiles = load_dataset("moses", "test", limit=40)
    long_one = "C" * (chemnet.FCD_PAD + 5)  # longer than ChemNet's padding: scored on its own
    mu, sigma = chemnet.chemnet_moments([*smiles, long_one], chunk=16)
    model = fcd.load_ref_model()
    act = np.vstack([
        np.asarray(fcd.get_predictions(model, smiles, n_jobs=0), dtype=np.float64),
        np.asarray(fcd.get_predictions(model, [long_one], n_jobs=0), dtype=np.float64),
    ])
    assert mu.shape == (512,) and sigma.shape == (512, 512)
    np.testing.assert_allclose(mu, act.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(act.T), rtol=1e-4, atol=1e-6)


def test_chemnet_moments_need_two_molecules(caplog):
    with caplog.at_level(logging.WARNING, logger="molvae.metrics.chemnet"):
        assert chemnet.chemnet_moments(["CCO"]) == (None, None)
    assert "fewer than 2" in caplog.text
