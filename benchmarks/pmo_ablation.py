"""Ablation of the trust-region strategy's candidate moves on a fixed subset of PMO tasks.

Each variant is a set of strategy options (``VARIANTS``); every (variant, task, seed) run is the
same PMO run as ``benchmarks/pmo.py`` (GuacaMol oracles, PMO's AUC top-10) at a smaller budget,
so the table ranks the moves, not the methods (AUC at 3,000 calls is not PMO's number).

    python benchmarks/pmo_ablation.py --budget 3000 --seeds 0 --variants base crossover crossover+finetune
    python benchmarks/pmo_ablation.py --table-only      # rebuild the table from ablation.json

Runs go to ``benchmarks/pmo_ablation/ablation.json`` (one entry per run, several invocations
can share it) and the table to the ``pmo_ablation`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import pmo  # noqa: E402

import numpy as np  # noqa: E402

import molvae as mv  # noqa: E402

HERE = Path(__file__).resolve().parent
TASKS = ["celecoxib_rediscovery", "troglitazone_rediscovery", "thiothixene_rediscovery", "perindopril_mpo",
         "median2", "amlodipine_mpo"]
# the strategy options of each variant; "base" is the strategy before crossover and fine-tuning
VARIANTS: dict[str, dict] = {
    "base": dict(crossover_fraction=0.0),
    "crossover-0.1": dict(crossover_fraction=0.1),
    "crossover": dict(crossover_fraction=0.25),
    "crossover-0.5": dict(crossover_fraction=0.5, mutation_fraction=0.2),
    "crossover+finetune": dict(crossover_fraction=0.25, finetune_every=500),
    "finetune": dict(crossover_fraction=0.0, finetune_every=500),
    # the default options again ("crossover"), rerun beside the graph variants at the same code
    "default": dict(crossover_fraction=0.25, mutation_fraction=0.25),
    # graph mutations (molvae.optimization.graph_mutations): in place of part of the SELFIES
    # edits (the same latent share as "crossover"), or a few on top of them
    "graph": dict(crossover_fraction=0.25, mutation_fraction=0.1, graph_mutation_fraction=0.15),
    "graph-0.05": dict(crossover_fraction=0.25, mutation_fraction=0.25, graph_mutation_fraction=0.05),
    # several trust regions at once (TuRBO-m), the default moves otherwise
    "regions-3": dict(crossover_fraction=0.25, mutation_fraction=0.25, n_regions=3),
    # selection pressure: four times the candidates the GP ranks a round (512 by default), or
    # crossover parents drawn from the 20 best molecules instead of the 50 best
    "candidates-1024": dict(crossover_fraction=0.25, mutation_fraction=0.25, n_candidates=1024),
    "candidates-2048": dict(crossover_fraction=0.25, mutation_fraction=0.25, n_candidates=2048),
    "population-20": dict(crossover_fraction=0.25, mutation_fraction=0.25, population=20),
    # the candidates a round does not score stay in the ranking 3 more rounds: a pool about as
    # deep as candidates-2048 for the generation cost of 512 a round
    "carry-3": dict(crossover_fraction=0.25, mutation_fraction=0.25, carry_rounds=3),
    # substituent swaps (molvae.optimization.substituents) out of the latent points' share
    "substituent-0.05": dict(crossover_fraction=0.25, mutation_fraction=0.25, substituent_fraction=0.05),
    "substituent-0.1": dict(crossover_fraction=0.25, mutation_fraction=0.25, substituent_fraction=0.1),
    # rounds of 16 molecules instead of 32: twice the surrogate updates per call
    "batch-16": dict(crossover_fraction=0.25, mutation_fraction=0.25, batch_size=16),
}
# variant keys that are options of the run, not of the strategy
RUN_OPTIONS = ("batch_size",)


def table(data: dict) -> str:
    runs = list(data["runs"].values())
    budgets = sorted({r["budget"] for r in runs})
    out = ["## PMO ablation: the trust region's candidate moves (`benchmarks/pmo_ablation.py`)", ""]
    for cmd, commit, hw in sorted({(r["command"], r["commit"], r["hardware"]) for r in runs}):
        out.append(f"- `{cmd}`: commit {commit}; {hw}.")
    out.append("")
    out.append("Variants (strategy options; `batch_size` is the run's): " + "; ".join(
        f"**{v}** `{', '.join(f'{k}={x}' for k, x in VARIANTS[v].items())}`" for v in VARIANTS
        if any(r["variant"] == v for r in runs)) + ". Everything else is the default trust region "
        "(512 candidates a round, 25% SELFIES edits, 10% of the latent ones prior draws, Tanimoto-GP Thompson "
        "ranking, rounds of 32 molecules). AUC top-10 as PMO computes it, at the budget shown (not PMO's 10,000: ranks the "
        "moves, not comparable with published numbers); seconds are wall time of one run, fine-tuning included.")
    for budget in budgets:
        rs = [r for r in runs if r["budget"] == budget]
        variants = [v for v in VARIANTS if any(r["variant"] == v for r in rs)]
        tasks = [t for t in TASKS if any(r["oracle"] == t for r in rs)] + sorted(
            {r["oracle"] for r in rs} - set(TASKS))
        out += ["", f"Budget {budget:,} calls, mean over the seeds run (seeds in brackets):", "",
                "| task | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
        sums = {v: 0.0 for v in variants}
        complete = {v: True for v in variants}
        for t in tasks:
            cells = []
            for v in variants:
                got = [r for r in rs if r["oracle"] == t and r["variant"] == v]
                if not got:
                    cells.append("–")
                    complete[v] = False
                    continue
                auc = float(np.mean([r["auc_top10"] for r in got]))
                sums[v] += auc
                seeds = ",".join(str(r["seed"]) for r in sorted(got, key=lambda r: r["seed"]))
                cells.append(f"{auc:.3f} [{seeds}]")
            out.append(f"| {t} | " + " | ".join(cells) + " |")
        out.append("| **sum** | " + " | ".join(f"**{sums[v]:.3f}**" + ("" if complete[v] else " (incomplete)")
                                               for v in variants) + " |")
        secs = []
        for v in variants:
            got = [r for r in rs if r["variant"] == v]
            ft = np.mean([r.get("finetune_s", 0.0) for r in got])
            secs.append(f"{np.mean([r['wall_s'] for r in got]):.0f}" + (f" ({ft:.0f} fine-tuning)" if ft else ""))
        out.append("| wall s / run | " + " | ".join(secs) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--tasks", nargs="+", default=TASKS, choices=list(pmo.PMO_ORACLES), metavar="TASK")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=int, default=3000)
    ap.add_argument("--model", default="moses")
    ap.add_argument("--out-dir", default=str(HERE / "pmo_ablation"))
    ap.add_argument("--table-only", action="store_true")
    raw = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(raw)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ablation.json"
    if not args.table_only:
        command = "python benchmarks/pmo_ablation.py " + " ".join(shlex.quote(a) for a in raw)
        commit, hw = pmo.commit_label(), pmo.hardware()
        model = mv.MolVAE.load(args.model, device="cpu") if args.model.endswith(".pt") \
            else mv.load_pretrained(args.model, device="cpu")
        for task in args.tasks:
            for variant in args.variants:
                for seed in args.seeds:
                    opts = dict(VARIANTS[variant])
                    batch_size = opts.get("batch_size", 32)
                    run_args = SimpleNamespace(budget=args.budget, strategy="trust_region", batch_size=batch_size,
                                               progress=False,
                                               set=[f"{k}={v}" for k, v in opts.items() if k not in RUN_OPTIONS])
                    load = os.getloadavg()[0]
                    t0 = time.time()
                    (out_dir / variant).mkdir(exist_ok=True)
                    rec = pmo.one_run(model, task, seed, run_args, out_dir / variant)
                    rec.update(variant=variant, options=opts, budget=args.budget, command=command, commit=commit,
                               hardware=hw, load=round(load, 2), model=args.model)
                    with pmo._locked(path):
                        data = pmo.load_runs(path)
                        data["runs"][f"{variant} {task} seed={seed} budget={args.budget}"] = rec
                        pmo.save_runs(path, data)
                    print(f"{variant:20s} {task:26s} seed {seed}: AUC {rec['auc_top10']:.3f} top-10 "
                          f"{rec['top10']:.3f} in {time.time() - t0:.0f} s", flush=True)
    body = table(pmo.load_runs(path))
    _common.write_section("pmo_ablation", body)
    print(body)


if __name__ == "__main__":
    main()
