"""What the ledger stores per molecule: the keys of a study, the statuses of a record, JSON-safe floats.

A record is a plain dict (it travels through Optuna's storages as a trial user attribute):
``smiles``, ``status`` (one of the statuses below), ``call`` (1..budget once scored),
``values`` (one per objective, ``None`` = failed), ``score``, ``feasible``, ``reasons``,
``props`` (constraint properties), ``source``, ``strategy``, ``round``, ``worker``, ``z``
(``"mean"`` when the trial's params hold the molecule's latent mean) and ``time``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LEDGER_KEY", "ALIVE_KEY", "DEFAULT_STUDY_NAME", "SCORED", "PENDING", "INFEASIBLE", "OVER_BUDGET",
           "DUPLICATE", "INTERRUPTED", "finite_or_none"]

#: Trial user attribute holding a molecule's record in the ledger study.
LEDGER_KEY = "molvae"
#: Trial user attribute: the last sign of life of the worker holding a reservation (``stale_after``).
ALIVE_KEY = "molvae:alive"
DEFAULT_STUDY_NAME = "molvae-optimize"

SCORED = "scored"  # the oracle was called (score may be NaN when it failed)
PENDING = "pending"  # reserved, oracle call under way
INFEASIBLE = "infeasible"  # failed a constraint checked without the oracle; never scored
OVER_BUDGET = "over_budget"  # reserved, but other trials hold the whole budget
DUPLICATE = "duplicate"  # reserved, but an earlier trial holds the same molecule
INTERRUPTED = "interrupted"  # reserved by a worker that stopped (or died) before recording it


def finite_or_none(v: Any) -> float | None:
    """A finite float or None (JSON-friendly)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
