"""End-to-end tests of the ``molvae`` command (molvae.cli.main) on tiny files and a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import zinc  # noqa: F401

import molvae
from molvae.chem import to_mol
from molvae.cli.main import main
from molvae.tokenizer import SelfiesTokenizer

TINY_TOML = """\
[model]
embedding_dim = 16
encoder_hidden_dim = 32
latent_dim = 8
decoder_hidden_dim = 64
decoder_layers = 1

[train]
epochs = 2
batch_size = 16
n_prior_samples = 20
max_val = 32
val_fraction = 0.1
log_every = 5
num_threads = 1
kl_warmup_steps = 10
device = "cpu"
"""

BAD = "not_a_smiles"


def _write_smiles_csv(path, smiles):
    pd.DataFrame({"name": [f"m{i}" for i in range(len(smiles))], "smiles": smiles}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model trained through the CLI, with its data file (one bad row) and run folder."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLVAE_CACHE_DIR", str(root / "cache"))
        smiles = zinc(40)
        data = root / "mols.csv"
        _write_smiles_csv(data, smiles[:20] + [BAD] + smiles[20:])
        (root / "tiny.toml").write_text(TINY_TOML)
        code = main(["train", "--data", str(data), "--out", str(root / "run"), "--config", str(root / "tiny.toml"), "-q"])
        assert code == 0
    return {"root": root, "data": data, "out": root / "run", "model": root / "run" / "best.pt", "smiles": smiles}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLVAE_CACHE_DIR", str(tmp_path / "cache"))


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"molvae {molvae.__version__}"


def test_tokenize_writes_a_vocabulary(tmp_path, capsys):
    smiles = zinc(15)
    data = tmp_path / "small.csv"
    _write_smiles_csv(data, smiles[:7] + [BAD] + smiles[7:])
    vocab = tmp_path / "v.json"
    assert main(["tokenize", str(data), "--save-vocab", str(vocab), "-q"]) == 0
    out = capsys.readouterr().out
    assert "molecules read: 16" in out and "invalid rows dropped: 1" in out
    assert "tokenized: 15" in out
    tok = SelfiesTokenizer.load(vocab)
    assert tok == SelfiesTokenizer.fit(smiles, progress=False)
    assert json.loads(vocab.read_text())["format"] == "molvae-selfies-tokenizer"
    assert f"vocabulary: {tok.vocab_size} tokens" in out
    # the saved vocabulary can be used again
    assert main(["tokenize", str(data), "--vocab", str(vocab), "-q"]) == 0


def test_train_writes_a_run_folder(run, capsys):
    out = run["out"]
    for name in ("config.toml", "split.npz", "metrics.csv", "last.pt", "best.pt"):
        assert (out / name).exists(), name
    model = molvae.MolVAE.load(run["model"], device="cpu")
    assert model.latent_dim == 8 and model.config.decoder_hidden_dim == 64
    split = np.load(out / "split.npz")
    assert len(split["val"]) + len(split["train"]) == 40  # the bad row was dropped on reading
    metrics = pd.read_csv(out / "metrics.csv")
    assert (metrics.phase == "val").sum() == 2


def test_train_init_from_fine_tunes_a_model(run, tmp_path):
    """``--init-from`` continues from the given model: same vocabulary and sizes, recorded in the run."""
    data = tmp_path / "more.csv"
    _write_smiles_csv(data, zinc(24, start=400))
    out = tmp_path / "tuned"
    args = ["train", "--data", str(data), "--out", str(out), "--config", str(run["root"] / "tiny.toml"), "-q",
            "--init-from", str(run["model"]), "--epochs", "1"]
    assert main(args) == 0
    base, tuned = (molvae.MolVAE.load(p, device="cpu") for p in (run["model"], out / "best.pt"))
    assert tuned.tokenizer == base.tokenizer and tuned.config == base.config
    assert tuned.metadata["init_from"] == str(run["model"])
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed  # and it did train


def test_sample(run, tmp_path):
    dest = tmp_path / "s.csv"
    base = ["sample", "--model", str(run["model"]), "-n", "20", "--seed", "0", "--no-faithful", "-q"]
    assert main([*base, "-o", str(dest)]) == 0
    df = pd.read_csv(dest)
    assert len(df) == 20
    assert list(df.columns) == ["smiles", "valid", "faithful", "nll"]  # no SELFIES unless asked
    assert df.valid.all() and all(to_mol(s) is not None for s in df.smiles)
    again = tmp_path / "s2.csv"
    assert main([*base, "-o", str(again), "--selfies"]) == 0
    both = pd.read_csv(again)
    assert "selfies" in both.columns
    pd.testing.assert_frame_equal(df, both.drop(columns="selfies"))


def test_sample_prints_a_readable_table_of_faithful_molecules(capsys):
    """The README's main command: SMILES and the properties asked for, the acceptance rate."""
    assert main(["sample", "-n", "6", "--seed", "0", "--properties", "qed,logp", "-q"]) == 0
    out = capsys.readouterr().out
    first, header, *rows = out.strip().splitlines()
    assert "6 sampled" in first and "faithful" in first and "redrawn" in first
    assert header.split() == ["smiles", "qed", "logp"]
    assert len(rows) == 6 and max(len(r) for r in rows) < 100
    smiles = [r.split()[1] for r in rows]
    assert all(to_mol(s) is not None for s in smiles)
    assert main(["sample", "-n", "4", "--seed", "0", "--no-faithful", "--prior", "standard", "--selfies", "-q"]) == 0
    out = capsys.readouterr().out
    assert "faithful" in out.splitlines()[0] and "redrawn" not in out.splitlines()[0]
    assert out.splitlines()[1].split() == ["smiles", "selfies"]


def test_sample_with_a_learned_prior_the_model_lacks_is_a_usage_error(run, capsys):
    assert main(["sample", "--model", str(run["model"]), "-n", "3", "--prior", "learned", "-q"]) == 2
    assert "no learned prior" in capsys.readouterr().err


def test_fit_prior_writes_a_model_that_samples_from_it(run, tmp_path, capsys):
    out = tmp_path / "with_prior.pt"
    argv = ["fit-prior", "--model", str(run["model"]), "--data", str(run["data"]), "--components", "2",
            "--covariance", "diag", "-o", str(out), "-q"]
    assert main(argv) == 0
    assert "fitted on 40 molecules" in capsys.readouterr().out  # the bad row is dropped by the reader
    model = molvae.MolVAE.load(out, device="cpu")
    assert model.prior is not None and model.prior.n_components == 2
    dest = tmp_path / "s.csv"
    assert main(["sample", "--model", str(out), "-n", "10", "--seed", "0", "--no-faithful", "-o", str(dest), "-q"]) == 0
    assert main(["sample", "--model", str(out), "-n", "10", "--seed", "0", "--no-faithful", "--prior", "standard",
                 "-o", str(tmp_path / "t.csv"), "-q"]) == 0
    assert pd.read_csv(dest).smiles.tolist() != pd.read_csv(tmp_path / "t.csv").smiles.tolist()
    assert main([*argv[:-3], "--components", "500", "-o", str(out), "-q"]) == 2
    assert "needs at least 1000" in capsys.readouterr().err


def test_encode_decode_reconstruct(run, tmp_path):
    model_args = ["--model", str(run["model"])]
    data = run["data"]
    z_csv = tmp_path / "z.csv"
    assert main(["encode", *model_args, str(data), "-o", str(z_csv), "-q"]) == 0
    z = pd.read_csv(z_csv)
    assert len(z) == 41
    assert list(z.columns) == ["smiles", "status"] + [f"z{i}" for i in range(8)]
    zcols = [f"z{i}" for i in range(8)]
    bad = z.smiles == BAD
    assert bad.sum() == 1
    assert z.loc[bad, zcols].isna().all(axis=None)
    assert z.loc[~bad, zcols].notna().all(axis=None)
    assert (z.status[~bad] == "ok").all()
    assert z.status[bad].iloc[0] != "ok" and "invalid" in z.status[bad].iloc[0].lower()
    # the same latent means as the library gives
    model = molvae.MolVAE.load(run["model"], device="cpu")
    assert np.allclose(z.loc[~bad, zcols].to_numpy(np.float32), model.encode(run["smiles"]), atol=1e-5)

    d_csv = tmp_path / "d.csv"
    assert main(["decode", *model_args, str(z_csv), "-o", str(d_csv), "-q"]) == 0
    d = pd.read_csv(d_csv)
    assert len(d) == 40  # the NaN row is skipped
    assert d.row.tolist() == [i for i in range(41) if i != 20]
    assert d.valid.all()
    assert d.smiles.tolist() == model.decode(z.loc[~bad, zcols].to_numpy(np.float32))

    npy = tmp_path / "z.npy"
    assert main(["encode", *model_args, str(data), "-o", str(npy), "-q"]) == 0
    arr = np.load(npy)
    assert arr.shape == (41, 8) and np.isnan(arr[20]).all()
    d2 = tmp_path / "d2.csv"
    assert main(["decode", *model_args, str(npy), "-o", str(d2), "-q"]) == 0
    assert pd.read_csv(d2).smiles.tolist() == d.smiles.tolist()

    r_csv = tmp_path / "r.csv"
    assert main(["reconstruct", *model_args, str(data), "-o", str(r_csv), "-q"]) == 0
    r = pd.read_csv(r_csv, keep_default_na=False)
    assert len(r) == 41
    assert {"input", "canonical", "reconstruction", "encoded", "exact"} <= set(r.columns)
    assert r.encoded.tolist() == [i != 20 for i in range(41)]
    assert r.reconstruction[20] == "" and not r.exact[20]
    assert r.reconstruction[~bad].tolist() == d.smiles.tolist()


def test_encode_smiles_given_on_the_command_line(run, tmp_path, capsys):
    dest = tmp_path / "z.csv"
    assert main(["encode", "--model", str(run["model"]), "CCO", "c1ccccc1", "-o", str(dest), "-q"]) == 0
    z = pd.read_csv(dest)
    assert z.smiles.tolist() == ["CCO", "c1ccccc1"]
    assert "encoded 2 of 2" in capsys.readouterr().out


def test_unknown_config_key_is_a_usage_error(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text(TINY_TOML.replace("epochs = 2", "epochs = 2\nlearning_rat = 0.1"))
    data = tmp_path / "m.csv"
    _write_smiles_csv(data, zinc(10))
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(toml), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "learning_rat" in err and "error" in err
    assert not (tmp_path / "run" / "last.pt").exists()

    toml.write_text(TINY_TOML + "\n[optimizer]\nname = 'adam'\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(toml), "-q"]) == 2
    assert "optimizer" in capsys.readouterr().err


def test_missing_model_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.pt"
    for argv in (["sample", "-n", "3"], ["encode", "CCO"], ["reconstruct", "CCO"]):
        assert main([*argv, "--model", str(missing), "-q"]) == 2
        err = capsys.readouterr().err
        assert str(missing) in err and "no such checkpoint" in err
        assert "Traceback" not in err


def test_corrupt_model_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"")
    assert main(["sample", "-n", "3", "--model", str(bad), "-q"]) == 2
    assert "empty" in capsys.readouterr().err
