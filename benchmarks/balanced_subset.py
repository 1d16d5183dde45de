"""A property-balanced subset of MOSES train, to fine-tune a conditional model on.

(benchmarks/train_conditional_stage3.toml: an experiment, not shipped.)

    python benchmarks/balanced_subset.py [--pool 600000] [--n 250000] [--seed 5] [--alpha 0.5]
                                         --out runs/moses_conditional_s3/balanced.csv

The conditional model's errors are largest where MOSES has few molecules (logP near 1 or 4,
QED near 0.6): the decoder saw few examples of those conditions.  This draws ``--pool``
molecules from MOSES train, computes logP and QED (``molvae.properties``, all cores), counts
them on a 20 x 20 grid of equal-width bins between the 0.5 and 99.5 percentiles of each (the
tails fall in the edge bins), and keeps ``--n`` of them, drawn without replacement with
probability proportional to count(bin) ** -alpha: with alpha 0.5 a molecule of a bin 16 times
rarer is 4 times as likely to be kept.  Writes a CSV (smiles, logp, qed) and prints, for each
benchmark target of ``benchmarks/conditional.py``, the share of molecules within its tolerance
before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.data.datasets import load_dataset
from molvae.properties import compute

TARGETS = {"logp": ([1.0, 2.0, 3.0, 4.0], 0.35), "qed": ([0.6, 0.75, 0.9], 0.05)}


def balanced_pick(values: np.ndarray, n: int, alpha: float, rng: np.random.Generator, bins: int = 20) -> np.ndarray:
    """Indices of ``n`` rows of ``values`` (N, 2), drawn without replacement with weight
    count(bin) ** -alpha (Efraimidis-Spirakis keys: the n largest of u ** (1 / w))."""
    cells = np.zeros(len(values), dtype=np.int64)
    for j in range(values.shape[1]):
        lo, hi = np.percentile(values[:, j], [0.5, 99.5])
        k = np.clip(((values[:, j] - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
        cells = cells * bins + k
    counts = np.bincount(cells)[cells].astype(float)
    w = counts ** -alpha
    keys = np.log(rng.random(len(values))) / (w / w.max())
    return np.sort(np.argpartition(-keys, n - 1)[:n])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=600_000)
    ap.add_argument("--n", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    smiles = load_dataset("moses", "train")
    pool = [smiles[i] for i in np.sort(rng.choice(len(smiles), min(args.pool, len(smiles)), replace=False))]
    props = compute(pool, ["logp", "qed"])
    ok = props[["logp", "qed"]].notna().all(axis=1).to_numpy()
    props = props[ok].reset_index(drop=True)
    if args.n > len(props):
        raise SystemExit(f"--n {args.n} is more than the {len(props)} molecules of the pool with both properties")
    pick = balanced_pick(props[["logp", "qed"]].to_numpy(), args.n, args.alpha, rng)
    kept = props.iloc[pick].reset_index(drop=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(args.out, index=False)
    print(f"pool {len(pool)} ({int((~ok).sum())} without both properties), kept {len(kept)} -> {args.out}")
    for name, (targets, tol) in TARGETS.items():
        for t in targets:
            before = float((np.abs(props[name] - t) <= tol).mean())
            after = float((np.abs(kept[name] - t) <= tol).mean())
            print(f"{name} {t}: within {tol} {before:.3f} of the pool -> {after:.3f} of the subset")


if __name__ == "__main__":
    main()
