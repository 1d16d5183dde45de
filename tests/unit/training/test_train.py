"""Tests for molvae.training.loop: run folder, determinism, resume, NaN handling and a small overfit."""

from __future__ import annotations

import dataclasses
import importlib
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_MODEL, sequence_log_prob, tiny_train_config, zinc  # noqa: F401

from molvae.config import ModelConfig, TrainConfig, load_config
from molvae.training.loop import TrainingError, train
from molvae.vae.checkpoint import load_checkpoint
from molvae.vae.model import MolVAE

# ``molvae.training.loop`` the attribute is the train() function (re-exported by the package), so
# ``import molvae.training.loop as m`` gives the function: fetch the module itself.
train_mod = importlib.import_module("molvae.training.loop")

DOCUMENTED_COLUMNS = [
    "step", "epoch", "phase", "loss", "recon", "kl", "beta", "lr", "token_acc", "val_loss",
    "active_units", "mutual_info", "recon_exact", "prior_valid", "prior_unique", "prior_novel",
]


def _metrics(path) -> pd.DataFrame:
    return pd.read_csv(path / "metrics.csv")


def _train_rows(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in df.columns if c != "elapsed_s"]
    return df[df.phase == "train"][cols].reset_index(drop=True)


def _state(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def _assert_states_close(a: dict, b: dict, atol: float = 1e-5):
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol), k


# ----------------------------------------------------------------------------- run folder
def test_run_folder_contents(tmp_path, cache_env):
    smiles = zinc(48)
    cfg = tiny_train_config(epochs=2, log_every=2)
    out = tmp_path / "run"
    model = train(smiles, out, TINY_MODEL, cfg, progress=False)
    assert isinstance(model, MolVAE) and not model.training
    assert {"config.toml", "split.npz", "metrics.csv", "last.pt", "best.pt"} <= {p.name for p in out.iterdir()}
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert (cache_env / "tokens").is_dir()  # the token cache went where it was told

    # config.toml: the resolved configuration (vocabulary size and length filled in)
    model_cfg, train_cfg = load_config(out / "config.toml")
    assert train_cfg == cfg
    assert model_cfg == model.config
    assert model_cfg.vocab_size == model.tokenizer.vocab_size > 4
    assert model_cfg.max_length == model.tokenizer.max_length
    assert dataclasses.replace(model_cfg, vocab_size=0, max_length=0) == TINY_MODEL

    # split.npz: disjoint validation and training rows covering the data set
    split = np.load(out / "split.npz")
    val, tr = split["val"], split["train"]
    assert len(val) == round(0.1 * 48) and len(tr) == 48 - len(val)
    assert not set(val) & set(tr)
    assert sorted(set(val) | set(tr)) == list(range(48))

    # metrics.csv: documented columns, train rows every log_every steps, one val row per epoch
    df = _metrics(out)
    header = list(df.columns)
    for col in DOCUMENTED_COLUMNS:
        assert col in header, col
    assert [f"kl_d{d}" for d in range(TINY_MODEL.latent_dim)] == [c for c in header if c.startswith("kl_d")]
    train_rows, val_rows = df[df.phase == "train"], df[df.phase == "val"]
    assert set(df.phase) == {"train", "val"}
    assert len(val_rows) == 2
    steps_per_epoch = math.ceil(len(tr) / 16)
    assert train_rows.step.max() == val_rows.step.max() == 2 * steps_per_epoch
    assert train_rows[["loss", "recon", "kl", "beta", "lr", "token_acc"]].notna().all().all()
    assert np.isfinite(train_rows.loss).all() and (train_rows.recon > 0).all()
    assert ((train_rows.token_acc >= 0) & (train_rows.token_acc <= 1)).all()
    assert np.allclose(train_rows.beta, [min(s - 1, 10) / 10 for s in train_rows.step])  # linear warm-up of 10
    for col in ("val_loss", "active_units", "mutual_info", "recon_exact", "prior_valid", "prior_unique", "prior_novel"):
        assert val_rows[col].notna().all(), col
    assert val_rows.active_units.between(0, TINY_MODEL.latent_dim).all()
    for col in ("recon_exact", "prior_valid", "prior_unique", "prior_novel"):
        assert val_rows[col].between(0, 1).all(), col
    assert (val_rows.prior_valid == 1.0).all()  # SELFIES: every sample decodes
    kl_cols = [f"kl_d{d}" for d in range(TINY_MODEL.latent_dim)]
    assert df[kl_cols].notna().all().all() and (df[kl_cols] >= 0).all().all()

    # checkpoints: last.pt carries the training state, both load as models
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 2 * steps_per_epoch and last["epoch"] == 2 and last["batch_in_epoch"] == 0
    assert TrainConfig(**last["train_config"]) == cfg
    assert last["metadata"]["n_train"] == len(tr) and last["metadata"]["n_val"] == len(val)
    best = MolVAE.load(out / "best.pt", device="cpu")
    assert best.config == model.config
    MolVAE.load(out / "last.pt", device="cpu")


def test_config_is_written_before_training(tmp_path, cache_env, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("stop before the first step")

    monkeypatch.setattr(train_mod, "elbo_loss", boom)
    out = tmp_path / "run"
    cfg = tiny_train_config()
    with pytest.raises(RuntimeError, match="first step"):
        train(zinc(32), out, TINY_MODEL, cfg, progress=False)
    assert (out / "config.toml").exists()
    assert load_config(out / "config.toml")[1] == cfg
    assert (out / "split.npz").exists()
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_losses(tmp_path, cache_env):
    smiles = zinc(48)
    cfg = tiny_train_config(epochs=1, log_every=1, n_prior_samples=0, word_dropout=0.2)
    train(smiles, tmp_path / "a", TINY_MODEL, cfg, progress=False)
    train(smiles, tmp_path / "b", TINY_MODEL, cfg, progress=False)
    a, b = _train_rows(_metrics(tmp_path / "a")), _train_rows(_metrics(tmp_path / "b"))
    assert len(a) == 3
    pd.testing.assert_frame_equal(a, b)
    _assert_states_close(_state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt"), atol=0)

    train(smiles, tmp_path / "c", TINY_MODEL, dataclasses.replace(cfg, seed=1), progress=False)
    c = _train_rows(_metrics(tmp_path / "c"))
    assert not np.allclose(a.loss, c.loss)


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize(
    "stop_at, log_every",
    [
        (2, 1),  # mid-epoch 0 (4 batches an epoch)
        (6, 1),  # mid-epoch 1
        pytest.param(2, 3, id="2-log_every3"),  # a stop between two log rows
    ],
)
def test_resume_equals_uninterrupted(tmp_path, cache_env, stop_at, log_every):
    smiles = zinc(64)
    cfg = tiny_train_config(epochs=2, log_every=log_every, word_dropout=0.1)
    full = train(smiles, tmp_path / "full", TINY_MODEL, cfg, progress=False)
    df_full = _metrics(tmp_path / "full")
    steps_per_epoch = int(df_full[df_full.phase == "val"].step.min())
    assert steps_per_epoch == 4 and stop_at % steps_per_epoch != 0  # a stop in the middle of an epoch

    out = tmp_path / "resumed"
    train(smiles, out, TINY_MODEL, cfg, progress=False, stop_after_steps=stop_at)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == stop_at and ckpt["batch_in_epoch"] == stop_at % steps_per_epoch
    if log_every == 1:
        assert _metrics(out).step.max() == stop_at  # it did stop there

    resumed = train(smiles, out, resume=True, progress=False)
    _assert_states_close(_state(out / "last.pt"), _state(tmp_path / "full" / "last.pt"))
    _assert_states_close(_state(out / "best.pt"), _state(tmp_path / "full" / "best.pt"))
    _assert_states_close(resumed.state_dict(), full.state_dict())

    a, b = _train_rows(df_full), _train_rows(_metrics(out))
    assert b.step.tolist() == a.step.tolist()
    if log_every == 1:
        assert b.step.tolist() == list(range(1, 2 * steps_per_epoch + 1))
    after = a.step > stop_at
    num = [c for c in a.columns if c != "phase"]
    assert np.allclose(a[after][num].to_numpy(float), b[after][num].to_numpy(float), atol=1e-5, equal_nan=True)
    val_a = df_full[df_full.phase == "val"].drop(columns="elapsed_s").reset_index(drop=True)
    val_b = _metrics(out).query("phase == 'val'").drop(columns="elapsed_s").reset_index(drop=True)
    assert np.allclose(val_a[num].to_numpy(float), val_b[num].to_numpy(float), atol=1e-4, equal_nan=True)


def test_resume_refuses_other_data(tmp_path, cache_env):
    out = tmp_path / "run"
    train(zinc(48), out, TINY_MODEL, tiny_train_config(n_prior_samples=0), progress=False, stop_after_steps=1)
    with pytest.raises(TrainingError, match="data differ"):
        train(zinc(48, start=100), out, resume=True, progress=False)


def test_resume_without_last_checkpoint(tmp_path, cache_env):
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(zinc(32), tmp_path / "empty", TINY_MODEL, tiny_train_config(), resume=True, progress=False)


# ----------------------------------------------------------------------------- NaN
def _poison_loss(monkeypatch, at_call: int, value: float = float("nan")):
    """Make the training loss (not the validation one) non-finite from training step ``at_call`` on."""
    real = train_mod.elbo_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps; validation runs under no_grad
            calls["n"] += 1
            if calls["n"] >= at_call:
                out = dict(out, loss=out["loss"] * value)
        return out

    monkeypatch.setattr(train_mod, "elbo_loss", poisoned)
    return calls


@pytest.mark.parametrize("value, word", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_non_finite_loss_stops_training_and_keeps_last_checkpoint(tmp_path, cache_env, monkeypatch, value, word):
    calls = _poison_loss(monkeypatch, at_call=6, value=value)  # epoch 1, batch 1 (4 batches an epoch)
    out = tmp_path / "run"
    cfg = tiny_train_config(epochs=3, n_prior_samples=0)
    with pytest.raises(TrainingError, match=word) as info:
        train(zinc(64), out, TINY_MODEL, cfg, progress=False)
    assert calls["n"] == 6  # stopped at the first bad step
    assert "last.pt" in str(info.value)
    model = MolVAE.load(out / "last.pt", device="cpu")  # written at the end of epoch 0
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert load_checkpoint(out / "last.pt")["step"] == 4


def test_non_finite_loss_before_any_checkpoint(tmp_path, cache_env, monkeypatch):
    _poison_loss(monkeypatch, at_call=1)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="nan") as info:
        train(zinc(32), out, TINY_MODEL, tiny_train_config(n_prior_samples=0), progress=False)
    assert "none written yet" in str(info.value)
    assert not (out / "last.pt").exists()


def test_absurd_learning_rate_never_leaves_non_finite_weights(tmp_path, cache_env):
    """lr=1e6 without clipping: Adam's steps are bounded by the learning rate, so the weights grow
    huge but stay finite; the run goes to its end and no checkpoint holds NaN/inf weights."""
    out = tmp_path / "run"
    cfg = tiny_train_config(epochs=2, lr=1e6, grad_clip=0.0, n_prior_samples=0, checkpoint_every=1)
    train(zinc(48), out, TINY_MODEL, cfg, progress=False)  # no TrainingError
    assert load_checkpoint(out / "last.pt")["step"] == 2 * math.ceil(43 / 16)  # 48 molecules, 5 for validation
    for name in ("last.pt", "best.pt"):
        model = MolVAE.load(out / name, device="cpu")
        assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert max(float(v.abs().max()) for v in model.state_dict().values() if v.is_floating_point()) > 1e5


# ----------------------------------------------------------------------------- overfit
OVERFIT_MODEL = ModelConfig(
    embedding_dim=32, encoder_hidden_dim=64, latent_dim=16, decoder_hidden_dim=256, decoder_layers=1
)


def test_overfit_64_molecules(tmp_path, cache_env):
    """A VAE must be able to memorise 64 molecules: >= 95% exact greedy reconstruction."""
    smiles = zinc(64)
    cfg = tiny_train_config(
        epochs=28, batch_size=8, lr=1e-2, lr_min=1e-4, lr_schedule="cosine", beta=0.01, kl_schedule="constant",
        free_bits=0.0, word_dropout=0.0, val_fraction=0.0, max_val=64, n_prior_samples=0, log_every=1000,
        grad_clip=5.0,
    )
    out = tmp_path / "overfit"
    train(smiles, out, OVERFIT_MODEL, cfg, progress=False)
    # best.pt is chosen by the beta=1 ELBO, which a beta=0.01 run does not minimise: take the last weights
    model = MolVAE.load(out / "last.pt", device="cpu")
    rec = model.reconstruct(smiles)
    assert rec.encoded.all()
    assert rec.exact.mean() >= 0.95, rec.exact.mean()
    val = _metrics(out).query("phase == 'val'")
    assert val.recon_exact.iloc[-1] >= 0.95
    assert val.recon_exact.iloc[0] < 0.5  # it learned during the run

    # on a trained model, beam search finds sequences at least as likely as greedy decoding
    z = torch.as_tensor(model.encode(smiles))
    greedy, _ = model.generate(z)
    beam = model.beam_search(z, beam_width=3)
    g_lp, b_lp = sequence_log_prob(model, z, greedy), sequence_log_prob(model, z, beam)
    assert (b_lp >= g_lp - 1e-3).all(), (b_lp - g_lp).min()
    assert model.reconstruct(smiles, method="beam", beam_width=3).exact.mean() >= 0.95


def test_max_steps_stops_inside_the_full_schedule(tmp_path, cache_env):
    cfg = tiny_train_config(epochs=2, log_every=1, max_steps=3, lr=1e-2, lr_min=1e-4)
    train(zinc(64), tmp_path / "run", TINY_MODEL, cfg, progress=False)  # 4 batches an epoch: 8 steps planned
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3
    rows = _train_rows(_metrics(tmp_path / "run"))
    assert rows.step.tolist() == [1, 2, 3]
    # the cosine schedule still spans all 8 steps: the third update (index 2) used the rate at 2/8 of it
    assert rows.lr.iloc[-1] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 2 / 8)), rel=1e-6)
    # resuming a run that reached max_steps trains nothing more
    before = load_checkpoint(tmp_path / "run" / "last.pt")
    train(zinc(64), tmp_path / "run", resume=True, progress=False)
    after = load_checkpoint(tmp_path / "run" / "last.pt")
    assert after["step"] == 3
    _assert_states_close(after["state_dict"], before["state_dict"], atol=0)
    assert _train_rows(_metrics(tmp_path / "run")).step.tolist() == [1, 2, 3]


# ----------------------------------------------------------------------------- fine-tuning
def test_init_from_keeps_weights_sizes_and_vocabulary(tmp_path, cache_env, caplog):
    base = train(zinc(64), tmp_path / "base", TINY_MODEL, tiny_train_config(), progress=False)
    vocab = set(base.tokenizer.itos)
    assert "[Si]" not in vocab and "[Se]" not in vocab
    new = zinc(40) + ["C[Si](C)(C)c1ccccc1", "c1cc[se]c1"]  # two molecules the vocabulary cannot spell
    other_sizes = dataclasses.replace(TINY_MODEL, decoder_hidden_dim=48)
    # lr 0: fine-tuning must leave the initial weights exactly as they were loaded
    cfg = tiny_train_config(epochs=1, lr=0.0, lr_min=0.0, init_from=str(tmp_path / "base" / "best.pt"))
    with caplog.at_level("WARNING", logger="molvae"):
        tuned = train(new, tmp_path / "tuned", other_sizes, cfg, progress=False)
    assert "decoder_hidden_dim=64" in caplog.text  # the [model] sizes given were overruled, and it says so
    assert "2 of 42 training molecules could not be tokenized" in caplog.text
    assert tuned.config == base.config and tuned.tokenizer == base.tokenizer
    _assert_states_close(tuned.state_dict(), base.state_dict(), atol=0)
    assert load_checkpoint(tmp_path / "tuned" / "last.pt")["metadata"]["init_from"] == cfg.init_from
    assert load_config(tmp_path / "tuned" / "config.toml")[1].init_from == cfg.init_from


def test_init_from_starts_where_the_base_model_left_off(tmp_path, cache_env):
    """A fine-tuned run starts with the base model's loss, far below a fresh model's."""
    smiles = zinc(64)
    train(smiles, tmp_path / "base", TINY_MODEL, tiny_train_config(epochs=12, lr=5e-3), progress=False)
    more = zinc(32, start=300)
    cfg = tiny_train_config(epochs=1, log_every=1, kl_schedule="constant")
    train(more, tmp_path / "fresh", TINY_MODEL, cfg, progress=False, stop_after_steps=1)
    train(more, tmp_path / "tuned", TINY_MODEL, dataclasses.replace(cfg, init_from=str(tmp_path / "base" / "best.pt")),
          progress=False, stop_after_steps=1)
    fresh, tuned = (_train_rows(_metrics(tmp_path / name)).recon.iloc[0] for name in ("fresh", "tuned"))
    assert tuned < 0.8 * fresh, (tuned, fresh)


def test_init_from_pretrained_and_missing_model(tmp_path, cache_env):
    from molvae.training.prepare import load_init_model

    assert load_init_model("pretrained").tokenizer == MolVAE.load(
        importlib.import_module("molvae.utils.paths").pretrained_dir() / "moses.pt", device="cpu").tokenizer
    with pytest.raises(FileNotFoundError, match="no shipped model 'nope'"):
        load_init_model("pretrained:nope")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        train(zinc(32), tmp_path / "run", TINY_MODEL, tiny_train_config(init_from=str(tmp_path / "none.pt")),
              progress=False)
