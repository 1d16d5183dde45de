"""benchmarks/constrained_logp.py: the protocol helpers, and the script end to end (slow)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import load_benchmark

import molvae as mv
from molvae.optimization.run import default_batch_size

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "constrained_logp.py"


cl = load_benchmark("constrained_logp")

START = "C[C@@H](N)c1ccccc1O"  # score -1 below; its stereoisomer and stereo-free copy are not modifications


def _history(rows):
    return pd.DataFrame(rows, columns=["smiles", "logp_sa", "similarity", "status", "source"])


HISTORY = _history([
    [START, -1.0, 1.0, "scored", "start"],
    ["C[C@H](N)c1ccccc1O", 9.0, 1.0, "scored", "trust_region"],  # other enantiomer: same constitution
    ["CC(N)c1ccccc1O", 8.0, 1.0, "scored", "start"],  # stereo removed
    ["CC(N)c1ccccc1OC", 1.5, 0.45, "scored", "trust_region"],  # best at delta 0.4
    ["CC(N)c1ccccc1Cl", 0.5, 0.62, "scored", "trust_region"],  # best at delta 0.6
    ["CC(C)c1ccccc1O", -2.0, 0.65, "scored", "trust_region"],  # feasible at 0.6, worse than the start
    ["CCCCCCCCCCCC", 7.0, 0.39, "scored", "trust_region"],  # best score, but below every delta
    ["CC(N)c1ccccc1Br", 6.0, 0.70, "infeasible", "trust_region"],  # not a scored record: ignored
    ["CC(N)c1ccccc1I", float("nan"), 0.71, "scored", "trust_region"],  # the oracle failed
])


def test_is_modified_ignores_stereo_only_changes():
    assert not cl.is_modified("C[C@H](N)c1ccccc1O", START)
    assert not cl.is_modified("CC(N)c1ccccc1O", START)
    assert not cl.is_modified("Oc1ccccc1[C@@H](C)N", START)  # another spelling
    assert cl.is_modified("CC(N)c1ccccc1OC", START)
    assert cl.is_modified("CC([NH3+])c1ccccc1O", START)  # another protonation state is another molecule
    assert not cl.is_modified("not a smiles", START)


def test_best_modified_picks_the_best_feasible_modification_per_delta():
    got = cl.best_modified(HISTORY, START, 0.4, "logp_sa")
    assert got == {"best": "CC(N)c1ccccc1OC", "best_score": 1.5, "similarity": 0.45, "success": True}
    assert cl.improvement(got, -1.0) == pytest.approx(2.5)

    got = cl.best_modified(HISTORY, START, 0.6, "logp_sa")
    assert got["best"] == "CC(N)c1ccccc1Cl" and got["similarity"] == 0.62
    assert cl.improvement(got, -1.0) == pytest.approx(1.5)

    # only the start, its stereo copies and molecules below the threshold: a failure, improvement 0
    got = cl.best_modified(HISTORY, START, 0.8, "logp_sa")
    assert got["success"] is False and got["best"] is None and math.isnan(got["best_score"])
    assert cl.improvement(got, -1.0) == 0.0

    # excluding a molecule (a neutralized search start) passes to the next best
    got = cl.best_modified(HISTORY, START, 0.6, "logp_sa", exclude=["CC(N)c1ccccc1Cl"])
    assert got["best"] == "CC(C)c1ccccc1O"
    assert cl.improvement(got, -1.0) == pytest.approx(-1.0)  # a success can be worse than the start

    # an exact tie with the threshold is feasible (the optimizer's rule: similarity >= delta)
    assert cl.best_modified(HISTORY, START, 0.45, "logp_sa")["best"] == "CC(N)c1ccccc1OC"


def test_best_modified_on_an_empty_or_start_only_history():
    assert cl.best_modified(HISTORY.iloc[:0], START, 0.4, "logp_sa")["success"] is False
    assert cl.best_modified(HISTORY.iloc[:3], START, 0.0, "logp_sa")["success"] is False


def test_summarize_counts_failures_as_zero_and_uses_the_population_std():
    rows = pd.DataFrame({
        "improvement": [2.0, 0.0, -1.0, 0.0],
        "success": [True, False, True, False],
        "similarity": [0.5, np.nan, 0.7, np.nan],
    })
    s = cl.summarize(rows)
    assert s["n"] == 4 and s["n_success"] == 2 and s["success"] == 0.5
    assert s["mean"] == pytest.approx(0.25)
    assert s["std"] == pytest.approx(np.std([2.0, 0.0, -1.0, 0.0]))
    assert s["mean_success"] == pytest.approx(0.5)
    assert s["similarity_success"] == pytest.approx(0.6)
    assert s["n_negative"] == 1


def test_start_scores_match_the_file_with_logp_sa_and_not_with_standardized_penalized_logp():
    df = mv.data.load_opt_logp()
    assert len(df) == 800 and list(df.columns) == ["smiles", "penalized_logp"]
    idx = list(range(0, 800, 16))  # 50 spread over the file (682, the known mismatch, is not among them)
    smiles = df["smiles"].iloc[idx].tolist()
    file_values = df["penalized_logp"].iloc[idx].to_numpy()
    ours = mv.properties.score(smiles, "logp_sa", n_jobs=1)
    np.testing.assert_allclose(ours, file_values, atol=1e-6)
    standardized = mv.properties.score(smiles, "penalized_logp", n_jobs=1)
    assert np.abs(standardized - file_values).max() > 1.0


def test_search_start_policy_on_the_shipped_vocabulary():
    tok = mv.load_pretrained().tokenizer
    assert cl.search_start("CCOc1ccccc1C(N)=O", tok) == ("CCOc1ccccc1C(N)=O", "as is")
    # file row 3: stereo only -> the stereo-free copy
    assert cl.search_start("OC[C@@H](Br)C(F)(F)Br", tok) == ("OCC(Br)C(F)(F)Br", "stereo removed")
    # file row 0: a charged amine -> neutralized
    assert cl.search_start("COc1cc2c(cc1OC)CC([NH3+])C2", tok) == ("COc1cc2c(cc1OC)CC(N)C2", "neutralized")
    # file row 1: both
    got, how = cl.search_start("C[C@@H]1CC[C@@H](C(N)=O)CN1C(=O)c1nnn[n-]1", tok)
    assert how == "neutralized, stereo removed" and cl.encodable(got, tok) and "@" not in got and "-" not in got
    # a nitro group cannot be neutralized: no encodable version
    got, how = cl.search_start("Cc1ccc([N+](=O)[O-])cc1", tok)
    assert got is None and how.startswith("not encodable: tokens outside the vocabulary")


@pytest.mark.slow
def test_script_end_to_end_on_three_starts(tmp_path):
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    budget = 14
    cmd = [sys.executable, str(SCRIPT), "--limit", "3", "--budget-per-molecule", str(budget), "--seed", "1",
           "--out-dir", str(tmp_path), "--no-results", "--opt", "max_stall_rounds=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results.read_bytes() if results.exists() else None) == before  # --no-results kept it

    path = tmp_path / f"results-logp_sa-trust_region-b{budget}-s1-n3.csv"
    df = pd.read_csv(path)
    assert list(df.columns) == cl.CSV_COLUMNS
    assert len(df) == 6 and sorted(set(df["delta"])) == [0.4, 0.6] and list(df["index"].unique()) == [0, 1, 2]
    starts = mv.data.load_opt_logp()["smiles"].iloc[:3].tolist()
    assert df.drop_duplicates("index")["start"].tolist() == starts
    np.testing.assert_allclose(df["start_score"], df["file_score"], atol=1e-6)
    assert (df["calls"] <= budget).all() and (df["calls"] >= 1).all()
    assert (df["run_delta"] == 0.4).all()  # one run per start, delta 0.6 read from its history
    assert (df["batch_size"] == 2).all()  # optimize's default for a budget this small

    ok = df[df["success"]]
    for _, row in ok.iterrows():
        sim = mv.properties.similarity([row["best"]], row["start"])[0]
        assert sim >= row["delta"] and sim == pytest.approx(row["similarity"])
        score = mv.properties.score([row["best"]], "logp_sa")[0]
        assert score == pytest.approx(row["best_score"])
        assert row["improvement"] == pytest.approx(score - row["start_score"])
        assert cl.is_modified(row["best"], row["start"])
    failed = df[~df["success"]]
    assert (failed["improvement"] == 0).all() and failed["best"].isna().all()
    # the larger delta cannot do better than the smaller one on the same history
    wide = df[df["delta"] == 0.4].set_index("index")
    narrow = df[df["delta"] == 0.6].set_index("index")
    assert (narrow["success"] <= wide["success"]).all()
    both = narrow["success"] & wide["success"]
    assert (narrow.loc[both, "best_score"] <= wide.loc[both, "best_score"] + 1e-12).all()
    assert "| molvae trust_region | 0.4 |" in proc.stdout and "JT-VAE (Jin et al. 2018)" in proc.stdout


def _row(index: int, delta: float, improvement: float) -> dict:
    row = dict.fromkeys(cl.CSV_COLUMNS)
    row.update(index=index, delta=delta, improvement=improvement, success=True, run_delta=0.4,
               search_start_how="as is", calls=50, wall_s=1.0, best="CCO", best_score=1.0)
    return row


def test_an_interrupted_run_resumes_from_its_partial_file_and_refuses_other_settings(tmp_path):
    result = tmp_path / "results-penalized_logp-trust_region-b50-s0-n3.csv"
    settings = {"deltas": [0.4, 0.6], "opt": [], "one_run_per_delta": False}
    first = cl.Partial(result, settings, resume=False)
    first.add([_row(0, 0.4, 2.5), _row(0, 0.6, 1.5)], wall=10.0)
    first.add([_row(2, 0.4, 3.0), _row(2, 0.6, 0.0)], wall=25.0)
    assert result.with_suffix(".partial.csv").exists() and not result.exists()

    again = cl.Partial(result, settings, resume=True)
    assert again.done == {0, 2} and again.wall_before == 25.0
    assert [r["improvement"] for r in again.rows] == [2.5, 1.5, 3.0, 0.0]
    with pytest.raises(SystemExit, match="other settings"):
        cl.Partial(result, {**settings, "opt": ["batch_size=8"]}, resume=True)
    fresh = cl.Partial(result, settings, resume=False)  # without --resume the old rows are dropped
    assert fresh.done == set() and not result.with_suffix(".partial.csv").exists()


def test_run_budget_runs_only_the_starts_not_yet_done(tmp_path):
    starts = mv.data.load_opt_logp().iloc[:2]
    result = tmp_path / "results-logp_sa-trust_region-b50-s0-n2.csv"
    args = type("Args", (), dict(delta=[0.4, 0.6], opt=[], one_run_per_delta=False, resume=True, objective="logp_sa",
                                 seed=0, strategy="trust_region", workers=1, threads=1))()
    # a partial run under another batch size (an older default of optimize) is not resumed
    old = {"deltas": [0.4, 0.6], "opt": [], "one_run_per_delta": False, "batch_size": 32}
    cl.Partial(result, old, resume=False).add([_row(int(starts.index[0]), 0.4, 1.0)], wall=1.0)
    with pytest.raises(SystemExit, match="other settings"):
        cl.run_budget(starts, args, 50, {}, result)
    settings = {**old, "batch_size": default_batch_size(50)}  # what optimize() picks for 50 calls
    part = cl.Partial(result, settings, resume=False)
    part.add([_row(int(i), d, 1.0) for i in starts.index for d in (0.4, 0.6)], wall=7.0)
    df, wall = cl.run_budget(starts, args, 50, {}, result)  # nothing left to run: no model is loaded
    assert len(df) == 4 and list(df["index"]) == [0, 0, 1, 1] and wall >= 7.0
    assert result.exists() and not result.with_suffix(".partial.csv").exists()
    assert pd.read_csv(result)["improvement"].tolist() == [1.0, 1.0, 1.0, 1.0]
