"""Constraints on the molecules the optimizer may score.

All but the bounds on objective values are checked without the oracle (such molecules are
recorded as infeasible and cost no call): Tanimoto similarity to reference molecules
(:mod:`molvae.chem.fingerprints`), required SMARTS, heavy atoms, bounds on RDKit properties
and novelty with respect to a training set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from molvae.chem import canonical_set, standardize
from molvae.chem.fingerprints import bulk_tanimoto, morgan_fingerprint
from molvae.optimization.objectives import Objective
from molvae.optimization.records import finite_or_none
from molvae.properties import PROPERTIES, _compile_smarts, compute, substructure

__all__ = ["Constraints"]


class Constraints:
    """The constraints of one run; :meth:`check` is the cheap part, :meth:`check_post` the bounds on objectives."""

    def __init__(
        self,
        objectives: list[Objective],
        min_similarity: float | None = None,
        references: Sequence[str] = (),
        smarts: str | Sequence[str] | None = None,
        bounds: Mapping[str, Sequence[float | None]] | None = None,
        novel: bool = False,
        train_smiles: Iterable[str] | None = None,
        max_heavy_atoms: int | None = None,
    ) -> None:
        self.min_similarity = None if min_similarity is None else float(min_similarity)
        self.references = [r for r in (standardize(s) for s in references) if r]
        self.ref_fps = [morgan_fingerprint(r) for r in self.references]
        if self.min_similarity is not None and not self.references:
            raise ValueError("min_similarity needs reference molecules: give start=[...] or similarity_to=...")
        smarts_list = [smarts] if isinstance(smarts, str) else list(smarts or [])
        for s in smarts_list:
            _compile_smarts(s)  # raises ValueError on an invalid pattern
        self.smarts = smarts_list
        self.pre_bounds: dict[str, tuple[float, float]] = {}
        self.post_bounds: dict[str, tuple[float, float]] = {}
        names = {o.name for o in objectives}
        for key, value in dict(bounds or {}).items():
            try:
                lo, hi = value
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{key!r}] must be a pair (low, high); use None for an open side") from None
            lo = -math.inf if lo is None else float(lo)
            hi = math.inf if hi is None else float(hi)
            if lo > hi:
                raise ValueError(f"bounds[{key!r}]: low {lo} > high {hi}")
            if key in PROPERTIES:
                self.pre_bounds[key] = (lo, hi)
            elif key in names:
                self.post_bounds[key] = (lo, hi)
            else:
                raise ValueError(f"bounds: unknown property {key!r}; use a property ({', '.join(PROPERTIES)}) or an objective name")
        self.novel = bool(novel)
        if novel and train_smiles is None:
            raise ValueError("novel=True needs train_smiles (the canonical SMILES of the training set)")
        # without novel=True the training set is reported (column ``novel``), not enforced
        self.train_set: set[str] | None = None if train_smiles is None else canonical_set(train_smiles)
        self.max_heavy_atoms = None if max_heavy_atoms is None else int(max_heavy_atoms)

    @property
    def property_columns(self) -> list[str]:
        return list(self.pre_bounds)

    def check(self, smiles: list[str]) -> list[dict[str, Any]]:
        """Cheap values and verdicts: one dict per molecule with ``props``, ``feasible``, ``reasons``."""
        n = len(smiles)
        names = list(dict.fromkeys(["heavy_atoms", *self.pre_bounds]))
        table = compute(smiles, names, n_jobs=1) if n else pd.DataFrame(columns=names)
        matches = [substructure(smiles, s, n_jobs=1) for s in self.smarts] if n else []
        out = []
        for i, smi in enumerate(smiles):
            props: dict[str, Any] = {k: finite_or_none(table[k].iat[i]) for k in names}
            reasons: list[str] = []
            ha = props["heavy_atoms"]
            if self.max_heavy_atoms is not None and (ha is None or ha > self.max_heavy_atoms):
                reasons.append(f"heavy_atoms {ha} > {self.max_heavy_atoms}")
            if self.smarts:
                ok = all(m[i] == 1.0 for m in matches)
                props["smarts_match"] = bool(ok)
                if not ok:
                    missing = [s for s, m in zip(self.smarts, matches) if m[i] != 1.0]
                    reasons.append(f"no match for SMARTS {', '.join(missing)}")
            if self.references:
                fp = morgan_fingerprint(smi)
                sims = bulk_tanimoto(fp, self.ref_fps) if fp is not None else []
                sim = float(max(sims)) if len(sims) else None
                props["similarity"] = sim
                if self.min_similarity is not None and (sim is None or sim < self.min_similarity):
                    reasons.append(f"similarity {sim if sim is None else round(sim, 3)} < {self.min_similarity}")
            for k, (lo, hi) in self.pre_bounds.items():
                v = props[k]
                if v is None or not lo <= v <= hi:
                    reasons.append(f"{k} {v if v is None else round(v, 3)} outside [{lo:g}, {hi:g}]")
            if self.train_set is not None:
                props["novel"] = smi not in self.train_set
                if self.novel and not props["novel"]:
                    reasons.append("in the training set")
            out.append({"props": props, "feasible": not reasons, "reasons": reasons})
        return out

    def check_post(self, values: dict[str, float | None]) -> list[str]:
        """Reasons why objective values break ``bounds`` on objective names (empty: none)."""
        reasons = []
        for k, (lo, hi) in self.post_bounds.items():
            v = values.get(k)
            if v is None or not lo <= v <= hi:
                reasons.append(f"{k} {v if v is None else round(v, 4)} outside [{lo:g}, {hi:g}]")
        return reasons
