"""The checkpoint format: one file of plain types and tensors, read with ``weights_only=True``.

A checkpoint is a dict with ``format`` ("molvae-checkpoint"), ``format_version``, the package
version, model config, tokenizer vocabulary, state dict, metadata and, when the model has
them, its learned prior and its condition statistics; training runs add the optimizer state
and step.  Nothing in it is unpickled as a class, so a foreign or hostile file fails with
:class:`CheckpointError` instead of executing code.

:func:`model_checkpoint` builds that dict from a model, :func:`model_from_checkpoint` builds
the model back (``MolVAE.save`` / ``MolVAE.load``), :func:`load_pretrained` reads a model
shipped inside the package.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from molvae._version import __version__
from molvae.config import ModelConfig, from_dict
from molvae.tokenizer import SelfiesTokenizer
from molvae.utils.device import resolve_device
from molvae.utils.io import atomic_write
from molvae.utils.paths import pretrained_dir
from molvae.vae.conditions import spec_from_checkpoint
from molvae.vae.prior import GaussianMixturePrior

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vae.model import MolVAE

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint",
    "model_checkpoint", "model_from_checkpoint", "load_pretrained",
]

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


def model_checkpoint(model: MolVAE, state: dict | None = None, metadata: dict | None = None, **extra) -> dict:
    """The checkpoint dict of ``model``: ``state`` (default: its state dict on the CPU), ``metadata``
    (added to the creation time) and ``extra`` entries (a training run's state)."""
    meta = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    meta.update(metadata or {})
    config = dataclasses.asdict(model.config)
    if not config["n_conditions"]:  # an unconditional checkpoint stays as earlier versions wrote it
        del config["n_conditions"]
    elif model.conditions is None:
        raise ValueError("a conditional model needs its condition statistics (model.conditions) to be saved")
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "molvae_version": __version__,
        "model_config": config,
        "tokenizer": model.tokenizer.to_dict(),
        "state_dict": state if state is not None else {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": meta,
    }
    if model.prior is not None:
        ckpt["prior"] = model.prior.to_dict()
    if model.conditions is not None:
        ckpt["conditions"] = model.conditions.to_dict()  # names, means, stds: plain lists
    ckpt.update(extra)
    return ckpt


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "auto", cls: type | None = None) -> MolVAE:
    """The model (``cls``, default :class:`~molvae.vae.model.MolVAE`) a checkpoint dict describes, in eval mode on ``device``.

    Content that does not fit together (shapes, sizes, vocabulary, prior, conditions) is a :class:`CheckpointError`.
    """

    if cls is None:
        from molvae.vae.model import MolVAE as cls
    try:
        tokenizer = SelfiesTokenizer.from_dict(ckpt["tokenizer"])
        config = from_dict(ModelConfig, ckpt["model_config"])
        model = cls(tokenizer, config)
        state = ckpt["state_dict"]
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise TypeError("state_dict must map names to tensors")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        metadata = ckpt.get("metadata", {})
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be a mapping")
        model.metadata = dict(metadata)
        model.conditions = spec_from_checkpoint(ckpt, model.config)
        if ckpt.get("prior") is not None:
            try:
                prior = GaussianMixturePrior.from_dict(ckpt["prior"])
            except (KeyError, TypeError, ValueError, RuntimeError) as err:
                raise ValueError(f"its learned prior is damaged: {err}") from None
            if prior.dim != model.latent_dim:
                raise ValueError(f"its learned prior has {prior.dim} dimensions, the model {model.latent_dim}")
            model.prior = prior
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint content is inconsistent: {err}") from None
    model.eval()
    return model.to(resolve_device(device))


def load_pretrained(name: str = "moses", device: str | torch.device = "auto") -> MolVAE:
    """The model shipped inside the package (``molvae/pretrained/NAME.pt``), no download."""
    from molvae.vae.model import MolVAE

    path = pretrained_dir() / f"{name}.pt"
    if not path.exists():
        available = sorted(p.stem for p in pretrained_dir().glob("*.pt")) if pretrained_dir().exists() else []
        raise FileNotFoundError(f"no shipped model {name!r} (available: {available or 'none'})")
    return MolVAE.load(path, device=device)
