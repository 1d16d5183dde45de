"""Property-conditioned generation: how close do samples land to the property asked for?

    python benchmarks/conditional.py [--model moses-conditional] [--baseline moses] [--n 1000] [--threads 2]
        [--joint-prior N [--components 32]] [--filtered] [--out benchmarks/conditional.csv] [--results]

For each target -- logP in {1, 2, 3, 4} and QED in {0.6, 0.75, 0.9} -- ``n`` molecules are
sampled from the conditional model (``--model``, a shipped name or a checkpoint) conditioned
on that one property (the model's other conditions marginalized: ``model.sample(n,
condition={"logp": 2.0})``), and the same figures are given for an unconditional baseline:
``n`` samples of the shipped ``moses`` model (``--baseline``), whose errors are measured
against the same targets.  Per target:

* ``median_abs_error``: median over valid samples of |achieved property - target| (RDKit
  Crippen logP, QED; :mod:`molvae.properties`), and ``achieved_median``;
* ``valid``, ``unique`` (distinct canonical SMILES among the valid ones), ``novel`` (distinct
  valid molecules absent from MOSES train, ``--train``; :func:`molvae.metrics.novelty`);
* ``acceptance`` (faithful fraction of decoded strings, :mod:`molvae.vae.sampling`);
* ``error_ratio`` = baseline median error / conditional median error (> 1: conditioning helps);
* ``within``: the fraction of valid samples within ``TOLERANCE`` of the target (0.35 logP units,
  0.05 QED: the issue's error targets), the same for the baseline, and their ratio (how many
  times fewer draws the conditional model needs per molecule within it).

``--filtered`` also samples ``n`` molecules per target with ``model.sample(...,
tolerance=TOLERANCE[property])`` (RDKit-checked, the others redrawn) and reports their median
error, uniqueness, draws per molecule and seconds: what a user asking for molecules within the
tolerance gets, and at what cost.  That is a filter on the model's samples; the columns above
are the model's own.

``--joint-prior N`` first fits a GMM of z and the properties on N MOSES train molecules
(``mv.fit_prior(model, smiles, conditions=...)``), so that z is drawn given the target; any
model can then be benchmarked, an unconditional one included.

Samples are faithful (unfaithful strings redrawn) unless ``--no-faithful``.  Prints a
markdown table, writes a CSV (``--out``) and, with ``--results``, the "conditional" section
of benchmarks/RESULTS.md.
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

import molvae as mv  # noqa: E402
from molvae.chem import canonical  # noqa: E402
from molvae.metrics.suite import novelty  # noqa: E402
from molvae.properties import compute  # noqa: E402

SECTION = "conditional"
TARGETS: dict[str, list[float]] = {"logp": [1.0, 2.0, 3.0, 4.0], "qed": [0.6, 0.75, 0.9]}
# the median-error targets, used as the tolerance of the "within" columns and of --filtered
TOLERANCE: dict[str, float] = {"logp": 0.35, "qed": 0.05}
COLUMNS = ["property", "target", "n", "median_abs_error", "achieved_median", "valid", "unique", "novel", "acceptance",
           "seconds", "baseline_median_abs_error", "baseline_achieved_median", "baseline_valid", "baseline_unique",
           "baseline_novel", "error_ratio", "tolerance", "within", "baseline_within", "within_ratio",
           "filtered_median_abs_error", "filtered_unique", "filtered_draws_per_molecule", "filtered_seconds"]


def load(spec: str, device: str) -> mv.MolVAE:
    """A checkpoint path, or the name of a shipped model (``pretrained:NAME`` works too)."""
    if os.path.exists(spec):
        return mv.MolVAE.load(spec, device=device)
    return mv.load_pretrained(spec.removeprefix("pretrained:"), device=device)


def quality(df: pd.DataFrame, train: str) -> dict[str, float]:
    """Validity, uniqueness and novelty of a sample table."""
    valid = df.smiles[df.valid].tolist()
    canon = [c for c in (canonical(s) for s in valid) if c]
    return {
        "valid": float(df.valid.mean()) if len(df) else float("nan"),
        "unique": len(set(canon)) / len(canon) if canon else float("nan"),
        "novel": novelty(canon, train=train) if canon else float("nan"),
        "acceptance": float(df.attrs.get("acceptance_rate", float("nan"))),
    }


def errors(df: pd.DataFrame, name: str, target: float) -> dict[str, float]:
    values = compute(df.smiles[df.valid], [name])[name].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"median_abs_error": float("nan"), "achieved_median": float("nan"), "within": float("nan")}
    err = np.abs(values - target)
    return {"median_abs_error": float(np.median(err)), "achieved_median": float(np.median(values)),
            "within": float(np.mean(err <= TOLERANCE[name]))}


def filtered(model: mv.MolVAE, name: str, target: float, n: int, seed: int, opts: dict) -> dict[str, float]:
    """``n`` samples kept within TOLERANCE of the target (RDKit-checked), and what they cost."""
    t0 = time.perf_counter()
    df = model.sample(n, condition={name: target}, tolerance=TOLERANCE[name], seed=seed, **opts)
    seconds = time.perf_counter() - t0
    canon = {canonical(s) for s in df.smiles[df.valid]}
    return {"filtered_median_abs_error": float(np.median(np.abs(df[name] - target))),
            "filtered_unique": len(canon - {None}) / max(len(df), 1),
            "filtered_draws_per_molecule": df.attrs["n_drawn"] / max(n, 1), "filtered_seconds": round(seconds, 1)}


def run(args: argparse.Namespace) -> pd.DataFrame:
    model = load(args.model, args.device)
    if args.joint_prior:
        # z given the property from a GMM of (z, properties) over encoded training molecules
        names = list(model.conditions.names) if model.conditions is not None else list(TARGETS)
        train = pd.Series(mv.load_dataset("moses", "train")).sample(args.joint_prior, random_state=args.seed).tolist()
        t0 = time.perf_counter()
        model.prior = mv.fit_prior(model, train, n_components=args.components, seed=args.seed, conditions=names)
        print(f"joint prior {model.prior!r} on {args.joint_prior:,} MOSES train molecules in "
              f"{time.perf_counter() - t0:.0f} s")
    elif model.conditions is None:
        raise SystemExit(f"{args.model} is not a conditional model (train one with benchmarks/train_conditional.sh, "
                         "or give --joint-prior N to sample it through a prior of z and properties)")
    if model.conditions is not None:
        missing = [p for p in TARGETS if p not in model.conditions.names]
        if missing:
            raise SystemExit(f"{args.model} is not conditioned on {missing} (its conditions: {list(model.conditions.names)})")
    baseline = load(args.baseline, args.device)
    opts = dict(faithful=args.faithful, progress=False, temperature=args.temperature)
    t0 = time.perf_counter()
    base_df = baseline.sample(args.n, seed=args.seed, **opts)
    if args.guidance is not None:
        opts["guidance"] = args.guidance
    base_quality = quality(base_df, args.train)
    print(f"baseline {args.baseline}: {args.n:,} samples in {time.perf_counter() - t0:.0f} s")
    rows = []
    for i, (name, targets) in enumerate(TARGETS.items()):
        for j, target in enumerate(targets):
            t0 = time.perf_counter()
            df = model.sample(args.n, condition={name: target}, seed=args.seed + 1000 * (i + 1) + j, **opts)
            seconds = time.perf_counter() - t0
            row = {"property": name, "target": target, "n": args.n, **errors(df, name, target), **quality(df, args.train),
                   "seconds": round(seconds, 1)}
            base = errors(base_df, name, target)
            row.update({f"baseline_{k}": v for k, v in base.items()})
            row.update({f"baseline_{k}": base_quality[k] for k in ("valid", "unique", "novel")})
            row["error_ratio"] = (row["baseline_median_abs_error"] / row["median_abs_error"]
                                  if row["median_abs_error"] > 0 else float("nan"))
            row["tolerance"] = TOLERANCE[name]
            row["within_ratio"] = row["within"] / row["baseline_within"] if row["baseline_within"] > 0 else float("nan")
            if args.filtered:
                row.update(filtered(model, name, target, args.n, args.seed + 1000 * (i + 1) + j + 500, opts))
            rows.append(row)
            print(f"{name} = {target:g}: median |error| {row['median_abs_error']:.3f} (baseline "
                  f"{row['baseline_median_abs_error']:.3f}), achieved median {row['achieved_median']:.3f}, "
                  f"valid {row['valid']:.3f}, unique {row['unique']:.3f}, novel {row['novel']:.3f}, within "
                  f"{TOLERANCE[name]:g}: {row['within']:.3f} (baseline {row['baseline_within']:.3f}) ({seconds:.0f} s)")
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(df: pd.DataFrame) -> str:
    lines = ["| property | target | median abs error | baseline error | ratio | achieved median | valid | unique | novel "
             "| baseline valid / unique / novel |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.property} | {r.target:g} | {r.median_abs_error:.3f} | {r.baseline_median_abs_error:.3f} | "
                     f"{r.error_ratio:.2f} | {r.achieved_median:.3f} | {r.valid:.3f} | {r.unique:.3f} | {r.novel:.3f} | "
                     f"{r.baseline_valid:.3f} / {r.baseline_unique:.3f} / {r.baseline_novel:.3f} |")
    with_filter = bool(df.filtered_seconds.notna().any())
    lines += ["", "Fraction of the valid samples within the tolerance of the target (0.35 logP, 0.05 QED), the "
              "model's own samples against the baseline's" + ("; then `model.sample(n, condition=..., tolerance=...)`, "
              "which redraws the rest (RDKit-checked):" if with_filter else ":"), ""]
    head = "| property | target | tolerance | within | baseline within | ratio |"
    rule = "|---|---|---|---|---|---|"
    if with_filter:
        head += " filtered: median abs error | unique | draws per molecule | seconds |"
        rule += "---|---|---|---|"
    lines += [head, rule]
    for r in df.itertuples():
        line = (f"| {r.property} | {r.target:g} | {r.tolerance:g} | {r.within:.3f} | {r.baseline_within:.3f} | "
                f"{r.within_ratio:.2f} |")
        if with_filter:
            line += (f" {r.filtered_median_abs_error:.3f} | {r.filtered_unique:.3f} | "
                     f"{r.filtered_draws_per_molecule:.2f} | {r.filtered_seconds:.0f} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="moses-conditional", help="conditional model: shipped name or checkpoint path")
    ap.add_argument("--baseline", default="moses", help="unconditional baseline: shipped name or checkpoint path")
    ap.add_argument("--n", type=int, default=1000, help="samples per target (and for the baseline)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train", default="moses", help="training set for novelty: 'moses' or a SMILES file")
    ap.add_argument("--no-faithful", dest="faithful", action="store_false",
                    help="keep every decoded string (default: unfaithful ones redrawn, as model.sample does)")
    ap.add_argument("--joint-prior", type=int, default=0, metavar="N",
                    help="first fit a prior of z and the properties on N MOSES train molecules (mv.fit_prior(..., "
                         "conditions=...)) and draw z from it given the target; --model may then be unconditional")
    ap.add_argument("--components", type=int, default=32, help="components of the --joint-prior GMM")
    ap.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance weight of the conditional model (default: model.sample's)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (both models)")
    ap.add_argument("--filtered", action="store_true",
                    help="also sample n molecules per target with tolerance=TOLERANCE (RDKit-checked filter) and "
                         "report their error, uniqueness and cost")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "conditional.csv"))
    ap.add_argument("--results", action="store_true", help="write the 'conditional' section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df = run(args)
    wall = time.perf_counter() - t0
    df.to_csv(args.out, index=False)
    table = markdown(df)
    head = (f"Command: `python benchmarks/conditional.py --model {args.model} --baseline {args.baseline} --n {args.n}"
            f"{'' if args.faithful else ' --no-faithful'}"
            f"{f' --joint-prior {args.joint_prior} --components {args.components}' if args.joint_prior else ''}"
            f"{f' --guidance {args.guidance:g}' if args.guidance is not None else ''}"
            f"{f' --temperature {args.temperature:g}' if args.temperature != 1.0 else ''}"
            f"{' --filtered' if args.filtered else ''}`; {args.n:,} samples per target, seed {args.seed}; "
            f"wall time {wall / 60:.1f} min; hardware: {hardware()}; commit {git_commit()}.")
    print()
    print(head)
    print()
    print(table)
    print(f"\nwrote {args.out}")
    if args.results:
        write_section(SECTION, "## Property-conditioned generation (`benchmarks/conditional.py`)\n\n" + head + "\n\n"
                      + table)


if __name__ == "__main__":
    main()
