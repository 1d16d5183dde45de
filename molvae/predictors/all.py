"""Property predictors on VAE latent vectors.

The optimizer in latent space needs two things from a property model:

* ranking of candidate latent points with an uncertainty estimate
  (``predict(Z) -> (mean, std)``), and
* a differentiable surrogate for gradient ascent in latent space (LIMO-style),
  provided by :class:`MLPEnsemble` (``torch_forward`` and ``gradient_ascent``).

Shapes: ``Z`` is ``(N, D)`` (posterior means of the encoder), ``y`` is ``(N,)``.
``predict`` returns two float64 arrays of shape ``(N,)`` in the units of ``y``.

Two models are provided:

:class:`GPPredictor`
    scikit-learn Gaussian process, ``Constant * RBF + White`` kernel (isotropic
    length scale by default), ``normalize_y=True``; at most ``max_points`` training
    points (the best-y points plus a random remainder) because the cost is cubic.
:class:`MLPEnsemble`
    a small ensemble of torch MLPs trained together as one batched network; members
    differ by initialisation and bootstrap sample.  The ensemble spread is the
    uncertainty.

Both are saved as a plain dictionary (numbers, strings, lists, tensors) with
``torch.save``, so files load with ``torch.load(path, weights_only=True)``; no
scikit-learn object is ever pickled.  The Gaussian process is rebuilt on load from
its training points and fitted kernel hyperparameters, without running the optimizer.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LatentPredictor",
    "GPPredictor",
    "MLPEnsemble",
    "make_predictor",
]

logger = logging.getLogger(__name__)

FORMAT = "molvae-predictor"
FORMAT_VERSION = 1

_PREDICT_CHUNK = 4096


# --------------------------------------------------------------------------- helpers
def _resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else is passed to torch."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_2d(Z: Any, name: str = "Z") -> np.ndarray:
    """Float64 array of shape (N, D); a 1-D input of length D is one point."""
    if isinstance(Z, Tensor):
        Z = Z.detach().cpu().numpy()
    arr = np.asarray(Z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {arr.shape}")
    return arr


def _cv_metrics(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(R^2, RMSE) of pooled out-of-fold predictions."""
    resid = y - pred
    rmse = float(np.sqrt(np.mean(resid**2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = float(1.0 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else float("nan")
    return r2, rmse


# --------------------------------------------------------------------------- base
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
        Zf = _as_2d(Z)
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
            from sklearn.model_selection import KFold

            oof = np.empty(n, dtype=np.float64)
            splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
            for k, (tr, te) in enumerate(splitter.split(Zf)):
                model = self._new_like()
                model._fit(Zf[tr], yf[tr], seed + 1 + k)
                model.dim_ = Zf.shape[1]
                oof[te] = model._predict(Zf[te])[0]
            r2, rmse = _cv_metrics(yf, oof)
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
        Zf = _as_2d(Z)
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
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
        os.close(fd)
        try:
            torch.save(d, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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


# --------------------------------------------------------------------------- GP
class GPPredictor(LatentPredictor):
    """Gaussian process regression on latent vectors (scikit-learn).

    Kernel ``ConstantKernel * RBF + WhiteKernel`` with one length scale (``ard=False``,
    the default, suited to D ~ 64-128 with few hundred points) or one per dimension.
    The length scale starts at the median pairwise distance of the training points.
    At most ``max_points`` rows are used: a fraction ``best_fraction`` of the best-y
    rows (highest when ``best="max"``, lowest when ``"min"``, none when ``None``) and
    a random remainder.

    ``predict`` returns the latent-function std by default (epistemic; the fitted
    white noise excluded); ``predict(Z, include_noise=True)`` adds the noise.
    """

    kind = "gp"
    kernel_name = "constant*rbf+white"

    def __init__(
        self,
        max_points: int = 2000,
        ard: bool = False,
        n_restarts: int = 2,
        best: str | None = "max",
        best_fraction: float = 0.5,
        alpha: float = 1e-10,
    ) -> None:
        super().__init__()
        if best not in ("max", "min", None):
            raise ValueError(f"best must be 'max', 'min' or None, got {best!r}")
        if max_points < 2:
            raise ValueError("max_points must be >= 2")
        if not 0.0 <= best_fraction <= 1.0:
            raise ValueError("best_fraction must be within [0, 1]")
        self.max_points = int(max_points)
        self.ard = bool(ard)
        self.n_restarts = int(n_restarts)
        self.best = best
        self.best_fraction = float(best_fraction)
        self.alpha = float(alpha)
        self.gp_: Any = None
        self.X_train_: np.ndarray | None = None  # rows actually used (after subsampling)
        self.y_train_: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "max_points": self.max_points,
            "ard": self.ard,
            "n_restarts": self.n_restarts,
            "best": self.best,
            "best_fraction": self.best_fraction,
            "alpha": self.alpha,
        }

    # ---------------------------------------------------------------- internals
    def _kernel(self, dim: int, length_scale: float) -> Any:
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        ls = np.full(dim, length_scale) if self.ard else length_scale
        return ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            ls, (length_scale * 1e-2, length_scale * 1e2)
        ) + WhiteKernel(0.1, (1e-6, 1e1))

    def _subsample(self, Z: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(y)
        if n <= self.max_points:
            return Z, y
        rng = np.random.default_rng(seed)
        n_best = int(round(self.best_fraction * self.max_points)) if self.best else 0
        order = np.argsort(-y if self.best == "max" else y, kind="stable")
        chosen = order[:n_best]
        rest = order[n_best:]
        chosen = np.concatenate([chosen, rng.choice(rest, self.max_points - n_best, replace=False)])
        chosen.sort()
        logger.info("GP: using %d of %d rows (%d best-y + random)", self.max_points, n, n_best)
        return Z[chosen], y[chosen]

    def _fit(self, Z: np.ndarray, y: np.ndarray, seed: int) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        Z, y = self._subsample(Z, y, seed)
        sub = Z[np.random.default_rng(seed).permutation(len(Z))[:500]]
        d = np.sqrt(((sub[:, None, :] - sub[None, :, :]) ** 2).sum(-1))
        d = d[np.triu_indices(len(sub), 1)]
        ls0 = float(np.median(d[d > 0])) if np.any(d > 0) else 1.0
        gp = GaussianProcessRegressor(
            kernel=self._kernel(Z.shape[1], ls0),
            alpha=self.alpha,
            normalize_y=True,
            n_restarts_optimizer=self.n_restarts,
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            gp.fit(Z, y)
        for w in caught:
            logger.debug("GP fit: %s", w.message)
        self.gp_ = gp
        self.X_train_, self.y_train_ = Z, y
        logger.debug("GP kernel: %s", gp.kernel_)

    def _predict(self, Z: np.ndarray, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        means, stds = [], []
        # sklearn's normalize_y divides by std(y); its predicted std includes the white noise
        y_scale = getattr(self.gp_, "_y_train_std", None)
        if y_scale is None:
            y_scale = float(np.std(self.y_train_)) or 1.0
        y_scale = float(np.squeeze(y_scale))
        noise_var = float(self.gp_.kernel_.k2.noise_level) * y_scale**2
        for start in range(0, len(Z), _PREDICT_CHUNK):
            m, s = self.gp_.predict(Z[start : start + _PREDICT_CHUNK], return_std=True)
            if not include_noise:
                s = np.sqrt(np.clip(s**2 - noise_var, 0.0, None))
            means.append(m)
            stds.append(s)
        return np.concatenate(means), np.concatenate(stds)

    def predict(self, Z: Any, include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``Z (N, D)`` -> ``(mean (N,), std (N,))``; std excludes the noise unless asked."""
        return self._checked_predict(Z, include_noise=include_noise)

    @property
    def kernel_(self) -> Any:
        """The fitted scikit-learn kernel."""
        return None if self.gp_ is None else self.gp_.kernel_

    # ---------------------------------------------------------------- serialization
    def _state(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel_name,
            "theta": [float(t) for t in self.gp_.kernel_.theta],
            "X": torch.tensor(self.X_train_, dtype=torch.float64),
            "y": torch.tensor(self.y_train_, dtype=torch.float64),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor

        if state.get("kernel") != self.kernel_name:
            raise ValueError(f"unknown GP kernel structure {state.get('kernel')!r}")
        X = state["X"].detach().cpu().numpy().astype(np.float64)
        y = state["y"].detach().cpu().numpy().astype(np.float64)
        theta = np.asarray(state["theta"], dtype=np.float64)
        if X.ndim != 2 or y.shape != (len(X),):
            raise ValueError(f"bad GP training data shapes {X.shape}, {y.shape}")
        template = self._kernel(X.shape[1], 1.0)
        if theta.shape != template.theta.shape:
            raise ValueError(f"GP theta has {theta.size} values, the kernel needs {template.theta.size}")
        gp = GaussianProcessRegressor(
            kernel=template.clone_with_theta(theta), alpha=self.alpha, normalize_y=True, optimizer=None
        )
        gp.fit(X, y)
        self.gp_ = gp
        self.X_train_, self.y_train_ = X, y


# --------------------------------------------------------------------------- MLP ensemble
class _BatchedMLP(nn.Module):
    """``M`` independent MLPs evaluated at once: ``(B, D)`` or ``(M, B, D)`` -> ``(M, B)``."""

    def __init__(self, n_members: int, dims: list[int], dropout: float, seed: int) -> None:
        super().__init__()
        self.dropout = float(dropout)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        gen = torch.Generator().manual_seed(int(seed))
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            # same distribution as nn.Linear's default init, drawn per member
            bound = 1.0 / math.sqrt(d_in)
            w = (torch.rand(n_members, d_in, d_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(n_members, 1, d_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.matmul(h, w) + b
            if i < last:
                h = nn.functional.silu(h)
                if self.training and self.dropout > 0:
                    keep = torch.rand(h.shape, generator=generator, device=h.device) >= self.dropout
                    h = h * keep / (1.0 - self.dropout)
        return h.squeeze(-1)


class MLPEnsemble(LatentPredictor):
    """Ensemble of small MLPs (torch); mean and spread of the members.

    Each member: ``D -> hidden... -> 1`` with SiLU and dropout, trained with AdamW
    (Adam with decoupled weight decay) on standardized inputs and targets, on its own
    bootstrap sample of the training rows, from its own initialisation.  A shared
    ``val_fraction`` of the rows is held out for early stopping (patience in epochs;
    each member keeps its best epoch).  All members train together as one batched
    network, so an ensemble costs about as much as one model.

    ``device="auto"`` picks cuda when available; it is resolved once, at construction.
    """

    kind = "mlp"

    def __init__(
        self,
        n_members: int = 5,
        hidden: tuple[int, ...] | list[int] = (256, 256),
        dropout: float = 0.1,
        weight_decay: float = 1e-4,
        lr: float = 1e-3,
        batch_size: int = 64,
        max_epochs: int = 300,
        patience: int = 20,
        val_fraction: float = 0.1,
        bootstrap: bool = True,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError("n_members must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be within [0, 1)")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError("val_fraction must be within [0, 1)")
        self.n_members = int(n_members)
        self.hidden = [int(h) for h in hidden]
        self.dropout = float(dropout)
        self.weight_decay = float(weight_decay)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.patience = int(patience)
        self.val_fraction = float(val_fraction)
        self.bootstrap = bool(bootstrap)
        self._device_arg = device
        self.device = _resolve_device(device)
        self.model_: _BatchedMLP | None = None
        self.x_mean_: Tensor | None = None
        self.x_std_: Tensor | None = None
        self.y_mean_: Tensor | None = None
        self.y_std_: Tensor | None = None
        self.epochs_: int = 0

    def get_params(self) -> dict[str, Any]:
        return {
            "n_members": self.n_members,
            "hidden": list(self.hidden),
            "dropout": self.dropout,
            "weight_decay": self.weight_decay,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "val_fraction": self.val_fraction,
            "bootstrap": self.bootstrap,
        }

    def _runtime_kwargs(self) -> dict[str, Any]:
        return {"device": self.device}

    # ---------------------------------------------------------------- training
    def _fit(self, Z: np.ndarray, y: np.ndarray, seed: int) -> None:
        dev = self.device
        n, dim = Z.shape
        M = self.n_members
        rng = np.random.default_rng(seed)

        x_mean = Z.mean(0)
        x_std = Z.std(0)
        x_std[x_std < 1e-8] = 1.0
        y_mean = float(y.mean())
        y_std = float(y.std()) or 1.0
        if y_std < 1e-12:
            y_std = 1.0
        self.x_mean_ = torch.tensor(x_mean, dtype=torch.float32, device=dev)
        self.x_std_ = torch.tensor(x_std, dtype=torch.float32, device=dev)
        self.y_mean_ = torch.tensor(y_mean, dtype=torch.float32, device=dev)
        self.y_std_ = torch.tensor(y_std, dtype=torch.float32, device=dev)

        X = (torch.tensor(Z, dtype=torch.float32, device=dev) - self.x_mean_) / self.x_std_
        Y = torch.tensor((y - y_mean) / y_std, dtype=torch.float32, device=dev)

        perm = rng.permutation(n)
        n_val = int(round(self.val_fraction * n)) if n >= 20 else 0
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        n_tr = len(tr_idx)
        if self.bootstrap:
            member_idx = np.stack([rng.choice(tr_idx, n_tr, replace=True) for _ in range(M)])
        else:
            member_idx = np.stack([tr_idx] * M)
        member_idx_t = torch.as_tensor(member_idx, device=dev)
        Xv, Yv = X[torch.as_tensor(val_idx, device=dev)], Y[torch.as_tensor(val_idx, device=dev)]

        model = _BatchedMLP(M, [dim, *self.hidden, 1], self.dropout, seed).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = torch.Generator(device=dev).manual_seed(int(seed))

        best_loss = torch.full((M,), float("inf"), device=dev)
        best_params = [p.detach().clone() for p in model.parameters()]
        since_best = torch.zeros(M, dtype=torch.long, device=dev)
        bs = max(1, min(self.batch_size, n_tr))
        epoch = 0
        for epoch in range(1, self.max_epochs + 1):
            model.train()
            order = torch.argsort(torch.rand(M, n_tr, generator=gen, device=dev), dim=1)
            shuffled = torch.gather(member_idx_t, 1, order)
            for start in range(0, n_tr, bs):
                idx = shuffled[:, start : start + bs]  # (M, b)
                pred = model(X[idx], generator=gen)  # (M, b)
                loss = ((pred - Y[idx]) ** 2).mean(dim=1).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if n_val == 0:
                continue
            model.eval()
            with torch.no_grad():
                val_loss = ((model(Xv) - Yv) ** 2).mean(dim=1)  # (M,)
                improved = val_loss < best_loss
                best_loss = torch.where(improved, val_loss, best_loss)
                since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
                if bool(improved.any()):
                    for bp, p in zip(best_params, model.parameters()):
                        bp[improved] = p.detach()[improved]
            if bool((since_best >= self.patience).all()):
                break
        if n_val:
            with torch.no_grad():
                for bp, p in zip(best_params, model.parameters()):
                    p.copy_(bp)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model_ = model
        self.epochs_ = epoch
        logger.debug(
            "MLP ensemble: %d members, %d epochs, best val MSE (standardized) %s",
            M,
            epoch,
            best_loss.tolist() if n_val else "n/a",
        )

    # ---------------------------------------------------------------- prediction
    def _members(self, z: Tensor) -> Tensor:
        """Standardized-in, original-units-out member predictions: ``(B, D)`` -> ``(M, B)``."""
        assert self.model_ is not None
        self.model_.eval()
        x = (z - self.x_mean_) / self.x_std_
        return self.model_(x) * self.y_std_ + self.y_mean_

    def _predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, stds = [], []
        with torch.no_grad():
            for start in range(0, len(Z), _PREDICT_CHUNK):
                z = torch.tensor(Z[start : start + _PREDICT_CHUNK], dtype=torch.float32, device=self.device)
                out = self._members(z).double()
                means.append(out.mean(0).cpu().numpy())
                std = out.std(0) if out.shape[0] > 1 else torch.zeros_like(out[0])
                stds.append(std.cpu().numpy())
        return np.concatenate(means), np.concatenate(stds)

    def _torch_mean_std(self, z: Tensor) -> tuple[Tensor, Tensor]:
        out = self._members(z.to(device=self.device, dtype=torch.float32))
        std = out.std(0) if out.shape[0] > 1 else torch.zeros_like(out[0])
        return out.mean(0), std

    def torch_forward(self, z: Tensor) -> Tensor:
        """Differentiable ensemble mean: ``z (B, D)`` -> ``(B,)`` in the units of ``y``.

        The result lives on ``z``'s device; gradients flow back to ``z``.
        """
        if self.model_ is None:
            raise RuntimeError("MLPEnsemble is not fitted; call fit() first")
        if z.dim() != 2 or z.shape[1] != self.dim_:
            raise ValueError(f"z must have shape (B, {self.dim_}), got {tuple(z.shape)}")
        return self._torch_mean_std(z)[0].to(z.device)

    def gradient_ascent(
        self,
        z0: Any,
        steps: int = 50,
        lr: float = 0.05,
        maximize: bool = True,
        kappa: float = 0.0,
        prior_weight: float = 0.0,
        bound: float | None = 3.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Optimize many start points at once with Adam: ``z0 (B, D)`` -> ``(z (B, D), pred (B,))``.

        Objective per point (maximized): ``s * mean - kappa * std - prior_weight * ||z||^2 / 2``
        with ``s = +1`` when ``maximize`` else ``-1``; ``kappa > 0`` is pessimistic
        (penalizes uncertain regions), ``prior_weight`` pulls toward the N(0, I) prior.
        After every step each coordinate is clipped to ``[-bound, bound]`` (``None``:
        no clipping), keeping points where the decoder was trained.  Deterministic.
        Returns the final points and their predicted mean (units of ``y``).
        """
        if self.model_ is None:
            raise RuntimeError("MLPEnsemble is not fitted; call fit() first")
        Z0 = _as_2d(z0, "z0")
        if Z0.shape[1] != self.dim_:
            raise ValueError(f"z0 has {Z0.shape[1]} columns, the predictor was fitted on {self.dim_}")
        if bound is not None and bound <= 0:
            raise ValueError("bound must be positive or None")
        sign = 1.0 if maximize else -1.0
        z = torch.tensor(Z0, dtype=torch.float32, device=self.device)
        if bound is not None:
            n_out = int((z.abs() > bound).any(1).sum())
            if n_out:
                logger.info("gradient_ascent: %d start points clipped to the bound %.3g", n_out, bound)
            z = z.clamp(-bound, bound)
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        with torch.enable_grad():
            for _ in range(int(steps)):
                mean, std = self._torch_mean_std(z)
                objective = sign * mean
                if kappa:
                    objective = objective - kappa * std
                if prior_weight:
                    objective = objective - 0.5 * prior_weight * (z**2).sum(1)
                (grad,) = torch.autograd.grad(-objective.sum(), z)
                z.grad = grad
                opt.step()
                if bound is not None:
                    with torch.no_grad():
                        z.clamp_(-bound, bound)
        z_final = z.detach().cpu().numpy().astype(np.float64)
        return z_final, self.predict(z_final)[0]

    # ---------------------------------------------------------------- serialization
    def _state(self) -> dict[str, Any]:
        assert self.model_ is not None
        return {
            "weights": [w.detach().cpu().clone() for w in self.model_.weights],
            "biases": [b.detach().cpu().clone() for b in self.model_.biases],
            "x_mean": self.x_mean_.detach().cpu().clone(),  # type: ignore[union-attr]
            "x_std": self.x_std_.detach().cpu().clone(),  # type: ignore[union-attr]
            "y_mean": self.y_mean_.detach().cpu().clone(),  # type: ignore[union-attr]
            "y_std": self.y_std_.detach().cpu().clone(),  # type: ignore[union-attr]
            "epochs": int(self.epochs_),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        weights, biases = list(state["weights"]), list(state["biases"])
        dims = [int(weights[0].shape[1])] + [int(w.shape[2]) for w in weights]
        if dims[1:-1] != self.hidden or dims[-1] != 1 or len(biases) != len(weights):
            raise ValueError(f"layer shapes {dims} do not match hidden={self.hidden}")
        if int(weights[0].shape[0]) != self.n_members:
            raise ValueError(f"{weights[0].shape[0]} members stored, params say {self.n_members}")
        model = _BatchedMLP(self.n_members, dims, self.dropout, seed=0)
        with torch.no_grad():
            for p, t in zip(model.weights, weights):
                if p.shape != t.shape:
                    raise ValueError(f"weight shape {tuple(t.shape)} != expected {tuple(p.shape)}")
                p.copy_(t)
            for p, t in zip(model.biases, biases):
                if p.shape != t.shape:
                    raise ValueError(f"bias shape {tuple(t.shape)} != expected {tuple(p.shape)}")
                p.copy_(t)
        model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model_ = model
        dev = self.device
        self.x_mean_ = state["x_mean"].to(dev, torch.float32)
        self.x_std_ = state["x_std"].to(dev, torch.float32)
        self.y_mean_ = state["y_mean"].to(dev, torch.float32)
        self.y_std_ = state["y_std"].to(dev, torch.float32)
        if self.x_mean_.shape != (dims[0],) or self.x_std_.shape != (dims[0],):
            raise ValueError("input scaling does not match the input dimension")
        self.epochs_ = int(state.get("epochs", 0))


# --------------------------------------------------------------------------- factory
def make_predictor(kind: str = "mlp", **kwargs: Any) -> LatentPredictor:
    """Build an unfitted predictor: ``"mlp"`` (:class:`MLPEnsemble`) or ``"gp"`` (:class:`GPPredictor`)."""
    key = kind.lower().strip()
    aliases = {"mlp": "mlp", "ensemble": "mlp", "mlp_ensemble": "mlp", "gp": "gp", "gaussian_process": "gp"}
    if key not in aliases:
        raise ValueError(f"unknown predictor kind {kind!r}; choose 'mlp' or 'gp'")
    return LatentPredictor._registry[aliases[key]](**kwargs)
