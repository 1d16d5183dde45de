"""What stops or steers a training run from step to step: the KL schedules (sigmoid, cyclical)
as train() applies them, early stopping, ``max_hours``; and a two-layer decoder trained and sampled."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
from helpers import TINY_MODEL, sequence_log_prob, tiny_train_config, zinc  # noqa: F401

from molvae.chem import to_mol
from molvae.training.loop import train
from molvae.vae.checkpoint import load_checkpoint
from molvae.vae.model import MolVAE

pytestmark = pytest.mark.usefixtures("cache_env")

# 64 molecules, 10% for validation, batch 16: 4 steps an epoch


def _rows(out, phase: str) -> pd.DataFrame:
    df = pd.read_csv(out / "metrics.csv")
    return df[df.phase == phase].reset_index(drop=True)


def test_sigmoid_kl_schedule_in_training(tmp_path):
    cfg = tiny_train_config(epochs=3, log_every=1, n_prior_samples=0, kl_schedule="sigmoid", beta=0.5, kl_start=0.1,
                            kl_warmup_steps=8)
    train(zinc(64), tmp_path / "run", TINY_MODEL, cfg, progress=False)
    rows = _rows(tmp_path / "run", "train")
    assert rows.step.tolist() == list(range(1, 13))
    # step s was taken with the weight at s - 1: 0.1 + 0.4 sigmoid(10 ((s - 1) / 8 - 1/2)); half-way (0.3) at 4
    want = [0.1 + 0.4 / (1 + math.exp(-10 * ((s - 1) / 8 - 0.5))) for s in rows.step]
    assert rows.beta.tolist() == pytest.approx(want, rel=1e-9)
    assert rows.beta[4] == pytest.approx(0.3)
    # each validation row reports the weight at its step
    val = _rows(tmp_path / "run", "val")
    assert val.beta.tolist() == pytest.approx([0.1 + 0.4 / (1 + math.exp(-10 * (s / 8 - 0.5))) for s in val.step])


def test_cyclical_kl_schedule_spans_the_whole_run(tmp_path):
    """Three cycles over 3 epochs of 4 steps: each epoch is a cycle, rising over its first half."""
    cfg = tiny_train_config(epochs=3, log_every=1, n_prior_samples=0, kl_schedule="cyclical", beta=1.0, kl_start=0.0,
                            kl_cycles=3, kl_cycle_ratio=0.5)
    train(zinc(64), tmp_path / "run", TINY_MODEL, cfg, progress=False)
    rows = _rows(tmp_path / "run", "train")
    assert rows.beta.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0] * 3)
    # max_steps stops inside the same schedule: the cycles still span the 3 planned epochs
    train(zinc(64), tmp_path / "short", TINY_MODEL, dataclasses.replace(cfg, max_steps=6), progress=False)
    assert _rows(tmp_path / "short", "train").beta.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5])


def test_early_stopping_after_evaluations_without_improvement(tmp_path):
    """lr 0: the validation loss never improves after the first evaluation, so a patience of 2
    stops the run after its third evaluation, at the end of epoch 3 of 10."""
    cfg = tiny_train_config(epochs=10, lr=0.0, lr_min=0.0, n_prior_samples=0, early_stopping_patience=2)
    train(zinc(64), tmp_path / "run", TINY_MODEL, cfg, progress=False)
    val = _rows(tmp_path / "run", "val")
    assert val.step.tolist() == [4, 8, 12]
    assert val.val_loss.nunique() == 1  # nothing changed: the premise
    last, best = load_checkpoint(tmp_path / "run" / "last.pt"), load_checkpoint(tmp_path / "run" / "best.pt")
    assert (last["step"], last["epoch"], last["bad_evals"]) == (12, 3, 2)
    assert best["step"] == 4  # the only improvement
    # without early stopping the same run goes on to the end
    train(zinc(64), tmp_path / "all", TINY_MODEL, dataclasses.replace(cfg, epochs=4, early_stopping_patience=0),
          progress=False)
    assert _rows(tmp_path / "all", "val").step.tolist() == [4, 8, 12, 16]


def test_early_stopping_mid_epoch_checkpoints_where_it_stopped(tmp_path):
    """Evaluations every step (eval_every=1): patience 2 stops at step 3, inside epoch 0; last.pt
    says so, and a resumed run (same stored patience, the count carried over) stops at once."""
    cfg = tiny_train_config(epochs=5, lr=0.0, lr_min=0.0, n_prior_samples=0, eval_every=1, early_stopping_patience=2)
    out = tmp_path / "run"
    train(zinc(64), out, TINY_MODEL, cfg, progress=False)
    assert _rows(out, "val").step.tolist() == [1, 2, 3]
    last = load_checkpoint(out / "last.pt")
    assert (last["step"], last["epoch"], last["batch_in_epoch"], last["bad_evals"]) == (3, 0, 3, 2)
    train(zinc(64), out, resume=True, progress=False)
    assert _rows(out, "val").step.tolist() == [1, 2, 3, 4]  # one more evaluation, still no better
    assert load_checkpoint(out / "last.pt")["step"] == 4


def test_max_hours_stops_after_the_step_that_crossed_it(tmp_path):
    cfg = tiny_train_config(epochs=3, log_every=1, n_prior_samples=0, max_hours=1e-9)  # 3.6 microseconds
    model = train(zinc(64), tmp_path / "run", TINY_MODEL, cfg, progress=False)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (last["step"], last["epoch"], last["batch_in_epoch"]) == (1, 0, 1)
    assert _rows(tmp_path / "run", "train").step.tolist() == [1]
    assert not (tmp_path / "run" / "best.pt").exists()  # stopped before any validation
    assert isinstance(model, MolVAE) and not model.training
    assert all(torch.equal(v, last["state_dict"][k]) for k, v in model.state_dict().items())  # the trained weights


def test_a_two_layer_decoder_trains_and_samples(tmp_path):
    """decoder_layers=2 is the default size: both layers learn, the checkpoint keeps them, and
    the trained model decodes valid molecules with the likelihoods teacher forcing gives."""
    config = dataclasses.replace(TINY_MODEL, decoder_layers=2, decoder_dropout=0.1)
    cfg = tiny_train_config(epochs=4, lr=5e-3, n_prior_samples=0, log_every=4)
    model = train(zinc(64), tmp_path / "run", config, cfg, progress=False)
    assert model.config.decoder_layers == 2 and model.decoder.num_layers == 2
    # the weights it started from: the same run with learning rate 0
    train(zinc(64), tmp_path / "still", config, dataclasses.replace(cfg, epochs=1, lr=0.0, lr_min=0.0), progress=False)
    start = load_checkpoint(tmp_path / "still" / "last.pt")["state_dict"]
    trained = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    for name in ("decoder.weight_hh_l0", "decoder.weight_hh_l1", "decoder.weight_ih_l1"):
        assert not torch.allclose(trained[name], start[name]), f"{name} did not learn"
    train_rows = _rows(tmp_path / "run", "train")
    assert train_rows.recon.iloc[-1] < 0.9 * train_rows.recon.iloc[0]
    z = torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(0))
    ids, nll = model.generate(z)
    assert torch.allclose(-sequence_log_prob(model, z, ids), nll, rtol=1e-4, atol=1e-3)
    df = model.sample(40, seed=0, progress=False, faithful=False)
    assert df.valid.all() and all(to_mol(s) is not None for s in df.smiles)
    again = MolVAE.load(tmp_path / "run" / "best.pt", device="cpu").sample(40, seed=0, progress=False, faithful=False)
    pd.testing.assert_frame_equal(df, again)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_that_only_emulates_it_is_honoured_with_a_warning(monkeypatch, caplog, native):
    from molvae.training import schedules

    monkeypatch.setattr(schedules, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    with caplog.at_level("WARNING", logger="molvae.training.schedules"):
        assert schedules.use_bf16("bf16", cpu) is True
        assert schedules.use_bf16("auto", cpu) is False and schedules.use_bf16("fp32", cpu) is False
    warned = [r.getMessage() for r in caplog.records if "without native bfloat16" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
    with pytest.raises(ValueError, match="unknown precision"):
        schedules.use_bf16("fp16", cpu)
