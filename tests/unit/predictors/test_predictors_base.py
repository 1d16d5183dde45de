"""What every latent predictor shares (molvae.predictors.base, .factory): fitting with
cross-validation, input checks, the file format and its errors, files of earlier versions."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from predictor_data import FAST_GP, FAST_MLP

from molvae.predictors import (
    FORMAT,
    FORMAT_VERSION,
    GPPredictor,
    LatentPredictor,
    MLPEnsemble,
    make_predictor,
)
from molvae.predictors.base import as_2d, cv_metrics

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- helpers
def test_as_2d():
    assert as_2d([1.0, 2.0]).shape == (1, 2)
    out = as_2d(torch.ones(3, 4, dtype=torch.float32, requires_grad=True))
    assert out.shape == (3, 4) and out.dtype == np.float64
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        as_2d(np.zeros((2, 3, 4)))


def test_cv_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert cv_metrics(y, y) == (1.0, 0.0)
    r2, rmse = cv_metrics(y, np.full(4, y.mean()))  # the mean predictor: R2 = 0
    assert r2 == pytest.approx(0.0) and rmse == pytest.approx(np.std(y))
    r2, _ = cv_metrics(np.ones(3), np.zeros(3))  # constant target: R2 undefined
    assert math.isnan(r2)


# --------------------------------------------------------------------------- fit
def test_nan_rows_dropped_and_counted(data, caplog):
    Z, y = data
    Z, y = Z[:60], y[:60].copy()
    y[[1, 5, 9]] = np.nan
    y[[20, 30]] = [np.inf, -np.inf]
    with caplog.at_level(logging.INFO, logger="molvae.predictors.base"):
        model = GPPredictor(**FAST_GP)
        metrics = model.fit(Z, y, cv=2, seed=0)
    assert metrics["n_dropped"] == 5 and metrics["n"] == 55 and model.n_train_ == 55
    assert "dropped 5 of 60 rows" in caplog.text
    assert math.isfinite(metrics["r2"]) and metrics["cv"] == 2


def test_cv_skipped_for_tiny_data(data, caplog):
    Z, y = data
    with caplog.at_level(logging.INFO, logger="molvae.predictors.base"):
        metrics = GPPredictor(**FAST_GP).fit(Z[:8], y[:8], cv=5)
    assert math.isnan(metrics["r2"]) and math.isnan(metrics["rmse"]) and metrics["cv"] == 0
    assert "cross-validation skipped" in caplog.text
    metrics = GPPredictor(**FAST_GP).fit(Z[:30], y[:30], cv=0)
    assert math.isnan(metrics["r2"]) and metrics["n"] == 30 and metrics["cv"] == 0


def test_cv_folds_are_out_of_fold_predictions(data):
    """The reported R2 is that of pooled out-of-fold predictions, so it is below the in-sample R2."""
    Z, y = data
    model = GPPredictor(**FAST_GP)
    metrics = model.fit(Z[:120], y[:120], cv=4, seed=0)
    in_sample, _ = cv_metrics(y[:120], model.predict(Z[:120])[0])
    assert metrics["r2"] < in_sample - 0.05


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
    with pytest.raises(ValueError, match="at least 2 rows"):
        GPPredictor().fit(Z[:3], [1.0, np.nan, np.nan], cv=0)


def test_unfitted_predictor_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        GPPredictor().predict(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPEnsemble(device="cpu").to_dict()
    assert "unfitted" in repr(GPPredictor())


# --------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def small_gp(data):
    model = GPPredictor(**FAST_GP)
    model.fit(data[0][:40], data[1][:40], cv=0, seed=0)
    return model


def test_save_is_atomic(small_gp, tmp_path, monkeypatch):
    path = small_gp.save(tmp_path / "sub" / "gp.pt")  # the folder is created
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        small_gp.save(path)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["gp.pt"]  # no temporary file left
    monkeypatch.undo()
    assert type(LatentPredictor.load(path)) is GPPredictor


def test_foreign_file_raises(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"foo": 1}, path)
    with pytest.raises(ValueError, match="not a molvae predictor"):
        LatentPredictor.load(path)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "kind": "gp"}, path)
    with pytest.raises(ValueError, match="format_version"):
        LatentPredictor.load(path)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "svm"}, path)
    with pytest.raises(ValueError, match="unknown predictor kind 'svm'"):
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


def test_truncated_and_garbage_files_raise(small_gp, tmp_path):
    good = small_gp.save(tmp_path / "good.pt")
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


@pytest.mark.parametrize("kind, cls", [("gp", GPPredictor), ("mlp", MLPEnsemble)])
def test_files_written_before_the_split_still_load(kind, cls):
    """``data/*_format1.pt`` were saved by molvae/predictors/all.py (commit df9592f), fitted on
    four RDKit descriptors of 60 ZINC test molecules to predict their logP; the predictions of
    that code on 20 more molecules are in ``format1_predictions.npz``."""
    expected = np.load(DATA / "format1_predictions.npz")
    model = LatentPredictor.load(DATA / f"{kind}_format1.pt")
    assert type(model) is cls and model.dim_ == 4 and model.n_train_ == 60
    mean, std = model.predict(expected["Z"])
    np.testing.assert_allclose(mean, expected[f"{kind}_mean"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, expected[f"{kind}_std"], rtol=1e-5, atol=1e-9)
    if kind == "gp":
        assert model.metrics_["cv"] == 3 and math.isfinite(model.metrics_["r2"])
        _, std_noise = model.predict(expected["Z"], include_noise=True)
        np.testing.assert_allclose(std_noise, expected["gp_std_noise"], rtol=1e-6)


# --------------------------------------------------------------------------- factory
def test_make_predictor():
    gp = make_predictor("gp", max_points=10)
    assert isinstance(gp, GPPredictor) and gp.max_points == 10 and not gp.is_fitted
    m = make_predictor("mlp", hidden=(8,), device="cpu")
    assert isinstance(m, MLPEnsemble) and m.hidden == [8]
    assert isinstance(make_predictor(device="cpu"), MLPEnsemble)
    assert isinstance(make_predictor(" Gaussian_Process "), GPPredictor)
    assert isinstance(make_predictor("ensemble", **FAST_MLP), MLPEnsemble)
    with pytest.raises(ValueError, match="unknown predictor kind"):
        make_predictor("svm")


def test_kinds_are_registered_for_loading():
    assert LatentPredictor._registry == {"gp": GPPredictor, "mlp": MLPEnsemble}
