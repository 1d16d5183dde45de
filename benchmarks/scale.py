"""Scaling: streaming-sample time and peak memory as n grows; DDP training throughput 1 -> 2 processes.

    python benchmarks/scale.py [--n 10000 100000 1000000] [--ddp-molecules 4000]

Each measurement runs in a fresh process (`molvae sample ... -o FILE`, `torchrun ... molvae train`)
so its peak resident memory (from getrusage of the child) is its own.  Writes the "scale"
section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

TRAIN_TOML = """
[model]
embedding_dim = 64
encoder_hidden_dim = 256
latent_dim = 64
decoder_hidden_dim = 512
decoder_layers = 1
[train]
epochs = 1
batch_size = 128
n_prior_samples = 0
max_val = 64
val_fraction = 0.01
num_threads = 1
log_every = 5
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--ddp-molecules", type=int, default=4000)
    ap.add_argument("--skip-ddp", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            # a fresh interpreter per size, so ru_maxrss of the children is this run's peak
            code = (
                "import resource, subprocess, sys; "
                f"subprocess.run([sys.executable, '-m', 'molvae', 'sample', '-q', '-n', '{n}', '--seed', '0', "
                f"'--chunk-size', '20000', '-o', '{tmp}/s.csv'], check=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            )
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t
            peak = int(out.stdout.strip().splitlines()[-1]) / 1024
            lines = sum(1 for _ in open(f"{tmp}/s.csv")) - 1
            rows.append(("sample", f"n = {n:,}", f"{wall:,.0f} s ({n / wall:,.0f} mol/s)", f"{peak:,.0f} MiB", f"{lines:,} rows"))
            print(rows[-1])
        ddp = []
        import pandas as pd

        if not args.skip_ddp:
            from molvae.data import load_dataset

            smi = Path(tmp) / "train.smi"
            smi.write_text("\n".join(load_dataset("moses", "train", limit=args.ddp_molecules)))
            cfg = Path(tmp) / "run.toml"
            cfg.write_text(TRAIN_TOML)
            env = dict(os.environ, OMP_NUM_THREADS="1", MOLVAE_CACHE_DIR=f"{tmp}/cache")
            for procs in (1, 2):
                launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)] if procs > 1 else [sys.executable]
                cmd = [*launcher, "-m", "molvae", "train", "-q", "--data", str(smi), "--config", str(cfg), "--out", f"{tmp}/ddp{procs}"]
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                m = pd.read_csv(f"{tmp}/ddp{procs}/metrics.csv")
                train_rows = m[m.phase == "train"]
                # throughput from the logged wall clock between the first and last train rows
                steps = train_rows.step.iloc[-1] - train_rows.step.iloc[0]
                secs = train_rows.elapsed_s.iloc[-1] - train_rows.elapsed_s.iloc[0]
                rate = steps * 128 / secs if secs > 0 else float("nan")
                ddp.append((procs, rate))
                print(procs, rate)
    body = ["## Scaling (`benchmarks/scale.py`)", "",
            f"Command: `python benchmarks/scale.py --n {' '.join(map(str, args.n))} --ddp-molecules {args.ddp_molecules}`; "
            f"hardware: {hardware()}; commit {git_commit()}.", "",
            "| what | size | time | peak RSS | output |", "|---|---|---|---|---|"]
    body += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    if ddp:
        body += ["", "Training throughput with torchrun on this CPU (gloo, one thread per process, the shipped model's size, batch 128):", "",
                 "| processes | molecules/s |", "|---|---|"] + [f"| {p} | {r:,.0f} |" for p, r in ddp]
    write_section("scale", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
