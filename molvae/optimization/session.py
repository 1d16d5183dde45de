"""One worker's run: the model, the budget, the molecules it knows, and the way to the oracle.

The strategies propose latent points or molecules; :class:`Run` decodes them, drops what is
known, records what fails a cheap constraint, and :meth:`Run.evaluate` reserves, arbitrates
(:meth:`~molvae.optimization.ledger.Ledger.arbitrate`) and scores the rest.  Decoding is greedy;
every scored molecule is re-encoded and its score attached to its own latent mean.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from molvae.optimization.candidates import Candidate, new_record
from molvae.optimization.constraints import Constraints
from molvae.optimization.ledger import Ledger
from molvae.optimization.objectives import Objective
from molvae.optimization.records import DUPLICATE, INFEASIBLE, INTERRUPTED, OVER_BUDGET, PENDING, SCORED, finite_or_none
from molvae.optimization.scored import ScoredData
from molvae.properties import compute

__all__ = ["Run"]


class Run:
    """State shared by the strategies: oracle, constraints, budget, records, latent data."""

    def __init__(
        self,
        model: Any,
        objectives: list[Objective],
        constraints: Constraints,
        ledger: Ledger,
        budget: int,
        batch_size: int,
        strategy: str,
        worker: str,
        weights: Sequence[float] | None,
        progress: bool,
    ) -> None:
        self.model = model
        self.D = int(model.latent_dim)
        self.objectives = objectives
        self.k = len(objectives)
        self.constraints = constraints
        self.ledger = ledger
        self.budget = int(budget)
        self.batch_size = int(batch_size)
        self.strategy = strategy
        self.worker = worker
        self.round = 0
        w = np.ones(self.k) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (self.k,):
            raise ValueError(f"weights must have one value per objective ({self.k})")
        self.data = ScoredData(self.D, np.array([o.sign for o in objectives]), w)  # scored molecules, any worker
        self.known: dict[str, dict] = {}  # every molecule this worker knows: canonical SMILES -> record
        self.records: list[dict] = []  # history rows (ledger records + local infeasible ones)
        self.n_calls_here = 0  # molecules this process sent to the oracle
        self.last_n_new = 0  # unseen molecules (feasible or not) of the latest screen
        self.last_decoded: list[str | None] = []  # the molecules of every row of the latest screen
        self.stats = dict.fromkeys(["decoded", "invalid", "known", "infeasible", "over_budget", "duplicate_in_flight"], 0)
        self.bar = None
        if progress:
            self.bar = tqdm(total=self.budget, desc=f"optimize ({strategy})", unit="call", dynamic_ncols=True)

    # ------------------------------------------------------------------ model
    def decode(self, Z: np.ndarray) -> list[str | None]:
        if not len(Z):
            return []
        raw = self.model.decode(np.asarray(Z, dtype=np.float32), method="greedy")
        out = [s or None for s in raw]  # the model returns canonical SMILES ("" when none)
        self.stats["decoded"] += len(raw)
        self.stats["invalid"] += sum(c is None for c in out)
        return out

    def encode(self, smiles: Sequence[str]) -> np.ndarray:
        if not len(smiles):
            return np.zeros((0, self.D), np.float32)
        mlog = logging.getLogger("molvae.vae.model")
        level = mlog.level
        mlog.setLevel(logging.ERROR)  # molecules too long for the tokenizer are expected here
        try:
            return self.model.encode(list(smiles))
        finally:
            mlog.setLevel(level)

    # ------------------------------------------------------------------ records
    def _add_record(self, rec: dict, z: np.ndarray | None) -> None:
        self.records.append(rec)
        self.known[rec["smiles"]] = rec
        if rec["status"] == SCORED:
            self.data.add(rec["smiles"], rec["values"], z, rec["feasible"])

    def new_record(self, c: Candidate, status: str) -> dict:
        return new_record(c, status, self.k, self.strategy, self.round, self.worker)

    def sync(self) -> int:
        """Load molecules scored by other workers (or earlier runs); returns how many."""
        n = 0
        self.ledger.sync()
        for number, rec, z in self.ledger.drain():
            if rec.get("status") != SCORED or rec.get("smiles") in self.known:
                continue
            self._add_record(dict(rec, trial=number), z)
            n += 1
        if n:
            missing = self.data.missing_means()
            if missing:  # molecules stored without a latent mean: try to encode them
                Z = self.encode([self.data.smiles[i] for i in missing])
                for i, z in zip(missing, Z):
                    self.data.set_mean(i, z)
        return n

    def n_calls(self) -> int:
        return self.ledger.n_scored()

    def remaining(self) -> int:
        return self.budget - len(self.ledger.eligible_numbers())

    def done(self) -> bool:
        return self.n_calls() >= self.budget

    # ------------------------------------------------------------------ candidates
    def screen(self, Z: np.ndarray, source: str) -> list[Candidate]:
        """Decode ``Z``; record new molecules that fail a cheap constraint; return the new feasible ones.

        Each molecule keeps the first point that produced it (``z_prop``); the decoded
        molecules of all rows are left in ``self.last_decoded``.
        """
        smiles = self.last_decoded = self.decode(Z)
        first: dict[str, int] = {}
        for i, s in enumerate(smiles):
            if s is None:
                continue
            if s in self.known:
                self.stats["known"] += 1
                continue
            first.setdefault(s, i)
        self.last_n_new = len(first)
        cands = [Candidate(s, z_prop=np.asarray(Z[i], np.float32), source=source) for s, i in first.items()]
        return self.check(cands)

    def check(self, cands: list[Candidate], force: bool = False) -> list[Candidate]:
        """Cheap constraint checks; infeasible molecules are recorded (never scored) unless ``force``."""
        todo = [c for c in cands if c.check is None]
        for c, chk in zip(todo, self.constraints.check([c.smiles for c in todo])):
            c.check = chk
        keep = []
        for c in cands:
            if c.check["feasible"] or force:
                keep.append(c)
            elif c.smiles not in self.known:
                self.stats["infeasible"] += 1
                self._add_record(self.new_record(c, INFEASIBLE), None)
        return keep

    def ensure_means(self, cands: list[Candidate]) -> None:
        todo = [c for c in cands if c.z_mean is None]
        if todo:
            for c, z in zip(todo, self.encode([c.smiles for c in todo])):
                c.z_mean = z if np.isfinite(z).all() else None

    # ------------------------------------------------------------------ the oracle
    def evaluate(self, cands: list[Candidate], force: bool = False) -> list[dict]:
        """Score new molecules (at most the remaining budget); returns their records.

        ``cands`` must be canonical; known molecules and in-batch duplicates are dropped.
        ``force`` scores molecules that fail cheap constraints (the user's start molecules).
        """
        seen: set[str] = set()
        uniq = []
        for c in cands:
            if c.smiles in self.known or c.smiles in seen:
                continue
            seen.add(c.smiles)
            uniq.append(c)
        uniq = self.check(uniq, force=force)
        if not uniq:
            return []
        self.sync()
        uniq = [c for c in uniq if c.smiles not in self.known]
        pending_smiles = self.ledger.in_flight()
        n_flight = sum(c.smiles in pending_smiles for c in uniq)
        if n_flight:  # another worker is scoring them right now
            self.stats["duplicate_in_flight"] += n_flight
            uniq = [c for c in uniq if c.smiles not in pending_smiles]
        room = self.remaining()
        if room <= 0 or not uniq:
            return []
        uniq = uniq[:room]
        self.ensure_means(uniq)
        recs = [self.new_record(c, PENDING) for c in uniq]
        ids = self.ledger.reserve(recs, [c.z_mean for c in uniq])
        try:
            allowed = self.ledger.arbitrate(recs, ids, self.budget)
            self.stats["duplicate_in_flight"] += sum(r["status"] == DUPLICATE for r in recs)
            self.stats["over_budget"] += sum(r["status"] == OVER_BUDGET for r in recs)
            return self._call_oracle([uniq[i] for i in allowed], [recs[i] for i in allowed], [ids[i] for i in allowed])
        except BaseException:
            for (tid, _), rec in zip(ids, recs):
                if rec["status"] == PENDING:
                    rec["status"] = INTERRUPTED
                    self.ledger.release(tid, rec)
            raise

    def _call_oracle(self, cands: list[Candidate], recs: list[dict], ids: list[tuple[int, int]]) -> list[dict]:
        if not cands:
            return []
        smiles = [c.smiles for c in cands]
        self.n_calls_here += len(smiles)
        table = np.full((len(smiles), self.k), np.nan)
        errors: list[str | None] = [None] * self.k
        for j, obj in enumerate(self.objectives):
            table[:, j], errors[j] = obj(smiles)
        comp_names = [n for o in self.objectives for n in o.components]
        comps = compute(smiles, list(dict.fromkeys(comp_names)), n_jobs=1) if comp_names else None
        out = []
        for i, (c, rec, (tid, number)) in enumerate(zip(cands, recs, ids)):
            values = [finite_or_none(v) for v in table[i]]
            rec["status"] = SCORED
            rec["values"] = values
            rec["score"] = finite_or_none(self.data.score_of(values))
            if comps is not None:
                for name in comps.columns[1:]:
                    rec["props"][name] = finite_or_none(comps[name].iat[i])
            reasons = [r for r in rec["reasons"].split("; ") if r]
            if any(v is None for v in values):
                failed = [o.name for o, v in zip(self.objectives, values) if v is None]
                err = "; ".join(e for e in errors if e)
                reasons.append(f"objective failed ({', '.join(failed)}{': ' + err[:200] if err else ''})")
            reasons += self.constraints.check_post({o.name: v for o, v in zip(self.objectives, values)})
            rec["reasons"] = "; ".join(reasons)
            rec["feasible"] = not reasons
            rec["time"] = round(time.time(), 3)
            self.ledger.record(tid, number, rec, values, c.z_mean)
            rec = dict(rec, trial=number)
            self._add_record(rec, c.z_mean)
            out.append(rec)
        if self.bar is not None:
            self.bar.n = min(self.n_calls(), self.budget)
            best = self.data.best()
            self.bar.set_postfix(best=f"{best:.4g}" if best is not None else "n/a", refresh=False)
            self.bar.refresh()
        return out

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.ledger.close()
