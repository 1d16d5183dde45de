"""A worker of a shared optimization study killed with SIGKILL while it holds reservations.

Three processes run :func:`molvae.optimize` on one study.  Worker 0's objective
hangs in the middle of its second oracle call (after writing the molecules it was asked
to score to its log), and the test kills it there: it dies holding RUNNING trials it will
never record.  The two survivors join the study once worker 0 hangs (so that a slow start
of worker 0 cannot let them spend the whole budget first).  What is promised (the module
docstring of ``molvae/optimization/run.py``): the survivors free those reservations (``stale_after``
seconds for SQLite / journal files, heartbeats for PostgreSQL), fill them, and stop exactly
at the budget; no molecule is recorded twice, no trial stays RUNNING, and the only oracle
calls the study does not hold are the ones that were under way in the killed worker.

Timing margins: a reservation counts as dead after ``STALE_AFTER`` (10 s) without a sign of
life, while a live worker writes one every 2.5 s (``stale_after / 4``; heartbeats every second
for PostgreSQL, failed after ``GRACE`` = 10 s): a worker descheduled for seconds on a loaded
2-core machine is not taken for dead.  The unit test of ``stale_after`` runs on a clock of its
own and depends on no timing at all.

The model is the session's search model (``search_model_path``, tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from molvae.optimization import LEDGER_KEY, open_storage
from molvae.optimization.ledger import Ledger
from molvae.optimization.objectives import parse_objectives

N_WORKERS = 3
BATCH = 8
HANG_AT_CALL = 2  # worker 0 hangs in its 2nd oracle call: the start molecules are recorded, a batch is under way
STALE_AFTER = 10  # seconds (SQLite, journal): a silent worker's reservations are freed after this
GRACE = 10  # seconds (PostgreSQL): Optuna fails trials without a heartbeat for this long

# One optimization worker.  argv: model storage study worker_id seed budget stale_after
# grace_period log_file hang_at_call signal_file result_file wait_for.  grace_period > 0: the
# storage is opened with heartbeats every second (RDB) and that grace period; 0: molvae's
# defaults.  wait_for: a file to wait for before joining the study ("-": none).  The survivors
# load their model at once but join the study only once worker 0 hangs in its call: on a loaded
# CI machine worker 0's start-up could otherwise outlast theirs, and they spent the whole budget
# before it made its second call.
_WORKER = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from molvae.vae.model import MolVAE
from molvae.optimization import open_storage, optimize
from molvae.properties import compute

(model_path, storage, study, worker, seed, budget, stale_after, grace, log_file, hang_at, signal_file,
 result_file, wait_for) = sys.argv[1:]
seed, budget, grace, hang_at = int(seed), int(budget), int(grace), int(hang_at)
stale_after = float(stale_after) if float(stale_after) > 0 else None
if grace > 0:
    storage = open_storage(storage, heartbeat_interval=1, grace_period=grace)
model = MolVAE.load(model_path, device="cpu")
calls = 0
if wait_for != "-":
    deadline = time.monotonic() + 300
    while not os.path.exists(wait_for) and time.monotonic() < deadline:
        time.sleep(0.02)

def oracle(smiles):
    global calls
    calls += 1
    with open(log_file, "a") as fh:  # every molecule sent to the oracle, before the call
        fh.write("".join(f"{calls}\t{s}\n" for s in smiles))
    if calls == hang_at:
        open(signal_file, "w").close()
        time.sleep(600)  # killed here, its reservations held
    time.sleep(0.1)  # a slow-ish oracle: the workers interleave
    return compute(smiles, ["qed"], n_jobs=1)["qed"].to_numpy()

res = optimize(model, oracle, budget=budget, seed=seed, storage=storage, study_name=study, batch_size=8,
               progress=False, worker_id=worker, stale_after=stale_after)
with open(result_file, "w") as fh:
    json.dump({"n_oracle_calls": res.n_oracle_calls, "n_calls_here": res.n_oracle_calls_this_run,
               "oracle_calls": calls}, fh)
"""


def _logged_calls(path: Path) -> dict[int, list[str]]:
    """Oracle call number -> molecules, from a worker's log."""
    calls: dict[int, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            n, smi = line.split("\t")
            calls.setdefault(int(n), []).append(smi)
    return calls


def _kill_one_worker(model_path, tmp_path: Path, storage: str, budget: int, stale_after: float, grace: int) -> dict:
    """Run the scenario, check the study in detail, and return what the test states."""
    study = f"kill-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    signal_file = tmp_path / "worker0-hangs"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = []
    for i in range(N_WORKERS):
        argv = [sys.executable, str(script), str(model_path), storage, study, f"w{i}", str(20 + i), str(budget),
                str(stale_after), str(grace), str(tmp_path / f"w{i}.log"), str(HANG_AT_CALL if i == 0 else 0),
                str(signal_file), str(tmp_path / f"w{i}.json"), "-" if i == 0 else str(signal_file)]
        err = open(tmp_path / f"w{i}.err", "w")
        procs.append(subprocess.Popen(argv, env=env, stdout=err, stderr=subprocess.STDOUT))
        err.close()
    try:
        deadline = time.monotonic() + 300
        while not signal_file.exists():
            assert procs[0].poll() is None, (
                f"worker 0 ended (exit {procs[0].returncode}) before its oracle call {HANG_AT_CALL}:\n"
                + (tmp_path / "w0.err").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, f"worker 0 did not reach oracle call {HANG_AT_CALL} within 300 s"
            time.sleep(0.02)
        os.kill(procs[0].pid, signal.SIGKILL)
        assert procs[0].wait(timeout=60) == -signal.SIGKILL
        t_kill = time.monotonic()
        for i, p in enumerate(procs[1:], start=1):
            code = p.wait(timeout=300)
            assert code == 0, f"worker {i} failed (exit {code}):\n" + (tmp_path / f"w{i}.err").read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
    survivors_s = time.monotonic() - t_kill

    # ------------------------------------------------------------------ what the study holds
    import optuna
    from optuna.trial import TrialState

    st = optuna.load_study(study_name=study, storage=open_storage(storage))
    trials = [t for t in st.get_trials(deepcopy=False) if isinstance(t.user_attrs.get(LEDGER_KEY), dict)]
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), (
        "trials left unfinished: " + str([(t.number, t.state.name) for t in trials if t.state.is_finished() is False])
    )
    scored = [t for t in trials if t.user_attrs[LEDGER_KEY]["status"] == "scored"]
    scored_smiles = [t.user_attrs[LEDGER_KEY]["smiles"] for t in scored]
    assert len(scored) == budget  # exactly the budget: nothing lost, nothing over
    assert len(set(scored_smiles)) == budget  # no molecule recorded twice

    # ------------------------------------------------------------------ the killed worker
    w0 = _logged_calls(tmp_path / "w0.log")
    assert max(w0) == HANG_AT_CALL
    under_way = w0[HANG_AT_CALL]  # sent to the oracle, never answered
    recorded_w0 = [s for n, batch in w0.items() if n < HANG_AT_CALL for s in batch]
    assert len(under_way) >= 1
    by_worker: dict[str, list[str]] = {}
    for t in scored:
        by_worker.setdefault(t.user_attrs[LEDGER_KEY]["worker"], []).append(t.user_attrs[LEDGER_KEY]["smiles"])
    assert sorted(by_worker.get("w0", [])) == sorted(recorded_w0)  # its finished calls are kept
    # its reservations for the call under way were freed (failed, never scored) ...
    freed = [t for t in trials if t.user_attrs[LEDGER_KEY]["worker"] == "w0" and t.user_attrs[LEDGER_KEY]["status"] == "pending"]
    assert all(t.state == TrialState.FAIL for t in freed)
    assert sorted(t.user_attrs[LEDGER_KEY]["smiles"] for t in freed) == sorted(under_way)
    # ... and re-filled by the survivors: together they scored the rest of the budget
    survivors = [f"w{i}" for i in range(1, N_WORKERS)]
    assert sum(len(by_worker.get(w, [])) for w in survivors) == budget - len(recorded_w0)

    # ------------------------------------------------------------------ the survivors
    oracle_calls: list[str] = list(recorded_w0)
    for i, w in enumerate(survivors, start=1):
        result = json.loads((tmp_path / f"w{i}.json").read_text())
        sent = [s for batch in _logged_calls(tmp_path / f"w{i}.log").values() for s in batch]
        assert result["n_oracle_calls"] == budget  # each saw the whole budget spent
        assert result["n_calls_here"] == len(sent)
        assert sorted(sent) == sorted(by_worker.get(w, []))  # every call it made is recorded
        oracle_calls += sent
    assert sorted(oracle_calls) == sorted(scored_smiles)
    assert len(set(oracle_calls)) == len(oracle_calls)  # no answered call repeated
    print(f"survivors finished {survivors_s:.1f} s after the kill; {len(under_way)} reservations freed")
    return {
        "scored": len(scored),
        "distinct": len(set(scored_smiles)),
        "unfinished": sum(not t.state.is_finished() for t in trials),
        "freed": len(freed),
        "filled_by_survivors": sum(len(by_worker.get(w, [])) for w in survivors),
        "killed_recorded": len(recorded_w0),
    }


def _assert_killed_worker_cost_nothing(res: dict, budget: int) -> None:
    assert res["scored"] == res["distinct"] == budget  # nothing lost, nothing over, nothing twice
    assert res["unfinished"] == 0  # no reservation left RUNNING
    assert res["freed"] >= 1  # the dead worker held reservations ...
    assert res["filled_by_survivors"] + res["killed_recorded"] == budget  # ... and the survivors filled them


def test_kill_9_one_of_three_workers_sharing_a_sqlite_study(search_model_path, tmp_path):
    # SQLite URLs get heartbeats with a 120 s grace period; stale_after frees the dead worker's
    # reservations sooner (STALE_AFTER after its last sign of life)
    res = _kill_one_worker(search_model_path, tmp_path, f"sqlite:///{tmp_path / 'study.db'}", budget=56,
                           stale_after=STALE_AFTER, grace=0)
    _assert_killed_worker_cost_nothing(res, 56)


@pytest.mark.slow
def test_kill_9_one_of_three_workers_sharing_a_journal_study(search_model_path, tmp_path):
    res = _kill_one_worker(search_model_path, tmp_path, f"journal:///{tmp_path / 'study.log'}", budget=56,
                           stale_after=STALE_AFTER, grace=0)
    _assert_killed_worker_cost_nothing(res, 56)


@pytest.mark.postgres
def test_kill_9_one_of_three_workers_sharing_a_postgres_study(postgres_url, search_model_path, tmp_path):
    # heartbeats every second, a dead worker's trials failed after GRACE seconds without one; no stale_after
    res = _kill_one_worker(search_model_path, tmp_path, postgres_url, budget=56, stale_after=0, grace=GRACE)
    _assert_killed_worker_cost_nothing(res, 56)


class _Clock:
    """The ledgers' "now": moves only when the test says so.  It starts far ahead of the real
    clock, so that a reservation's creation time (written by Optuna, real time) is long past
    and only the signs of life the worker writes (on this clock) keep it held."""

    def __init__(self) -> None:
        self.now = time.time() + 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_for_sign_of_life(ledger: Ledger, trial_id: int, clock: _Clock) -> None:
    """Until the heartbeat thread has written the clock's current time on the trial."""
    deadline = time.monotonic() + 120
    while ledger.storage.get_trial(trial_id).user_attrs.get("molvae:alive") != round(clock.now, 3):
        assert time.monotonic() < deadline, "the heartbeat thread wrote no sign of life in 120 s"
        time.sleep(0.05)


def test_stale_after_frees_the_reservations_of_a_silent_worker_only(tmp_path):
    """A live worker whose oracle call outlasts ``stale_after`` keeps its reservation (its heartbeat
    thread marks it alive while the call runs); once the worker falls silent (heartbeat stopped, as
    in a killed process) the reservation is freed.  No model: two ledgers on one journal file, on a
    clock of their own, so that no verdict depends on how the threads are scheduled."""
    from optuna.trial import TrialState

    storage = f"journal:///{tmp_path / 'study.log'}"
    objectives = parse_objectives("qed", "maximize")
    clock = _Clock()
    stale_after = 1.0  # the thread writes a sign of life every 0.25 s (real time)
    live = Ledger(storage, "stale", objectives, 4, 3.0, stale_after, "trust_region", clock=clock)
    other = Ledger(storage, "stale", objectives, 4, 3.0, stale_after, "trust_region", clock=clock)
    try:
        rec = {"smiles": "CCO", "status": "pending", "worker": "live", "values": [None]}
        [(tid, number)] = live.reserve([rec], [None])
        _wait_for_sign_of_life(live, tid, clock)
        for _ in range(3):  # an oracle call 3 times stale_after: the worker keeps saying it is alive
            clock.now += stale_after
            _wait_for_sign_of_life(live, tid, clock)
            other.sync()
            assert other.eligible_numbers() == [number] and other.in_flight() == {"CCO"}
        live.finish(tid, dict(rec, status="scored", values=[0.4]), [0.4])  # still its to record
        other.sync()
        assert other.n_scored() == 1 and other.finished[number]["status"] == "scored"

        [(tid2, number2)] = live.reserve([dict(rec, smiles="CCN")], [None])
        _wait_for_sign_of_life(live, tid2, clock)
        clock.now += 0.9 * stale_after  # its last sign of life is at most this old: held
        other.sync()
        assert other.eligible_numbers() == [number, number2] and other.in_flight() == {"CCN"}
        live.heartbeat.close(wait=True)  # the worker falls silent: no sign of life after this
        clock.now += 1.6 * stale_after
        other.sync()  # stale: failed, and no longer counted against the budget
        assert other.eligible_numbers() == [number] and other.in_flight() == set()
        assert other.storage.get_trial(tid2).state == TrialState.FAIL
        other.sync()
        assert other.finished[number2]["status"] == "interrupted"
    finally:
        live.close()
        other.close()


@pytest.mark.postgres
def test_workers_opening_a_fresh_postgres_database_together(postgres_url):
    """Workers starting together race to create Optuna's tables and enum types in an empty
    database; every one of them must get a working storage."""
    import threading

    import psycopg2
    import sqlalchemy
    from optuna.study import StudyDirection

    url = sqlalchemy.engine.make_url(postgres_url)
    fresh = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                             dbname=url.database)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {fresh}")  # a generated name, no user input
    finally:
        admin.close()
    fresh_url = url.set(database=fresh).render_as_string(hide_password=False)
    n = 8
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    storages: list = []

    def worker() -> None:
        try:
            barrier.wait(timeout=60)
            storages.append(open_storage(fresh_url))
        except BaseException as exc:  # noqa: BLE001  (collected, reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"{len(errors)} of {n} workers failed: {errors[0]!r}"
    assert len(storages) == n
    for st in storages:
        st.create_new_study([StudyDirection.MAXIMIZE], study_name=f"s-{uuid.uuid4().hex[:6]}")
        st.engine.dispose()


def test_open_storage_retries_when_another_worker_created_the_schema_first(monkeypatch):
    """The PostgreSQL form of that race that threads rarely hit (it failed one run in four of
    ``test_two_workers_share_one_postgres_study``): this worker found the enum type
    ``studydirection`` missing, another one committed it, and CREATE TYPE fails with
    DuplicateObject, a ProgrammingError.  It is retried; other programming errors are not."""
    import optuna
    import sqlalchemy.exc

    attempts = {"n": 0}
    opened = object()

    def rdb(url, **kwargs):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise sqlalchemy.exc.ProgrammingError("CREATE TYPE studydirection", {},
                                                  Exception('type "studydirection" already exists'))
        return opened

    monkeypatch.setattr(optuna.storages, "RDBStorage", rdb)
    assert open_storage("postgresql://molvae@db.invalid/molvae") is opened and attempts["n"] == 2

    def denied(url, **kwargs):
        attempts["n"] += 1
        raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, Exception("permission denied for schema public"))

    attempts["n"] = 0
    monkeypatch.setattr(optuna.storages, "RDBStorage", denied)
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"):
        open_storage("postgresql://molvae@db.invalid/molvae")
    assert attempts["n"] == 1


def test_a_study_with_half_written_attributes_is_joined_not_refused(tmp_path):
    """Workers starting together can see the first one's study attributes half written."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'half.db'}"
    objectives = parse_objectives("qed", "maximize")
    study = optuna.create_study(storage=storage, study_name="half", direction="maximize")
    study.set_user_attr("molvae:objectives", ["qed"])  # the first worker got this far
    Ledger(storage, "half", objectives, 4, 3.0, None, "trust_region").heartbeat.close()
    attrs = optuna.load_study(study_name="half", storage=storage).user_attrs
    assert attrs["molvae:directions"] == ["maximize"] and attrs["molvae:latent_dim"] == 4
    # a really different run is still refused
    with pytest.raises(ValueError, match="latent_dim"):
        Ledger(storage, "half", objectives, 8, 3.0, None, "trust_region")
