"""molvae.sklearn.LatentFeaturizer: shapes, input types, errors, clone, pickling and use in
Pipeline / GridSearchCV, on real molecules with the shipped model."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import molvae as mv
from molvae.utils.paths import pretrained_dir
from molvae.properties import score as property_score
from molvae.sklearn import LatentFeaturizer

BAD = "C1CC(not_a_smiles"


@pytest.fixture(scope="module")
def smiles() -> list[str]:
    return mv.load_dataset("moses", "test", limit=6)


@pytest.fixture(scope="module")
def fitted() -> LatentFeaturizer:
    return LatentFeaturizer().fit(["CCO"])


def test_shape_and_feature_names(fitted, smiles):
    d = mv.load_pretrained(device="cpu").latent_dim
    X = fitted.transform(smiles)
    assert X.shape == (len(smiles), d) and X.dtype == np.float32 and np.isfinite(X).all()
    assert np.allclose(X, mv.load_pretrained(device="cpu").encode(smiles), atol=1e-6)
    names = fitted.get_feature_names_out()
    assert names.tolist() == [f"latent_{i}" for i in range(d)]
    both = LatentFeaturizer(include_logvar=True).fit(smiles)
    Xb = both.transform(smiles)
    assert Xb.shape == (len(smiles), 2 * d)
    assert np.allclose(Xb[:, :d], X)
    assert both.get_feature_names_out().tolist() == names.tolist() + [f"logvar_{i}" for i in range(d)]
    assert fitted.n_features_in_ == 1
    out = both.set_output(transform="pandas").transform(pd.DataFrame({"smiles": smiles}))
    assert list(out.columns) == both.get_feature_names_out().tolist()


def test_input_types_give_the_same_features(fitted, smiles):
    ref = fitted.transform(smiles)
    for X in (np.array(smiles), np.array(smiles, dtype=object).reshape(-1, 1), pd.Series(smiles),
              pd.DataFrame({"smi": smiles}), tuple(smiles)):
        assert np.array_equal(fitted.transform(X), ref), type(X)
    f = LatentFeaturizer().fit(pd.DataFrame({"smi": smiles}))
    assert f.feature_names_in_.tolist() == ["smi"]
    with pytest.raises(ValueError, match="one column"):
        fitted.transform(pd.DataFrame({"a": smiles, "b": smiles}))
    with pytest.raises(ValueError, match="one column"):
        fitted.transform(np.array([smiles, smiles]).T)
    with pytest.raises(TypeError, match="single string"):
        fitted.transform("CCO")


def test_unencodable_rows_are_nan_or_raise(fitted, smiles):
    X = fitted.transform([smiles[0], BAD, "CC[Se]CC", smiles[1]])
    assert np.isnan(X[[1, 2]]).all() and np.isfinite(X[[0, 3]]).all()
    strict = LatentFeaturizer(on_error="raise").fit(smiles)
    with pytest.raises(ValueError, match=r"2 of 4 molecules.*not_a_smiles.*\[Se\]"):
        strict.transform([smiles[0], BAD, "CC[Se]CC", smiles[1]])
    assert np.isfinite(strict.transform(smiles)).all()
    with pytest.raises(ValueError, match="on_error"):
        LatentFeaturizer(on_error="ignore").fit(smiles)


def test_model_names_paths_and_errors(smiles, tmp_path):
    ref = LatentFeaturizer().fit(smiles).transform(smiles)
    by_name = LatentFeaturizer(model="moses").fit(smiles).transform(smiles)
    by_path = LatentFeaturizer(model=str(pretrained_dir() / "moses.pt")).fit(smiles).transform(smiles)
    assert np.array_equal(ref, by_name) and np.array_equal(ref, by_path)
    with pytest.raises(FileNotFoundError, match="no shipped model"):
        LatentFeaturizer(model="no_such_model").fit(smiles)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        LatentFeaturizer(model=str(tmp_path / "missing.pt")).fit(smiles)
    with pytest.raises(Exception, match="NotFitted|not fitted"):
        LatentFeaturizer().transform(smiles)


def test_clone_keeps_params_and_drops_the_model(fitted):
    c = clone(LatentFeaturizer(include_logvar=True, on_error="raise", batch_size=7))
    assert c.get_params() == {"model": "pretrained", "include_logvar": True, "on_error": "raise",
                              "batch_size": 7, "device": "cpu"}
    assert not hasattr(clone(fitted), "model_")


def test_pickle_is_small_and_reloads_the_model(fitted, smiles):
    blob = pickle.dumps(fitted)
    assert len(blob) < 50_000
    assert "model_" not in pickle.loads(blob).__dict__
    again = pickle.loads(blob)
    assert np.array_equal(again.transform(smiles), fitted.transform(smiles))
    assert "model_" in again.__dict__  # reloaded on first use
    assert "model_" in fitted.__dict__  # pickling did not touch the original


def test_grid_search_pipeline_predicts_logp():
    """Latent means carry logP: ridge regression fitted on 100 molecules beats the mean on 60 held-out ones.

    A few training rows cannot be encoded: SimpleImputer fills their NaN features.
    """
    mols = mv.load_dataset("moses", "test", limit=160)
    mols[3], mols[40], mols[77] = BAD, "CC[Se]CC", "C[C@H](N)C(=O)O"  # stereo is outside the vocabulary too
    y = np.nan_to_num(property_score(mols, "logp"), nan=2.0)  # the unparsable row has no logP
    train, test = slice(0, 100), slice(100, 160)
    pipe = Pipeline([("latent", LatentFeaturizer()), ("impute", SimpleImputer()), ("ridge", Ridge())])
    search = GridSearchCV(pipe, {"ridge__alpha": [0.1, 1.0, 10.0]}, cv=3)
    search.fit(mols[train], y[train])
    assert search.best_params_["ridge__alpha"] in (0.1, 1.0, 10.0)
    r2 = r2_score(y[test], search.predict(mols[test]))
    assert r2 > 0.2, r2
    assert len(pickle.dumps(search.best_estimator_)) < 50_000
