"""A molecule proposed for scoring, and the ledger record it starts."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Candidate", "new_record"]


@dataclass
class Candidate:
    """A canonical SMILES with where it came from and, once known, its constraint verdict."""

    smiles: str
    z_prop: np.ndarray | None = None  # the point that proposed it
    z_mean: np.ndarray | None = None  # its own posterior mean
    source: str = ""  # "start", "prior", "mutation" or the strategy's name
    check: dict | None = None  # Constraints.check's verdict


def new_record(c: Candidate, status: str, n_objectives: int, strategy: str, round_: int, worker: str) -> dict:
    """The ledger record of ``c`` before it is scored (see :mod:`molvae.optimization.records`)."""
    chk = c.check or {"props": {}, "feasible": True, "reasons": []}
    return {
        "smiles": c.smiles,
        "status": status,
        "call": None,
        "values": [None] * n_objectives,
        "score": None,
        "feasible": bool(chk["feasible"]),
        "reasons": "; ".join(chk["reasons"]),
        "props": dict(chk["props"]),
        "source": c.source,
        "strategy": strategy,
        "round": round_,
        "worker": worker,
        "z": "mean" if c.z_mean is not None and np.isfinite(c.z_mean).all() else "none",
        "time": round(time.time(), 3),
    }
