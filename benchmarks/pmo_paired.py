"""Two PMO settings side by side, paired by task and seed (the runs.json files of ``benchmarks/pmo.py``).

    python benchmarks/pmo_paired.py --a benchmarks/pmo --b benchmarks/pmo_start --b-has n_start=100 \
        --calls 500 1000 2000 --section pmo-start-paired

Each side is a ``--out-dir`` of ``pmo.py``; ``--a-has`` / ``--b-has`` keep the runs whose setting
key contains every given ``KEY=VALUE`` (and, without them, the runs whose key has no option
beyond budget, strategy, batch size and model).  For every task run at the same seed on both
sides: the mean AUC top-10 of each, the paired differences per seed, and the top-10 mean of
each side at the ``--calls`` given (from the per-run curves ``<task>-seed<k>.csv``).  The sums
are over the 16 comparable oracles a seed has on both sides, so they are paired as well.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from molvae.oracles import PMO_COMPARABLE, PMO_ORACLES  # noqa: E402

BASE_KEYS = {"budget", "strategy", "batch_size", "model", "oracle", "seed"}


def _fields(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split() if "=" in part)


def select(out_dir: Path, has: list[str], budget: int) -> dict[tuple[str, int], dict]:
    """(oracle, seed) -> run record of ``out_dir/runs.json`` whose setting has exactly the options ``has``."""
    path = out_dir / "runs.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist (not an --out-dir of benchmarks/pmo.py?)")
    want = dict(item.split("=", 1) for item in has)
    out = {}
    for key, rec in json.loads(path.read_text())["runs"].items():
        f = _fields(key)
        extra = {k: v for k, v in f.items() if k not in BASE_KEYS}
        if extra != want or int(f.get("budget", -1)) != budget:
            continue
        out[(f["oracle"], int(f["seed"]))] = rec
    return out


def top10_at(out_dir: Path, oracle: str, seed: int, calls: list[int]) -> list[float | None]:
    """The run's top-10 mean at each of ``calls`` (None where its curve file is missing)."""
    path = out_dir / f"{oracle}-seed{seed}.csv"
    if not path.exists():
        return [None] * len(calls)
    with path.open() as fh:
        curve = {int(row["call"]): float(row["top10_mean"]) for row in csv.DictReader(fh)}
    return [curve.get(c) for c in calls]


def table(a_dir: Path, a: dict, b_dir: Path, b: dict, calls: list[int]) -> str:
    pairs = sorted(set(a) & set(b), key=lambda k: (PMO_ORACLES.index(k[0]) if k[0] in PMO_ORACLES else 99, k[1]))
    if not pairs:
        return "No task was run at the same seed on both sides."
    head = ["task", "seeds", "AUC a", "AUC b", "b - a per seed"]
    head += [f"top-10 at {c:,}: a / b" for c in calls]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for oracle in dict.fromkeys(o for o, _ in pairs):
        seeds = [s for o, s in pairs if o == oracle]
        ua = [a[(oracle, s)]["auc_top10"] for s in seeds]
        ub = [b[(oracle, s)]["auc_top10"] for s in seeds]
        diffs = " / ".join(f"{y - x:+.3f}" for x, y in zip(ua, ub))
        cells = [oracle, ",".join(map(str, seeds)), f"{sum(ua) / len(ua):.3f}", f"{sum(ub) / len(ub):.3f}", diffs]
        curves_a = [top10_at(a_dir, oracle, s, calls) for s in seeds]  # each curve file read once
        curves_b = [top10_at(b_dir, oracle, s, calls) for s in seeds]
        for i in range(len(calls)):
            ta, tb = [c[i] for c in curves_a], [c[i] for c in curves_b]
            if None in ta or None in tb:
                cells.append("-")
            else:
                cells.append(f"{sum(ta) / len(ta):.3f} / {sum(tb) / len(tb):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    rows = []
    for seed in sorted({s for _, s in pairs}):
        tasks = [o for o in PMO_COMPARABLE if (o, seed) in a and (o, seed) in b]
        sa = sum(a[(o, seed)]["auc_top10"] for o in tasks)
        sb = sum(b[(o, seed)]["auc_top10"] for o in tasks)
        rows.append(f"- seed {seed}: {len(tasks)} of the 16 comparable tasks on both sides; sum a {sa:.3f}, "
                    f"b {sb:.3f}, b - a {sb - sa:+.3f}")
    mean = sum(b[k]["auc_top10"] - a[k]["auc_top10"] for k in pairs) / len(pairs)
    rows.append(f"- all {len(pairs)} pairs: mean b - a {mean:+.4f} a run")
    return "\n".join(lines) + "\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="out-dir of the first setting")
    ap.add_argument("--b", required=True, help="out-dir of the second setting")
    ap.add_argument("--a-has", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--b-has", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--calls", type=int, nargs="*", default=[500, 1000, 2000])
    ap.add_argument("--section", help="also write the table to RESULTS.md between <!-- SECTION --> markers")
    args = ap.parse_args(argv)
    a_dir, b_dir = Path(args.a), Path(args.b)
    a, b = select(a_dir, args.a_has, args.budget), select(b_dir, args.b_has, args.budget)
    label = lambda d, has: f"`{d}`" + (f" ({', '.join(has)})" if has else " (no options)")  # noqa: E731
    body = (f"a = {label(a_dir, args.a_has)}, b = {label(b_dir, args.b_has)}; budget {args.budget:,}; "
            f"`python benchmarks/pmo_paired.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
            + table(a_dir, a, b_dir, b, args.calls))
    if args.section:
        _common.write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
