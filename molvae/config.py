"""Frozen configuration dataclasses; TOML in and out; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from molvae.utils.io import atomic_write

__all__ = ["ModelConfig", "TrainConfig", "load_config", "save_config", "from_dict"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the VAE.  ``vocab_size`` and ``max_length`` come from the tokenizer."""

    vocab_size: int = 0
    max_length: int = 0
    embedding_dim: int = 64
    encoder_hidden_dim: int = 256
    encoder_layers: int = 1
    encoder_dropout: float = 0.0
    latent_dim: int = 64
    decoder_hidden_dim: int = 384
    decoder_layers: int = 2
    decoder_dropout: float = 0.0
    # property conditions (molvae.vae.conditions): 0 = unconditional, the layers exactly as before;
    # k > 0: the encoder's posterior layer and the decoder's z inputs take 2k more inputs
    n_conditions: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.  ``kl_schedule`` is one of constant / linear / sigmoid / cyclical."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    lr_min: float = 1e-5
    lr_schedule: str = "cosine"  # cosine | constant
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    beta: float = 1.0
    kl_schedule: str = "linear"
    kl_warmup_steps: int = 5000
    kl_start: float = 0.0
    kl_cycles: int = 4
    kl_cycle_ratio: float = 0.5
    free_bits: float = 0.05
    word_dropout: float = 0.1
    val_fraction: float = 0.01
    max_val: int = 5000
    early_stopping_patience: int = 3
    log_every: int = 200
    eval_every: int = 0  # steps between mid-epoch validations; 0: once an epoch
    checkpoint_every: int = 1000
    n_prior_samples: int = 1000
    max_molecules: int = 0  # 0: all
    max_hours: float = 0.0  # 0: no limit; otherwise stop cleanly after this wall time
    max_steps: int = 0  # 0: no limit; otherwise stop after this many optimizer steps (the schedules still span all epochs)
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0  # 0: torch default
    precision: str = "auto"  # auto (bf16 autocast on CUDA, float32 on CPU) | fp32 | bf16 (autocast, also on CPU)
    init_from: str = ""  # start from this model's weights, sizes and vocabulary ("pretrained": the shipped one)
    # property names (molvae.properties) to condition on: a conditional VAE (molvae.vae.conditions); () = none
    conditions: tuple[str, ...] = ()
    condition_dropout: float = 0.3  # probability that a property is masked (unknown) for a training molecule

    def __post_init__(self):
        # conditions may be given as a list or "logp,qed"; stored as a tuple (hashable, comparable)
        if isinstance(self.conditions, str):
            object.__setattr__(self, "conditions", tuple(v.strip() for v in self.conditions.split(",") if v.strip()))
        elif not isinstance(self.conditions, tuple):
            object.__setattr__(self, "conditions", tuple(self.conditions))
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {self.condition_dropout}")


def from_dict(cls: type, data: dict[str, Any]):
    """Build ``cls`` from a mapping, rejecting keys it does not know."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    typed = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            default = f.default
            if isinstance(default, tuple):
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{cls.__name__}.{f.name} must be a list of strings, got {value!r}")
                typed[f.name] = tuple(value)
            elif isinstance(default, bool):
                typed[f.name] = bool(value)
            elif isinstance(default, int) and not isinstance(value, bool):
                typed[f.name] = int(value)
            elif isinstance(default, float):
                typed[f.name] = float(value)
            else:
                typed[f.name] = value
    return cls(**typed)


def load_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """Read a TOML file with ``[model]`` and ``[train]`` tables."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{path}: unknown tables {unknown}; expected [model] and [train]")
    return from_dict(ModelConfig, data.get("model", {})), from_dict(TrainConfig, data.get("train", {}))


def _toml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def save_config(path: str | Path, model: ModelConfig, train: TrainConfig) -> None:
    """Write ``[model]`` and ``[train]`` tables that :func:`load_config` reads back (atomically)."""

    lines = []
    for name, cfg in (("model", model), ("train", train)):
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(cfg).items()]
        lines.append("")
    with atomic_write(path) as fh:
        fh.write("\n".join(lines))
