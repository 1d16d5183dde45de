"""Constrained penalized-logP probes on chosen starts, one process, for paired comparisons.

    python benchmarks/constrained_logp/probes/probe.py OUT.csv WHICH '{"batch_size": 4}' [BUDGET]

WHICH: ``noenc`` (the 52 starts the shipped model cannot encode, even neutralized and without
stereo), ``firstN`` (the first N starts) or ``rangeA-B`` (starts A..B-1).  Each start runs
``constrained_logp.run_one`` (one search at similarity 0.4, read at 0.4 and 0.6) with the
given ``optimize`` keyword arguments; the rows are those of ``constrained_logp.py``'s CSV, so
they pair with any full run by ``index`` and ``delta``.  Runs are deterministic for a given
commit and seed.
"""
import json
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BENCH))
import pandas as pd  # noqa: E402

import constrained_logp as cl  # noqa: E402
import molvae as mv  # noqa: E402


def select(which: str, starts: pd.DataFrame, tokenizer) -> list[int]:
    if which == "noenc":
        return [i for i, s in enumerate(starts["smiles"]) if cl.search_start(s, tokenizer)[0] is None]
    if which.startswith("first"):
        return list(range(int(which[5:])))
    if which.startswith("range"):
        a, b = map(int, which[5:].split("-"))
        return list(range(a, b))
    raise SystemExit(f"WHICH must be noenc, firstN or rangeA-B, got {which!r}")


def main() -> None:
    out, which, kw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    budget = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    torch.set_num_threads(1)
    cl._MODEL = mv.load_pretrained()
    starts = mv.data.load_opt_logp()
    idx = select(which, starts, cl._MODEL.tokenizer)
    rows: list[dict] = []
    t0 = time.time()
    for k, i in enumerate(idx):
        r = starts.iloc[i]
        rows += cl.run_one({"start": r["smiles"], "objective": "penalized_logp", "deltas": [0.4, 0.6],
                            "one_run_per_delta": False, "budget": budget, "seed": 0, "strategy": "trust_region",
                            "kwargs": kw, "index": i, "file_score": r["penalized_logp"]})
        if k % 10 == 9:
            pd.DataFrame(rows).to_csv(out, index=False)
            d4 = pd.DataFrame(rows).query("delta == 0.4")
            print(k + 1, round(time.time() - t0), "mean at 0.4", round(d4.improvement.mean(), 3), flush=True)
    d = pd.DataFrame(rows)
    d.to_csv(out, index=False)
    for dl in (0.4, 0.6):
        x = d[d.delta == dl]
        print(dl, len(x), round(x.improvement.mean(), 3), round(x.success.mean(), 3))
    print("wall", round(time.time() - t0), "s; per start", round(d.wall_s.sum() / max(len(idx), 1), 2))


if __name__ == "__main__":
    main()
