"""Ablation of the trust region's SELFIES edits: ``mutation_fraction`` 0 / 0.25 / 0.5.

    python benchmarks/mutation_fraction.py [--budget 1000] [--fractions 0 0.25 0.5]
                                           [--objectives celecoxib_rediscovery osimertinib_mpo median1 penalized_logp qed]

One run per objective and fraction (seed 0) with the shipped model; prints one JSON line per
run: PMO's AUC top-10 (``pmo_auc_top10``, :meth:`OptimizationResult.pmo_auc`), the area under
the per-call top-10 curve of feasible molecules (``top10_curve_auc``,
:meth:`OptimizationResult.top10_curve_auc`), best and top-10 mean at the end, wall seconds.
The ``mutation_fraction`` table of ``docs/optimization.md`` comes from this script (its AUC
column is ``top10_curve_auc``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import molvae as mv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    ap.add_argument("--objectives", nargs="+",
                    default=["celecoxib_rediscovery", "osimertinib_mpo", "median1", "penalized_logp", "qed"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = mv.load_pretrained()
    for name in args.objectives:
        # penalized logP rewards long chains without bound: limit the size as benchmarks/optimize.py does
        extra = {"max_heavy_atoms": 38} if name == "penalized_logp" else {}
        for frac in args.fractions:
            t = time.perf_counter()
            res = mv.optimize(model, name, budget=args.budget, seed=args.seed, progress=False,
                              mutation_fraction=frac, **extra)
            top = res.top(10)["score"].to_numpy()
            print(json.dumps({"objective": name, "mutation_fraction": frac, "budget": args.budget,
                              "pmo_auc_top10": round(res.pmo_auc(), 4),
                              "top10_curve_auc": round(res.top10_curve_auc(), 4), "top1": round(float(top[0]), 4),
                              "top10": round(float(top.mean()), 4), "wall_s": round(time.perf_counter() - t, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
