"""``molvae evaluate``: the MOSES metric report of a SMILES file (real molecules, a tiny model's
samples) and of a model's own samples, printed and as JSON.

The reference and novelty sets are small SMILES files, so no MOSES statistics are computed."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_helpers import cli
from helpers import zinc

from molvae.chem import canonical

pytestmark = pytest.mark.usefixtures("cache_env")


def _printed(out: str) -> dict[str, tuple[float, float | None]]:
    """The metric table ``evaluate`` prints: {metric: (mean, std or None)}."""
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["metric", "mean", "std"])
    table = {}
    for line in lines[start + 1 :]:
        parts = line.split()
        if len(parts) not in (2, 3) or parts[0].startswith(("report", "latent")):
            break
        table[parts[0]] = (float(parts[1]), float(parts[2]) if len(parts) == 3 else None)
    return table


def _check_printed_matches_json(out: str, report: dict) -> None:
    table = _printed(out)
    assert set(table) == set(report["summary"])
    for metric, (mean, std) in table.items():
        assert mean == pytest.approx(report["summary"][metric]["mean"], abs=5e-5, nan_ok=True), metric


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    mols, train = root / "mols.smi", root / "train.smi"
    mols.write_text("\n".join(zinc(60)) + "\n")
    train.write_text("\n".join(zinc(270, start=30)) + "\n")  # holds the last 30 of mols
    return {"mols": mols, "train": train}


def test_real_molecules_scored_against_themselves(files, tmp_path):
    """The same molecules as generated set and reference: distances 0, similarities 1; half are in
    the novelty set."""
    report_path = tmp_path / "report.json"
    code, out, err = cli(["evaluate", "--smiles", str(files["mols"]), "--reference", str(files["mols"]),
                          "--train", str(files["train"]), "-o", str(report_path), "-q"])
    assert code == 0, err
    assert f"report written to {report_path}" in out
    report = json.loads(report_path.read_text())
    assert report["n"] == 60 and report["smiles_file"] == str(files["mols"])
    assert [run["seed"] for run in report["runs"]] == [None]
    mean = {m: v["mean"] for m, v in report["summary"].items()}
    assert mean["valid"] == 1.0 and mean["unique@1000"] == 1.0
    assert mean["novelty"] == 0.5
    assert mean["SNN/Test"] == pytest.approx(1.0) and mean["Frag/Test"] == pytest.approx(1.0)
    assert mean["Scaf/Test"] == pytest.approx(1.0)
    assert abs(mean["FCD/Test"]) < 1e-3
    for prop in ("logP", "SA", "QED", "weight"):
        assert mean[f"{prop}/Test"] == pytest.approx(0.0, abs=1e-9), prop
    assert 0.5 < mean["IntDiv"] < 1.0  # 60 different drug-like molecules
    _check_printed_matches_json(out, report)


def test_a_tiny_models_samples(tiny_run, files, tmp_path):
    """A sample file as another generator would write it (CSV with a smiles column)."""
    samples = tmp_path / "samples.csv"
    code, _, err = cli(["sample", "--model", str(tiny_run["model"]), "-n", "40", "--seed", "0", "--no-faithful",
                        "-o", str(samples), "-q"])
    assert code == 0, err
    report_path = tmp_path / "report.json"
    code, out, err = cli(["evaluate", "--smiles", str(samples), "--reference", str(files["mols"]),
                          "--train", str(tiny_run["data"]), "-o", str(report_path), "-q"])
    assert code == 0, err
    report = json.loads(report_path.read_text())
    mean = {m: v["mean"] for m, v in report["summary"].items()}
    generated = [canonical(s) for s in pd.read_csv(samples).smiles]
    distinct = set(generated)
    trained_on = {canonical(s) for s in tiny_run["smiles"]}
    assert report["n"] == 40
    assert mean["valid"] == 1.0  # SELFIES: every decoded string is a molecule
    assert mean["unique@1000"] == pytest.approx(len(distinct) / 40)
    assert mean["novelty"] == pytest.approx(len(distinct - trained_on) / len(distinct))
    assert 0 < mean["SNN/Test"] < 1 and mean["FCD/Test"] > 1  # not the reference molecules
    _check_printed_matches_json(out, report)


def test_a_models_samples_over_two_seeds(tiny_run, files, tmp_path):
    report_path = tmp_path / "report.json"
    code, out, err = cli(["evaluate", "--model", str(tiny_run["model"]), "-n", "30", "--seed", "0", "1",
                          "--no-faithful", "--prior", "standard", "--reference", str(files["mols"]),
                          "--train", str(tiny_run["data"]), "-o", str(report_path), "-q"])
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["model"] == str(tiny_run["model"]) and report["prior"] == "standard" and report["faithful"] is False
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    assert all(run["n_drawn"] == 30 for run in report["runs"])
    unique = [run["metrics"]["unique@1000"] for run in report["runs"]]
    assert report["summary"]["unique@1000"]["mean"] == pytest.approx(sum(unique) / 2)
    table = _printed(out)
    assert table["valid"] == (1.0, 0.0)  # a std over two seeds
    _check_printed_matches_json(out, report)


def test_evaluate_errors(tmp_path):
    code, _, err = cli(["evaluate", "--smiles", str(tmp_path / "missing.smi"), "-q"])
    assert code == 2 and "no such file" in err
    empty = tmp_path / "empty.smi"
    empty.write_text("\n")
    code, _, err = cli(["evaluate", "--smiles", str(empty), "-q"])
    assert code == 2 and "empty" in err
