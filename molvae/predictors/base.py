"""The protocol of molvae's latent-space property predictors and their file format.

The optimizer in latent space needs two things from a property model:

* ranking of candidate latent points with an uncertainty estimate
  (``predict(Z) -> (mean, std)``), and
* a differentiable surrogate for gradient ascent in latent space (LIMO-style),
  provided by :class:`~molvae.predictors.mlp.MLPEnsemble` (``torch_forward`` and
  ``gradient_ascent``).

Shapes: ``Z`` is ``(N, D)`` (posterior means of the encoder), ``y`` is ``(N,)``.
``predict`` returns two float64 arrays of shape ``(N,)`` in the units of ``y``.

:class:`LatentPredictor` provides cross-validated ``fit``, the input checks and the
serialization; subclasses register themselves under their ``kind``.  A predictor is saved
as a plain dictionary (numbers, strings, lists, tensors) with ``torch.save``, so files load
with ``torch.load(path, weights_only=True)``; no scikit-learn object is ever pickled::

    {"format": "molvae-predictor", "format_version": 1, "kind": "gp" | "mlp",
     "params": {...constructor arguments...}, "dim": D, "n_train": N, "seed": s,
     "metrics": {"r2", "rmse", "n", "n_dropped", "cv"}, "state": {...per kind...}}
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from molvae.utils.io import atomic_write

__all__ = ["FORMAT", "FORMAT_VERSION", "PREDICT_CHUNK", "LatentPredictor", "as_2d", "cv_metrics"]

logger = logging.getLogger(__name__)

FORMAT = "molvae-predictor"
FORMAT_VERSION = 1

PREDICT_CHUNK = 4096  # rows per prediction batch


def as_2d(Z: Any, name: str = "Z") -> np.ndarray:
    """Float64 array of shape (N, D); a 1-D input of length D is one point."""
    if isinstance(Z, Tensor):
        Z = Z.detach().cpu().numpy()
    arr = np.asarray(Z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {arr.shape}")
    return arr


def cv_metrics(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(R^2, RMSE) of pooled out-of-fold predictions."""
    resid = y - pred
    rmse = float(np.sqrt(np.mean(resid**2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = float(1.0 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else float("nan")
    return r2, rmse


class LatentPredictor:
    """Base class: a regressor from latent vectors ``(N, D)`` to a property ``(N,)``.

    Subclasses implement ``_fit``, ``_predict``, ``get_params``, ``_state`` and
    ``_load_state``; this class provides cross-validated ``fit``, input checks and
    the (pickle-free) serialization.
    """

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[LatentPredictor]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind:
            LatentPredictor._registry[cls.kind] = cls

    def __init__(self) -> None:
        self.dim_: int | None = None
        self.n_train_: int = 0
        self.seed_: int = 0
        self.metrics_: dict[str, float | int] = {}

    # ---------------------------------------------------------------- to override
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (plain types) that rebuild an unfitted copy."""
        raise NotImplementedError

    def _fit(self, Z: np.ndarray, y: np.ndarray, seed: int) -> None:
        raise NotImplementedError

    def _predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _runtime_kwargs(self) -> dict[str, Any]:
        """Constructor arguments that are not saved (e.g. the device)."""
        return {}

    # ---------------------------------------------------------------- public API
    @property
    def is_fitted(self) -> bool:
        return self.dim_ is not None

    def fit(self, Z: Any, y: Any, cv: int = 5, seed: int = 0) -> dict[str, float | int]:
        """Fit on ``Z (N, D)``, ``y (N,)`` and return cross-validated metrics.

        K-fold CV (shuffled, ``seed``) runs first on fresh copies of this model, then
        the model is fitted on all rows.  Rows whose ``y`` is NaN/inf are dropped.
        ``cv=0`` (or fewer than ``2 * cv`` rows) skips CV and reports NaN metrics.

        Returns ``{"r2", "rmse", "n", "n_dropped", "cv"}``; ``n`` counts the rows
        used, ``cv`` the number of folds actually run (0 when skipped).
        """
        Zf = as_2d(Z)
        yf = np.asarray(y.detach().cpu().numpy() if isinstance(y, Tensor) else y, dtype=np.float64)
        if yf.ndim == 2 and yf.shape[1] == 1:
            yf = yf[:, 0]
        if yf.ndim != 1 or len(yf) != len(Zf):
            raise ValueError(f"y must have shape ({len(Zf)},), got {yf.shape}")
        if not np.isfinite(Zf).all():
            raise ValueError("Z contains NaN or inf values")
        if cv is None:
            cv = 0
        cv = int(cv)
        if cv == 1 or cv < 0:
            raise ValueError(f"cv must be 0 (no cross-validation) or >= 2, got {cv}")

        keep = np.isfinite(yf)
        n_dropped = int((~keep).sum())
        if n_dropped:
            logger.warning("dropped %d of %d rows with NaN/inf y", n_dropped, len(yf))
        Zf, yf = Zf[keep], yf[keep]
        n = len(yf)
        if n < 2:
            raise ValueError(f"need at least 2 rows with finite y to fit, got {n}")

        r2 = rmse = float("nan")
        folds_run = 0
        if cv and n >= 2 * cv:
            # scikit-learn is heavy (about 2 s of import): loaded when cross-validating
            from sklearn.model_selection import KFold

            oof = np.empty(n, dtype=np.float64)
            splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
            for k, (tr, te) in enumerate(splitter.split(Zf)):
                model = self._new_like()
                model._fit(Zf[tr], yf[tr], seed + 1 + k)
                model.dim_ = Zf.shape[1]
                oof[te] = model._predict(Zf[te])[0]
            r2, rmse = cv_metrics(yf, oof)
            folds_run = cv
            logger.info("%s %d-fold CV on %d rows: R2=%.3f RMSE=%.4g", self.kind, cv, n, r2, rmse)
        elif cv:
            logger.info("%s: %d rows < 2*cv=%d, cross-validation skipped", self.kind, n, 2 * cv)
        else:
            logger.info("%s: cross-validation disabled (cv=0)", self.kind)

        self._fit(Zf, yf, seed)
        self.dim_ = int(Zf.shape[1])
        self.n_train_ = n
        self.seed_ = int(seed)
        self.metrics_ = {"r2": r2, "rmse": rmse, "n": n, "n_dropped": n_dropped, "cv": folds_run}
        return dict(self.metrics_)

    def predict(self, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Predict ``Z (N, D)`` -> ``(mean (N,), std (N,))`` in the units of ``y``."""
        return self._checked_predict(Z)

    def _checked_predict(self, Z: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        Zf = as_2d(Z)
        if Zf.shape[1] != self.dim_:
            raise ValueError(f"Z has {Zf.shape[1]} columns, the predictor was fitted on {self.dim_}")
        if len(Zf) == 0:
            return np.empty(0), np.empty(0)
        mean, std = self._predict(Zf, **kwargs)
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def _new_like(self) -> LatentPredictor:
        return type(self)(**self.get_params(), **self._runtime_kwargs())

    # ---------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (numbers, strings, lists, tensors) describing the fitted model."""
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        counts = ("n", "n_dropped", "cv")
        metrics = {k: (int(v) if k in counts else float(v)) for k, v in self.metrics_.items()}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "params": self.get_params(),
            "dim": int(self.dim_),  # type: ignore[arg-type]
            "n_train": int(self.n_train_),
            "seed": int(self.seed_),
            "metrics": metrics,
            "state": self._state(),
        }

    @classmethod
    def from_dict(cls, d: Any, **kwargs: Any) -> LatentPredictor:
        """Rebuild a predictor from :meth:`to_dict` output.

        Called on the base class, the subclass is chosen by ``d["kind"]``; called on a
        subclass, a dictionary of another kind is refused.  ``kwargs`` are runtime
        options such as ``device``.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"not a molvae predictor (expected format {FORMAT!r}, found {found!r})")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise ValueError(
                f"unsupported molvae predictor format_version {version!r} "
                f"(this molvae reads versions 1 to {FORMAT_VERSION})"
            )
        kind = d.get("kind")
        target = LatentPredictor._registry.get(kind)  # type: ignore[arg-type]
        if target is None:
            raise ValueError(f"unknown predictor kind {kind!r}; known: {sorted(LatentPredictor._registry)}")
        if cls is not LatentPredictor and not issubclass(target, cls):
            raise ValueError(f"file holds a {kind!r} predictor, not a {cls.kind!r} one")
        # runtime options a kind does not take (e.g. device for the GP) are ignored
        accepted = inspect.signature(target.__init__).parameters
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        try:
            obj = target(**dict(d["params"]), **kwargs)
            obj._load_state(d["state"])
            obj.dim_ = int(d["dim"])
            obj.n_train_ = int(d.get("n_train", 0))
            obj.seed_ = int(d.get("seed", 0))
            obj.metrics_ = dict(d.get("metrics", {}))
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ValueError(f"corrupt molvae predictor ({kind}): {type(exc).__name__}: {exc}") from exc
        return obj

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the predictor to ``path`` (atomically) with ``torch.save``."""
        path = Path(path)
        d = self.to_dict()
        with atomic_write(path, "wb") as fh:
            torch.save(d, fh)
        logger.info("saved %s predictor to %s", self.kind, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> LatentPredictor:
        """Load a file written by :meth:`save` (``torch.load(weights_only=True)``).

        Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file
        that is corrupt, truncated or not a molvae predictor.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"predictor file not found: {path}")
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, foreign pickle, disallowed globals...
            raise ValueError(
                f"{path}: cannot read as a molvae predictor file (corrupt, truncated or foreign): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        try:
            return cls.from_dict(d, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        state = f"fitted, D={self.dim_}, n={self.n_train_}" if self.is_fitted else "unfitted"
        return f"{type(self).__name__}({params}) [{state}]"
