"""Tests for molvae.optimization.run and molvae.cli.optimize.

A small VAE is trained once per module (2,000 ZINC molecules, 3 epochs) so that the tests
never depend on the shipped model.  Budgets are small; the machine has 2 shared cores.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import uuid

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.config import ModelConfig, TrainConfig
from molvae.data import load_dataset
from molvae.vae.model import MolVAE
from molvae.optimization.run import LEDGER_KEY, OptimizationResult, _pareto_ranks, optimize
from molvae.properties import compute, similarity, substructure

# 16 ZINC test molecules with QED in (0.45, 0.6): room to improve
LOW_QED_STARTS = [
    "Cc1c(/C=N/c2cc(Br)ccn2)c(O)n2c(nc3ccccc32)c1C#N",
    "CCOc1ccc(OCC)c([C@H]2C(C#N)=C(N)N(c3ccccc3C(F)(F)F)C3=C2C(=O)CCC3)c1",
    "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1",
    "COC(=O)[C@](NC(=O)c1cccc(Cl)c1)(Nc1ccc(Br)c[nH+]1)C(F)(F)F",
    "Cc1[nH]c2ccc(C(=O)Nc3cc(C(C)(C)C)nn3-c3ncccn3)cc2c1C",
    "C[C@H]1CCCN(c2ccc(C(=O)Nc3ccc(N4CCOCC4)cc3)cc2[N+](=O)[O-])C1",
    "Cc1occc1C(=O)/C(C#N)=C\\c1cccc(C(F)(F)F)c1",
    "CCC[C@]1(C(=O)N[C@@H]2CONC2=O)CC[NH2+]C1",
    "C=CCn1c(S[C@H](C)C(=O)N2CCC(C)CC2)nnc1-c1ccc(Cl)cc1",
    "C[C@H](CNC(=O)[C@H]1CC[NH2+][C@@H]1C)C[NH+]1CCCC1",
    "CN(C)c1ccc([C@H](CNC(=O)C(=O)Nc2ccccc2C#N)N2CC[NH+](C)CC2)cc1",
    "O=C(Nc1ccc(-c2nc3ccccc3o2)cc1)[C@H]1CCCN1S(=O)(=O)c1ccc(F)cc1",
    "C[C@H](OC(=O)c1nc(C2CC2)n2ccccc12)c1cnc2ccccc2c1",
    "Cc1nn(-c2nncc(-c3ccc(Cl)cc3)n2)c2c1[C@H](c1ccccc1)CC(=O)N2",
    "Cc1ccc2ncc(C(=O)Nc3ncccc3OCc3ccncc3)n2c1",
    "C=CCN1C(=O)/C(=C/c2ccccc2F)S/C1=N\\S(=O)(=O)c1cccs1",
]


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from molvae.training.loop import train

    root = tmp_path_factory.mktemp("optmodel")
    mpatch = pytest.MonkeyPatch()
    mpatch.setenv("MOLVAE_CACHE_DIR", str(root / "cache"))
    try:
        smiles = load_dataset("zinc", "valid")[:2000]
        train(
            smiles,
            root / "run",
            ModelConfig(latent_dim=16, embedding_dim=32, encoder_hidden_dim=128, decoder_hidden_dim=256, decoder_layers=1),
            TrainConfig(
                epochs=3, batch_size=32, lr=3e-3, beta=0.1, kl_warmup_steps=30, n_prior_samples=0, num_threads=1,
                device="cpu", val_fraction=0.05, max_val=100, early_stopping_patience=0, log_every=1000,
            ),
            progress=False,
        )
    finally:
        mpatch.undo()
    return root / "run" / "best.pt"


@pytest.fixture(scope="module")
def model(model_path):
    return MolVAE.load(model_path, device="cpu")


class Counting:
    """An objective (QED) that records every molecule it is asked to score."""

    def __init__(self, fail_after: int | None = None, interrupt_after: int | None = None):
        self.seen: list[str] = []
        self.fail_after = fail_after
        self.interrupt_after = interrupt_after

    def __call__(self, smiles: list[str]) -> np.ndarray:
        if self.interrupt_after is not None and len(self.seen) >= self.interrupt_after:
            raise KeyboardInterrupt("simulated kill")
        self.seen.extend(smiles)
        return compute(smiles, ["qed"])["qed"].to_numpy()


def _scored(res: OptimizationResult) -> pd.DataFrame:
    return res.history[res.history["status"] == "scored"]


def _study_scored_smiles(study) -> list[str]:
    out = []
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get(LEDGER_KEY)
        if rec and rec.get("status") == "scored":
            out.append(rec["smiles"])
    return out


# --------------------------------------------------------------------------- units (no model)
def test_pareto_ranks():
    v = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.5, 0.5], [np.nan, 3.0]])
    ranks = _pareto_ranks(v, ["maximize", "maximize"])
    assert ranks.tolist()[:4] == [0, 0, 0, 1]
    assert ranks[4] == len(v)  # NaN last
    assert _pareto_ranks(v[:4], ["minimize", "minimize"]).tolist() == [1, 0, 0, 0]


def test_parse_objective_cli():
    from molvae.cli.optimize import parse_objective

    assert parse_objective("qed") == "qed"
    assert parse_objective("qed:1,sa:-0.2") == {"qed": 1.0, "sa": -0.2}
    assert parse_objective("qed,logp:0.5") == {"qed": 1.0, "logp": 0.5}
    with pytest.raises(ValueError):
        parse_objective("qed:x")


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="unknown objective"):
        optimize(model, "not_a_property", budget=5, progress=False)
    with pytest.raises(ValueError, match="min_similarity needs"):
        optimize(model, "qed", budget=5, min_similarity=0.4, progress=False)
    with pytest.raises(ValueError, match="bounds"):
        optimize(model, "qed", budget=5, bounds={"nonsense": (0, 1)}, progress=False)
    with pytest.raises(ValueError, match="SMARTS"):
        optimize(model, "qed", budget=5, smarts="[[[", progress=False)
    with pytest.raises(ValueError, match="strategy"):
        optimize(model, "qed", budget=5, strategy="magic", progress=False)
    with pytest.raises(TypeError, match="trust_region"):
        optimize(model, "qed", budget=5, no_such_option=1, progress=False)
    with pytest.raises(ValueError, match="novel"):
        optimize(model, "qed", budget=5, novel=True, progress=False)


# --------------------------------------------------------------------------- optimization
def test_default_strategy_improves_qed(model):
    start_best = float(np.max(compute(LOW_QED_STARTS, ["qed"])["qed"]))
    res = optimize(model, "qed", budget=150, seed=0, start=LOW_QED_STARTS, progress=False)
    assert res.strategy == "trust_region"
    assert res.n_oracle_calls == 150
    assert res.best_score > start_best + 0.05
    top = res.top(10)
    assert len(top) == 10 and top["score"].is_monotonic_decreasing
    assert top["smiles"].is_unique
    curve = res.curve()
    assert len(curve) == 150 and curve["best"].is_monotonic_increasing
    assert curve["best"].iloc[-1] == pytest.approx(res.best_score)
    assert curve["top10_mean"].iloc[-1] == pytest.approx(top["score"].mean())
    starts = _scored(res)[lambda d: d["source"] == "start"]
    assert len(starts) == len(LOW_QED_STARTS) and starts["call"].max() == len(LOW_QED_STARTS)


def test_constraints_hold_and_are_checked_before_scoring(model):
    ref = "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1"
    oracle = Counting()
    res = optimize(
        model, oracle, budget=20, seed=1, start=[ref], min_similarity=0.3, smarts="c1ncncc1",
        bounds={"mw": (None, 450), "sa": (None, 4.5)}, max_heavy_atoms=32, progress=False,
        n_candidates=256, max_stall_rounds=4,
    )
    h = res.history
    assert res.n_oracle_calls == len(oracle.seen) <= 20
    assert set(oracle.seen) == set(_scored(res)["smiles"])
    # nothing infeasible was sent to the oracle, except the start molecule itself
    sent = [s for s in oracle.seen if s != ref]
    if sent:
        sims = similarity(sent, ref)
        assert (sims >= 0.3).all()
        assert (substructure(sent, "c1ncncc1") == 1.0).all()
        props = compute(sent, ["mw", "sa", "heavy_atoms"])
        assert (props["mw"] <= 450).all() and (props["sa"] <= 4.5).all() and (props["heavy_atoms"] <= 32).all()
    top = res.top(50)
    assert len(top) >= 1
    assert (top["similarity"] >= 0.3).all() and top["smarts_match"].all()
    assert (top["mw"] <= 450).all() and (top["sa"] <= 4.5).all() and (top["heavy_atoms"] <= 32).all()
    # constraint status recorded for every evaluated molecule
    infeasible = h[h["status"] == "infeasible"]
    assert len(infeasible) > 0
    assert (~infeasible["feasible"]).all() and infeasible["call"].isna().all()
    assert infeasible["reasons"].str.len().gt(0).all()
    assert {"similarity", "smarts_match", "mw", "sa", "heavy_atoms", "feasible", "reasons"} <= set(h.columns)


def test_selfies_mutations_are_valid_new_and_in_the_model_alphabet(model):
    from molvae.chem import canonical
    from molvae.optimization.run import _SelfiesMutator

    parent = "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1"
    mut = _SelfiesMutator(model.tokenizer, np.random.default_rng(0))
    out = mut.mutate([parent] * 200, exclude={"CCO": None})
    assert len(out) > 100 and len(set(out)) == len(out) and parent not in out
    assert all(canonical(s) == s for s in out)
    sims = similarity(out, parent)
    # 1-3 token edits: relatives (unrelated drug-like pairs score about 0.1), some very close
    assert np.median(sims) > 0.25 and (sims >= 0.6).mean() > 0.05
    # edits use the model's tokens, so nearly all children are encodable (re-encoding can
    # still lengthen a string past the model's maximum)
    assert np.isfinite(model.encode(out)).all(1).mean() >= 0.9


def test_mutations_find_close_analogues_under_a_tight_similarity_constraint(model):
    ref = LOW_QED_STARTS[2]
    res = optimize(model, "qed", budget=60, seed=0, start=[ref], min_similarity=0.6, progress=False,
                   n_candidates=256, max_stall_rounds=5)
    s = _scored(res)
    found = s[(s["smiles"] != ref) & s["feasible"]]
    assert len(found) >= 20
    assert (similarity(found["smiles"].tolist(), ref) >= 0.6).all()
    assert "mutation" in set(found["source"])
    assert res.best_score > float(compute([ref], ["qed"])["qed"].iloc[0])


def test_a_start_outside_the_vocabulary_is_still_searched_by_edits(model):
    ref = "C[Si](C)(C)c1ccc(C(=O)NCC(=O)N2CCOCC2)cc1"  # silicon: not in the model's vocabulary
    assert not np.isfinite(model.encode([ref])).all()
    res = optimize(model, "qed", budget=40, seed=0, start=[ref], min_similarity=0.4, progress=False,
                   n_candidates=256, max_stall_rounds=5)
    assert res.n_oracle_calls == 40  # no stall: edits of the start need no latent point
    s = _scored(res)
    found = s[(s["smiles"] != ref) & s["feasible"]]
    assert len(found) == 39 and (similarity(found["smiles"].tolist(), ref) >= 0.4).all()


def test_failing_objective_fails_only_its_molecules(model):
    calls = {"n": 0}

    def flaky(smiles):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("docking server down")
        out = np.array(compute(smiles, ["qed"])["qed"], dtype=float)  # a writable copy
        out[[("O" in s) for s in smiles]] = np.nan  # this oracle cannot score oxygen
        out[[("S" in s) for s in smiles]] = np.inf  # nor sulfur (inf counts as failed)
        return out.tolist()

    res = optimize(model, flaky, budget=60, seed=2, batch_size=16, progress=False)
    assert res.n_oracle_calls == 60
    s = _scored(res)
    failed = s[s["score"].isna()]
    ok = s[s["score"].notna()]
    assert len(failed) > 0 and len(ok) > 0
    assert (~failed["feasible"]).all()
    assert failed["reasons"].str.contains("objective failed").all()
    assert failed["reasons"].str.contains("docking server down").any()  # the batch that raised
    assert not ok["smiles"].str.contains("O").any() and not ok["smiles"].str.contains("S").any()
    assert res.top(100)["score"].notna().all()
    assert np.isfinite(res.best_score)


@pytest.mark.parametrize(
    "strategy, kwargs",
    [
        ("trust_region", {}),
        ("trust_region", {"surrogate": "mlp"}),
        ("gradient", {}),
        ("optuna", {"sampler": "cmaes"}),
        ("optuna", {"sampler": "tpe"}),
        ("optuna", {"sampler": "random"}),
    ],
)
def test_every_strategy_counts_calls_exactly(model, strategy, kwargs):
    if kwargs.get("sampler") == "cmaes":
        pytest.importorskip("cmaes")
    oracle = Counting()
    res = optimize(model, oracle, budget=40, seed=3, strategy=strategy, batch_size=16, progress=False, **kwargs)
    assert len(oracle.seen) == res.n_oracle_calls == res.n_oracle_calls_this_run == 40
    assert len(set(oracle.seen)) == len(oracle.seen)  # never the same molecule twice
    s = _scored(res)
    assert sorted(s["smiles"]) == sorted(oracle.seen)
    assert sorted(s["call"].tolist()) == list(range(1, 41))
    assert (s["strategy"] == strategy).all()
    assert set(s["source"]) <= {"start", strategy, "prior", "mutation"}
    assert (s.loc[s["source"] != "start", "round"] > 0).all()


def test_minimize_and_weighted_objective(model):
    res = optimize(model, {"qed": 1.0, "sa": -0.2}, budget=30, seed=4, batch_size=16, progress=False)
    assert res.objectives == ["qed-0.2*sa"]
    s = _scored(res).dropna(subset=["score"])
    assert np.allclose(s["score"], s["qed"] - 0.2 * s["sa"])
    res = optimize(model, "sa", direction="minimize", budget=30, seed=4, batch_size=16, progress=False)
    top = res.top(5)
    assert top["score"].is_monotonic_increasing
    assert res.best_score == pytest.approx(_scored(res)["score"].min())


@pytest.mark.parametrize("strategy, kwargs", [("trust_region", {}), ("optuna", {"sampler": "nsga2"})])
def test_multi_objective_pareto_front(model, strategy, kwargs):
    res = optimize(model, ["qed", "sa"], direction=["maximize", "minimize"], budget=40, seed=5, strategy=strategy,
                   batch_size=16, progress=False, **kwargs)
    assert res.n_oracle_calls == 40
    front = res.pareto_front()
    assert len(front) >= 1
    feas = _scored(res).dropna(subset=["qed", "sa"])
    for _, r in front.iterrows():  # nobody dominates a front member
        dom = (feas["qed"] >= r["qed"]) & (feas["sa"] <= r["sa"]) & ((feas["qed"] > r["qed"]) | (feas["sa"] < r["sa"]))
        assert not dom.any()
    assert (res.top(len(front))["pareto_rank"] == 0).all()


# --------------------------------------------------------------------------- storage
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_resume_after_kill(model, tmp_path, kind):
    storage = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 'study.log'}"
    first = Counting(interrupt_after=16)
    with pytest.raises(KeyboardInterrupt):
        optimize(model, first, budget=36, seed=6, storage=storage, study_name="resume", batch_size=8, progress=False)
    n_first = len(first.seen)
    assert 16 <= n_first < 36
    second = Counting()
    res = optimize(model, second, budget=36, seed=6, storage=storage, study_name="resume", batch_size=8, progress=False)
    assert res.n_oracle_calls == 36
    assert len(second.seen) == 36 - n_first  # nothing scored twice, nothing lost
    assert not set(first.seen) & set(second.seen)
    scored = _study_scored_smiles(res.study)
    assert len(scored) == 36 and len(set(scored)) == 36
    assert sorted(scored) == sorted(first.seen + second.seen)
    assert sorted(_scored(res)["call"].tolist()) == list(range(1, 37))
    from optuna.trial import TrialState

    assert not res.study.get_trials(states=(TrialState.RUNNING,))
    # a third run finds the budget spent and calls nothing
    third = Counting()
    res3 = optimize(model, third, budget=36, seed=7, storage=storage, study_name="resume", progress=False)
    assert third.seen == [] and res3.n_oracle_calls == 36 and len(_scored(res3)) == 36


def _worker(model_path: str, storage: str, study: str, seed: int, budget: int, queue, barrier) -> None:
    """One optimization process sharing ``storage`` (spawned: top level).  The workers start
    optimizing together (``barrier``): on a loaded machine one could otherwise spend the whole
    budget while the other is still importing torch."""
    import time
    import traceback

    import torch

    try:
        torch.set_num_threads(1)
        model = MolVAE.load(model_path, device="cpu")
        seen: list[str] = []
        barrier.wait(timeout=300)

        def oracle(smiles):
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
    out = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    for seed, seen, n in out:
        assert n is not None, f"worker {seed} failed:\n{seen}"
    return out


def _check_shared_budget(results, storage: str, study: str, budget: int) -> None:
    """The precise bound: together the workers make exactly ``budget`` oracle calls, none twice."""
    import optuna

    from molvae.optimization.run import open_storage

    calls = [s for _, seen, _ in results for s in seen]
    assert len(calls) == budget
    assert len(set(calls)) == len(calls)
    # a worker stops once the rest of the budget is reserved by others: it saw at most the total
    assert all(len(seen) <= n <= budget for _, seen, n in results)
    st = optuna.load_study(study_name=study, storage=open_storage(storage))
    scored = _study_scored_smiles(st)
    assert sorted(scored) == sorted(calls)
    workers = {t.user_attrs[LEDGER_KEY]["worker"] for t in st.get_trials() if LEDGER_KEY in t.user_attrs}
    assert len(workers) >= 2  # both took part


def test_two_workers_share_one_sqlite_study(model_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    results = _run_workers(model_path, storage, "shared", budget=32)
    _check_shared_budget(results, storage, "shared", 32)


@pytest.mark.postgres
def test_two_workers_share_one_postgres_study(postgres_url, model_path):
    url = postgres_url  # MOLVAE_TEST_POSTGRES_URL, or a throw-away server (tests/conftest.py)
    study = f"molvae-test-{uuid.uuid4().hex[:8]}"
    results = _run_workers(model_path, url, study, budget=48)
    _check_shared_budget(results, url, study, 48)


# --------------------------------------------------------------------------- CLI
def _cli_parser() -> argparse.ArgumentParser:
    from molvae.cli.optimize import add_parser

    p = argparse.ArgumentParser(prog="molvae")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true")
    verbosity.add_argument("-q", "--quiet", action="store_true")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model")
    model_opts.add_argument("--device", default="auto")
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub, [verbosity, model_opts])
    return p


def test_cli_end_to_end(model_path, tmp_path, capsys):
    from molvae.cli.optimize import cmd_optimize

    out = tmp_path / "opt" / "out.csv"
    start = tmp_path / "start.smi"
    start.write_text("\n".join(LOW_QED_STARTS[:4]) + "\n")
    args = _cli_parser().parse_args([
        "optimize", "--model", str(model_path), "--device", "cpu", "--objective", "qed:1,sa:-0.1",
        "--budget", "24", "--seed", "1", "--start-file", str(start), "--max-mw", "500", "--batch-size", "10",
        "-q", "-o", str(out),
    ])
    assert args.func is cmd_optimize
    assert cmd_optimize(args) == 0
    printed = capsys.readouterr().out
    assert "24/24 oracle calls" in printed
    hist = pd.read_csv(out)
    assert (hist["status"] == "scored").sum() == 24
    assert {"smiles", "score", "qed-0.1*sa", "qed", "sa", "mw", "feasible", "source"} <= set(hist.columns)
    assert (hist.loc[hist["status"] == "scored", "source"] == "start").sum() == 4
    top = pd.read_csv(out.with_name("out.top.csv"))
    assert len(top) >= 1 and (top["mw"] <= 500).all()
    assert math.isclose(top["score"].iloc[0], hist["score"].max())
