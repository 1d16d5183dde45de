"""MOSES metrics of the shipped model against the published baselines.

    python benchmarks/moses.py [--n 30000] [--seeds 0 1 2] [--model PATH] [--n-reconstruct 10000]

Samples n molecules per seed, scores them with the MOSES suite (molvae.metrics), runs the
latent diagnostics on MOSES test molecules, and writes the "moses" section of
benchmarks/RESULTS.md and the results section of README.md (between markers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

from molvae.cli import evaluate_run  # noqa: E402

# Polykovskiy et al. 2020 (MOSES), Table 2 (mean over 3 runs), and the molvae targets.
PUBLISHED = {
    "valid": (0.977, 0.975, ">= 1.000"),
    "unique@10000": (0.998, 0.999, ">= 0.998"),
    "novelty": (0.695, 0.842, ">= 0.90"),
    "FCD/Test": (0.099, 0.073, "<= 0.10"),
    "SNN/Test": (0.626, 0.601, ">= 0.55"),
    "Frag/Test": (0.999, 1.000, ">= 0.998"),
    "Scaf/Test": (0.939, 0.924, ">= 0.90"),
    "IntDiv": (0.856, 0.856, ">= 0.85"),
    "Filters": (0.997, 0.994, ">= 0.99"),
}
EXTRA = ["unique@1000", "IntDiv2", "FCD/TestSF", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF",
         "logP/Test", "SA/Test", "QED/Test", "weight/Test"]


def table(summary: dict) -> list[str]:
    lines = ["| metric | MOSES VAE (published) | CharRNN (published) | molvae (mean +- std) | target |", "|---|---|---|---|---|"]
    for m, (vae, rnn, target) in PUBLISHED.items():
        v = summary.get(m, {"mean": float("nan"), "std": float("nan")})
        lines.append(f"| {m} | {vae:.3f} | {rnn:.3f} | {v['mean']:.3f} +- {v['std']:.3f} | {target} |")
    for m in EXTRA:
        if m in summary:
            v = summary[m]
            lines.append(f"| {m} | | | {v['mean']:.3f} +- {v['std']:.3f} | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model")
    ap.add_argument("--n-reconstruct", type=int, default=10_000)
    ap.add_argument("--json", default="benchmarks/moses_report.json")
    args = ap.parse_args()
    ns = argparse.Namespace(
        n=args.n, seed=args.seeds, temperature=1.0, smiles=None, column=None, reference=["test", "test_scaffolds"],
        train="moses", max_reference=None, n_reconstruct=args.n_reconstruct, model=args.model, device="auto", quiet=False,
    )
    t0 = time.time()
    report = evaluate_run(ns)
    wall = time.time() - t0
    Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    lat = report.get("latent", {})
    cmd = f"python benchmarks/moses.py --n {args.n} --seeds {' '.join(map(str, args.seeds))} --n-reconstruct {args.n_reconstruct}"
    body = [
        "## MOSES metrics of the shipped model (`benchmarks/moses.py`)",
        "",
        f"Command: `{cmd}`; {args.n:,} samples per seed, seeds {args.seeds}; wall time {wall / 60:.1f} min; "
        f"hardware: {hardware()}; commit {git_commit()}. Published rows: Polykovskiy et al. 2020 (MOSES), Table 2.",
        "",
        *table(report["summary"]),
        "",
    ]
    if lat:
        body.append(
            f"Latent diagnostics on {lat['n_molecules']:,} MOSES test molecules: active units {lat['active_units']} of "
            f"{len(lat['kl_per_dim'])} ({lat['active_fraction']:.0%}; target >= 90%), KL {lat['kl_total']:.1f} nats, "
            f"mutual information {lat['mutual_info']:.2f} nats, greedy exact reconstruction {lat['recon_exact']:.3f} (target >= 0.90)."
        )
    write_section("moses", "\n".join(body))
    # README results section
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(head + start + "\n" + "\n".join(body[2:]) + "\n" + end + tail)
    print("\n".join(body))


if __name__ == "__main__":
    main()
