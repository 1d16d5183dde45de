"""What :func:`molvae.optimize` returns: the history of every molecule considered, and views of it."""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from molvae.optimization.records import SCORED
from molvae.oracles import pmo_auc
from molvae.utils.io import atomic_path

__all__ = ["OptimizationResult", "pareto_ranks", "history_frame"]

_TAIL_COLUMNS = ["feasible", "status", "reasons", "strategy", "source", "worker", "trial", "time_s"]


@dataclass
class OptimizationResult:
    """What :func:`~molvae.optimization.run.optimize` returns.

    ``history``: one row per molecule considered: every molecule scored in the study (this
    run, earlier runs of the same study and other workers) and every molecule this run
    rejected by a constraint before scoring (``status="infeasible"``, no call spent).
    Columns: ``round`` (0 = start molecules), ``call`` (oracle call index, 1..budget in
    the study; empty when not scored), ``smiles``, ``score``, one column per objective,
    the property columns of constraints (``heavy_atoms``, ``similarity``,
    ``smarts_match``, bounded properties, ``novel``), ``feasible``, ``status``,
    ``reasons`` (why infeasible), ``strategy``, ``source`` ("start", "prior",
    "trust_region", "gradient", "optuna", "mutation"), ``worker``, ``trial`` (ledger trial
    number), ``time_s`` (seconds since the run started; negative for earlier runs).

    Two areas under top-10 curves, with different definitions: :meth:`pmo_auc` is PMO's
    AUC top-10 (the benchmark's number), :meth:`top10_curve_auc` the mean of the per-call
    top-10 mean of *feasible* molecules (:meth:`curve`).
    """

    history: pd.DataFrame
    objectives: list[str]
    directions: list[str]
    budget: int
    n_oracle_calls: int
    n_oracle_calls_this_run: int
    strategy: str
    elapsed_s: float
    stats: dict[str, Any] = field(default_factory=dict)
    study: Any = None

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def _scored(self) -> pd.DataFrame:
        """Every scored molecule (failed calls and infeasible ones included), in call order."""
        h = self.history
        if h.empty:
            return h
        return h[h["status"] == SCORED].sort_values("call", kind="stable")

    def _feasible(self) -> pd.DataFrame:
        h = self.history
        if h.empty:
            return h
        return h[(h["status"] == SCORED) & h["feasible"].astype(bool) & h["score"].notna()]

    def _ascending(self) -> bool:
        return not self.multi_objective and self.directions[0] == "minimize"

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best feasible scored molecules (all constraints met), best first.

        With several objectives, Pareto-optimal molecules come first (column
        ``pareto_rank``, 0 = on the front), then by ``score``.
        """
        df = self._feasible().copy()
        if self.multi_objective and len(df):
            df["pareto_rank"] = pareto_ranks(df[self.objectives].to_numpy(float), self.directions)
            df = df.sort_values(["pareto_rank", "score"], ascending=[True, False], kind="stable")
        else:
            df = df.sort_values("score", ascending=self._ascending(), kind="stable")
        return df.drop_duplicates("smiles").head(k).reset_index(drop=True)

    def pareto_front(self) -> pd.DataFrame:
        """Feasible molecules that no other feasible molecule dominates (all objectives)."""
        df = self._feasible()
        if not len(df):
            return df.copy()
        ranks = pareto_ranks(df[self.objectives].to_numpy(float), self.directions)
        front = df[ranks == 0].drop_duplicates("smiles")
        return front.sort_values(self.objectives[0], ascending=self.directions[0] == "minimize").reset_index(drop=True)

    @property
    def best(self) -> pd.Series | None:
        top = self.top(1)
        return None if top.empty else top.iloc[0]

    @property
    def best_score(self) -> float | None:
        b = self.best
        return None if b is None else float(b["score"])

    @property
    def best_smiles(self) -> str | None:
        b = self.best
        return None if b is None else str(b["smiles"])

    def curve(self) -> pd.DataFrame:
        """Best-so-far and top-10 mean of the feasible molecules after each oracle call.

        Columns ``call``, ``best``, ``top10_mean`` (NaN until 10 feasible molecules are
        scored) and ``top10_mean_so_far`` (the mean of those there are).
        """
        rows = []
        best: list[float] = []
        sign = -1.0 if self._ascending() else 1.0
        for _, r in self._scored().iterrows():
            if bool(r["feasible"]) and pd.notna(r["score"]):
                heapq.heappush(best, sign * float(r["score"]))
                if len(best) > 10:
                    heapq.heappop(best)
            top = sorted(best, reverse=True)
            rows.append({
                "call": int(r["call"]),
                "best": sign * top[0] if top else np.nan,
                "top10_mean": sign * float(np.mean(top)) if len(top) >= 10 else np.nan,
                "top10_mean_so_far": sign * float(np.mean(top)) if top else np.nan,
            })
        return pd.DataFrame(rows, columns=["call", "best", "top10_mean", "top10_mean_so_far"])

    def pmo_auc(self, top_n: int = 10, freq: int = 100) -> float:
        """PMO's AUC top-``top_n`` of this study (:func:`molvae.oracles.pmo_auc`), the benchmark's number.

        Over every scored molecule in call order, feasible or not (PMO counts every oracle
        call; a failed call scores 0), the top-``top_n`` mean taken every ``freq`` calls,
        divided by the budget.  Scores are taken as they are: PMO's tasks are maximized.
        """
        if self._ascending():
            raise ValueError("PMO's AUC is defined for maximized scores; this run minimizes its objective")
        scores = self._scored()["score"].to_numpy(dtype=float) if len(self.history) else np.zeros(0)
        return pmo_auc(scores, self.budget, top_n=top_n, freq=freq)

    def top10_curve_auc(self) -> float:
        """Mean over calls 1..budget of the top-10 mean of the *feasible* molecules (:meth:`curve`).

        Evaluated after every call (not every 100 as PMO's), over feasible molecules only, with
        0 until there are 10 of them and the final value held to the budget.  Not PMO's AUC
        (:meth:`pmo_auc`); it is the figure of the ``mutation_fraction`` table in
        ``docs/optimization.md``.
        """
        c = self.curve()
        if c.empty:
            return 0.0
        vals = c["top10_mean"].fillna(0.0).to_numpy()
        total = vals.sum() + vals[-1] * max(0, self.budget - len(vals))
        return float(total / self.budget)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the history (all molecules) to ``path`` (atomically: the old file or the new one, never half)."""
        with atomic_path(path) as tmp:
            self.history.to_csv(tmp, index=False)

    def summary(self) -> str:
        best = self.best_score
        return (
            f"{self.strategy}: {self.n_oracle_calls}/{self.budget} oracle calls "
            f"({self.n_oracle_calls_this_run} by this run) in {self.elapsed_s:.1f} s; "
            f"best {'n/a' if best is None else f'{best:.4g}'} ({self.best_smiles}); "
            f"{len(self._feasible())} feasible molecules scored"
        )

    def __repr__(self) -> str:
        return f"OptimizationResult({self.summary()})"


def pareto_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting rank of each row (0 = Pareto front); NaN rows rank last."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    S = values * signs
    n = len(S)
    ranks = np.full(n, -1, dtype=int)
    finite = np.isfinite(S).all(1)
    ranks[~finite] = n
    remaining = np.flatnonzero(finite)
    r = 0
    while len(remaining):
        sub = S[remaining]
        ge = (sub[:, None, :] >= sub[None, :, :]).all(-1)
        gt = (sub[:, None, :] > sub[None, :, :]).any(-1)
        dominated = (ge & gt).any(0)  # column j dominated by some row i
        front = remaining[~dominated]
        ranks[front] = r
        remaining = remaining[dominated]
        r += 1
    return ranks


def history_frame(records: Sequence[dict], objective_names: Sequence[str], t0: float) -> pd.DataFrame:
    """The ``history`` table of ledger records (see :class:`OptimizationResult`), in time order."""
    rows = []
    k = len(objective_names)
    for rec in records:
        row = {
            "round": rec.get("round"),
            "call": rec.get("call"),
            "smiles": rec.get("smiles"),
            "score": rec.get("score"),
        }
        for name, v in zip(objective_names, rec.get("values") or [None] * k):
            row[name] = v
        for key, v in (rec.get("props") or {}).items():
            if key not in row:
                row[key] = v
        row.update({
            "feasible": bool(rec.get("feasible")),
            "status": rec.get("status"),
            "reasons": rec.get("reasons", ""),
            "strategy": rec.get("strategy"),
            "source": rec.get("source"),
            "worker": rec.get("worker"),
            "trial": rec.get("trial"),
            "time_s": round(float(rec.get("time", t0)) - t0, 3),
        })
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=["round", "call", "smiles", "score", *objective_names, *_TAIL_COLUMNS])
    for col in ("score", *objective_names):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("call", "trial", "round"):
        df[col] = pd.array(df[col], dtype="Int64")
    return df.sort_values("time_s", kind="stable").reset_index(drop=True)
