"""Objectives: what ``optimize(objective=...)`` accepts, turned into batch functions that never raise.

A property name (:data:`molvae.properties.PROPERTIES`), a PMO / GuacaMol task name
(:data:`molvae.oracles.PMO_ORACLES`), a dict of property weights (one objective, the weighted
sum) or a callable ``list[str] -> values``; a list of these for several objectives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from molvae.oracles import PMO_ORACLES, get_oracle
from molvae.properties import PROPERTIES, compute, score

__all__ = ["Objective", "parse_objectives"]

logger = logging.getLogger(__name__)


@dataclass
class Objective:
    """One objective: ``fn(list[str]) -> values``, NaN = failed."""

    name: str
    fn: Callable[[list[str]], Any]
    direction: str = "maximize"
    components: tuple[str, ...] = ()  # properties of a weighted sum (reported as columns)

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    def __call__(self, smiles: list[str]) -> tuple[np.ndarray, str | None]:
        """Values (NaN where failed or not finite) and the error message when the whole batch failed."""
        if not smiles:
            return np.empty(0), None
        try:
            out = self.fn(list(smiles))
            if isinstance(out, pd.Series):
                out = out.to_numpy()
            arr = np.asarray(out, dtype=float).reshape(-1)
            if arr.shape[0] != len(smiles):
                raise ValueError(f"returned {arr.shape[0]} values for {len(smiles)} molecules")
        except Exception as exc:  # a failing objective fails this batch only
            msg = f"{type(exc).__name__}: {exc}"
            logger.error("objective %r failed on a batch of %d molecules (%s); they get NaN", self.name, len(smiles), msg)
            return np.full(len(smiles), np.nan), msg
        arr = arr.astype(np.float64, copy=True)
        arr[~np.isfinite(arr)] = np.nan
        return arr, None


def _property_fn(name: str) -> Callable[[list[str]], np.ndarray]:
    def fn(smiles: list[str]) -> np.ndarray:
        return score(smiles, name, n_jobs=1)

    fn.__name__ = name
    return fn


def _weighted_fn(weights: dict[str, float]) -> Callable[[list[str]], np.ndarray]:
    def fn(smiles: list[str]) -> np.ndarray:
        table = compute(smiles, list(weights), n_jobs=1)
        total = np.zeros(len(smiles))
        for name, w in weights.items():
            total = total + w * table[name].to_numpy(dtype=np.float64)
        return total

    return fn


def _weighted_name(weights: dict[str, float]) -> str:
    """``{"qed": 1, "sa": -0.2}`` -> ``"qed-0.2*sa"``."""
    parts: list[str] = []
    for name, w in weights.items():
        term = name if w == 1 else f"-{name}" if w == -1 else f"{w:g}*{name}"
        parts.append(term if not parts or term.startswith("-") else "+" + term)
    return "".join(parts)


def _parse_one(spec: Any, direction: str, index: int) -> Objective:
    if isinstance(spec, str):
        if spec in PROPERTIES:
            return Objective(spec, _property_fn(spec), direction)
        if spec in PMO_ORACLES:  # GuacaMol / PMO tasks by name (needs the guacamol package)
            return Objective(spec, get_oracle(spec), direction)
        raise ValueError(
            f"unknown objective {spec!r}; use a property ({', '.join(PROPERTIES)}), a PMO task "
            f"({', '.join(PMO_ORACLES)}), a dict of weights or a callable"
        )
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("an objective given as weights needs at least one property")
        weights = {str(k): float(v) for k, v in spec.items()}
        unknown = [k for k in weights if k not in PROPERTIES]
        if unknown:
            raise ValueError(f"unknown properties in the objective weights: {unknown}; available: {', '.join(PROPERTIES)}")
        return Objective(_weighted_name(weights), _weighted_fn(weights), direction, components=tuple(weights))
    if callable(spec):
        name = getattr(spec, "__name__", None) or type(spec).__name__
        if not name.isidentifier() or name == "<lambda>":
            name = f"objective_{index}" if index else "objective"
        return Objective(name, spec, direction)
    raise TypeError(f"objective must be a property name, a dict of weights or a callable, got {type(spec).__name__}")


def parse_objectives(objective: Any, direction: str | Sequence[str]) -> list[Objective]:
    """The objectives of ``optimize(objective, direction=...)``, with unique names (the history's columns)."""
    specs = list(objective) if isinstance(objective, (list, tuple)) else [objective]
    if not specs:
        raise ValueError("no objective given")
    directions = [direction] * len(specs) if isinstance(direction, str) else list(direction)
    if len(directions) != len(specs):
        raise ValueError(f"{len(specs)} objectives but {len(directions)} directions")
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {d!r}")
    objs = [_parse_one(s, d, i) for i, (s, d) in enumerate(zip(specs, directions))]
    seen: dict[str, int] = {}
    for o in objs:
        if o.name in seen:
            seen[o.name] += 1
            o.name = f"{o.name}_{seen[o.name]}"
        else:
            seen[o.name] = 0
    return objs
