"""ELBO terms, KL annealing schedules and free bits.

Reconstruction NLL and KL are summed per molecule and averaged over the batch, so that
``beta`` and the free-bits threshold (nats per latent dimension) mean what they say.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["kl_per_dim", "free_bits_kl", "reconstruction_nll", "elbo_loss", "kl_beta", "SCHEDULES"]

SCHEDULES = ("constant", "linear", "sigmoid", "cyclical")


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per molecule and dimension: (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Penalized KL of a batch: sum over dimensions of max(batch-mean KL_d, lambda).

    A dimension whose batch-mean KL is below ``free_bits`` gets no gradient from this
    term; above it, the full gradient.  ``free_bits=0`` gives the plain summed KL.
    ``kl``: (B, D) -> scalar.
    """
    per_dim = kl.mean(dim=0)  # (D,)
    if free_bits > 0:
        per_dim = torch.clamp(per_dim, min=free_bits)
    return per_dim.sum()


def reconstruction_nll(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Summed token NLL per molecule, padding masked.  logits (B, T, V), targets (B, T) -> (B,)."""
    nll = F.cross_entropy(logits.transpose(1, 2).float(), targets, ignore_index=pad_id, reduction="none")
    return nll.sum(dim=1)


def elbo_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
    free_bits: float = 0.0,
    pad_id: int = 0,
) -> dict[str, torch.Tensor]:
    """Loss = mean_b NLL_b + beta * free-bits KL.  Returns loss, recon, kl (plain batch-mean KL), kl_per_dim."""
    recon = reconstruction_nll(logits, targets, pad_id).mean()
    kl = kl_per_dim(mu.float(), logvar.float())
    penalized = free_bits_kl(kl, free_bits)
    return {
        "loss": recon + beta * penalized,
        "recon": recon,
        "kl": kl.sum(dim=1).mean(),
        "kl_per_dim": kl.mean(dim=0).detach(),
    }


def kl_beta(
    step: int,
    schedule: str = "linear",
    beta: float = 1.0,
    warmup_steps: int = 5000,
    start: float = 0.0,
    total_steps: int | None = None,
    cycles: int = 4,
    ratio: float = 0.5,
) -> float:
    """KL weight at ``step`` (a pure function of the step).

    - ``constant``: ``beta`` always.
    - ``linear``: from ``start`` to ``beta`` over ``warmup_steps``, then ``beta``.
    - ``sigmoid``: ``start + (beta - start) * sigmoid(10 * (step / warmup_steps - 0.5))``;
      half-way at ``warmup_steps / 2``.
    - ``cyclical`` (Fu et al. 2019): ``cycles`` equal cycles over ``total_steps``; in each, the
      weight rises linearly from ``start`` to ``beta`` over the first ``ratio`` of the cycle and
      stays at ``beta`` for the rest.  After the last cycle: ``beta``.

    >>> kl_beta(2500, "linear", beta=1.0, warmup_steps=5000)
    0.5
    """
    if step < 0:
        raise ValueError("step must be >= 0")
    if schedule == "constant":
        return float(beta)
    if schedule == "linear":
        if warmup_steps <= 0 or step >= warmup_steps:
            return float(beta)
        return float(start + (beta - start) * step / warmup_steps)
    if schedule == "sigmoid":
        if warmup_steps <= 0:
            return float(beta)
        return float(start + (beta - start) / (1.0 + math.exp(-10.0 * (step / warmup_steps - 0.5))))
    if schedule == "cyclical":
        if not total_steps or total_steps <= 0:
            raise ValueError("the cyclical schedule needs total_steps")
        period = total_steps / cycles
        if step >= total_steps:
            return float(beta)
        tau = (step % period) / period
        if tau >= ratio:
            return float(beta)
        return float(start + (beta - start) * tau / ratio)
    raise ValueError(f"unknown KL schedule {schedule!r}; choose from {SCHEDULES}")
