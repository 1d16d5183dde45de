"""Property conditions of a conditional VAE: q(z|x,c) and p(x|z,c).

A conditional model is trained on named RDKit properties (any name of
:data:`molvae.properties.PROPERTIES`, e.g. ``logp``, ``qed``, ``sa``, ``mw``, ``tpsa``).  Each
property is standardized with the training set's mean and standard deviation, and the
condition vector the networks see is ``c = [standardized values * mask, mask]`` (width twice
the number of properties): a property whose mask is 0 is *unknown*.  Training masks each
property independently (``TrainConfig.condition_dropout``), so a model trained on five
properties can be asked for one of them and marginalizes the others.

The encoder sees c concatenated with its summary of the molecule (before the posterior
layer), the decoder sees c concatenated with z wherever it takes z (initial state and every
step's input).  Without conditions (``ModelConfig.n_conditions == 0``) the layers are exactly
those of the unconditional model.

This module holds everything but the layers: property computation for a training set,
standardization (:class:`ConditionSpec`), condition vectors from user input, training-time
masking, the checkpoint entry, and widening an unconditional state dict for fine-tuning.

>>> spec = ConditionSpec(("logp", "qed"), (2.0, 0.6), (1.0, 0.2))
>>> spec.from_mapping({"logp": 3.0}, 1).tolist()
[[1.0, 0.0, 1.0, 0.0]]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from molvae.chem import standardize
from molvae.properties import PROPERTIES, compute

if TYPE_CHECKING:  # pragma: no cover
    from molvae.config import ModelConfig
    from molvae.vae.model import MolVAE

__all__ = [
    "ConditionSpec",
    "check_names",
    "property_values",
    "training_values",
    "condition_tensor",
    "append_condition",
    "mask_conditions",
    "molecule_condition",
    "widen_state",
    "spec_from_checkpoint",
]

logger = logging.getLogger(__name__)

# properties per chunk when a training set is scored (one progress step each)
CHUNK = 100_000


def check_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validated condition names (a comma-separated string or a sequence), in order, without repeats.

    Any scorer of :data:`molvae.properties.PROPERTIES` is allowed; ``similarity`` and
    ``substructure`` are not (they need a reference), nor are empty or repeated names.
    """

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [str(n).strip() for n in names]
    if any(not n for n in names):
        raise ValueError("condition names must not be empty (e.g. conditions=['logp', 'qed'])")
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown condition properties {unknown}; choose from {', '.join(PROPERTIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"condition properties repeat: {names}")
    return tuple(names)


@dataclass(frozen=True)
class ConditionSpec:
    """Names of the condition properties and the training set's mean and std of each."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        k = len(self.names)
        if k == 0 or len(self.mean) != k or len(self.std) != k:
            raise ValueError(f"condition spec needs one mean and one std per name: {self.names}, {self.mean}, {self.std}")
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"condition statistics must be finite with std > 0: mean {self.mean}, std {self.std}")

    @property
    def dim(self) -> int:
        """Width of the condition vector: values and mask."""
        return 2 * len(self.names)

    @classmethod
    def fit(cls, names: Sequence[str], values: np.ndarray) -> ConditionSpec:
        """Mean and std (floored at 1e-6 of the scale, 1.0 for a constant) of ``values`` (N, k)."""
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return cls(tuple(names), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def vector(self, values: np.ndarray) -> np.ndarray:
        """Condition vectors (N, 2k) float32 from raw property values (N, k); NaN = unknown."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.names):
            raise ValueError(f"condition values must be (N, {len(self.names)}), got {values.shape}")
        known = np.isfinite(values)
        std = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return np.concatenate([np.where(known, std, 0.0), known], axis=1).astype(np.float32)

    def from_mapping(self, condition: Mapping[str, object], n: int) -> np.ndarray:
        """Condition vectors (n, 2k) from ``{name: value}``; a value is a number (all rows) or n numbers.

        Names not given, and NaN values, are unknown.  An unknown name is a ValueError.
        """
        if not isinstance(condition, Mapping):
            raise ValueError(f"a condition is a mapping of property names to values, e.g. {{'logp': 2.5}}; got {condition!r}")
        unknown = [k for k in condition if k not in self.names]
        if unknown:
            raise ValueError(f"this model is not conditioned on {unknown}; its conditions are {', '.join(self.names)}")
        values = np.full((n, len(self.names)), np.nan)
        for j, name in enumerate(self.names):
            if name not in condition:
                continue
            try:
                v = np.asarray(condition[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"condition {name}={condition[name]!r} is not a number") from None
            if v.ndim > 1 or (v.ndim == 1 and len(v) != n):
                raise ValueError(f"condition {name}: give one value or {n} values, not shape {v.shape}")
            if np.isinf(v).any():
                raise ValueError(f"condition {name} must be finite (NaN: unknown), got {condition[name]!r}")
            values[:, j] = v
        return self.vector(values)

    def to_dict(self) -> dict:
        """The checkpoint entry: plain lists (loads with ``torch.load(weights_only=True)``)."""
        return {"names": list(self.names), "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, data: Mapping) -> ConditionSpec:
        names = data["names"]
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"condition names must be a list of strings, got {names!r}")
        mean, std = data["mean"], data["std"]
        if torch.is_tensor(mean):
            mean = mean.tolist()
        if torch.is_tensor(std):
            std = std.tolist()
        return cls(check_names(list(names)), tuple(float(m) for m in mean), tuple(float(s) for s in std))


def spec_from_checkpoint(ckpt: Mapping, config: ModelConfig) -> ConditionSpec | None:
    """The checkpoint's condition entry checked against its config (ValueError when damaged)."""
    entry = ckpt.get("conditions")
    if config.n_conditions < 0:
        raise ValueError(f"n_conditions must be >= 0, got {config.n_conditions}")
    if config.n_conditions == 0:
        if entry is not None:
            raise ValueError("it has a condition entry but its model takes no conditions")
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(f"its model takes {config.n_conditions} conditions but the condition entry is missing or damaged")
    try:
        spec = ConditionSpec.from_dict(entry)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"its condition entry is damaged: {err}") from None
    if len(spec.names) != config.n_conditions:
        raise ValueError(f"its condition entry names {len(spec.names)} properties, the model takes {config.n_conditions}")
    return spec


# ----------------------------------------------------------------------------- property values
def _as_trained(smiles: Sequence[str]) -> list[str]:
    """The molecule the tokenizer spells: the largest fragment of a multi-fragment SMILES."""

    return [(standardize(s) or s) if isinstance(s, str) and "." in s else s for s in smiles]


def property_values(
    smiles: Sequence[str], names: Sequence[str], progress: bool = False, n_jobs: int | None = None
) -> np.ndarray:
    """Raw property values (N, k) float64 of ``smiles`` (NaN where RDKit cannot compute one), in chunks."""

    smiles = list(smiles)
    out = np.full((len(smiles), len(names)), np.nan)
    starts = range(0, len(smiles), CHUNK)
    bar = tqdm(starts, desc=f"properties ({', '.join(names)})", unit="chunk", disable=not progress or len(starts) < 2,
               leave=False)
    for s in bar:
        chunk = _as_trained(smiles[s : s + CHUNK])
        out[s : s + CHUNK] = compute(chunk, list(names), n_jobs=n_jobs)[list(names)].to_numpy(dtype=np.float64)
    return out


def training_values(smiles: Sequence[str], names: Sequence[str], progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Property values (N, k) of a training set and the rows (N,) where all are known.

    Molecules where RDKit cannot compute a property are counted (per property) and logged
    with a warning; the caller leaves them out of training.
    """
    values = property_values(smiles, names, progress=progress)
    ok = np.isfinite(values).all(axis=1)
    if not ok.all():
        per = ", ".join(f"{n}: {int((~np.isfinite(values[:, j])).sum())}" for j, n in enumerate(names))
        logger.warning("%d of %d training molecules have a condition property RDKit cannot compute (%s); they are "
                       "left out", int((~ok).sum()), len(ok), per)
    return values, ok


# ----------------------------------------------------------------------------- condition vectors
def condition_tensor(model: MolVAE, condition: object, n: int) -> torch.Tensor | None:
    """A condition for ``n`` rows as a float32 tensor (n, 2k) on the model's device, or None.

    ``condition``: None (nothing known), a mapping ``{name: value or n values}`` (names left
    out are unknown) or a ready condition vector (2k,) / (n, 2k).  A condition for an
    unconditional model is a ValueError.
    """
    if condition is None:
        return None
    k2 = 2 * model.config.n_conditions
    if k2 == 0:
        raise ValueError("this model was trained without conditions: it cannot sample or decode for a property "
                         "condition (train one with mv.train(..., conditions=[...]) or use "
                         "mv.load_pretrained('moses-conditional'))")
    if isinstance(condition, Mapping):
        spec = model.conditions
        if spec is None:
            raise ValueError("this conditional model has no condition statistics (train it with mv.train)")
        return torch.as_tensor(spec.from_mapping(condition, n), device=model.device)
    c = torch.as_tensor(np.asarray(condition, dtype=np.float32) if not torch.is_tensor(condition) else condition)
    c = c.float().to(model.device)
    if c.ndim == 1:
        c = c.unsqueeze(0).expand(n, -1)
    if c.ndim != 2 or c.shape != (n, k2):
        raise ValueError(f"a condition vector must be ({n}, {k2}), got {tuple(c.shape)}")
    return c


def append_condition(model: MolVAE, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """``x`` (B, F) with the condition vector (B, 2k) appended; a conditional model's unknown
    condition (None) is all zeros, an unconditional model gets ``x`` back unchanged."""
    k2 = 2 * model.config.n_conditions
    if condition is None:
        if k2 == 0:
            return x
        return torch.cat([x, x.new_zeros(x.shape[0], k2)], dim=-1)
    if k2 == 0:
        raise ValueError("this model was trained without conditions: pass condition=None")
    if condition.shape != (x.shape[0], k2):
        raise ValueError(f"condition must be ({x.shape[0]}, {k2}), got {tuple(condition.shape)}")
    return torch.cat([x, condition.to(device=x.device, dtype=x.dtype)], dim=-1)


def mask_conditions(standardized: np.ndarray, dropout: float, device: torch.device) -> torch.Tensor:
    """Training conditions: each property of each molecule masked (unknown) with probability ``dropout``.

    ``standardized`` (B, k) known standardized values; the draw uses torch's global CPU
    generator, whose state training checkpoints keep, so a resumed run masks the same way.
    """
    values = torch.as_tensor(standardized, dtype=torch.float32)
    mask = (torch.rand(values.shape) >= dropout).float() if dropout > 0 else torch.ones_like(values)
    return torch.cat([values * mask, mask], dim=1).to(device, non_blocking=True)


def molecule_condition(model: MolVAE, smiles: Sequence[str], condition: object = None) -> np.ndarray | None:
    """Condition vectors (N, 2k) for encoding ``smiles``; None for an unconditional model.

    ``condition=None``: the molecules' own properties (NaN where RDKit cannot compute one:
    unknown); a mapping or a vector as in :func:`condition_tensor` (``{}``: nothing known).
    """
    if model.config.n_conditions == 0:
        if condition is not None:
            condition_tensor(model, condition, len(smiles))  # raises the usual error
        return None
    if condition is None:
        return model.conditions.vector(property_values(smiles, model.conditions.names))
    return condition_tensor(model, condition, len(smiles)).cpu().numpy()


# ----------------------------------------------------------------------------- fine-tuning
def widen_state(base: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``base`` (unconditional) weights shaped for ``target`` (conditional) layers.

    A tensor of the same shape is copied; one that only lacks trailing input columns (the
    condition inputs of the posterior layer, the latent-to-hidden layer and the decoder's
    first-layer input weights) is copied into the leading columns and the new columns are
    zero, so the widened model computes exactly the base model's function.
    """
    if set(base) != set(target):
        raise ValueError(f"the base model's layers differ: {sorted(set(base) ^ set(target))}")
    out = {}
    for name, t in target.items():
        b = base[name]
        if b.shape == t.shape:
            out[name] = b.detach().clone().to(t.dtype)
        elif b.ndim == 2 and t.ndim == 2 and b.shape[0] == t.shape[0] and b.shape[1] < t.shape[1]:
            w = torch.zeros_like(t)
            w[:, : b.shape[1]] = b.to(t.dtype)
            out[name] = w
        else:
            raise ValueError(f"cannot widen {name}: base {tuple(b.shape)}, target {tuple(t.shape)}")
    return out
