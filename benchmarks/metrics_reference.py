"""Build the cached MOSES reference statistics and time ``get_all_metrics``.

    python benchmarks/metrics_reference.py                 # 30k molecules sampled from MOSES train
    python benchmarks/metrics_reference.py --n-gen 1000 --max-reference 5000
    python benchmarks/metrics_reference.py --check-fcd 2000  # compare FCD with fcd.get_fcd

The first ``get_all_metrics`` call builds the caches under ``cache_dir()/metrics``
(canonical training set, test and test_scaffolds statistics); the second reads them.
"""

from __future__ import annotations

import os
import sys

# this folder holds scripts named like stdlib modules (tokenize.py): keep it off sys.path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from molvae import metrics as M  # noqa: E402
from molvae.chem import canonical_many  # noqa: E402
from molvae.utils.paths import cache_dir, data_dir  # noqa: E402

log = logging.getLogger("metrics_reference")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-gen", type=int, default=30000, help="molecules used as the generated set")
    ap.add_argument("--source", default="train", choices=["train", "test", "test_scaffolds"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-reference", type=int, default=None)
    ap.add_argument("--runs", type=int, default=2, help="timed get_all_metrics calls")
    ap.add_argument("--check-fcd", type=int, default=0, help="also compare FCD with fcd.get_fcd on N molecules")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (ChemNet, Tanimoto)")
    ap.add_argument("--json", default=None, help="write timings and metrics here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    smiles = pd.read_csv(data_dir() / "moses" / f"{args.source}.csv.gz")["SMILES"].tolist()
    rng = np.random.default_rng(args.seed)
    gen = [smiles[i] for i in rng.choice(len(smiles), size=min(args.n_gen, len(smiles)), replace=False)]
    log.info("generated set: %d molecules from %s; cache %s", len(gen), args.source, cache_dir() / "metrics")

    timings, results = [], []
    for run in range(args.runs):
        t0 = time.perf_counter()
        res = M.get_all_metrics(gen, n_jobs=args.n_jobs, device=args.device, max_reference=args.max_reference)
        timings.append(time.perf_counter() - t0)
        results.append(res)
        log.info("run %d: get_all_metrics took %.1f s", run + 1, timings[-1])
    print(M.metrics_table(results[-1]).to_string(float_format=lambda v: f"{v:.4f}"))
    print("timings (s):", ", ".join(f"{t:.1f}" for t in timings))

    out = {"n_gen": len(gen), "source": args.source, "timings_s": timings, "metrics": results[-1],
           "load_avg": list(os.getloadavg()), "cpus": os.cpu_count()}
    if args.check_fcd:
        import fcd

        test = pd.read_csv(data_dir() / "moses" / "test.csv.gz")["SMILES"].tolist()[: args.check_fcd]
        sub = gen[: args.check_fcd]
        canon = lambda xs: [c for c in canonical_many(xs, n_jobs=args.n_jobs, probe=0) if c]  # noqa: E731
        t0 = time.perf_counter()
        ours = M.fcd(sub, test, device=args.device)
        theirs = fcd.get_fcd(canon(sub), canon(test), device=args.device)
        out["fcd_check"] = {"n": args.check_fcd, "molvae": ours, "fcd.get_fcd": theirs}
        print(f"FCD check on {args.check_fcd}: molvae {ours:.6f}  fcd.get_fcd {theirs:.6f}  ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
