"""Sample quality of trained models under each latent prior: the table behind the shipped choice.

    python benchmarks/sample_quality.py --models pretrained:moses runs/moses_sampler/best.pt \\
        --priors standard gmm aggregate [--unfiltered standard] [--n 10000] [--n-fit 50000] [--threads 2]

For every model and prior: ``n`` faithful prior samples (``molvae.vae.sampling``; the acceptance
rate is the fraction of decoded strings that were faithful) and, for the priors named by
``--unfiltered``, ``n`` unfiltered ones, all scored
with the MOSES suite (FCD, SNN, Frag, Scaf against MOSES test; Filters; novelty), plus greedy
exact reconstruction of 1,000 MOSES test molecules.  Priors are fitted on ``n_fit`` random
MOSES train molecules: ``gmm`` (32 full-covariance components), ``aggregate`` (4,096 training
posteriors).  Rows are merged into benchmarks/sample_quality.csv (one row per model, prior and
filter; a re-run replaces its rows) and the whole table is printed as markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import hardware  # noqa: E402

CSV = Path(__file__).resolve().parent / "sample_quality.csv"
METRICS = ["FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "Filters", "novelty", "unique@10000", "IntDiv"]


def load(spec: str):
    import molvae as mv

    if spec.startswith("pretrained:"):
        return mv.load_pretrained(spec.split(":", 1)[1], device="cpu")
    return mv.MolVAE.load(spec, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="pretrained:NAME or checkpoint paths")
    ap.add_argument("--priors", nargs="+", default=["standard", "gmm"], choices=["standard", "gmm", "aggregate"])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--n-fit", type=int, default=50_000)
    ap.add_argument("--n-reconstruct", type=int, default=1000)
    ap.add_argument("--unfiltered", nargs="*", default=["standard"],
                    help="priors for which the unfiltered samples (every decoded string) are scored too")
    ap.add_argument("--precisions", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"],
                    help="decoding precision of the faithful rows (auto: bf16 where the CPU has it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", default=str(CSV), help="table to merge the rows into")
    ap.add_argument("--note", default="", help="free text stored with the rows (e.g. what else was running)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import molvae as mv
    from molvae.metrics.suite import get_all_metrics
    from molvae.vae.prior import fit_prior

    train = mv.load_dataset("moses", "train")
    pick = np.random.default_rng(args.seed).choice(len(train), size=args.n_fit, replace=False)
    fit_smiles = [train[i] for i in np.sort(pick)]
    test = mv.load_dataset("moses", "test", limit=args.n_reconstruct)
    rows = []
    for spec in args.models:
        model = load(spec)
        recon = float(model.reconstruct(test).exact.mean()) if args.n_reconstruct else float("nan")
        for prior in args.priors:
            t0 = time.time()
            if prior == "standard":
                model.prior = None
            else:
                model.prior = fit_prior(model, fit_smiles, kind=prior, n_components=32 if prior == "gmm" else 4096,
                                        seed=args.seed, progress=False)
            fit_s = time.time() - t0
            runs = [(True, p) for p in args.precisions] + ([(False, "auto")] if prior in args.unfiltered else [])
            for faithful, precision in runs:
                t0 = time.time()
                df = model.sample(args.n, seed=args.seed, faithful=faithful, progress=False, precision=precision)
                sample_s = time.time() - t0
                m = get_all_metrics(df.smiles.tolist(), reference=["test"], train="moses", n_jobs=args.threads)
                row = {"model": spec, "prior": prior, "faithful": faithful, "precision": precision, "n": args.n,
                       "acceptance": df.attrs["acceptance_rate"], "recon_exact": recon,
                       **{k: m.get(k, float("nan")) for k in METRICS},
                       "sample_s": round(sample_s, 1), "fit_s": round(fit_s, 1), "threads": args.threads,
                       "note": args.note}
                rows.append(row)
                print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    new = pd.DataFrame(rows)
    csv = Path(args.csv)
    if csv.exists():
        old = pd.read_csv(csv)
        key = ["model", "prior", "faithful", "precision", "n"]
        merged = old.merge(new[key], on=key, how="left", indicator=True)
        old = old[(merged["_merge"] == "left_only").to_numpy()]
        new = pd.concat([old, new], ignore_index=True)
    new.to_csv(csv, index=False)
    show = new.copy()
    for c in ["acceptance", "recon_exact", *METRICS]:
        show[c] = show[c].map(lambda v: f"{v:.3f}")
    print(f"\nhardware: {hardware()}\n")
    show = show.drop(columns=["note"]).astype(str)
    print("| " + " | ".join(show.columns) + " |\n|" + "---|" * len(show.columns))
    for _, r in show.iterrows():
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
