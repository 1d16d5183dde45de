"""The ledger in persistent storages (molvae.optimization.storage / ledger): resume, workers sharing a study."""

from __future__ import annotations

import multiprocessing as mp
import uuid

import optuna
import pytest
from optimize_support import Counting, scored, study_scored_smiles
from optuna.trial import TrialState

from molvae.optimization import LEDGER_KEY, open_storage, optimize
from molvae.properties import compute
from molvae.vae.model import MolVAE


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_resume_after_kill(search_model, tmp_path, kind):
    model = search_model
    storage = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 'study.log'}"
    first = Counting(interrupt_after=16)
    with pytest.raises(KeyboardInterrupt):
        optimize(model, first, budget=36, seed=6, storage=storage, study_name="resume", batch_size=8, progress=False)
    n_first = len(first.seen)
    assert 16 <= n_first < 36
    # the interrupted worker freed its reservations before re-raising
    st = optuna.load_study(study_name="resume", storage=open_storage(storage))
    assert not st.get_trials(states=(TrialState.RUNNING,))
    second = Counting()
    res = optimize(model, second, budget=36, seed=6, storage=storage, study_name="resume", batch_size=8, progress=False)
    assert res.n_oracle_calls == 36
    assert len(second.seen) == 36 - n_first  # nothing scored twice, nothing lost
    assert not set(first.seen) & set(second.seen)
    in_study = study_scored_smiles(res.study)
    assert len(in_study) == 36 and len(set(in_study)) == 36
    assert sorted(in_study) == sorted(first.seen + second.seen)
    assert sorted(scored(res)["call"].tolist()) == list(range(1, 37))
    assert not res.study.get_trials(states=(TrialState.RUNNING,))
    # a third run finds the budget spent and calls nothing
    third = Counting()
    res3 = optimize(model, third, budget=36, seed=7, storage=storage, study_name="resume", progress=False)
    assert third.seen == [] and res3.n_oracle_calls == 36 and len(scored(res3)) == 36


def test_a_study_of_another_run_is_refused(search_model, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optimize(search_model, "qed", budget=5, storage=storage, study_name="s", progress=False)
    with pytest.raises(ValueError, match="objectives"):
        optimize(search_model, "sa", budget=5, storage=storage, study_name="s", progress=False)


def _worker(model_path: str, storage: str, study: str, seed: int, budget: int, queue, barrier) -> None:
    """One optimization process sharing ``storage`` (spawned: top level).

    Each worker's first oracle call waits at ``barrier`` until every worker is in its first
    call: whatever the scheduling, each has then reserved molecules the study records as its own
    (a worker cannot spend the whole budget while another is still starting).
    """
    import time
    import traceback

    import torch

    try:
        torch.set_num_threads(1)
        model = MolVAE.load(model_path, device="cpu")
        seen: list[str] = []

        def oracle(smiles):
            if not seen:
                barrier.wait(timeout=300)
            seen.extend(smiles)
            time.sleep(0.2)  # a slow oracle: the workers interleave
            return compute(smiles, ["qed"])["qed"].to_numpy()

        res = optimize(model, oracle, budget=budget, seed=seed, storage=storage, study_name=study, batch_size=8,
                       progress=False, worker_id=f"w{seed}")
        queue.put((seed, seen, res.n_oracle_calls))
    except BaseException:
        queue.put((seed, traceback.format_exc(), None))


def _run_workers(model_path, storage: str, study: str, budget: int, n: int = 2) -> list:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_worker, args=(str(model_path), storage, study, 10 + i, budget, queue, barrier))
             for i in range(n)]
    for p in procs:
        p.start()
    try:
        out = [queue.get(timeout=600) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    for seed, seen, calls in out:
        assert calls is not None, f"worker {seed} failed:\n{seen}"
    return out


def _check_shared_budget(results, storage: str, study: str, budget: int) -> None:
    """The precise bound: together the workers make exactly ``budget`` oracle calls, none twice."""
    calls = [s for _, seen, _ in results for s in seen]
    assert len(calls) == budget
    assert len(set(calls)) == len(calls)
    # a worker stops once the rest of the budget is reserved by others: it saw at most the total
    assert all(len(seen) <= n == budget for _, seen, n in results)
    st = optuna.load_study(study_name=study, storage=open_storage(storage))
    assert sorted(study_scored_smiles(st)) == sorted(calls)
    by_worker: dict[str, int] = {}
    for t in st.get_trials(deepcopy=False):
        rec = t.user_attrs.get(LEDGER_KEY)
        if rec and rec["status"] == "scored":
            by_worker[rec["worker"]] = by_worker.get(rec["worker"], 0) + 1
    # both took part (the barrier in the first oracle call), and the study says who scored what
    assert {f"w{seed}": len(seen) for seed, seen, _ in results} == by_worker
    assert all(by_worker[f"w{seed}"] >= 1 for seed, _, _ in results)


def test_two_workers_share_one_sqlite_study(search_model_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    results = _run_workers(search_model_path, storage, "shared", budget=32)
    _check_shared_budget(results, storage, "shared", 32)


@pytest.mark.postgres
def test_two_workers_share_one_postgres_study(postgres_url, search_model_path):
    url = postgres_url  # MOLVAE_TEST_POSTGRES_URL, or a throw-away server (tests/conftest.py)
    study = f"molvae-test-{uuid.uuid4().hex[:8]}"
    results = _run_workers(search_model_path, url, study, budget=48)
    _check_shared_budget(results, url, study, 48)
