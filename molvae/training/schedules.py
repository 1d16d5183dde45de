"""Per-step settings of a training run: the learning rate, the KL weight, bf16 autocast.

Both schedules span all ``epochs`` of the run (``max_steps`` / ``max_hours`` stop inside them).
The KL schedules themselves are :func:`molvae.training.losses.kl_beta`.
"""

from __future__ import annotations

import math

import torch

from molvae.config import TrainConfig
from molvae.training.losses import kl_beta

__all__ = ["Schedules", "lr_factor", "use_bf16"]


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """The learning rate at ``step`` of ``total`` as a fraction of ``cfg.lr``: ``constant`` or ``cosine`` down to ``lr_min``."""
    if cfg.lr_schedule == "constant" or total <= 0:
        return 1.0
    if cfg.lr_schedule == "cosine":
        frac = min(step / total, 1.0)
        floor = cfg.lr_min / cfg.lr if cfg.lr > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; use cosine or constant")


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether training steps run under bfloat16 autocast (``TrainConfig.precision``; ``auto``: on CUDA)."""
    if precision == "auto":
        return device.type == "cuda"
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")


class Schedules:
    """The learning rate and KL weight of each optimizer step of a run of ``total_steps``."""

    def __init__(self, cfg: TrainConfig, total_steps: int):
        self.cfg = cfg
        self.total_steps = total_steps

    def lr(self, step: int) -> float:
        return self.cfg.lr * lr_factor(step, self.total_steps, self.cfg)

    def beta(self, step: int) -> float:
        c = self.cfg
        return kl_beta(step, c.kl_schedule, c.beta, c.kl_warmup_steps, c.kl_start, self.total_steps, c.kl_cycles,
                       c.kl_cycle_ratio)
