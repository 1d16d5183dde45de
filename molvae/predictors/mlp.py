"""Ensemble of small torch MLPs on latent vectors: mean and spread of the members, and a
differentiable surrogate for gradient ascent in latent space (LIMO-style).

Saved state: per-layer weight and bias tensors of all members, the input and target
scaling, and the number of epochs trained.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molvae.predictors.base import PREDICT_CHUNK, LatentPredictor, as_2d
from molvae.utils.device import resolve_device

__all__ = ["MLPEnsemble"]

logger = logging.getLogger(__name__)


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
        self.device = resolve_device(device)
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
            for start in range(0, len(Z), PREDICT_CHUNK):
                z = torch.tensor(Z[start : start + PREDICT_CHUNK], dtype=torch.float32, device=self.device)
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
        Z0 = as_2d(z0, "z0")
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
