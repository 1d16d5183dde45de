"""Faults while molvae runs: a training process killed with SIGKILL (also in the middle of a
checkpoint write), a disk that fills up while a sample file is written, NaN/inf in a batch or
in the gradients, exploding gradients, a run folder whose last.pt holds no training state.

What is promised: a killed run resumes to exactly the weights of an uninterrupted one and its
``last.pt`` always loads (atomic writes); a failed write leaves earlier output as it was; a
non-finite loss stops training with :class:`TrainingError` naming the step and leaves the last
good checkpoint.  Bugs are ``xfail(strict=True)`` with the reason; see ``docs/robustness.md``.
(A killed optimization worker is in ``tests/robustness/test_study_faults.py``; a user objective that
returns inf or raises in ``tests/unit/optimization/test_optimize_strategies.py``.)
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import TINY_MODEL, TINY_MODEL_TOML, tiny_train_config, zinc  # noqa: F401

from molvae.cli.main import main
from molvae.tokenizer import SelfiesTokenizer
from molvae.training.loop import TrainingError, train
from molvae.vae.checkpoint import load_checkpoint
from molvae.vae.model import MolVAE

RUN_TOML = TINY_MODEL_TOML + """
[train]
epochs = 8
batch_size = 8
n_prior_samples = 0
max_val = 16
val_fraction = 0.1
log_every = 5
num_threads = 1
kl_warmup_steps = 40
checkpoint_every = 3
early_stopping_patience = 0
word_dropout = 0.1
seed = 3
device = "cpu"
"""
N_MOLECULES = 96  # 86 training molecules in batches of 8: 11 steps an epoch, 88 in all
TOTAL_STEPS = 88


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if torch.is_tensor(v) and v.is_floating_point())


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=atol), k


# ============================================================================ kill -9 during training
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run through the command line, and the files every run of this module shares."""
    root = tmp_path_factory.mktemp("kill")
    data = root / "mols.smi"
    data.write_text("\n".join(zinc(N_MOLECULES)) + "\n")
    config = root / "run.toml"
    config.write_text(RUN_TOML)
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLVAE_CACHE_DIR", str(cache))
        code, _, err = _cli(["train", "--data", str(data), "--out", str(root / "reference"), "--config", str(config), "-q"])
    assert code == 0, err
    ckpt = load_checkpoint(root / "reference" / "last.pt")
    assert ckpt["step"] == TOTAL_STEPS
    return {"root": root, "data": data, "config": config, "cache": cache, "out": root / "reference"}


def _train_argv(reference: dict, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(reference["data"]), "--out", str(out), "--config", str(reference["config"]), "-q", *extra]


def _resume_and_compare(reference: dict, out: Path, monkeypatch) -> None:
    monkeypatch.setenv("MOLVAE_CACHE_DIR", str(reference["cache"]))
    code, _, err = _cli(_train_argv(reference, out, "--resume"))
    assert code == 0, err
    done, ref = load_checkpoint(out / "last.pt"), load_checkpoint(reference["out"] / "last.pt")
    assert done["step"] == ref["step"] == TOTAL_STEPS
    _assert_same_weights(done["state_dict"], ref["state_dict"])
    _assert_same_weights(done["optimizer"]["state"][0], ref["optimizer"]["state"][0])
    _assert_same_weights(load_checkpoint(out / "best.pt")["state_dict"], load_checkpoint(reference["out"] / "best.pt")["state_dict"])


def _wait_for_step(proc: subprocess.Popen, last: Path, min_step: int, timeout: float = 240.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"training ended (exit {proc.returncode}) before it could be killed"
        if last.exists():
            step = load_checkpoint(last)["step"]  # os.replace: a reader sees the old file or the new one
            if step >= min_step:
                return step
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint at step >= {min_step} within {timeout} s")


def test_kill_9_during_training_then_resume_matches_an_uninterrupted_run(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    env = dict(os.environ, MOLVAE_CACHE_DIR=str(reference["cache"]))
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "molvae", *_train_argv(reference, out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _wait_for_step(proc, out / "last.pt", min_step=9)
        time.sleep(random.Random(0).uniform(0.0, 0.3))  # a few more steps: the kill lands anywhere
        assert proc.poll() is None, "training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    ckpt = load_checkpoint(out / "last.pt")  # whatever the kill interrupted, last.pt loads
    assert 9 <= ckpt["step"] < TOTAL_STEPS
    assert _finite(MolVAE.load(out / "last.pt", device="cpu").state_dict())
    _resume_and_compare(reference, out, monkeypatch)


# The child process: torch.save writes half of the N-th last.pt, flushes, says so and hangs
# until it is killed: a kill in the middle of a checkpoint write, every time.
_HANG_IN_SAVE = r"""
import io, sys, time
import torch

signal_path, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real_save, count = torch.save, 0

def save_and_hang(obj, fh, *args, **kwargs):
    global count
    if ".last.tmp" in str(getattr(fh, "name", "")):
        count += 1
        if count == nth:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            fh.flush()
            open(signal_path, "w").close()
            time.sleep(600)
    return real_save(obj, fh, *args, **kwargs)

torch.save = save_and_hang
from molvae.cli.main import main
raise SystemExit(main(argv))
"""


def test_kill_9_in_the_middle_of_a_checkpoint_write(reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    script = tmp_path / "hang_in_save.py"
    script.write_text(_HANG_IN_SAVE)
    signal_file = tmp_path / "writing"
    env = dict(os.environ, MOLVAE_CACHE_DIR=str(reference["cache"]))
    proc = subprocess.Popen([sys.executable, str(script), str(signal_file), "4", *_train_argv(reference, out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not signal_file.exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its 4th checkpoint"
        assert time.monotonic() < deadline, "no 4th checkpoint write within 240 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    partial = [p for p in out.iterdir() if p.name.startswith(".last.tmp")]
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the kill did land mid-write
    ckpt = load_checkpoint(out / "last.pt")  # the previous checkpoint, whole
    assert ckpt["step"] == 9  # writes 1-3 at steps 3, 6, 9; the 4th (end of epoch 0, step 11) was cut
    MolVAE.load(out / "last.pt", device="cpu")
    _resume_and_compare(reference, out, monkeypatch)


# ============================================================================ disk full while sampling
@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    MolVAE(SelfiesTokenizer.fit(zinc(100), progress=False), TINY_MODEL).save(path)
    return path


def _disk_full_after(monkeypatch, n_ok: int) -> dict:
    """``DataFrame.to_csv`` works ``n_ok`` times; then the disk is full: the file is opened (and
    truncated, for mode "w") as pandas does, half the text is written, and ENOSPC is raised."""
    real = pd.DataFrame.to_csv
    calls = {"n": 0}

    def to_csv(self, path_or_buf=None, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= n_ok or path_or_buf is None:
            return real(self, path_or_buf, *args, **kwargs)
        mode = kwargs.pop("mode", "w")
        text = real(self, None, *args, **kwargs)
        if hasattr(path_or_buf, "write"):  # an open file (the CLI writes through molvae.utils.io.atomic_write)
            path_or_buf.write(text[: len(text) // 2])
            path_or_buf.flush()
        else:
            with open(path_or_buf, mode) as fh:
                fh.write(text[: len(text) // 2])
                fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device", str(getattr(path_or_buf, "name", path_or_buf)))

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    return calls


OLD_OUTPUT = b"smiles,selfies,valid,nll\nCCO,[C][C][O],True,1.5\n"


def _run_sample(argv: list[str]) -> tuple[int | None, str, BaseException | None]:
    try:
        code, _, err = _cli(argv)
        return code, err, None
    except OSError as exc:
        return None, "", exc


def test_disk_full_while_streaming_samples_leaves_the_old_file(model_file, tmp_path, monkeypatch):
    out = tmp_path / "samples.csv"
    out.write_bytes(OLD_OUTPUT)
    calls = _disk_full_after(monkeypatch, n_ok=1)
    code, err, exc = _run_sample(["sample", "--model", str(model_file), "--no-faithful", "-n", "300", "--chunk-size", "100",
                                  "-o", str(out), "--seed", "0", "-q"])
    assert calls["n"] == 2  # the first chunk was written, the second hit the full disk
    assert exc is not None or code != 0  # the run failed...
    assert out.read_bytes() == OLD_OUTPUT  # ...and the previous output is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]  # no .part file left


def test_disk_full_while_streaming_samples_gives_a_clear_error(model_file, tmp_path, monkeypatch):
    out = tmp_path / "samples.csv"
    _disk_full_after(monkeypatch, n_ok=1)
    code, err, exc = _run_sample(["sample", "--model", str(model_file), "--no-faithful", "-n", "300", "--chunk-size", "100",
                                  "-o", str(out), "--seed", "0", "-q"])
    assert exc is None, f"traceback: {exc!r}"
    assert code != 0 and "No space left on device" in err and "Traceback" not in err


def test_disk_full_while_writing_a_small_sample_leaves_the_old_file(model_file, tmp_path, monkeypatch):
    out = tmp_path / "samples.csv"
    out.write_bytes(OLD_OUTPUT)
    _disk_full_after(monkeypatch, n_ok=0)
    _run_sample(["sample", "--model", str(model_file), "--no-faithful", "-n", "30", "-o", str(out), "--seed", "0", "-q"])
    assert out.read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]


def test_streamed_samples_complete_when_the_disk_has_room(model_file, tmp_path):
    """The control for the tests above: the same command, nothing patched."""
    out = tmp_path / "samples.csv"
    out.write_bytes(OLD_OUTPUT)
    code, _, err = _cli(["sample", "--model", str(model_file), "--no-faithful", "-n", "300", "--chunk-size", "100", "-o", str(out),
                         "--seed", "0", "-q"])
    assert code == 0, err
    assert len(pd.read_csv(out)) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]


# ============================================================================ NaN / inf
def _poison_logits(monkeypatch, at_call: int, value: float) -> dict:
    """Multiply the logits of the ``at_call``-th training forward pass by ``value`` (NaN or inf)."""
    real = MolVAE.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if self.training and torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == at_call:
                out = dict(out, logits=out["logits"] * value)
        return out

    monkeypatch.setattr(MolVAE, "forward", forward)
    return calls


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_in_a_batch_stops_training_at_that_step(tmp_path, cache_env, monkeypatch, value):
    out = tmp_path / "run"
    cfg = tiny_train_config(epochs=3, n_prior_samples=0, checkpoint_every=2)
    real_forward = MolVAE.forward
    calls = _poison_logits(monkeypatch, at_call=7, value=value)  # 4 steps an epoch: step 6, epoch 1
    with pytest.raises(TrainingError, match=r"loss became nan at step 6 \(epoch 1\)") as info:
        train(zinc(64), out, TINY_MODEL, cfg, progress=False)
    assert calls["n"] == 7
    assert str(out / "last.pt") in str(info.value)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 6  # the last good state, written just before the bad step
    assert _finite(ckpt["state_dict"])
    assert _finite(MolVAE.load(out / "last.pt", device="cpu").state_dict())
    # once the cause is gone, the run resumes from it and finishes
    monkeypatch.setattr(MolVAE, "forward", real_forward)
    model = train(zinc(64), out, resume=True, progress=False)
    assert load_checkpoint(out / "last.pt")["step"] == 12 and _finite(model.state_dict())


def test_nan_gradient_never_reaches_a_checkpoint(tmp_path, cache_env, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def clip_with_a_nan(params, *args, **kwargs):
        params = list(params)
        calls["n"] += 1
        if calls["n"] == 3:
            params[0].grad[0, 0] = float("nan")
        return real(params, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_with_a_nan)
    out = tmp_path / "run"
    cfg = tiny_train_config(epochs=2, n_prior_samples=0, checkpoint_every=1)
    with pytest.raises(TrainingError) as info:
        train(zinc(64), out, TINY_MODEL, cfg, progress=False)
    assert calls["n"] == 3  # it stopped at the step whose gradient was NaN
    assert str(info.value).startswith("gradient became NaN/inf at step 2 (epoch 0); training stopped before the "
                                      f"update. The last good checkpoint is kept: {out / 'last.pt'}.")
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 2 and _finite(last["state_dict"])  # written after step 2, before the bad update
    assert not (out / "best.pt").exists()  # no validation yet (4 steps an epoch)


def test_exploding_gradients_with_clipping_keep_weights_finite(tmp_path, cache_env):
    out = tmp_path / "run"
    cfg = tiny_train_config(epochs=3, lr=1e3, grad_clip=1.0, n_prior_samples=0, checkpoint_every=1)
    model = train(zinc(48), out, TINY_MODEL, cfg, progress=False)  # no TrainingError
    assert _finite(model.state_dict())
    for name in ("last.pt", "best.pt"):
        assert _finite(load_checkpoint(out / name)["state_dict"])
    assert load_checkpoint(out / "last.pt")["step"] == 9
    assert model.sample(5, seed=0, progress=False, faithful=False)["valid"].all()


def test_resume_from_a_model_only_checkpoint_is_a_clear_error(tmp_path, cache_env):
    out = tmp_path / "run"
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(zinc(32)) + "\n")
    MolVAE(SelfiesTokenizer.fit(zinc(32), progress=False), TINY_MODEL).save(out / "last.pt")
    code, _, err = _cli(["train", "--data", str(data), "--out", str(out), "--resume", "-q"])
    assert code == 2 and "last.pt" in err and "Traceback" not in err
