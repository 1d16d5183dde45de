"""Distributed training under torchrun: the process group, the barriers, one verdict for all ranks.

Outside torchrun (``WORLD_SIZE`` unset or 1) every method is a no-op and training runs as one
process.  Under torchrun each rank trains on its share of every global batch
(:class:`molvae.data.BucketBatchSampler`), gradients are averaged by DistributedDataParallel,
and rank 0 alone writes files and validates; the others wait for its verdict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from molvae.utils.device import resolve_device

__all__ = ["DistContext", "init_distributed"]


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes, its ``device``, and whether it
    created the process group (then :meth:`close` destroys it)."""

    rank: int
    world: int
    device: torch.device
    created: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it builds a cache), the others after it (they read the cache)."""
        if self.distributed and not self.is_main:
            dist.barrier()
        yield
        if self.distributed and self.is_main:
            dist.barrier()

    def share_verdict(self, verdict: bool) -> bool:
        """Rank 0's ``verdict`` on every rank (the others' argument is ignored)."""
        if not self.distributed:
            return verdict
        flag = torch.tensor([float(verdict)]) if self.is_main else torch.zeros(1)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a 1-D tensor (on the CPU)."""
        values = values.detach().float().cpu()
        if self.distributed:
            dist.all_reduce(values)
            values /= self.world
        return values

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` itself, or wrapped in DistributedDataParallel when there are several ranks."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        """Destroy the process group when this process created it."""
        if self.created:
            dist.destroy_process_group()
            self.created = False


def init_distributed(device_name: str) -> DistContext:
    """The context from torchrun's environment (``WORLD_SIZE``, ``LOCAL_RANK``); one process otherwise.

    Under torchrun each rank takes the CUDA device of its local rank (when the device is CUDA)
    and joins the process group (NCCL on CUDA, gloo on the CPU), creating it when needed.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return DistContext(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return DistContext(dist.get_rank(), dist.get_world_size(), device, created)
