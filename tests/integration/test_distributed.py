"""Distributed training: torchrun with 2 CPU processes (gloo) against one process over the same global batches."""

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
from helpers import TINY_MODEL_TOML

from molvae.data import BucketBatchSampler, load_dataset

TINY = TINY_MODEL_TOML + """
[train]
epochs = 1
batch_size = 32
lr = 0.002
log_every = 2
n_prior_samples = 10
max_val = 32
val_fraction = 0.1
word_dropout = 0.0
num_threads = 1
kl_schedule = "constant"
beta = 0.1
"""


def test_global_batches_are_split_between_ranks():
    lengths = np.random.default_rng(0).integers(5, 60, size=1000)
    single = BucketBatchSampler(lengths, 32, seed=3).batches()
    ranks = [BucketBatchSampler(lengths, 32, seed=3, rank=r, world_size=2).batches() for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for whole, a, b in zip(single, *ranks):
        assert sorted(np.concatenate([a, b]).tolist()) == sorted(whole.tolist())
        assert not set(a) & set(b)


def _free_port() -> int:
    """A port nothing listens on now (torchrun's default, 29500, may be taken by another run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, tmp_path, env_extra=None):
    env = dict(os.environ, MOLVAE_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_torchrun_two_processes_match_one_process(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("\n".join(load_dataset("zinc", "test")[:320]))
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    common = ["--data", str(smi), "--config", str(cfg), "-q"]
    _run([sys.executable, "-m", "molvae", "train", "--out", str(tmp_path / "one"), *common], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(_free_port()), "-m", "molvae", "train", "--out", str(tmp_path / "two"), *common], tmp_path)
    one = pd.read_csv(tmp_path / "one" / "metrics.csv")
    two = pd.read_csv(tmp_path / "two" / "metrics.csv")
    a, b = one[one.phase == "train"], two[two.phase == "train"]
    merged = a.merge(b, on="step", suffixes=("_1", "_2"))
    assert len(merged) >= 5
    # same global batches; only the reparameterization noise differs between the runs
    rel = (merged.loss_1 - merged.loss_2).abs() / merged.loss_1
    assert rel.max() < 0.05, merged[["step", "loss_1", "loss_2"]]
    # only rank 0 wrote: one header, one validation row per evaluation, checkpoints present
    assert (two.phase == "val").sum() == (one.phase == "val").sum()
    assert (tmp_path / "two" / "best.pt").exists() and (tmp_path / "two" / "last.pt").exists()
    assert not list((tmp_path / "two").glob(".*tmp*"))
