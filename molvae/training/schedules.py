"""Per-step settings of a training run: the learning rate, the KL weight, bf16 autocast.

Both schedules span all ``epochs`` of the run (``max_steps`` / ``max_hours`` stop inside them).
The KL schedules themselves are :func:`molvae.training.losses.kl_beta`.
"""

from __future__ import annotations

import logging
import math

import torch

from molvae.config import TrainConfig
from molvae.training.losses import kl_beta
from molvae.utils.device import native_bf16

__all__ = ["Schedules", "lr_factor", "use_bf16"]

logger = logging.getLogger(__name__)


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
        if device.type == "cpu" and not native_bf16(device):
            # seen on a 2-core AMD EPYC without AVX-512: 17 s a step against 1.35 s in float32
            logger.warning("precision='bf16' on a CPU without native bfloat16 products (AVX-512-BF16 or AMX): "
                           "autocast emulates them, more than 10x slower a step than float32; "
                           "use precision='auto' or 'fp32' on this machine")
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
