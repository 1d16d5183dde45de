"""``molvae train``: the run folder, fine-tuning, the bundled data sets, the options that
override the TOML, ``--max-hours`` and configuration errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import TINY_TOML, cli, write_smiles_csv
from helpers import zinc

import molvae
from molvae.config import load_config
from molvae.data import load_dataset
from molvae.data.tokens import hash_smiles
from molvae.vae.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("cache_env")


QUICK_TOML = TINY_TOML.replace("n_prior_samples = 20", "n_prior_samples = 0").replace("epochs = 2", "epochs = 1")


def test_train_writes_a_run_folder(tiny_run):
    out = tiny_run["out"]
    for name in ("config.toml", "split.npz", "metrics.csv", "last.pt", "best.pt"):
        assert (out / name).exists(), name
    model = molvae.MolVAE.load(tiny_run["model"], device="cpu")
    assert model.latent_dim == 8 and model.config.decoder_hidden_dim == 64
    split = np.load(out / "split.npz")
    assert len(split["val"]) + len(split["train"]) == 40  # the bad row was dropped on reading
    metrics = pd.read_csv(out / "metrics.csv")
    assert (metrics.phase == "val").sum() == 2
    assert load_checkpoint(out / "last.pt")["metadata"]["data_hash"] == hash_smiles(tiny_run["smiles"])


def test_train_init_from_fine_tunes_a_model(tiny_run, tmp_path):
    """``--init-from`` continues from the given model: same vocabulary and sizes, recorded in the run."""
    data = tmp_path / "more.csv"
    write_smiles_csv(data, zinc(24, start=400))
    out = tmp_path / "tuned"
    args = ["train", "--data", str(data), "--out", str(out), "--config", str(tiny_run["toml"]), "-q",
            "--init-from", str(tiny_run["model"]), "--epochs", "1"]
    assert cli(args)[0] == 0
    base, tuned = (molvae.MolVAE.load(p, device="cpu") for p in (tiny_run["model"], out / "best.pt"))
    assert tuned.tokenizer == base.tokenizer and tuned.config == base.config
    assert tuned.metadata["init_from"] == str(tiny_run["model"])
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed  # and it did train


def _subsample(smiles: list[str], n: int, seed: int) -> list[str]:
    """The ``max_molecules`` rows a run trains on: ``n`` drawn without replacement by the seed, in file order."""
    pick = np.sort(np.random.default_rng(seed).choice(len(smiles), n, replace=False))
    return [smiles[i] for i in pick]


def test_train_on_moses_with_options_overriding_the_toml(tmp_path):
    """``--data moses`` is the bundled MOSES training set (1.58M molecules); ``--max-molecules`` trains
    on a seeded subset of it, so this takes seconds.  The options override the TOML's values."""
    toml = tmp_path / "quick.toml"
    toml.write_text(QUICK_TOML)
    out = tmp_path / "run"
    code, stdout, err = cli(["train", "--data", "moses", "--out", str(out), "--config", str(toml), "--max-molecules",
                             "60", "--epochs", "2", "--batch-size", "8", "--lr", "0.004", "--seed", "5", "-q"])
    assert code == 0, err
    assert f"best model: {out / 'best.pt'}" in stdout
    _, cfg = load_config(out / "config.toml")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.max_molecules) == (2, 8, 0.004, 5, 60)
    last = load_checkpoint(out / "last.pt")
    expected = _subsample(load_dataset("moses", "train"), 60, seed=5)
    assert last["metadata"]["data_hash"] == hash_smiles(expected)
    split = np.load(out / "split.npz")
    n_train = len(split["train"])
    assert n_train + len(split["val"]) == 60 and last["metadata"]["n_train"] == n_train
    assert last["step"] == 2 * -(-n_train // 8) and last["epoch"] == 2  # batch 8, two epochs


def test_train_on_a_named_split_and_an_unknown_one(tmp_path):
    toml = tmp_path / "quick.toml"
    toml.write_text(QUICK_TOML)
    out = tmp_path / "run"
    code, _, err = cli(["train", "--data", "zinc:test", "--out", str(out), "--config", str(toml),
                        "--max-molecules", "48", "-q"])
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["metadata"]["data_hash"] == hash_smiles(
        _subsample(load_dataset("zinc", "test"), 48, seed=0))
    code, _, err = cli(["train", "--data", "zinc:nope", "--out", str(tmp_path / "other"), "--config", str(toml), "-q"])
    assert code == 2 and "unknown dataset 'zinc' split 'nope'" in err
    assert not (tmp_path / "other" / "last.pt").exists()


def test_max_hours_stops_cleanly_and_resume_goes_on(tmp_path):
    """A run out of time stops after the step that crossed the limit, with a checkpoint to resume from."""
    toml = tmp_path / "quick.toml"
    toml.write_text(QUICK_TOML)
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(zinc(48)) + "\n")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--config", str(toml), "-q"]
    assert cli([*argv, "--max-hours", "1e-9"])[0] == 0  # 3.6 microseconds: over after the first step
    last = load_checkpoint(out / "last.pt")
    assert (last["step"], last["epoch"], last["batch_in_epoch"]) == (1, 0, 1)
    assert last["train_config"]["max_hours"] == 1e-9
    # stopped before validating and inside the first log interval (log_every 5): it goes on in last.pt
    assert not (out / "metrics.csv").exists() and last["log_window"]["n"] == 1
    assert cli([*argv, "--resume"])[0] == 0  # the stored limit again: one more step
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 2 and last["log_window"]["n"] == 2


def test_unknown_config_key_is_a_usage_error(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text(TINY_TOML.replace("epochs = 2", "epochs = 2\nlearning_rat = 0.1"))
    data = tmp_path / "m.csv"
    write_smiles_csv(data, zinc(10))
    code, _, err = cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(toml), "-q"])
    assert code == 2
    assert "learning_rat" in err and "error" in err
    assert not (tmp_path / "run" / "last.pt").exists()

    toml.write_text(TINY_TOML + "\n[optimizer]\nname = 'adam'\n")
    code, _, err = cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(toml), "-q"])
    assert code == 2 and "optimizer" in err
