"""The Gaussian-process predictor (molvae.predictors.gp) on synthetic latent data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from predictor_data import FAST_GP, N_GP, NOISE_STD, D, only_plain

from molvae.predictors import (
    FORMAT,
    FORMAT_VERSION,
    GPPredictor,
    LatentPredictor,
    MLPEnsemble,
)


@pytest.fixture(scope="module")
def gp(data):
    Z, y = data
    model = GPPredictor(**FAST_GP)
    metrics = model.fit(Z[:N_GP], y[:N_GP], cv=3, seed=0)
    return model, metrics


def test_cv_r2_on_synthetic_target(gp):
    model, metrics = gp
    # measured R2 about 0.90; a broken model (or a shuffled target, below) is near or below 0
    assert metrics["r2"] > 0.8, metrics
    assert metrics["rmse"] < 0.6, metrics
    assert metrics["n"] == N_GP and metrics["n_dropped"] == 0 and metrics["cv"] == 3
    assert model.metrics_ == metrics


def test_shuffled_target_control(data):
    Z, y = data
    y_shuffled = np.random.default_rng(5).permutation(y)
    metrics = GPPredictor(**FAST_GP).fit(Z[:150], y_shuffled[:150], cv=2, seed=0)
    assert metrics["r2"] < 0.2, metrics


def test_predict_shapes_and_uncertainty_grows_far_from_data(gp, data, far):
    model, _ = gp
    Z, _ = data
    mean, std = model.predict(Z[:50])
    assert mean.shape == std.shape == (50,)
    assert mean.dtype == np.float64 and np.all(np.isfinite(mean)) and np.all(std >= 0)
    _, std_far = model.predict(far)
    assert np.median(std_far) > 2.0 * np.median(std), (np.median(std_far), np.median(std))
    m1, _ = model.predict(Z[0])  # a single 1-D point is accepted; wrong width is refused
    assert m1.shape == (1,) and np.isclose(m1[0], mean[0])
    with pytest.raises(ValueError, match="columns"):
        model.predict(Z[:3, :5])


def test_noise_free_std_is_the_latent_posterior_std(gp, data, far):
    """``predict`` gives the std of the latent function; ``include_noise`` adds exactly the
    fitted white-noise variance, which estimates the noise of the data."""
    model, _ = gp
    Z = np.vstack([data[0][:20], far[:5]])
    _, s_latent = model.predict(Z)
    _, s_total = model.predict(Z, include_noise=True)
    y_scale = np.std(model.y_train_)  # normalize_y divides the targets by their std
    noise_var = model.kernel_.k2.noise_level * y_scale**2
    assert 0.4 * NOISE_STD**2 < noise_var < 2.0 * NOISE_STD**2  # measured 0.0071 for a true 0.01
    np.testing.assert_allclose(s_total**2 - s_latent**2, noise_var, rtol=1e-6)
    # the latent std from the kernel itself: k(z, z) - k(z, X) (K + alpha I)^-1 k(X, z)
    X = model.X_train_
    K = model.kernel_(X) + model.alpha * np.eye(len(X))  # the white noise sits on K's diagonal
    k_star = model.kernel_.k1(Z, X)
    var = model.kernel_.k1.diag(Z) - np.einsum("ij,ji->i", k_star, np.linalg.solve(K, k_star.T))
    np.testing.assert_allclose(s_latent, np.sqrt(var) * y_scale, rtol=1e-4)


def test_subsamples_keeping_best_points(data):
    Z, y = data
    model = GPPredictor(max_points=100, best_fraction=0.5, **FAST_GP)
    model.fit(Z, y, cv=0, seed=0)
    assert model.X_train_.shape == (100, D)
    top50 = np.sort(y)[-50:]
    assert np.isin(top50, model.y_train_).all()
    low = GPPredictor(max_points=100, best="min", best_fraction=0.3, **FAST_GP)
    low.fit(Z, y, cv=0, seed=0)
    assert np.isin(np.sort(y)[:30], low.y_train_).all()
    assert not np.isin(np.sort(y)[-50:], low.y_train_).all()


def test_same_seed_same_model(data):
    Z, y = data
    g1, g2, g3 = (GPPredictor(max_points=60, **FAST_GP) for _ in range(3))
    g1.fit(Z[:150], y[:150], cv=0, seed=3)  # also covers the seeded subsampling
    g2.fit(Z[:150], y[:150], cv=0, seed=3)
    g3.fit(Z[:150], y[:150], cv=0, seed=4)
    assert np.array_equal(g1.X_train_, g2.X_train_)
    assert np.array_equal(g1.predict(Z[:20])[0], g2.predict(Z[:20])[0])
    assert not np.array_equal(g1.X_train_, g3.X_train_)


def test_save_load_roundtrip(gp, data, far, tmp_path):
    model, _ = gp
    path = model.save(tmp_path / "gp.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION and raw["kind"] == "gp"
    assert only_plain(raw)
    assert raw["state"]["X"].shape == (N_GP, D) and len(raw["state"]["theta"]) == 3
    X = np.vstack([data[0][:40], far[:10]])
    m0, s0 = model.predict(X)
    for loaded in (LatentPredictor.load(path), GPPredictor.load(path), LatentPredictor.load(path, device="cpu")):
        assert type(loaded) is GPPredictor
        m1, s1 = loaded.predict(X)
        np.testing.assert_allclose(m1, m0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(s1, s0, rtol=1e-7, atol=1e-9)
        assert loaded.metrics_ == pytest.approx(model.metrics_)
        assert loaded.get_params() == model.get_params()
        np.testing.assert_allclose(loaded.kernel_.theta, model.kernel_.theta)


def test_load_as_other_kind_is_refused(gp, tmp_path):
    path = gp[0].save(tmp_path / "gp.pt")
    with pytest.raises(ValueError, match="'gp' predictor, not a 'mlp'"):
        MLPEnsemble.load(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="best"):
        GPPredictor(best="top")
    with pytest.raises(ValueError, match="max_points"):
        GPPredictor(max_points=1)
    with pytest.raises(ValueError, match="best_fraction"):
        GPPredictor(best_fraction=1.5)
