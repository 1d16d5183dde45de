"""A training run's state and files: where training is (step, epoch, best validation loss, the
open log interval), the checkpoints that carry it (``last.pt`` for resume, ``best.pt``),
``metrics.csv`` and ``conditions.npz``.

Every file but ``metrics.csv`` (appended row by row) is written atomically
(:mod:`molvae.utils.io`): a run killed at any moment leaves each file old or new, never half.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from molvae.config import TrainConfig
from molvae.data import TokenData
from molvae.utils.io import atomic_path
from molvae.vae import conditions as cond_mod
from molvae.vae.checkpoint import load_checkpoint, save_checkpoint
from molvae.vae.model import MolVAE

__all__ = [
    "TrainingError", "TrainingState", "MetricsLog", "METRIC_FIELDS", "read_resume_checkpoint", "restore", "condition_values",
]

logger = logging.getLogger(__name__)

# what a checkpoint needs to resume from it
RESUME_KEYS = ("train_config", "optimizer", "step", "epoch", "batch_in_epoch")
_COUNTS = ("correct", "tokens", "n")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def read_resume_checkpoint(path: Path) -> dict:
    """``last.pt`` of a run to resume: a checkpoint with its training state, or a clear error."""
    if not path.exists():
        raise FileNotFoundError(f"--resume: no {path} to resume from")
    ckpt = load_checkpoint(path)
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise TrainingError(f"--resume: {path} holds a model but no training state ({', '.join(missing)} missing)")
    return ckpt


@dataclasses.dataclass
class TrainingState:
    """Where a run is: optimizer steps done, epoch, the batch the epoch (re)starts at, best validation
    loss, evaluations without improvement (early stopping), the running sums of the log interval."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = float("inf")
    bad_evals: int = 0
    window: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.window:
            self.reset_window()

    def reset_window(self) -> None:
        self.window = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "correct": 0, "tokens": 0, "n": 0}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> TrainingState:
        state = cls(step=int(ckpt["step"]), epoch=int(ckpt["epoch"]), batch_in_epoch=int(ckpt["batch_in_epoch"]),
                    best=float(ckpt["best_val"]), bad_evals=int(ckpt["bad_evals"]))
        if ckpt.get("log_window"):  # the log interval running when the run stopped
            state.window.update({k: (int(v) if k in _COUNTS else v) for k, v in ckpt["log_window"].items()})
        return state

    def improved(self, val_loss: float) -> bool:
        """Record a validation loss: True when it is the best so far (then ``bad_evals`` restarts)."""
        if val_loss < self.best - 1e-4:
            self.best, self.bad_evals = val_loss, 0
            return True
        self.bad_evals += 1
        return False

    def save(self, path: Path, model: MolVAE, opt: torch.optim.Optimizer, cfg: TrainConfig, meta: dict,
             batch_in_epoch: int, device: torch.device) -> None:
        """Write the model with everything resume needs; ``batch_in_epoch``: the next batch to train."""
        extra = {
            "train_config": dataclasses.asdict(cfg),
            "optimizer": opt.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": batch_in_epoch,
            "best_val": self.best,
            "bad_evals": self.bad_evals,
            "rng_cpu": torch.get_rng_state(),
            "log_window": {k: float(v) for k, v in self.window.items()},
        }
        if device.type == "cuda":
            extra["rng_cuda"] = torch.cuda.get_rng_state()
        metadata = dict(meta, step=self.step, epoch=self.epoch)
        save_checkpoint(path, model.checkpoint_dict(metadata=metadata, **extra))


def restore(ckpt: dict, model: MolVAE, opt: torch.optim.Optimizer, device: torch.device) -> TrainingState:
    """Weights, optimizer state and random state of a resumed run; its :class:`TrainingState`."""
    model.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ckpt:
        torch.cuda.set_rng_state(ckpt["rng_cuda"])
    return TrainingState.from_checkpoint(ckpt)


METRIC_FIELDS = [
    "step", "epoch", "phase", "elapsed_s", "loss", "recon", "kl", "beta", "lr", "token_acc",
    "val_loss", "val_recon", "val_kl", "val_token_acc", "active_units", "mutual_info", "recon_exact",
    "prior_valid", "prior_unique", "prior_novel", "prior_faithful",
]


class MetricsLog:
    """metrics.csv: one row per log interval (phase=train) or validation (phase=val).

    A resumed run keeps the columns of the file it appends to.
    """

    def __init__(self, path: Path, latent_dim: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        self.fields = METRIC_FIELDS + [f"kl_d{d}" for d in range(latent_dim)]
        if path.exists():
            with open(path) as fh:
                header = fh.readline().strip()
            if header:
                self.fields = header.split(",")
            elif enabled:
                path.unlink()

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        if not self.path.exists():
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.fields)
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields, extrasaction="ignore").writerow(row)


def condition_values(
    out: Path, data: TokenData, smiles: Sequence[str], names: Sequence[str], data_hash: str, progress: bool,
    write: bool,
) -> np.ndarray:
    """Raw property values (len(data), k) of the tokenized training molecules, NaN where RDKit fails.

    Computed once per run and kept in ``out/conditions.npz`` (written when ``write``; a resumed
    run reads them back).
    """
    path = out / "conditions.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if (f["names"].tolist() == list(names) and str(f["data_hash"]) == data_hash
                        and f["values"].shape == (len(data), len(names))):
                    return f["values"]
        except (OSError, KeyError, ValueError) as err:
            logger.warning("%s is unreadable (%s): computing the properties again", path, err)
    rows = [smiles[i] for i in data.index]
    values, _ = cond_mod.training_values(rows, names, progress=progress)
    if write:
        with atomic_path(path) as tmp:
            np.savez(tmp, names=np.array(list(names)), data_hash=np.array(data_hash), values=values)
    return values
