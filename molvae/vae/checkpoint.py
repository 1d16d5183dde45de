"""The checkpoint format: one file of plain types and tensors, read with ``weights_only=True``.

A checkpoint is a dict with ``format`` ("molvae-checkpoint"), ``format_version``, the package
version, model config, tokenizer vocabulary, state dict and, for training runs, optimizer
state and step.  Nothing in it is unpickled as a class, so a foreign or hostile file fails
with :class:`CheckpointError` instead of executing code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from molvae._version import __version__
from molvae.utils.io import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "molvae-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable molvae checkpoint."""


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write ``ckpt`` (plain types and tensors only) atomically to ``path``."""
    with atomic_write(path, "wb") as fh:
        torch.save(ckpt, fh)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain types only) and check its format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (zero bytes): not a molvae checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a molvae checkpoint: it is corrupt, or it holds objects other than tensors and "
            "plain types, refusing to unpickle it"
        ) from None
    except Exception as err:  # any failure to read: corrupt, truncated or foreign
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {err}") from None
    try:  # torch's zip format carries CRC-32s that torch.load does not check
        bad = None
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
    except Exception as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: checksum mismatch in {bad}")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a molvae checkpoint (written by another program?)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path} has no valid format_version ({version!r}): not a molvae checkpoint")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, newer than this molvae "
            f"({__version__}) reads ({CHECKPOINT_VERSION}); upgrade molvae"
        )
    return ckpt
