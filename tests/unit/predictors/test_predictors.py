"""Tests for molvae.predictors.all (latent-space property predictors).

Small synthetic latent data; models are fitted once per module and shared.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from molvae.predictors.all import (
    FORMAT,
    FORMAT_VERSION,
    GPPredictor,
    LatentPredictor,
    MLPEnsemble,
    make_predictor,
)

D = 16
N = 400
N_GP = 300  # the GP is cubic in the number of rows; fewer rows keep the test fast

# small, fast settings for the MLP ensemble (the defaults are larger)
FAST_MLP = dict(
    n_members=3, hidden=(64, 64), lr=3e-3, batch_size=128, max_epochs=80, patience=10, device="cpu"
)
FAST_GP = dict(n_restarts=0)


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """One BLAS/torch thread: the test machine has 2 shared cores, oversubscription is slow."""
    import scipy.linalg  # noqa: F401  (load the BLAS libraries first: limits apply to loaded ones)
    import sklearn.gaussian_process  # noqa: F401
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


def _target(Z: np.ndarray) -> np.ndarray:
    return np.sin(Z[:, 0]) + 0.5 * Z[:, 1] ** 2 - Z[:, 2]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((N, D))
    y = _target(Z) + 0.1 * rng.standard_normal(N)
    return Z, y


@pytest.fixture(scope="module")
def far_points() -> np.ndarray:
    rng = np.random.default_rng(1)
    P = rng.standard_normal((50, D))
    return 10.0 * P / np.linalg.norm(P, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def gp(data):
    Z, y = data
    model = GPPredictor(**FAST_GP)
    metrics = model.fit(Z[:N_GP], y[:N_GP], cv=3, seed=0)
    return model, metrics


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


def _only_plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _only_plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_only_plain(v) for v in obj)
    return obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor))


# --------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("which", ["gp", "mlp"])
def test_cv_r2_on_synthetic_target(which, request):
    model, metrics = request.getfixturevalue(which)
    # GP (300 rows) ~0.90, MLP ensemble (400 rows) ~0.93; a broken model (or a shuffled
    # target, see the control below) is near or below 0
    assert metrics["r2"] > 0.8, metrics
    assert metrics["rmse"] < 0.6, metrics
    assert metrics["n"] == (N_GP if which == "gp" else N)
    assert metrics["n_dropped"] == 0 and metrics["cv"] == 3
    assert model.metrics_ == metrics


@pytest.mark.parametrize("kind, kwargs", [("gp", FAST_GP), ("mlp", FAST_MLP)])
def test_shuffled_target_control(kind, kwargs, data):
    Z, y = data
    y_shuffled = np.random.default_rng(5).permutation(y)
    metrics = make_predictor(kind, **kwargs).fit(Z[:150], y_shuffled[:150], cv=2, seed=0)
    assert metrics["r2"] < 0.2, metrics


@pytest.mark.parametrize("which", ["gp", "mlp"])
def test_predict_shapes_and_uncertainty_grows_far_from_data(which, request, data, far_points):
    model, _ = request.getfixturevalue(which)
    Z, _ = data
    mean, std = model.predict(Z[:50])
    assert mean.shape == std.shape == (50,)
    assert mean.dtype == np.float64 and np.all(np.isfinite(mean)) and np.all(std >= 0)
    _, std_far = model.predict(far_points)
    assert np.median(std_far) > 2.0 * np.median(std), (np.median(std_far), np.median(std))
    # a single 1-D point is accepted; wrong width is refused
    m1, s1 = model.predict(Z[0])
    assert m1.shape == (1,) and np.isclose(m1[0], mean[0])
    with pytest.raises(ValueError, match="columns"):
        model.predict(Z[:3, :5])


def test_gp_std_with_noise_is_larger(gp, data):
    model, _ = gp
    Z, _ = data
    _, s_latent = model.predict(Z[:20])
    _, s_total = model.predict(Z[:20], include_noise=True)
    assert np.all(s_total >= s_latent)


def test_unfitted_predictor_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        GPPredictor().predict(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPEnsemble(device="cpu").to_dict()


# --------------------------------------------------------------------------- data handling
def test_nan_rows_dropped_and_counted(data, caplog):
    Z, y = data
    Z, y = Z[:60], y[:60].copy()
    y[[1, 5, 9]] = np.nan
    y[[20, 30]] = [np.inf, -np.inf]
    with caplog.at_level(logging.INFO, logger="molvae.predictors.all"):
        metrics = GPPredictor(**FAST_GP).fit(Z, y, cv=2, seed=0)
    assert metrics["n_dropped"] == 5 and metrics["n"] == 55
    assert "dropped 5 of 60 rows" in caplog.text
    assert math.isfinite(metrics["r2"])


def test_cv_skipped_for_tiny_data(data, caplog):
    Z, y = data
    with caplog.at_level(logging.INFO, logger="molvae.predictors.all"):
        metrics = GPPredictor(**FAST_GP).fit(Z[:8], y[:8], cv=5)
    assert math.isnan(metrics["r2"]) and math.isnan(metrics["rmse"]) and metrics["cv"] == 0
    assert "cross-validation skipped" in caplog.text
    metrics = GPPredictor(**FAST_GP).fit(Z[:30], y[:30], cv=0)
    assert math.isnan(metrics["r2"]) and metrics["n"] == 30


def test_bad_inputs_raise(data):
    Z, y = data
    with pytest.raises(ValueError, match="shape"):
        GPPredictor().fit(Z[:10], y[:9])
    with pytest.raises(ValueError, match="cv"):
        GPPredictor().fit(Z[:10], y[:10], cv=1)
    Zbad = Z[:10].copy()
    Zbad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GPPredictor().fit(Zbad, y[:10])


def test_gp_subsamples_keeping_best_points(data):
    Z, y = data
    model = GPPredictor(max_points=100, best_fraction=0.5, **FAST_GP)
    model.fit(Z, y, cv=0, seed=0)
    assert model.X_train_.shape == (100, D)
    top50 = np.sort(y)[-50:]
    assert np.isin(top50, model.y_train_).all()


# --------------------------------------------------------------------------- serialization
@pytest.mark.parametrize("which, cls", [("gp", GPPredictor), ("mlp", MLPEnsemble)])
def test_save_load_roundtrip(which, cls, request, data, far_points, tmp_path):
    model, _ = request.getfixturevalue(which)
    Z, _ = data
    path = model.save(tmp_path / f"{which}.pt")

    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION and raw["kind"] == which
    assert _only_plain(raw)

    X = np.vstack([Z[:40], far_points[:10]])
    m0, s0 = model.predict(X)
    for loaded in (LatentPredictor.load(path), cls.load(path), LatentPredictor.load(path, device="cpu")):
        assert type(loaded) is cls
        m1, s1 = loaded.predict(X)
        assert np.allclose(m0, m1, rtol=1e-9, atol=1e-9)
        assert np.allclose(s0, s1, rtol=1e-7, atol=1e-9)
        assert loaded.metrics_ == pytest.approx(model.metrics_)
        assert loaded.get_params() == model.get_params()


def test_load_of_other_kind_is_refused(gp, tmp_path):
    path = gp[0].save(tmp_path / "gp.pt")
    with pytest.raises(ValueError, match="'gp' predictor, not a 'mlp'"):
        MLPEnsemble.load(path)


def test_foreign_file_raises(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"foo": 1}, path)
    with pytest.raises(ValueError, match="not a molvae predictor"):
        LatentPredictor.load(path)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "kind": "gp"}, path)
    with pytest.raises(ValueError, match="format_version"):
        LatentPredictor.load(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a molvae predictor"):
        LatentPredictor.load(path)


def test_pickled_object_is_not_loaded(tmp_path):
    from sklearn.model_selection import KFold

    path = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "obj": KFold(3)}, path)
    with pytest.raises(ValueError, match="cannot read"):
        LatentPredictor.load(path)


def test_truncated_and_garbage_files_raise(mlp, tmp_path):
    good = mlp[0].save(tmp_path / "good.pt")
    blob = good.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="corrupt, truncated or foreign"):
        LatentPredictor.load(bad)
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt, truncated or foreign"):
        LatentPredictor.load(bad)
    with pytest.raises(FileNotFoundError):
        LatentPredictor.load(tmp_path / "missing.pt")


def test_corrupt_state_raises(mlp):
    d = mlp[0].to_dict()
    d["state"]["weights"] = d["state"]["weights"][:1]
    with pytest.raises(ValueError, match="corrupt"):
        LatentPredictor.from_dict(d)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_predictions(data):
    Z, y = data
    Z, y = Z[:150], y[:150]
    kw = dict(FAST_MLP, max_epochs=20)
    a = MLPEnsemble(**kw)
    b = MLPEnsemble(**kw)
    a.fit(Z, y, cv=0, seed=3)
    b.fit(Z, y, cv=0, seed=3)
    pa, pb = a.predict(Z[:20]), b.predict(Z[:20])
    assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1])
    c = MLPEnsemble(**kw)
    c.fit(Z, y, cv=0, seed=4)
    assert not np.allclose(pa[0], c.predict(Z[:20])[0])

    g1, g2 = GPPredictor(max_points=60, **FAST_GP), GPPredictor(max_points=60, **FAST_GP)
    g1.fit(Z, y, cv=0, seed=3)  # also covers the seeded subsampling
    g2.fit(Z, y, cv=0, seed=3)
    assert np.array_equal(g1.X_train_, g2.X_train_)
    assert np.array_equal(g1.predict(Z[:20])[0], g2.predict(Z[:20])[0])


# --------------------------------------------------------------------------- gradients
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

    z_min, pred_min = linear_mlp.gradient_ascent(z0, steps=50, lr=0.05, maximize=False, bound=2.0)
    assert pred_min.mean() < before.mean() - 1.0

    # pessimistic objective and prior pull run and stay finite; deterministic
    za, pa = linear_mlp.gradient_ascent(z0, steps=10, kappa=1.0, prior_weight=0.5)
    zb, pb = linear_mlp.gradient_ascent(z0, steps=10, kappa=1.0, prior_weight=0.5)
    assert np.all(np.isfinite(za)) and np.array_equal(za, zb) and np.array_equal(pa, pb)
    assert np.abs(za).max() <= 3.0 + 1e-6


# --------------------------------------------------------------------------- factory
def test_make_predictor():
    assert isinstance(make_predictor("gp", max_points=10), GPPredictor)
    m = make_predictor("mlp", hidden=(8,), device="cpu")
    assert isinstance(m, MLPEnsemble) and m.hidden == [8]
    assert isinstance(make_predictor(), MLPEnsemble)
    with pytest.raises(ValueError, match="unknown predictor kind"):
        make_predictor("svm")
