"""Latent features vs Morgan fingerprints for property regression: cross-validated R^2.

    python benchmarks/features.py [--n 10000] [--folds 5] [--threads 2] [--out benchmarks/features.csv] [--results]

``n`` ZINC250k molecules (the bundled valid + test subsets, stereochemistry removed: the
shipped vocabulary has no stereo tokens, and none of these properties depends on it) that
the shipped vocabulary can spell, in a seeded random order.  Targets: RDKit logP, QED, SA
and TPSA (:mod:`molvae.properties`).  Features: the shipped model's latent means
(:class:`molvae.sklearn.LatentFeaturizer`, 64 dimensions; unsupervised, so computed once
for all folds) and 2048-bit Morgan fingerprints, radius 2 (:func:`molvae.properties.fingerprint`).
Models: ridge regression with its alpha chosen by efficient leave-one-out inside each
training fold (``RidgeCV``) and a random forest (``--trees`` trees, a third of the features
per split).  ``--folds``-fold cross-validated R^2 (shuffled ``KFold``), mean and standard
deviation over folds.  Prints a markdown table, writes a CSV (``--out``) and, with
``--results``, the "features" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from rdkit import DataStructs  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.linear_model import RidgeCV  # noqa: E402
from sklearn.model_selection import KFold, cross_val_score  # noqa: E402

import molvae as mv  # noqa: E402
from molvae.chem import canonical  # noqa: E402
from molvae.properties import compute, fingerprint  # noqa: E402
from molvae.sklearn import LatentFeaturizer  # noqa: E402

SECTION = "features"
TARGETS = ("logp", "qed", "sa", "tpsa")
LABELS = {"logp": "logP", "qed": "QED", "sa": "SA", "tpsa": "TPSA"}


def flatten_stereo(smiles: str) -> str | None:
    """Canonical SMILES without stereochemistry."""
    return canonical(smiles, isomeric=False)


def zinc_molecules(tokenizer, n: int, seed: int) -> tuple[list[str], int]:
    """``n`` distinct spellable ZINC molecules in a seeded random order, and how many were looked at."""
    pool = mv.load_dataset("zinc", "valid") + mv.load_dataset("zinc", "test")
    out: dict[str, None] = {}
    seen = 0
    for i in np.random.default_rng(seed).permutation(len(pool)):
        seen += 1
        smi = flatten_stereo(pool[i])
        if smi is None or smi in out:
            continue
        try:
            tokenizer.encode_one(smi)
        except ValueError:
            continue
        out[smi] = None
        if len(out) >= n:
            break
    return list(out), seen


def morgan_matrix(smiles: list[str]) -> np.ndarray:
    """(N, 2048) uint8 bits of molvae's Morgan fingerprint (radius 2)."""
    X = np.zeros((len(smiles), 2048), dtype=np.uint8)
    for i, s in enumerate(smiles):
        DataStructs.ConvertToNumpyArray(fingerprint(s), X[i])
    return X


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="ZINC molecules")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--model", default="pretrained", help="shipped model name ('pretrained': moses) or checkpoint path")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads and random-forest jobs")
    ap.add_argument("--trees", type=int, default=100, help="random-forest trees")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "features.csv"))
    ap.add_argument("--results", action="store_true", help="write the 'features' section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    featurizer = LatentFeaturizer(model=args.model, device="cpu", on_error="raise")
    featurizer.fit([])
    smiles, looked_at = zinc_molecules(featurizer.model_.tokenizer, args.n, args.seed)
    y = compute(smiles, list(TARGETS), n_jobs=args.threads)
    t = time.perf_counter()
    features = {"latent": featurizer.transform(smiles).astype(np.float64)}
    latent_s = time.perf_counter() - t
    t = time.perf_counter()
    features["morgan"] = morgan_matrix(smiles)
    morgan_s = time.perf_counter() - t
    print(f"{len(smiles):,} spellable ZINC molecules (of {looked_at:,} looked at); features in "
          f"{latent_s:.1f} s (latent) and {morgan_s:.1f} s (Morgan); set-up {time.perf_counter() - t0:.0f} s")

    models = {
        "ridge": lambda: RidgeCV(alphas=np.logspace(-3, 3, 13)),
        "random_forest": lambda: RandomForestRegressor(n_estimators=args.trees, max_features=1 / 3, n_jobs=args.threads,
                                                       random_state=args.seed),
    }
    cv = KFold(args.folds, shuffle=True, random_state=args.seed)
    rows = []
    for target in TARGETS:
        yt = y[target].to_numpy(dtype=float)
        ok = np.isfinite(yt)
        for model_name, make in models.items():
            for feat_name, X in features.items():
                t = time.perf_counter()
                r2 = cross_val_score(make(), X[ok], yt[ok], cv=cv, scoring="r2")
                rows.append({"property": target, "model": model_name, "features": feat_name, "r2_mean": r2.mean(),
                             "r2_std": r2.std(), "n": int(ok.sum()), "folds": args.folds,
                             "seconds": time.perf_counter() - t})
                print(f"{LABELS[target]:<5} {model_name:<14} {feat_name:<7} R2 {r2.mean():.3f} +- {r2.std():.3f} "
                      f"({rows[-1]['seconds']:.1f} s)")
    df = pd.DataFrame(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    df.to_csv(args.out, index=False)

    combos = [(m, f) for m in models for f in features]
    head = ["property"] + [f"{m} / {f}" for m, f in combos]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in TARGETS:
        sub = df[df.property == target].set_index(["model", "features"])
        cells = [LABELS[target]] + [f"{sub.r2_mean[c]:.3f} ± {sub.r2_std[c]:.3f}" for c in combos]
        lines.append("| " + " | ".join(cells) + " |")
    body = [
        f"`python benchmarks/features.py --n {args.n} --folds {args.folds} --threads {args.threads} --trees {args.trees}` "
        f"(commit {git_commit()}; {hardware()})",
        "",
        f"{args.folds}-fold cross-validated R^2 (mean ± std over folds) on {len(smiles):,} ZINC molecules: the shipped "
        f"model's {features['latent'].shape[1]} latent means vs 2048-bit Morgan fingerprints (radius 2).",
        "",
        *lines,
    ]
    print("\n".join(body))
    print(f"wrote {args.out}")
    if args.results:
        write_section(SECTION, "## Latent features for property regression\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
