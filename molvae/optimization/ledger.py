"""The ledger: an Optuna study with one trial per molecule sent to the oracle, shared by every worker.

Each worker reserves a molecule by adding a RUNNING trial *before* calling the oracle, then
:meth:`Ledger.arbitrate` lets it score only the reservations that (a) have fewer than
``budget`` reserved-or-scored trials with a smaller trial number and (b) are the first
trial holding their molecule.  Optuna numbers trials under a lock, so a trial with a smaller
number is always visible to the worker that created a larger one: the study never records
more than ``budget`` oracle calls, nor one molecule twice.  :class:`Heartbeat` keeps a
worker's reservations alive while its oracle runs; :meth:`Ledger.sync` frees those of a
silent worker (``stale_after``) and, with RDB storages, Optuna's heartbeats do the same.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from molvae.optimization.objectives import Objective
from molvae.optimization.records import (
    ALIVE_KEY,
    DEFAULT_STUDY_NAME,
    DUPLICATE,
    INTERRUPTED,
    LEDGER_KEY,
    OVER_BUDGET,
    PENDING,
    SCORED,
)
from molvae.optimization.storage import open_storage, quiet_optuna

__all__ = ["Heartbeat", "Ledger"]

logger = logging.getLogger(__name__)


class Heartbeat:
    """Signs of life of this worker's reserved trials while the oracle runs.

    RDB storages: Optuna heartbeats (``fail_stale_trials`` frees the trials of a dead worker).
    With ``stale_after``: the time (``clock()``), in the trial's user attribute ``molvae:alive``,
    every ``stale_after / 4`` seconds, so that only a silent worker's trials count as stale,
    never those of a live worker whose oracle call takes longer than ``stale_after``.
    """

    def __init__(self, storage: Any, stale_after: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        interval = None
        if hasattr(storage, "get_heartbeat_interval"):
            with contextlib.suppress(Exception):
                interval = storage.get_heartbeat_interval()
        self.interval = interval
        self.alive_every = stale_after / 4 if stale_after else None
        self.clock = clock
        self.trial_ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Whether the storage has Optuna heartbeats (RDB with ``heartbeat_interval``)."""
        return bool(self.interval)

    def add(self, trial_ids: Iterable[int]) -> None:
        if not (self.enabled or self.alive_every):
            return
        ids = list(trial_ids)
        for tid in ids if self.enabled else ():
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(tid)
        with self._lock:
            self.trial_ids.update(ids)
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="molvae-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, trial_ids: Iterable[int]) -> None:
        with self._lock:
            self.trial_ids.difference_update(trial_ids)

    def beat(self) -> None:
        """One sign of life for every trial held (the thread does this every tick)."""
        with self._lock:
            ids = list(self.trial_ids)
        for tid in ids:
            with contextlib.suppress(Exception):  # a trial finished meanwhile refuses updates
                if self.enabled:
                    self.storage.record_heartbeat(tid)
                if self.alive_every:
                    self.storage.set_trial_user_attr(tid, ALIVE_KEY, round(self.clock(), 3))

    def _run(self) -> None:
        tick = min(x for x in (self.interval, self.alive_every) if x)
        while not self._stop.wait(tick):
            self.beat()

    def close(self, wait: bool = False) -> None:
        """Stop the thread; ``wait``: until it has stopped (no sign of life is written after this)."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join()


class Ledger:
    """The study that records molecules sent to the oracle and arbitrates the shared budget."""

    def __init__(
        self,
        storage: Any,
        study_name: str | None,
        objectives: list[Objective],
        latent_dim: int,
        bound: float,
        stale_after: float | None,
        strategy: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.raw_storage = open_storage(storage)
        self.storage = optuna.storages.get_storage(self.raw_storage)  # RDB: with the trial cache
        name = study_name or (DEFAULT_STUDY_NAME if storage is not None else None)
        with quiet_optuna():
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=name,
                directions=[o.direction for o in objectives],
                load_if_exists=True,
            )
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        self.persistent = storage is not None
        self._check_attrs(objectives, latent_dim, strategy)
        self.dists = {f"z_{i}": FloatDistribution(-bound, bound) for i in range(latent_dim)}
        self.bound = float(bound)
        self.stale_after = stale_after
        self.clock = clock
        self.heartbeat = Heartbeat(self.storage, stale_after, clock)
        self.finished: dict[int, dict] = {}  # trial number -> record, finished trials
        self.z: dict[int, np.ndarray | None] = {}  # trial number -> stored latent mean
        self.running: dict[int, dict] = {}  # trial number -> record, RUNNING (any worker)
        self.inbox: list[tuple[int, dict, np.ndarray | None]] = []  # finished, not yet taken by the run

    def _check_attrs(self, objectives: list[Objective], latent_dim: int, strategy: str) -> None:
        attrs = self.study.user_attrs
        want = {
            "molvae:objectives": [o.name for o in objectives],
            "molvae:directions": [o.direction for o in objectives],
            "molvae:latent_dim": int(latent_dim),
        }
        # Key by key: workers that start together may see another's attributes half written,
        # so a missing key is written (the same value by every compatible worker), never an error.
        for k, v in want.items():
            if k not in attrs:
                self.study.set_user_attr(k, v)
            elif attrs[k] != v:
                raise ValueError(
                    f"study {self.study.study_name!r} was run with {k.split(':')[1]}={attrs[k]!r}, "
                    f"this run has {v!r}; use another study_name"
                )
        if "molvae:strategy" not in attrs:
            self.study.set_user_attr("molvae:strategy", strategy)
        elif attrs["molvae:strategy"] != strategy:
            logger.warning("study %r was started with strategy %r, continuing with %r",
                           self.study.study_name, attrs["molvae:strategy"], strategy)

    # ------------------------------------------------------------------ reading
    def sync(self) -> None:
        """Read the study; newly finished records ``(number, record, z)`` of any worker go to ``inbox``."""
        if self.heartbeat.enabled:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental"
                optuna.storages.fail_stale_trials(self.study)
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        self.running = {}
        now = self.clock()
        stale: list[Any] = []
        for t in trials:
            if t.number in self.finished:
                continue
            rec = t.user_attrs.get(LEDGER_KEY)
            if not isinstance(rec, dict):
                continue  # not written by molvae
            if t.state == TrialState.RUNNING:
                # the last sign of life: the reservation, or its worker's latest "alive" time
                alive = [t.datetime_start.timestamp()] if t.datetime_start is not None else []
                if isinstance(t.user_attrs.get(ALIVE_KEY), (int, float)):
                    alive.append(float(t.user_attrs[ALIVE_KEY]))
                if self.stale_after is not None and alive and now - max(alive) > self.stale_after:
                    stale.append(t)
                    continue
                self.running[t.number] = rec
                continue
            if t.state == TrialState.WAITING:
                continue
            rec = dict(rec)
            if t.state == TrialState.FAIL and rec.get("status") == PENDING:
                rec["status"] = INTERRUPTED  # failed by a heartbeat check: the worker died
            self.finished[t.number] = rec
            z = None
            if rec.get("z") == "mean" and len(t.params) == len(self.dists):
                z = np.array([t.params[f"z_{i}"] for i in range(len(self.dists))], dtype=np.float32)
            self.z[t.number] = z
            self.inbox.append((t.number, rec, z))
        for t in stale:
            with contextlib.suppress(Exception):
                self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                logger.warning("trial %d of a worker silent for more than %.0f s marked failed", t.number, self.stale_after)

    def drain(self) -> list[tuple[int, dict, np.ndarray | None]]:
        out, self.inbox = self.inbox, []
        return out

    def eligible_numbers(self) -> list[int]:
        """Trial numbers holding or reserving an oracle call, sorted.

        A RUNNING trial whose record already says "scored" is being finished (its user
        attribute is written before its state) and counts too.
        """
        nums = [n for n, r in self.finished.items() if r.get("status") == SCORED]
        nums += [n for n, r in self.running.items() if r.get("status") in (PENDING, SCORED)]
        return sorted(nums)

    def in_flight(self) -> set[str]:
        """Molecules reserved by a RUNNING trial (any worker)."""
        return {r.get("smiles") for r in self.running.values() if r.get("status") in (PENDING, SCORED)}

    def n_scored(self) -> int:
        return sum(1 for r in self.finished.values() if r.get("status") == SCORED)

    @property
    def frees_dead_reservations(self) -> bool:
        """Whether the reservations of a dead worker are ever freed (heartbeats or ``stale_after``)."""
        return self.heartbeat.enabled or self.stale_after is not None

    # ------------------------------------------------------------------ writing
    def reserve(self, records: list[dict], zs: list[np.ndarray | None]) -> list[tuple[int, int]]:
        """Add RUNNING trials for ``records``; returns ``(trial_id, number)`` per record."""
        out = []
        for rec, z in zip(records, zs):
            params = {}
            if z is not None:
                zc = np.clip(np.asarray(z, dtype=np.float64), -self.bound, self.bound)
                params = {k: float(v) for k, v in zip(self.dists, zc)}
            ft = create_trial(
                state=TrialState.RUNNING,
                params=params,
                distributions=dict(self.dists) if params else {},
                user_attrs={LEDGER_KEY: rec},
            )
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=ft)
            number = self.storage.get_trial_number_from_id(trial_id)
            out.append((trial_id, number))
        self.heartbeat.add(tid for tid, _ in out)
        return out

    def arbitrate(self, records: list[dict], ids: list[tuple[int, int]], budget: int) -> list[int]:
        """Which reserved trials may call the oracle: indices into ``records``.

        A reservation whose molecule an earlier trial holds becomes ``"duplicate"``, one
        ranked at or beyond ``budget`` among the trials holding or reserving a call becomes
        ``"over_budget"``; both are released.  The others get their call number (``call``).
        """
        self.sync()
        eligible = self.eligible_numbers()
        holder: dict[str, int] = {}
        for n in eligible:
            rec = self.finished.get(n) or self.running.get(n)
            s = rec.get("smiles") if rec else None
            if s is not None and s not in holder:
                holder[s] = n
        allowed = []
        for i, (rec, (tid, number)) in enumerate(zip(records, ids)):
            rank = bisect.bisect_left(eligible, number)
            if holder.get(rec["smiles"], number) < number:
                rec["status"] = DUPLICATE
                self.release(tid, rec)
            elif rank >= budget:
                rec["status"] = OVER_BUDGET
                self.release(tid, rec)
            else:
                rec["call"] = rank + 1
                allowed.append(i)
        return allowed

    def finish(self, trial_id: int, rec: dict, values: list[float] | None) -> None:
        """Write ``rec`` and end the trial: COMPLETE with ``values`` when all are finite, else FAIL."""
        self.storage.set_trial_user_attr(trial_id, LEDGER_KEY, rec)
        if values is not None and all(v is not None and math.isfinite(v) for v in values):
            self.storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=[float(v) for v in values])
        else:
            self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        self.heartbeat.discard([trial_id])

    def record(self, trial_id: int, number: int, rec: dict, values: list[float | None], z: np.ndarray | None) -> None:
        """Finish a scored trial and keep it as finished here (no need to read it back)."""
        self.finish(trial_id, rec, values)
        self.finished[number] = dict(rec)
        self.z[number] = z
        self.running.pop(number, None)

    def release(self, trial_id: int, rec: dict) -> None:
        """Fail a reserved trial that will not be scored."""
        with contextlib.suppress(Exception):
            self.finish(trial_id, rec, None)

    def close(self) -> None:
        self.heartbeat.close()
