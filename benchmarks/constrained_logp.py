"""Similarity-constrained penalized-logP optimization (the JT-VAE protocol) with the shipped model.

    python benchmarks/constrained_logp.py [--delta 0.4 0.6] [--limit N] [--budget-per-molecule B ...]
                                          [--seed S] [--strategy trust_region] [--opt key=value ...]
                                          [--workers W] [--objective logp_sa] [--no-results] [--resume]

Start set: the 800 ZINC molecules of ``data/zinc/opt.test.logP-SA`` (lowest penalized logP).
For each start ``m`` and each ``delta``: among the molecules the optimizer scored, the
*modified* molecule ``m'`` with Tanimoto similarity (Morgan radius 2, 2048 bits) to ``m`` of at
least ``delta`` and the highest property; improvement = property(m') - property(m).

Protocol choices (all stated in the RESULTS.md section):

* Property.  ``logp_sa`` (Crippen logP - SA, no ring term) by default: it is the value stored
  in ``opt.test.logP-SA`` and the score computed by JT-VAE's released constrained-optimization
  code (``molopt/optimize.py`` of wengong-jin/icml18-jtnn).  ``--objective`` takes any name of
  :data:`molvae.properties.PROPERTIES` (``penalized_logp`` is the standardized form with the
  ring term that GCPN's environment code defines).
* Modified molecule.  Different from the start as a constitution: non-isomeric canonical
  SMILES differ.  The start itself, and a copy of it with the stereo labels removed (the
  fingerprint ignores chirality, so it has similarity 1 and the same score), never count.
* Success: such a molecule was found.  Failures count as improvement 0 in the mean; a success
  keeps its difference even when it is negative (the best constrained molecule found was worse
  than the start).  Std is the population std (ddof=0) over all starts.
* One ``molvae.optimize`` call per start with ``min_similarity = min(delta)``; the larger
  deltas are read from the same history (its ``similarity`` column is the Tanimoto similarity
  to the start for every molecule checked, scored or not).  Each delta's answer is a molecule
  the oracle scored that meets that delta, found with the same number of oracle calls, so the
  figures are valid; for the larger deltas they are conservative (calls spent on molecules
  between min(delta) and delta are lost for it).  ``--one-run-per-delta`` runs one search per
  delta instead (twice the cost).

Molecules the shipped model cannot encode.  The model is trained on MOSES (neutral, no
stereochemistry: ``model.tokenizer`` has no charged or stereo tokens) and ``model.encode``
gives a NaN row for any molecule with a token outside its vocabulary; most of the 800 starts
carry stereo labels or charges.  Policy: the start is scored as it is and is the only
similarity reference (``similarity_to=start``); when it cannot be encoded, the latent search
is also given the first encodable of: the start without stereo labels, the start neutralized
(RDKit ``Uncharger``), both.  That "search start" is scored (one oracle call) and is a
candidate like any other: a neutralized start that meets the similarity is a modified
molecule (another protonation state); the CSV flags it (``best_is_search_start``) and the
table gives the figures without it too.  When no version can be encoded the optimizer is
still called with the start alone (it then searches from prior samples; a strategy that edits
SMILES/SELFIES directly may do better).

Writes ``benchmarks/constrained_logp/results-<objective>-<strategy>-b<B>-s<S>-n<N>.csv`` (one
row per start and delta) and the ``constrained_logp`` section of benchmarks/RESULTS.md.
Uses only the public API (``molvae.optimize``, ``molvae.properties``, ``model.tokenizer``).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import molvae as mv  # noqa: E402
from molvae.chem import canonical, standardize, to_mol  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "constrained_logp"
SECTION = "constrained_logp"

#: Published results on the same 800 starts: (method, delta, improvement mean, std, source).
# (method, delta, mean, std, success or None, source) on the score each paper's code optimizes:
# JT-VAE's released code scores logP - SA (``logp_sa``); GCPN's environment code, reused by
# MoFlow and HierG2G, the ZINC-standardized score with the ring term (``penalized_logp``)
PUBLISHED = {
    "logp_sa": [
        ("JT-VAE", 0.4, 0.84, 1.45, None, "Jin et al. 2018"),
        ("JT-VAE", 0.6, 0.21, 0.71, None, "Jin et al. 2018"),
        ("GCPN", 0.4, 2.49, 1.30, None, "You et al. 2018; its score is penalized_logp"),
        ("GCPN", 0.6, 0.79, 0.63, None, "You et al. 2018; its score is penalized_logp"),
    ],
    "penalized_logp": [
        ("GCPN", 0.4, 2.49, 1.30, 1.0, "You et al. 2018"),
        ("GCPN", 0.6, 0.79, 0.63, 1.0, "You et al. 2018"),
        ("HierG2G", 0.4, 3.98, 1.46, None, "Jin et al. 2020 (not verified here)"),
        ("HierG2G", 0.6, 2.49, 1.09, None, "Jin et al. 2020 (not verified here)"),
        ("MoFlow", 0.4, 4.71, 4.55, 0.858, "Zang and Wang 2020, repository README"),
        ("MoFlow", 0.6, 2.10, 2.86, 0.583, "Zang and Wang 2020, repository README"),
        ("GraphAF", 0.4, 8.21, 6.51, None, "Shi et al. 2020 (not verified here)"),
        ("GraphAF", 0.6, 4.98, 6.49, None, "Shi et al. 2020 (not verified here)"),
    ],
}

CSV_COLUMNS = [
    "index", "start", "start_score", "file_score", "start_encodable", "search_start", "search_start_how",
    "run_delta", "delta", "best", "best_score", "similarity", "improvement", "success", "best_is_search_start",
    "best_excl_search_start", "improvement_excl_search_start", "success_excl_search_start",
    "calls", "wall_s", "strategy", "budget", "batch_size", "seed", "objective",
]


# ============================================================================ pure helpers
def constitution(smiles: object) -> str | None:
    """Canonical SMILES without stereochemistry (the molecule's constitution), ``None`` if unparsable."""
    return canonical(smiles, isomeric=False)


def is_modified(candidate: object, start: object) -> bool:
    """True when ``candidate`` is a different molecule from ``start`` (not just other stereo labels)."""
    a, b = constitution(candidate), constitution(start)
    return a is not None and b is not None and a != b


def _neutralized(smiles: str) -> str | None:
    mol = to_mol(smiles)
    if mol is None:
        return None
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    try:
        return Chem.MolToSmiles(rdMolStandardize.Uncharger().uncharge(mol))
    except Exception:
        return None


def encodable(smiles: str, tokenizer) -> bool:
    """Whether ``tokenizer`` (``model.tokenizer``) can represent the molecule."""
    return len(tokenizer.encode([smiles]).failures) == 0


def search_start(smiles: str, tokenizer) -> tuple[str | None, str]:
    """The molecule the latent search starts from, and how it was obtained.

    ``(standardized start, "as is")`` when the start is encodable; otherwise the first
    encodable of: stereo labels removed, neutralized, neutralized and stereo removed; else
    ``(None, "not encodable: <tokenizer reason>")``.
    """
    std = standardize(smiles)
    if std is None:
        return None, "not encodable: invalid SMILES"
    if encodable(std, tokenizer):
        return std, "as is"
    neutral = _neutralized(std)
    tries = [
        ("stereo removed", constitution(std)),
        ("neutralized", neutral),
        ("neutralized, stereo removed", constitution(neutral) if neutral else None),
    ]
    for how, cand in tries:
        if cand is not None and cand != std and encodable(cand, tokenizer):
            return standardize(cand), how
    failures = tokenizer.encode([tries[-1][1] or std]).failures
    reason = str(failures["reason"].iat[0]) if len(failures) else "unknown"
    return None, f"not encodable: {reason}"


def best_modified(
    history: pd.DataFrame, start: str, delta: float, objective: str, exclude: Sequence[str] = ()
) -> dict:
    """The best scored molecule of ``history`` that is a modified ``start`` with similarity >= ``delta``.

    ``history`` needs the columns ``smiles``, ``objective``, ``similarity`` and ``status``
    (:attr:`molvae.OptimizationResult.history`); ``start_score`` is not needed: the
    caller computes the improvement with :func:`improvement`.  Molecules in ``exclude`` (and
    their stereoisomers) never count.  Returns ``{"best", "best_score", "similarity",
    "success"}`` (``best`` ``None`` and scores NaN on failure).
    """
    fail = {"best": None, "best_score": math.nan, "similarity": math.nan, "success": False}
    if history is None or len(history) == 0 or objective not in history or "similarity" not in history:
        return fail
    h = history
    if "status" in h:
        h = h[h["status"] == "scored"]
    values = pd.to_numeric(h[objective], errors="coerce")
    sims = pd.to_numeric(h["similarity"], errors="coerce")
    keep = np.isfinite(values.to_numpy(dtype=float)) & (sims.to_numpy(dtype=float) >= delta)
    h, values, sims = h[keep], values[keep], sims[keep]
    banned = {constitution(start), *(constitution(s) for s in exclude)}
    banned.discard(None)
    cons = [constitution(s) for s in h["smiles"]]
    mod = np.array([c is not None and c not in banned for c in cons], dtype=bool)
    if not mod.any():
        return fail
    h, values, sims = h[mod], values[mod], sims[mod]
    i = int(np.argmax(values.to_numpy(dtype=float)))  # first of the ties: the earliest scored
    return {"best": str(h["smiles"].iat[i]), "best_score": float(values.iat[i]),
            "similarity": float(sims.iat[i]), "success": True}


def improvement(found: dict, start_score: float) -> float:
    """``score(best) - score(start)`` for a success, 0 for a failure (the protocol's convention)."""
    return float(found["best_score"] - start_score) if found["success"] else 0.0


def summarize(rows: pd.DataFrame, suffix: str = "") -> dict:
    """Mean and population std of the improvement over all starts (failures 0), success rate,
    mean similarity and improvement of the successes."""
    imp = rows[f"improvement{suffix}"].to_numpy(dtype=float)
    ok = rows[f"success{suffix}"].to_numpy(dtype=bool)
    sims = rows["similarity"].to_numpy(dtype=float)
    return {
        "n": len(rows),
        "mean": float(imp.mean()) if len(imp) else math.nan,
        "std": float(imp.std()) if len(imp) else math.nan,
        "success": float(ok.mean()) if len(ok) else math.nan,
        "n_success": int(ok.sum()),
        "mean_success": float(imp[ok].mean()) if ok.any() else math.nan,
        "similarity_success": float(np.nanmean(sims[ok])) if (ok.any() and not suffix) else math.nan,
        "n_negative": int((imp[ok] < 0).sum()),
    }


# ============================================================================ one start
_MODEL = None


def _init_worker(threads: int) -> None:
    global _MODEL
    import torch

    torch.set_num_threads(threads)
    _MODEL = mv.load_pretrained()


def run_one(task: dict) -> list[dict]:
    """Optimize one start molecule; one CSV row per delta."""
    model = _MODEL
    raw, objective, deltas = task["start"], task["objective"], sorted(task["deltas"])
    start = standardize(raw) or raw
    start_score = float(mv.properties.score([start], objective, n_jobs=1)[0])
    search, how = search_start(raw, model.tokenizer)
    starts = [start] if search is None or search == start else [start, search]
    runs = [(deltas[0], deltas)] if not task["one_run_per_delta"] else [(d, [d]) for d in deltas]
    rows = []
    for run_delta, ds in runs:
        t = time.perf_counter()
        res = mv.optimize(
            model, objective, budget=task["budget"], seed=task["seed"], start=starts, similarity_to=start,
            min_similarity=run_delta, strategy=task["strategy"], progress=False, **task["kwargs"],
        )
        wall = time.perf_counter() - t
        hist = res.history
        for d in ds:
            found = best_modified(hist, start, d, objective)
            # a stereo-stripped search start is the start itself; a neutralized one is not
            extra = [search] if search is not None and search != start else []
            alt = best_modified(hist, start, d, objective, exclude=extra)
            rows.append({
                "index": task["index"], "start": raw, "start_score": start_score, "file_score": task["file_score"],
                "start_encodable": how == "as is", "search_start": search, "search_start_how": how,
                "run_delta": run_delta, "delta": d,
                "best": found["best"], "best_score": found["best_score"], "similarity": found["similarity"],
                "improvement": improvement(found, start_score), "success": found["success"],
                "best_is_search_start": bool(found["success"] and search is not None and search != start
                                             and canonical(found["best"]) == canonical(search)),
                "best_excl_search_start": alt["best"],
                "improvement_excl_search_start": improvement(alt, start_score),
                "success_excl_search_start": alt["success"],
                "calls": res.n_oracle_calls, "wall_s": round(wall, 2), "strategy": task["strategy"],
                "budget": task["budget"], "batch_size": res.stats["batch_size"], "seed": task["seed"],
                "objective": objective,
            })
    return rows


# ============================================================================ driver
def _parse_kwargs(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--opt wants key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


class Partial:
    """Rows of finished starts, appended to ``<result>.partial.csv`` as they come in.

    A run of all 800 starts at 200 calls takes about an hour on 2 cores; ``--resume`` picks an
    interrupted one up where it stopped.  ``<result>.partial.json`` holds the settings that
    must match (deltas, ``--opt``, one run per delta, the batch size) and the wall time spent so far.
    """

    def __init__(self, result: Path, settings: dict, resume: bool) -> None:
        self.csv = result.with_suffix(".partial.csv")
        self.meta = result.with_suffix(".partial.json")
        self.settings = settings
        self.rows: list[dict] = []
        self.wall_before = 0.0
        if resume and self.csv.exists():
            meta = json.loads(self.meta.read_text()) if self.meta.exists() else {}
            if meta.get("settings") != settings:
                raise SystemExit(f"--resume: {self.meta} was written with other settings "
                                 f"({meta.get('settings')}); remove it or drop --resume")
            self.rows = pd.read_csv(self.csv).to_dict("records")
            self.wall_before = float(meta.get("wall_s", 0.0))
            print(f"resuming: {len({r['index'] for r in self.rows})} starts done in {self.csv}", flush=True)
        else:
            self.csv.unlink(missing_ok=True)
        self.done = {int(r["index"]) for r in self.rows}

    def add(self, rows: list[dict], wall: float) -> None:
        self.rows += rows
        pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(self.csv, mode="a", header=not self.csv.exists(), index=False)
        self.meta.write_text(json.dumps({"settings": self.settings, "wall_s": self.wall_before + wall}))

    def finish(self) -> None:
        self.csv.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


def run_budget(starts: pd.DataFrame, args, budget: int, kwargs: dict, result: Path) -> tuple[pd.DataFrame, float]:
    from molvae.optimization.run import default_batch_size

    # the batch size as resolved, so that a resume under another default of optimize() is refused
    settings = {"deltas": sorted(args.delta), "opt": list(args.opt), "one_run_per_delta": bool(args.one_run_per_delta),
                "batch_size": int(kwargs.get("batch_size") or default_batch_size(budget, args.strategy))}
    partial = Partial(result, settings, args.resume)
    tasks = [
        {"index": int(i), "start": s, "file_score": float(v), "objective": args.objective, "deltas": args.delta,
         "budget": budget, "seed": args.seed, "strategy": args.strategy, "kwargs": kwargs,
         "one_run_per_delta": args.one_run_per_delta}
        for i, s, v in zip(starts.index, starts["smiles"], starts["penalized_logp"])
        if int(i) not in partial.done
    ]
    t0 = time.perf_counter()
    n_before = len(partial.done)
    n_all = n_before + len(tasks)

    def got(k: int, rows: list[dict]) -> None:
        partial.add(rows, time.perf_counter() - t0)
        _report(n_before + k + 1, n_all, rows[-1], t0)

    if tasks and args.workers <= 1:
        _init_worker(args.threads)
        for k, task in enumerate(tasks):
            got(k, run_one(task))
    elif tasks:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(args.threads,)) as pool:
            for k, rows in enumerate(pool.map(run_one, tasks)):
                got(k, rows)
    wall = partial.wall_before + time.perf_counter() - t0
    rows = partial.rows
    df = pd.DataFrame(rows, columns=CSV_COLUMNS).sort_values(["index", "delta"], kind="stable").reset_index(drop=True)
    df.to_csv(result, index=False)
    partial.finish()
    return df, wall


def _report(k: int, n: int, row: dict, t0: float) -> None:
    print(f"[{k}/{n}] start {row['index']} ({row['search_start_how']}): best improvement "
          f"{row['improvement']:.3f} at delta {row['delta']} ({row['calls']} calls, {row['wall_s']:.0f} s); "
          f"{time.perf_counter() - t0:.0f} s so far", flush=True)


def _code_state() -> str:
    """Which molvae ran: the repository's committed code, its working tree with changes, or elsewhere."""
    import subprocess

    pkg = Path(mv.__file__).resolve().parent
    repo = Path(__file__).resolve().parent.parent
    if pkg != repo / "molvae":
        return f"molvae imported from {pkg}"
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "molvae"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "molvae from the working tree (git state unknown)"
    return "molvae with uncommitted changes in the working tree" if dirty else "molvae as committed"


def _batch_sizes(df: pd.DataFrame) -> str:
    return "/".join(str(b) for b in sorted(df["batch_size"].astype(int).unique()))


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def results_table(frames: dict[int, tuple[pd.DataFrame, float]], args, command: str) -> str:
    any_df = next(iter(frames.values()))[0]
    first = any_df.drop_duplicates("index")
    n = len(first)
    hows = first["search_start_how"].str.replace(r"^not encodable.*", "not encodable", regex=True).value_counts()
    file_diff = (first["start_score"] - first["file_score"]).abs()
    lines = [
        f"## Similarity-constrained {'logP - SA' if args.objective == 'logp_sa' else args.objective} "
        "(`benchmarks/constrained_logp.py`)", "",
        f"Command: `{command}`; shipped model; objective `{args.objective}`; strategy `{args.strategy}`"
        f"{' ' + str(_parse_kwargs(args.opt)) if args.opt else ''}; seed {args.seed}; hardware: {hardware()}; "
        f"commit {git_commit()} ({_code_state()}); wall time "
        + ", ".join(f"{wall:,.0f} s (budget {b})" for b, (_, wall) in frames.items())
        + f", {args.workers} worker(s); batch size "
        + ", ".join(f"{_batch_sizes(df)} (budget {b})" for b, (df, _) in frames.items()) + ".",
        "",
        f"Starts: {'all' if n == 800 else f'the first {n} of the'} 800 in `data/zinc/opt.test.logP-SA`. "
        + (f"Property of the start, ours vs the file: max |difference| {file_diff.max():.2g} "
           f"({int((file_diff < 1e-6).sum())}/{n} within 1e-6). " if args.objective == "logp_sa" else
           "(The file's scores are logP - SA, not this objective: each start is scored here.) ")
        + "Encodable by the shipped model (MOSES vocabulary: no charges, no stereo tokens): "
        f"{int((first['search_start_how'] == 'as is').sum())}/{n} as they are; the latent search started from "
        + ", ".join(f"{k}: {v}" for k, v in hows.items())
        + ". Each start is scored as it is and is the only similarity reference; a non-encodable start is "
        "searched from its encodable version (stereo labels removed and/or neutralized with RDKit's "
        "Uncharger), which is scored and counts as a candidate; \"without it\" gives the figures when a "
        "neutralized search start is not accepted as an answer.",
        "",
        "Protocol (Jin et al. 2018): for each start, the best scored molecule with Tanimoto similarity "
        "(Morgan r=2, 2048 bits) >= delta that differs from the start as a constitution (stereo-only changes "
        "do not count); improvement = score(best) - score(start); success = such a molecule was found; "
        "failures count 0; mean ± population std over all starts. "
        + ("One optimize call per start and delta." if args.one_run_per_delta else
           f"One optimize call per start with min_similarity {min(args.delta)}; the larger deltas are read "
           "from the same history (conservative for them)."),
        "",
        "| method | delta | oracle calls / molecule (budget; mean spent) | starts | improvement | success | "
        "similarity (successes) | improvement of successes | negative successes | best = neutralized start | "
        "improvement without it | success without it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for budget, (df, _) in frames.items():
        for d in sorted(args.delta):
            rows = df[df["delta"] == d]
            s, s2 = summarize(rows), summarize(rows, "_excl_search_start")
            calls = rows["calls"].mean()
            lines.append(
                f"| molvae {args.strategy} | {d} | {budget}; {calls:.1f} | {s['n']} | {_fmt(s['mean'])} ± {_fmt(s['std'])} | "
                f"{100 * s['success']:.0f}% ({s['n_success']}) | {_fmt(s['similarity_success'])} | "
                f"{_fmt(s['mean_success'])} | {s['n_negative']} | {int(rows['best_is_search_start'].sum())} | "
                f"{_fmt(s2['mean'])} ± {_fmt(s2['std'])} | {100 * s2['success']:.0f}% |")
    for method, d, mean, std, success, source in PUBLISHED.get(args.objective, []):
        succ = f"{100 * success:.0f}%" if success is not None else ""
        lines.append(f"| {method} ({source}) | {d} | - | 800 | {mean:.2f} ± {std:.2f} | {succ} | | | | | | |")
    lines += [
        "",
        "Published rows: the 800 starts, penalized logP as each paper's code computes it: JT-VAE's "
        "released code scores logP - SA (our `logp_sa`); GCPN's environment code defines penalized logP "
        "standardized with ZINC250k statistics and a ring term (our `penalized_logp`). The scales differ, "
        "so compare with care.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delta", type=float, nargs="+", default=[0.4, 0.6])
    ap.add_argument("--limit", type=int, default=None, help="only the first N starts")
    ap.add_argument("--budget-per-molecule", type=int, nargs="+", default=[200],
                    help="oracle calls per start (start molecules included); several: one run each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default="trust_region")
    ap.add_argument("--opt", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra keyword arguments for molvae.optimize (values as Python literals)")
    ap.add_argument("--objective", default="logp_sa", choices=list(mv.properties.PROPERTIES))
    ap.add_argument("--one-run-per-delta", action="store_true",
                    help="one optimize call per start and delta (default: one per start, at min(delta))")
    ap.add_argument("--workers", type=int, default=1, help="processes over start molecules")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    ap.add_argument("--resume", action="store_true",
                    help="go on from <result>.partial.csv of an interrupted run with the same settings")
    args = ap.parse_args(argv)
    kwargs = _parse_kwargs(args.opt)
    starts = mv.data.load_opt_logp()
    if args.limit is not None:
        starts = starts.iloc[: args.limit]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/constrained_logp.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    frames = {}
    for budget in args.budget_per_molecule:
        path = args.out_dir / f"results-{args.objective}-{args.strategy}-b{budget}-s{args.seed}-n{len(starts)}.csv"
        df, wall = run_budget(starts, args, budget, kwargs, path)
        print(f"budget {budget}: {wall:.0f} s; wrote {path}")
        frames[budget] = (df, wall)
    body = results_table(frames, args, command.strip())
    print(body)
    if not args.no_results:
        write_section(SECTION if args.objective == "logp_sa" else f"{SECTION}-{args.objective}", body)


if __name__ == "__main__":
    main()
