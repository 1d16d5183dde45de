"""Latent-space optimization with the shipped model: top-3 QED and penalized logP per budget.

    python benchmarks/optimize.py [--budgets 500 5000] [--seeds 0] [--strategy trust_region]

For each objective and budget: the three best molecules found, with the size limited to the
largest molecule of MOSES train (heavy atoms) and without a limit; wall time and the
optimizer's own time per oracle call (wall time minus time inside the objective).
Published: JT-VAE BO top-3 penalized logP 5.30 / 4.93 / 4.49 (Jin et al. 2018); QED max 0.948.
Writes the "optimize" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import numpy as np  # noqa: E402

import molvae as mv  # noqa: E402
from molvae.chem import heavy_atoms  # noqa: E402


class TimedProperty:
    """A property objective that records the time spent inside it."""

    def __init__(self, name: str):
        self.name, self.seconds = name, 0.0

    def __call__(self, smiles: list[str]) -> np.ndarray:
        t = time.perf_counter()
        values = mv.properties.score(smiles, self.name)
        self.seconds += time.perf_counter() - t
        return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--strategy", default="trust_region")
    ap.add_argument("--objectives", nargs="+", default=["qed", "penalized_logp"])
    ap.add_argument("--size-sample", type=int, default=100_000, help="MOSES train molecules used for the size limit")
    args = ap.parse_args()
    model = mv.load_pretrained()
    train = mv.load_dataset("moses", "train")
    rng = np.random.default_rng(0)
    sample = [train[i] for i in rng.choice(len(train), min(args.size_sample, len(train)), replace=False)]
    limit = max(heavy_atoms(s) or 0 for s in sample)
    rows = []
    for objective in args.objectives:
        for budget in args.budgets:
            for max_atoms in (limit, None):
                for seed in args.seeds:
                    fn = TimedProperty(objective)
                    t = time.perf_counter()
                    res = mv.optimize(model, fn, budget=budget, seed=seed, strategy=args.strategy,
                                      max_heavy_atoms=max_atoms, progress=False)
                    wall = time.perf_counter() - t
                    top = res.top(3)
                    scores = top["score"].tolist()
                    rows.append((objective, budget, max_atoms, seed, scores, top["smiles"].tolist(), wall,
                                 (wall - fn.seconds) / max(res.n_oracle_calls, 1), res.n_oracle_calls))
                    print(rows[-1][:5], f"{wall:.0f}s")
    body = [
        "## Latent-space optimization (`benchmarks/optimize.py`)", "",
        f"Command: `python benchmarks/optimize.py --budgets {' '.join(map(str, args.budgets))} --seeds "
        f"{' '.join(map(str, args.seeds))} --strategy {args.strategy}`; shipped model; hardware: {hardware()}; "
        f"commit {git_commit()}. Size limit: {limit} heavy atoms, the largest in a {len(sample):,}-molecule sample of MOSES train.",
        "Published: JT-VAE BO top-3 penalized logP 5.30 / 4.93 / 4.49 (Jin et al. 2018); the QED maximum is 0.948.", "",
        "| objective | budget | size limit | seed | top-3 scores | best molecule | calls | wall s | optimizer s/call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for obj, budget, lim, seed, scores, smiles, wall, overhead, calls in rows:
        body.append(f"| {obj} | {budget:,} | {lim or 'none'} | {seed} | {' / '.join(f'{s:.3f}' for s in scores)} | "
                    f"`{smiles[0] if smiles else ''}` | {calls:,} | {wall:,.0f} | {overhead:.3f} |")
    write_section("optimize", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
