"""Training recipes compared at equal CPU time (issue 14, item 3): which decoder and batch to train?

    # four recipes at once on 2 cores (each gets half a core; one torch thread, one process each)
    for r in base deep3 wide768 batch512; do
        python benchmarks/recipes.py train --recipe $r --minutes 60 &
    done; wait
    python benchmarks/recipes.py table          # the RESULTS.md section from benchmarks/recipes.csv

Every recipe trains from scratch (a new vocabulary fitted on its data, the shipped
architecture of ``benchmarks/train_moses.toml`` with the recipe's change, bf16 autocast, free
bits 0.1 as for the sampling model) on a prefix of one fixed random permutation of MOSES train.
Equal CPU time: before training, each run times 20 optimizer steps of its own model on real
batches, length-bucketed as in training (the runs start together, so each probe sees the same contention), and takes as many
molecules as that rate trains in ``--minutes``, so that its learning-rate and KL schedules end
when its time does (``max_hours`` stops it at 1.25x the budget if the rate was misjudged).
Then it is judged on data no run trained on (MOSES test): the negative ELBO of 2,000 test
molecules (``model.score``, nats), greedy exact reconstruction of 1,000, and 10,000 prior
samples scored with the MOSES suite, faithful strings only (the default of ``sample``) and
every decoded string, with the acceptance rate.  One row per recipe goes to
``benchmarks/recipes.csv`` (a rerun replaces its row).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
CSV = HERE / "recipes.csv"
#: model and train settings each recipe changes from benchmarks/train_moses.toml
RECIPES = {
    "base": ({}, {}),
    "deep3": ({"decoder_layers": 3}, {}),  # the MOSES VAE's decoder depth (3 x 512)
    "wide768": ({"decoder_hidden_dim": 768}, {}),
    "batch512": ({}, {"batch_size": 512, "lr": 0.003}),
    "emb128": ({"embedding_dim": 128}, {}),
}
POOL_SEED = 0
METRICS = ["FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "Filters", "novelty", "unique@10000", "IntDiv"]


def _configs(recipe: str):
    from molvae.config import load_config

    model_cfg, cfg = load_config(HERE / "train_moses.toml")
    m, t = RECIPES[recipe]
    model_cfg = replace(model_cfg, **m)
    cfg = replace(cfg, **{"precision": "bf16", "num_threads": 1, "epochs": 1, "max_steps": 0, "max_molecules": 0,
                          "val_fraction": 0.005, "max_val": 1000, "early_stopping_patience": 0,
                          "checkpoint_every": 10**9, "log_every": 200, "n_prior_samples": 1000, **t})
    return model_cfg, cfg


def _probe(model_cfg, cfg, smiles: list[str], steps: int = 20) -> float:
    """Molecules per second of this recipe's training steps (after 3 warm-up steps), on batches
    drawn as training draws them (length buckets of 50 batches), so padding costs what it will."""
    import torch

    from molvae.data.samplers import BucketBatchSampler
    from molvae.data.tokens import tokenize_file
    from molvae.training.evaluation import to_batch
    from molvae.training.losses import elbo_loss
    from molvae.vae.model import MolVAE

    data = tokenize_file(smiles[: cfg.batch_size * max(50, steps + 3)], cache=False, n_jobs=1, progress=False)
    model = MolVAE(data.tokenizer, model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = BucketBatchSampler(data.lengths, cfg.batch_size, seed=0).batches()[: steps + 3]
    t0 = 0.0
    for i, idx in enumerate(batches):
        if i == 3:
            t0 = time.perf_counter()
        ids, lengths = to_batch(data, idx, torch.device("cpu"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            res = model(ids, lengths)
            loss = elbo_loss(res["logits"], res["targets"], res["mu"], res["logvar"], 1.0, cfg.free_bits)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return sum(len(b) for b in batches[3:]) / (time.perf_counter() - t0)


def train(args) -> None:
    import torch

    torch.set_num_threads(1)
    import molvae as mv
    from molvae.metrics.suite import get_all_metrics

    model_cfg, cfg = _configs(args.recipe)
    pool = mv.load_dataset("moses", "train")
    pool = [pool[i] for i in np.random.default_rng(POOL_SEED).permutation(len(pool))]
    rate = _probe(model_cfg, cfg, pool)
    n = min(len(pool), int(rate * args.minutes * 60 / (1 - cfg.val_fraction)))
    steps = int(n * (1 - cfg.val_fraction)) // cfg.batch_size
    cfg = replace(cfg, max_hours=1.25 * args.minutes / 60, kl_warmup_steps=max(1, steps // 8), eval_every=10**9)
    print(f"{args.recipe}: probe {rate:.0f} molecules/s -> {n:,} molecules, about {steps:,} steps", flush=True)
    out = Path(args.out) / args.recipe
    mv.train(pool[:n], out, model_cfg, cfg, progress=False)
    last = pd.read_csv(out / "metrics.csv").iloc[-1]
    model = mv.MolVAE.load(out / "last.pt", device="cpu")  # the end of the schedule, not the best validation
    test = mv.load_dataset("moses", "test")
    sc = model.score(test[:2000], k=1)
    recon = float(model.reconstruct(test[:1000]).exact.mean())
    row = {"recipe": args.recipe, "minutes": args.minutes, "probe_mol_s": round(rate, 1), "molecules": n,
           "steps": int(last["step"]), "train_s": round(float(last["elapsed_s"])),
           "params": sum(p.numel() for p in model.parameters()),
           "test_neg_elbo": float(-sc.elbo.mean()), "test_recon_nll": float(sc.recon_nll.mean()),
           "test_kl": float(sc.kl.mean()), "test_unscored": int(sc.elbo.isna().sum()), "recon_exact": recon}
    for faithful in (True, False):
        t0 = time.perf_counter()
        df = model.sample(args.n, seed=0, faithful=faithful, progress=False, max_draws=100 * args.n)
        key = "faithful" if faithful else "all"
        row[f"sample_s_{key}"] = round(time.perf_counter() - t0, 1)
        if faithful:
            row["acceptance"] = df.attrs["acceptance_rate"]
        m = get_all_metrics(df.smiles.tolist(), reference=["test"], train="moses", n_jobs=1)
        for k in METRICS:
            row[f"{k} {key}"] = m.get(k, float("nan"))
    row.update({"commit": git_commit(), "hardware": hardware(), "note": args.note})
    print(row, flush=True)
    new = pd.DataFrame([row])
    if CSV.exists():
        old = pd.read_csv(CSV)
        new = pd.concat([old[old["recipe"] != args.recipe], new], ignore_index=True)
    new.to_csv(CSV, index=False)


def table(args) -> None:
    runs = pd.read_csv(CSV)
    order = {name: i for i, name in enumerate(RECIPES)}
    runs = runs.iloc[sorted(range(len(runs)), key=lambda i: order.get(runs.recipe[i], 99))]
    change = {k: ", ".join(f"{a}={b}" for a, b in {**m, **t}.items()) or "-" for k, (m, t) in RECIPES.items()}
    body = ["## Training recipes at equal CPU time (`benchmarks/recipes.py`)", "",
            f"Command: `for r in {' '.join(runs.recipe)}; do python benchmarks/recipes.py train --recipe $r "
            f"--minutes {int(runs.minutes.iloc[0])} & done`, then `python benchmarks/recipes.py table`; "
            f"hardware: {runs.hardware.iloc[0]}; commit(s) {', '.join(dict.fromkeys(runs.commit.astype(str)))}. "
            "From scratch, one torch thread each, bf16, free bits 0.1, the schedule sized to the time "
            "(module docstring); judged on MOSES test (never trained on) and on 10,000 prior samples, "
            "MOSES metric definitions.", "",
            "| recipe | change | params | molecules/s (probe) | molecules trained | steps | train s | test -ELBO (nats) | "
            "recon NLL | KL | greedy exact recon | acceptance | FCD faithful | FCD all | SNN faithful | Scaf faithful | "
            "Filters faithful | novelty faithful |",
            "|" + "---|" * 18]
    for _, r in runs.iterrows():
        body.append(f"| {r.recipe} | {change.get(r.recipe, '?')} | {r.params / 1e6:.2f}M | {r.probe_mol_s:.0f} | "
                    f"{r.molecules:,} | {r.steps:,} | {r.train_s:.0f} | {r.test_neg_elbo:.2f} | {r.test_recon_nll:.2f} | "
                    f"{r.test_kl:.2f} | {r.recon_exact:.3f} | {r.acceptance:.3f} | {r['FCD/Test faithful']:.2f} | "
                    f"{r['FCD/Test all']:.2f} | {r['SNN/Test faithful']:.3f} | {r['Scaf/Test faithful']:.3f} | "
                    f"{r['Filters faithful']:.3f} | {r['novelty faithful']:.3f} |")
    notes = [str(x) for x in runs.note.dropna().unique() if str(x)]
    if notes:
        body += ["", "Conditions: " + " ".join(notes)]
    write_section("recipes", "\n".join(body))
    print("\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and judge one recipe")
    t.add_argument("--recipe", required=True, choices=list(RECIPES))
    t.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    t.add_argument("--n", type=int, default=10_000, help="prior samples scored")
    t.add_argument("--out", default="runs/recipes")
    t.add_argument("--note", default="", help="what else was running (stored with the row)")
    sub.add_parser("table", help="write the RESULTS.md section from benchmarks/recipes.csv")
    args = ap.parse_args()
    train(args) if args.cmd == "train" else table(args)


if __name__ == "__main__":
    main()
