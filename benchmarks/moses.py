"""MOSES metrics of the shipped model against the published baselines.

    python benchmarks/moses.py [--n 30000] [--seeds 0 1 2] [--model PATH] [--n-reconstruct 10000]
                               [--prior auto|learned|standard] [--no-faithful] [--compare]

Samples n molecules per seed with the defaults of ``molvae sample`` (the shipped sampling
model, faithful strings only, its learned prior), scores them with the MOSES suite
(molvae.metrics.suite), runs the latent diagnostics and greedy reconstruction on MOSES test
molecules with the shipped search model (``moses``, the one encoding and optimization use),
and writes the "moses" section of benchmarks/RESULTS.md and the results section of README.md
(between markers).  ``--compare`` adds one seed of each alternative beside the defaults: the
standard N(0, I) prior, and every decoded string kept (no faithfulness filter).
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

import molvae as mv  # noqa: E402


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
    if "acceptance" in summary:
        v = summary["acceptance"]
        lines.append(f"| acceptance (faithful / decoded) | | | {v['mean']:.3f} +- {v['std']:.3f} | |")
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
    ap.add_argument("--prior", default="auto", choices=["auto", "learned", "standard"])
    ap.add_argument("--no-faithful", dest="faithful", action="store_false")
    ap.add_argument("--compare", action="store_true",
                    help="also one seed with the standard prior and one without the faithfulness filter")
    ap.add_argument("--references", nargs="+", default=["test", "test_scaffolds"],
                    help="MOSES reference sets (the first time, each costs about 20 CPU-minutes of statistics)")
    ap.add_argument("--search-model", default="moses", help="shipped model (or path) for the reconstruction diagnostics")
    ap.add_argument("--json", default="benchmarks/moses_report.json")
    args = ap.parse_args()

    def run(seeds, prior, faithful):
        model = mv.MolVAE.load(args.model) if args.model else mv.load_pretrained("moses-sampler")
        report = mv.evaluate(model, n=args.n, seeds=seeds, reference=args.references, train="moses",
                             faithful=faithful, prior=prior)
        report["model"] = args.model or "shipped:moses-sampler"
        return report

    t0 = time.time()
    report = run(args.seeds, args.prior, args.faithful)
    wall = time.time() - t0
    if args.n_reconstruct:
        from molvae.training.diagnostics import latent_report

        search = (mv.load_pretrained(args.search_model) if not Path(args.search_model).exists()
                  else mv.MolVAE.load(args.search_model))
        report["latent"] = latent_report(search, mv.load_dataset("moses", "test", limit=args.n_reconstruct))
        report["latent"]["model"] = args.search_model
    others = {}
    if args.compare:
        if report.get("prior") == "learned":
            others["standard prior"] = run(args.seeds[:1], "standard", args.faithful)
        if args.faithful:
            others["every string (no filter)"] = run(args.seeds[:1], args.prior, False)
    report["compare"] = {k: v["summary"] for k, v in others.items()}
    Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    lat = report.get("latent", {})
    cmd = (f"python benchmarks/moses.py --n {args.n} --seeds {' '.join(map(str, args.seeds))} "
           f"--n-reconstruct {args.n_reconstruct}" + (" --compare" if args.compare else "")
           + ("" if args.references == ["test", "test_scaffolds"] else f" --references {' '.join(args.references)}")
           + ("" if args.faithful else " --no-faithful") + ("" if args.prior == "auto" else f" --prior {args.prior}"))
    body = [
        "## MOSES metrics of the shipped model (`benchmarks/moses.py`)",
        "",
        f"Command: `{cmd}`; model {report['model']} ({report['prior']} prior, "
        f"{'faithful strings only' if args.faithful else 'every decoded string'}); {args.n:,} samples per seed, "
        f"seeds {args.seeds}; wall time {wall / 60:.1f} min; hardware: {hardware()}; commit {git_commit()}. "
        "Published rows: Polykovskiy et al. 2020 (MOSES), Table 2.",
        "",
        *table(report["summary"]),
        "",
    ]
    if others:
        names = list(others)
        body += [f"The same model, one seed ({args.seeds[0]}) of each alternative:", "",
                 "| metric | defaults | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for m in ["acceptance", *PUBLISHED]:
            cells = [report["summary"].get(m, {}).get("mean", float("nan"))]
            cells += [others[k]["summary"].get(m, {}).get("mean", float("nan")) for k in names]
            body.append(f"| {m} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        body.append("")
    if lat:
        body.append(
            f"Latent diagnostics of `{lat['model']}` on {lat['n_molecules']:,} MOSES test molecules: active units {lat['active_units']} of "
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
