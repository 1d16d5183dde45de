"""Which beta, free bits, KL annealing and word dropout?  Short runs compared on held-out molecules.

    python benchmarks/vae_ablation.py [--molecules 20000] [--steps 300] [--configs base beta0.5 ...]

Every run trains the shipped model's architecture (benchmarks/train_moses.toml) from the same
seed on the same random subset of MOSES train for the same number of steps, changing one
setting of the shipped recipe at a time; the numbers are the last validation row of its
``metrics.csv`` (held-out reconstruction NLL and KL in nats per molecule, active units,
greedy exact reconstruction, validity / uniqueness / novelty of 1,000 prior samples).  Short
runs on a CPU rank the settings early in training only; say so when quoting them.  Each run is
kept in benchmarks/vae_ablation.csv (one row per config, steps and molecules; a rerun replaces
its row), so the configs can be run in several invocations; the "ablation" section of
benchmarks/RESULTS.md is written from all rows with this invocation's steps and molecules.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import pandas as pd  # noqa: E402

import molvae as mv  # noqa: E402
from molvae.config import load_config  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE / "vae_ablation.csv"
#: one change of the shipped recipe each
CONFIGS = {
    "shipped": {},
    "beta 0.5": {"beta": 0.5},
    "no free bits": {"free_bits": 0.0},
    "free bits 0.5": {"free_bits": 0.5},
    "cyclical annealing": {"kl_schedule": "cyclical"},
    "no annealing": {"kl_schedule": "constant"},
    "word dropout 0.25": {"word_dropout": 0.25},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--molecules", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = ap.parse_args()
    model_cfg, base = load_config(HERE / "train_moses.toml")
    smiles = mv.load_dataset("moses", "train")
    import numpy as np

    pick = np.sort(np.random.default_rng(0).choice(len(smiles), args.molecules, replace=False))
    smiles = [smiles[i] for i in pick]
    # epochs so that the schedules (cosine learning rate, cyclical KL) span about the run
    epochs = max(1, int(np.ceil(args.steps * base.batch_size / (0.98 * args.molecules))))
    base = replace(base, epochs=epochs, max_molecules=0, max_hours=0.0, eval_every=args.steps, checkpoint_every=10**9,
                   kl_warmup_steps=args.steps // 2, log_every=50, early_stopping_patience=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            cfg = replace(base, **CONFIGS[name])
            t = time.perf_counter()
            mv.train(smiles, Path(tmp) / name.replace(" ", "_"), model_cfg, cfg, progress=False, stop_after_steps=args.steps)
            wall = time.perf_counter() - t
            m = pd.read_csv(Path(tmp) / name.replace(" ", "_") / "metrics.csv")
            v = m[m["phase"] == "val"].iloc[-1]
            rows.append({"config": name, "change": ", ".join(f"{k}={val}" for k, val in CONFIGS[name].items()) or "-",
                         "val_recon": v["val_recon"], "val_kl": v["val_kl"], "elbo": v["val_recon"] + v["val_kl"],
                         "active_units": v["active_units"], "recon_exact": v["recon_exact"],
                         "prior_valid": v["prior_valid"], "prior_unique": v["prior_unique"],
                         "prior_novel": v["prior_novel"], "wall_s": wall, "steps": args.steps,
                         "molecules": args.molecules, "commit": git_commit()})
            print(rows[-1], flush=True)
            _save(rows[-1])
    runs = pd.read_csv(RUNS)
    runs = runs[(runs["steps"] == args.steps) & (runs["molecules"] == args.molecules)]
    order = {name: i for i, name in enumerate(CONFIGS)}
    rows = sorted(runs.to_dict("records"), key=lambda r: order.get(r["config"], len(order)))
    commits = ", ".join(dict.fromkeys(str(r["commit"]) for r in rows))
    cmd = f"python benchmarks/vae_ablation.py --molecules {args.molecules} --steps {args.steps}"
    body = ["## VAE settings compared (`benchmarks/vae_ablation.py`)", "",
            f"Command: `{cmd}`; the shipped architecture and recipe (benchmarks/train_moses.toml) with one change per row, "
            f"{args.steps} steps of batch {base.batch_size} on {args.molecules:,} MOSES train molecules (KL warm-up over the "
            f"first {args.steps // 2} steps), seed {base.seed}; hardware: {hardware()}; commit(s) {commits}. "
            f"Every run: {RUNS.relative_to(HERE.parent)}.", "",
            "| run | change | val recon (nats) | val KL (nats) | -ELBO | active units | greedy exact recon | prior valid | prior unique | prior novel | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        body.append(f"| {r['config']} | {r['change']} | {r['val_recon']:.2f} | {r['val_kl']:.2f} | {r['elbo']:.2f} | "
                    f"{r['active_units']:.0f} | {r['recon_exact']:.3f} | {r['prior_valid']:.3f} | {r['prior_unique']:.3f} | "
                    f"{r['prior_novel']:.3f} | {r['wall_s']:.0f} |")
    write_section("ablation", "\n".join(body))
    print("\n".join(body))


def _save(row: dict) -> None:
    """Add ``row`` to the runs file, replacing an earlier run of the same config, steps and molecules."""
    new = pd.DataFrame([{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}])
    if RUNS.exists():
        old = pd.read_csv(RUNS)
        same = (old["config"] == row["config"]) & (old["steps"] == row["steps"]) & (old["molecules"] == row["molecules"])
        new = pd.concat([old[~same], new], ignore_index=True)
    new.to_csv(RUNS, index=False)


if __name__ == "__main__":
    main()
