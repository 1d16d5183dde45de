"""Scaling: streaming-sample time and peak memory as n grows; DDP training throughput 1 -> 2 processes.

    python benchmarks/scale.py [--n 10000 100000 1000000] [--ddp-molecules 4000] [--moses-steps 50]

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
    ap.add_argument("--moses-steps", type=int, default=0,
                    help="train this many steps on all of MOSES train (1.58M) from the memory-mapped token cache, "
                         "twice: cold (builds the cache) and warm (reads it); 0: skip")
    ap.add_argument("--moses-jobs", type=int, default=2, help="tokenizer processes for the cold MOSES run")
    args = ap.parse_args()
    rows = []
    moses_rows = [_moses_memory(args.moses_steps, args.moses_jobs)] if args.moses_steps else []
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
            f"Command: `python benchmarks/scale.py --n {' '.join(map(str, args.n))} --ddp-molecules {args.ddp_molecules}"
            + (f" --moses-steps {args.moses_steps} --moses-jobs {args.moses_jobs}" if args.moses_steps else "") + "`; "
            f"hardware: {hardware()}; commit {git_commit()}.", "",
            "| what | size | time | peak RSS | output |", "|---|---|---|---|---|"]
    body += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    if moses_rows:
        body += ["", f"Training on all of MOSES train from the memory-mapped token cache ({args.moses_steps} steps, batch 128, "
                 "the shipped model's size; one fresh process per run, its own peak RSS; the cold run also reads and "
                 "tokenizes the SMILES and writes the cache):", "",
                 "| run | molecules | cache | time to first step | total | peak RSS |", "|---|---|---|---|---|---|"]
        for r in moses_rows[0]:
            body.append(f"| {r['run']} | {r['n']:,} | {r['cache_mib']:,.0f} MiB | {r['setup_s']:,.0f} s | {r['total_s']:,.0f} s | {r['peak_mib']:,.0f} MiB |")
    if ddp:
        body += ["", "Training throughput with torchrun on this CPU (gloo, one thread per process, the shipped model's size, batch 128):", "",
                 "| processes | molecules/s |", "|---|---|"] + [f"| {p} | {r:,.0f} |" for p, r in ddp]
    write_section("scale", "\n".join(body))
    print("\n".join(body))


MOSES_CHILD = """
import json, os, resource, sys, time
t0 = time.perf_counter()
import molvae.data as D
from molvae.config import ModelConfig, TrainConfig
from molvae.training.loop import train
smiles = D.load_dataset("moses", "train")
_orig = D.tokenize_file
def timed(*a, **k):
    k.setdefault("n_jobs", int(sys.argv[3]))
    out = _orig(*a, **k)
    timed.setup = time.perf_counter() - t0
    timed.n = len(out)
    return out
D.tokenize_file = timed
sys.modules["molvae.training.prepare"].tokenize_file = timed  # where train() tokenizes
train(smiles, sys.argv[1], ModelConfig(embedding_dim=64, encoder_hidden_dim=256, latent_dim=64, decoder_hidden_dim=512),
      TrainConfig(epochs=1, batch_size=128, n_prior_samples=0, max_val=256, eval_every=10**9, num_threads=1,
                  checkpoint_every=10**9, log_every=10),
      progress=False, stop_after_steps=int(sys.argv[2]))
print(json.dumps({"n": timed.n, "setup_s": timed.setup, "total_s": time.perf_counter() - t0,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _moses_memory(steps: int, jobs: int) -> list[dict]:
    """Cold then warm training run on all of MOSES train, each in a fresh process."""
    import json

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", MOLVAE_CACHE_DIR=f"{tmp}/cache")
        for run in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", MOSES_CHILD, f"{tmp}/{run}", str(steps), str(jobs)],
                                 env=env, capture_output=True, text=True)
            if res.returncode:
                sys.exit(f"the {run} MOSES training run failed:\n{res.stderr[-3000:]}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r["run"] = run
            r["cache_mib"] = sum(f.stat().st_size for f in Path(tmp, "cache").rglob("*") if f.is_file()) / 2**20
            out.append(r)
            print(r, flush=True)
    return out


if __name__ == "__main__":
    main()
