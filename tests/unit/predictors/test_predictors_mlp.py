"""The MLP-ensemble predictor (molvae.predictors.mlp): accuracy, uncertainty, gradients, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from predictor_data import FAST_MLP, N, only_plain

from molvae.predictors import FORMAT, FORMAT_VERSION, LatentPredictor, MLPEnsemble


@pytest.fixture(scope="module")
def mlp(data):
    model = MLPEnsemble(**FAST_MLP)
    metrics = model.fit(*data, cv=3, seed=0)
    return model, metrics


@pytest.fixture(scope="module")
def linear_mlp():
    """Ensemble fitted on the linear target y = z0 + z1."""
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((300, 8))
    y = Z[:, 0] + Z[:, 1] + 0.05 * rng.standard_normal(300)
    model = MLPEnsemble(**FAST_MLP)
    model.fit(Z, y, cv=0, seed=0)
    return model


def test_cv_r2_on_synthetic_target(mlp):
    model, metrics = mlp
    # measured R2 about 0.93; a broken model (or a shuffled target, below) is near or below 0
    assert metrics["r2"] > 0.8, metrics
    assert metrics["rmse"] < 0.6, metrics
    assert metrics["n"] == N and metrics["n_dropped"] == 0 and metrics["cv"] == 3
    assert model.metrics_ == metrics
    assert 1 <= model.epochs_ <= FAST_MLP["max_epochs"]


def test_shuffled_target_control(data):
    Z, y = data
    y_shuffled = np.random.default_rng(5).permutation(y)
    metrics = MLPEnsemble(**FAST_MLP).fit(Z[:150], y_shuffled[:150], cv=2, seed=0)
    assert metrics["r2"] < 0.2, metrics


def test_predict_is_mean_and_spread_of_the_members(mlp, data, far):
    model, _ = mlp
    Z, _ = data
    mean, std = model.predict(Z[:50])
    assert mean.shape == std.shape == (50,) and mean.dtype == np.float64
    with torch.no_grad():
        members = model._members(torch.tensor(Z[:50], dtype=torch.float32)).double().numpy()
    assert members.shape == (FAST_MLP["n_members"], 50)
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, members.std(0, ddof=1), rtol=1e-5, atol=1e-6)
    _, std_far = model.predict(far)
    assert np.median(std_far) > 2.0 * np.median(std), (np.median(std_far), np.median(std))
    m1, _ = model.predict(Z[0])
    assert m1.shape == (1,) and np.isclose(m1[0], mean[0])
    with pytest.raises(ValueError, match="columns"):
        model.predict(Z[:3, :5])


def test_one_member_has_zero_spread(data):
    Z, y = data
    model = MLPEnsemble(**dict(FAST_MLP, n_members=1, max_epochs=5))
    model.fit(Z[:100], y[:100], cv=0)
    _, std = model.predict(Z[:10])
    assert np.array_equal(std, np.zeros(10))


def test_same_seed_same_predictions(data):
    Z, y = data
    Z, y = Z[:150], y[:150]
    kw = dict(FAST_MLP, max_epochs=20)
    a, b, c = MLPEnsemble(**kw), MLPEnsemble(**kw), MLPEnsemble(**kw)
    a.fit(Z, y, cv=0, seed=3)
    b.fit(Z, y, cv=0, seed=3)
    c.fit(Z, y, cv=0, seed=4)
    pa, pb = a.predict(Z[:20]), b.predict(Z[:20])
    assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1])
    assert not np.allclose(pa[0], c.predict(Z[:20])[0])


def test_torch_forward_is_differentiable(linear_mlp):
    z = torch.zeros(4, 8, requires_grad=True)
    out = linear_mlp.torch_forward(z)
    assert out.shape == (4,)
    out.sum().backward()
    g = z.grad.mean(0)
    # d(z0 + z1)/dz ~ (1, 1, 0, ...)
    assert g[0] > 0.5 and g[1] > 0.5
    assert g[2:].abs().max() < 0.3
    assert np.allclose(out.detach().numpy(), linear_mlp.predict(np.zeros((4, 8)))[0], atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        linear_mlp.torch_forward(torch.zeros(4, 7))


def test_gradient_ascent_increases_prediction_and_respects_bound(linear_mlp):
    rng = np.random.default_rng(7)
    z0 = 0.5 * rng.standard_normal((16, 8))
    z0[0, 3] = 5.0  # a start point outside the bound gets clipped
    before = linear_mlp.predict(np.clip(z0, -2.0, 2.0))[0]

    z, pred = linear_mlp.gradient_ascent(z0, steps=50, lr=0.05, bound=2.0)
    assert z.shape == z0.shape and pred.shape == (16,)
    assert np.abs(z).max() <= 2.0 + 1e-6
    assert np.all(pred > before) and pred.mean() > before.mean() + 1.0
    assert np.all(z[:, 0] > z0[:, 0]) and np.all(z[:, 1] > z0[:, 1])
    assert np.allclose(pred, linear_mlp.predict(z)[0])

    _, pred_min = linear_mlp.gradient_ascent(z0, steps=50, lr=0.05, maximize=False, bound=2.0)
    assert pred_min.mean() < before.mean() - 1.0


def test_gradient_ascent_prior_pull_and_pessimism(linear_mlp):
    rng = np.random.default_rng(7)
    z0 = 0.5 * rng.standard_normal((16, 8))
    plain, _ = linear_mlp.gradient_ascent(z0, steps=30, bound=None)
    pulled, _ = linear_mlp.gradient_ascent(z0, steps=30, prior_weight=2.0, bound=None)
    # the prior term pulls every point toward the origin: shorter than the plain ascent
    assert np.all(np.linalg.norm(pulled, axis=1) < np.linalg.norm(plain, axis=1))
    # a pessimistic objective ends where the ensemble is less uncertain than the plain ascent
    careful, _ = linear_mlp.gradient_ascent(z0, steps=30, kappa=5.0, bound=None)
    assert linear_mlp.predict(careful)[1].mean() < linear_mlp.predict(plain)[1].mean()
    again, _ = linear_mlp.gradient_ascent(z0, steps=30, kappa=5.0, bound=None)
    assert np.array_equal(careful, again)  # deterministic
    with pytest.raises(ValueError, match="bound"):
        linear_mlp.gradient_ascent(z0, bound=0)


def test_save_load_roundtrip(mlp, data, far, tmp_path):
    model, _ = mlp
    path = model.save(tmp_path / "mlp.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION and raw["kind"] == "mlp"
    assert only_plain(raw)
    X = np.vstack([data[0][:40], far[:10]])
    m0, s0 = model.predict(X)
    for loaded in (LatentPredictor.load(path), MLPEnsemble.load(path), LatentPredictor.load(path, device="cpu")):
        assert type(loaded) is MLPEnsemble
        m1, s1 = loaded.predict(X)
        np.testing.assert_allclose(m1, m0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(s1, s0, rtol=1e-7, atol=1e-9)
        assert loaded.metrics_ == pytest.approx(model.metrics_)
        assert loaded.get_params() == model.get_params()
        assert loaded.epochs_ == model.epochs_


def test_corrupt_state_raises(mlp):
    d = mlp[0].to_dict()
    d["state"]["weights"] = d["state"]["weights"][:1]
    with pytest.raises(ValueError, match="corrupt"):
        LatentPredictor.from_dict(d)
    d = mlp[0].to_dict()
    d["params"]["n_members"] = 7
    with pytest.raises(ValueError, match="members"):
        LatentPredictor.from_dict(d)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_members"):
        MLPEnsemble(n_members=0, device="cpu")
    with pytest.raises(ValueError, match="dropout"):
        MLPEnsemble(dropout=1.0, device="cpu")
    with pytest.raises(ValueError, match="val_fraction"):
        MLPEnsemble(val_fraction=1.0, device="cpu")
