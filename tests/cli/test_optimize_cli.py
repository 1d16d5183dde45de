"""``molvae optimize`` through the real command line (molvae.cli.main and ``python -m molvae``).

The model is the session's small search model (``search_model_path`` in tests/conftest.py),
passed with ``--model``: the shipped model is never loaded.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pandas as pd
import pytest

from molvae.cli.main import main
from molvae.cli.optimize import parse_objective

STARTS = [
    "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1",
    "Cc1[nH]c2ccc(C(=O)Nc3cc(C(C)(C)C)nn3-c3ncccn3)cc2c1C",
    "C=CCn1c(S[C@H](C)C(=O)N2CCC(C)CC2)nnc1-c1ccc(Cl)cc1",
    "Cc1ccc2ncc(C(=O)Nc3ncccc3OCc3ccncc3)n2c1",
]


@pytest.fixture
def model_args(search_model_path):
    return ["--model", str(search_model_path), "--device", "cpu", "-q"]


def test_parse_objective():
    assert parse_objective("qed") == "qed"
    assert parse_objective("qed:1,sa:-0.2") == {"qed": 1.0, "sa": -0.2}
    assert parse_objective("qed,logp:0.5") == {"qed": 1.0, "logp": 0.5}
    with pytest.raises(ValueError, match="bad weight"):
        parse_objective("qed:x")
    with pytest.raises(ValueError, match="empty"):
        parse_objective("  ")


def test_the_parser_offers_exactly_the_registered_strategies_and_samplers():
    from molvae.cli.optimize import SAMPLER_CHOICES, STRATEGY_CHOICES
    from molvae.optimization import SAMPLERS, STRATEGIES

    assert STRATEGY_CHOICES == tuple(STRATEGIES) and SAMPLER_CHOICES == tuple(SAMPLERS)


def test_optimize_end_to_end(model_args, tmp_path, capsys):
    out = tmp_path / "opt" / "out.csv"
    start = tmp_path / "start.smi"
    start.write_text("\n".join(STARTS) + "\n")
    code = main(["optimize", *model_args, "--objective", "qed:1,sa:-0.1", "--budget", "24", "--seed", "1",
                 "--start-file", str(start), "--max-mw", "500", "--batch-size", "10", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "trust_region: 24/24 oracle calls (24 by this run)" in printed
    assert f"molecules to {out} and the best to {out.with_name('out.top.csv')}" in printed
    hist = pd.read_csv(out)
    assert (hist["status"] == "scored").sum() == 24
    assert {"smiles", "score", "qed-0.1*sa", "qed", "sa", "mw", "feasible", "source"} <= set(hist.columns)
    assert (hist.loc[hist["status"] == "scored", "source"] == "start").sum() == len(STARTS)
    top = pd.read_csv(out.with_name("out.top.csv"))
    assert len(top) >= 1 and (top["mw"] <= 500).all()
    assert math.isclose(top["score"].iloc[0], hist["score"].max())
    assert top["smiles"].iloc[0] in printed  # the best molecule is in the printed table


def test_optimize_resumes_a_study_and_shares_its_budget(model_args, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["optimize", *model_args, "--budget", "20", "--batch-size", "8", "--storage", storage, "--study", "cli"]
    assert main([*argv, "--seed", "0", "-o", str(tmp_path / "a.csv")]) == 0
    assert "20/20 oracle calls (20 by this run)" in capsys.readouterr().out
    assert main([*argv, "--seed", "1", "-o", str(tmp_path / "b.csv")]) == 0
    assert "20/20 oracle calls (0 by this run)" in capsys.readouterr().out  # the budget was spent
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert sorted(a.loc[a["status"] == "scored", "smiles"]) == sorted(b.loc[b["status"] == "scored", "smiles"])


def test_optimize_novel_with_a_train_file(model_args, tmp_path, capsys):
    first = tmp_path / "first.csv"
    assert main(["optimize", *model_args, "--budget", "16", "--batch-size", "8", "--seed", "3", "-o", str(first)]) == 0
    train = pd.read_csv(first).query("status == 'scored'")["smiles"]
    (tmp_path / "train.smi").write_text("\n".join(train) + "\n")
    out = tmp_path / "novel.csv"
    assert main(["optimize", *model_args, "--budget", "16", "--batch-size", "8", "--seed", "3", "--novel",
                 "--train-file", str(tmp_path / "train.smi"), "-o", str(out)]) == 0
    hist = pd.read_csv(out)
    s = hist[hist["status"] == "scored"]
    assert len(s) == 16 and not set(s["smiles"]) & set(train) and s["novel"].all()
    assert hist["reasons"].fillna("").str.contains("in the training set").any()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget", "many"], "invalid int value"),
        (["--strategy", "magic"], "invalid choice"),
        (["--sampler", "annealing", "--strategy", "optuna"], "invalid choice"),
        (["--surrogate", "forest"], "invalid choice"),
        (["--direction", "sideways"], "invalid choice"),
        (["--min-similarity"], "expected one argument"),
    ],
)
def test_optimize_argument_errors_exit_2(model_args, argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["optimize", *model_args, *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: molvae optimize" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--objective", "not_a_property"], "unknown objective 'not_a_property'"),
        (["--objective", "qed:x"], "--objective: bad weight 'x' for 'qed'"),
        (["--objective", "qed:1,nonsense:2"], "unknown properties in the objective weights"),
        (["--sampler", "tpe"], "--sampler applies to --strategy optuna"),
        (["--surrogate", "mlp", "--strategy", "gradient"], "--surrogate applies to --strategy trust_region"),
        (["--crossover-fraction", "0.3", "--strategy", "optuna"], "--crossover-fraction applies to --strategy trust_region"),
        (["--finetune-every", "100", "--strategy", "gradient"], "--finetune-every applies to --strategy trust_region"),
        (["--crossover-fraction", "1.5"], "crossover_fraction must be within [0, 1]"),
        (["--graph-mutation-fraction", "0.2", "--strategy", "optuna"],
         "--graph-mutation-fraction applies to --strategy trust_region"),
        (["--graph-mutation-fraction", "0.8"],
         "mutation_fraction + crossover_fraction + graph_mutation_fraction + substituent_fraction must be <= 1"),
        (["--substituent-fraction", "0.1", "--strategy", "gradient"],
         "--substituent-fraction applies to --strategy trust_region"),
        (["--carry-rounds", "2", "--strategy", "optuna"], "--carry-rounds applies to --strategy trust_region"),
        (["--carry-rounds", "-1"], "carry_rounds must be an integer >= 0"),
        (["--early-candidates", "1024", "--strategy", "optuna"], "--early-candidates applies to --strategy trust_region"),
        (["--early-candidates", "0"], "early_candidates must be >= 1"),
        (["--n-candidates", "0"], "n_candidates must be >= 1"),
        (["--min-similarity", "0.4"], "min_similarity needs reference molecules"),
        (["--start", "not_a_smiles"], "none of the start molecules can be parsed"),
        (["--smarts", "[[["], "invalid SMARTS"),
        (["--novel"], "--novel with --model needs --train-file"),
        (["--budget", "0"], "budget must be >= 1"),
    ],
)
def test_optimize_usage_errors_exit_2_with_one_line(model_args, tmp_path, argv, message, capsys):
    out = tmp_path / "out.csv"
    assert main(["optimize", *model_args, *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"molvae optimize: error: {message}" in err
    assert "Traceback" not in err and not out.exists()


def test_optimize_with_crossover_and_decoder_fine_tuning(model_args, tmp_path, capsys):
    out = tmp_path / "out.csv"
    code = main(["optimize", *model_args, "--objective", "qed", "--budget", "90", "--batch-size", "15",
                 "--crossover-fraction", "0.4", "--graph-mutation-fraction", "0.2", "--substituent-fraction", "0.1",
                 "--finetune-every", "40",
                 "-o", str(out)])
    assert code == 0
    hist = pd.read_csv(out)
    assert (hist["status"] == "scored").sum() == 90
    sources = set(hist.loc[hist["status"] == "scored", "source"])
    assert {"crossover", "graph_mutation", "substituent"} <= sources, sources


def test_optimize_with_a_missing_model_exits_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.pt"
    assert main(["optimize", "--model", str(missing), "--budget", "5", "-q"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_python_m_molvae_optimize(search_model_path, tmp_path):
    out = tmp_path / "out.csv"
    env = dict(os.environ, OMP_NUM_THREADS="1", MOLVAE_CACHE_DIR=str(tmp_path / "cache"))
    ok = subprocess.run(
        [sys.executable, "-m", "molvae", "optimize", "--model", str(search_model_path), "--device", "cpu",
         "--objective", "qed", "--budget", "12", "--batch-size", "6", "--strategy", "optuna", "--sampler", "random",
         "-q", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "optuna: 12/12 oracle calls" in ok.stdout
    assert (pd.read_csv(out)["status"] == "scored").sum() == 12
    bad = subprocess.run([sys.executable, "-m", "molvae", "optimize", "--model", str(search_model_path),
                          "--objective", "nothing_known", "-q"], capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("molvae optimize: error: unknown objective 'nothing_known'")


def test_optimize_passes_the_pool_sizes_to_the_trust_region(model_args, tmp_path, monkeypatch):
    import molvae.optimization as opt

    seen = {}
    real = opt.optimize

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(opt, "optimize", spy)
    out = tmp_path / "out.csv"
    assert main(["optimize", *model_args, "--objective", "qed", "--budget", "40", "--batch-size", "8",
                 "--n-candidates", "32", "--early-candidates", "96", "--early-calls", "16", "-q", "-o", str(out)]) == 0
    assert (seen["n_candidates"], seen["early_candidates"], seen["early_calls"]) == (32, 96, 16)
    assert (pd.read_csv(out)["status"] == "scored").sum() == 40
