"""scikit-learn transformer: SMILES -> latent means (and log-variances) of a molvae model.

>>> from sklearn.linear_model import Ridge
>>> from sklearn.pipeline import make_pipeline
>>> from molvae.sklearn import LatentFeaturizer
>>> pipe = make_pipeline(LatentFeaturizer(), Ridge(alpha=1.0))      # doctest: +SKIP
>>> pipe.fit(train_smiles, train_y).predict(test_smiles)            # doctest: +SKIP

The estimator stores only its parameters, so ``sklearn.base.clone``, ``Pipeline`` and
``GridSearchCV`` work as with any transformer.  The model is loaded by ``fit`` (or on first
use after unpickling) from the ``model`` parameter, and a pickled featurizer does not carry
the weights: it reloads them from the same shipped model or checkpoint path, which keeps
pickled pipelines small (kilobytes, not megabytes).  Molecules the model cannot encode
(invalid SMILES, atoms outside its vocabulary) give rows of NaN by default (follow with
``SimpleImputer`` or drop them), or a ``ValueError`` naming them with ``on_error="raise"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from molvae.vae.checkpoint import load_pretrained
from molvae.vae.model import MolVAE

__all__ = ["LatentFeaturizer"]

_ON_ERROR = ("nan", "raise")


def _smiles_list(X) -> tuple[list, list[str] | None]:
    """(SMILES list, column name or None) from a list / 1-D array / one-column 2-D array / Series / DataFrame."""
    if isinstance(X, str):
        raise TypeError("expected a sequence of SMILES strings, got a single string; wrap it in a list")
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(
                f"LatentFeaturizer takes one column of SMILES, got a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)[:10]}; select the SMILES column (e.g. df[['smiles']] or with a ColumnTransformer)"
            )
        return X.iloc[:, 0].tolist(), [str(X.columns[0])]
    if isinstance(X, pd.Series):
        return X.tolist(), None
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(
                f"LatentFeaturizer takes one column of SMILES, got a 2-D input of shape {arr.shape}"
            )
        return arr[:, 0].tolist(), None
    if arr.ndim != 1:
        raise ValueError(f"LatentFeaturizer takes a 1-D sequence of SMILES, got an input of shape {arr.shape}")
    return arr.tolist(), None


class LatentFeaturizer(TransformerMixin, BaseEstimator):
    """Featurize SMILES as the posterior means of a molvae model (optionally with log-variances).

    Parameters
    ----------
    model : str or path, default "pretrained"
        ``"pretrained"`` (the shipped model), the name of another shipped model, or the path
        of a checkpoint (``best.pt``).  A ``MolVAE`` instance also works (used as it is, on its
        own device), but is then pickled with its weights: there is nothing to reload it from.
    include_logvar : bool, default False
        Append the posterior log-variances: ``2 * latent_dim`` features instead of ``latent_dim``.
    on_error : {"nan", "raise"}, default "nan"
        Molecules that cannot be encoded: a row of NaN, or a ``ValueError`` naming them and the reasons.
    batch_size : int, default 512
        Molecules per encoder pass.
    device : str, default "cpu"
        Torch device of the model (``"auto"``: CUDA when present).

    Attributes
    ----------
    model_ : MolVAE
        The loaded model (not pickled; reloaded on demand).
    latent_dim_ : int
        Latent dimensions of the model.
    n_features_in_ : int
        Always 1: one column of SMILES.
    feature_names_in_ : ndarray of str
        The SMILES column's name, when ``fit`` was given a DataFrame.
    """

    def __init__(self, model="pretrained", include_logvar: bool = False, on_error: str = "nan",
                 batch_size: int = 512, device: str = "cpu"):
        self.model = model
        self.include_logvar = include_logvar
        self.on_error = on_error
        self.batch_size = batch_size
        self.device = device

    # ------------------------------------------------------------------ model
    def _load_model(self):

        spec = self.model
        if isinstance(spec, MolVAE):
            return spec  # used as it is, on its own device
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(f"model must be 'pretrained', a shipped model name or a checkpoint path, got {type(spec).__name__}")
        if os.path.exists(spec):
            return MolVAE.load(spec, device=self.device)
        if str(spec) == "pretrained":
            return load_pretrained(device=self.device)
        if str(spec).endswith((".pt", ".pth", ".ckpt")) or os.sep in str(spec):
            raise FileNotFoundError(f"no such checkpoint: {spec}")
        return load_pretrained(str(spec), device=self.device)  # a shipped model by name (or a clear error)

    def _get_model(self):
        """The fitted model, reloaded from ``model`` when it was dropped by pickling."""
        check_is_fitted(self, "latent_dim_")
        model = self.__dict__.get("model_")
        if model is None:
            model = self.model_ = self._load_model()
        return model

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        # the weights stay out of the pickle (unless the model was given as an instance)
        state.pop("model_", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        return tags

    # ------------------------------------------------------------------ sklearn API
    def _check_params(self) -> None:
        if self.on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {self.on_error!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    def fit(self, X, y=None) -> LatentFeaturizer:
        """Load the model (nothing is learned from ``X``); checks that ``X`` is one column of SMILES."""
        self._check_params()
        _, names = _smiles_list(X)
        self.model_ = self._load_model()
        self.latent_dim_ = int(self.model_.latent_dim)
        self.n_features_in_ = 1
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def transform(self, X) -> np.ndarray:
        """Latent means (N, latent_dim), or means then log-variances (N, 2 * latent_dim), float32."""
        self._check_params()
        model = self._get_model()
        smiles, _ = _smiles_list(X)
        if self.on_error == "raise":
            failures = model.tokenizer.encode(smiles).failures
            if len(failures):
                shown = "; ".join(f"row {int(i)} {s!r}: {r}" for i, s, r in failures.head(5).itertuples(index=False))
                more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
                raise ValueError(
                    f"{len(failures)} of {len(smiles)} molecules cannot be encoded: {shown}{more}; "
                    "use on_error='nan' to get rows of NaN instead"
                )
        mu, logvar = model.posterior(smiles, batch_size=int(self.batch_size))
        return np.concatenate([mu, logvar], axis=1) if self.include_logvar else mu

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """``latent_0 .. latent_{D-1}`` (then ``logvar_0 ..`` with ``include_logvar``)."""
        check_is_fitted(self, "latent_dim_")
        names = [f"latent_{i}" for i in range(self.latent_dim_)]
        if self.include_logvar:
            names += [f"logvar_{i}" for i in range(self.latent_dim_)]
        return np.asarray(names, dtype=object)
