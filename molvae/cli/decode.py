"""``molvae decode``: molecules from latent points (a .npy array, or a CSV with columns z0..zD-1).

    molvae decode [--model PATH] z.csv|z.npy [--method greedy|sample|beam] -o out.csv
"""

from __future__ import annotations

import argparse

from molvae.cli.common import load_model, write_table

__all__ = ["add_parser", "cmd_decode"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("decode", parents=parents, help="decode latent points to molecules")
    s.add_argument("input", help=".npy array (N, D) or CSV with columns z0..zD-1")
    s.add_argument("--method", default="greedy", choices=["greedy", "sample", "beam"])
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int)
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_decode)
    return s


def cmd_decode(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    model = load_model(args.model, args.device)
    path = Path(args.input)
    if path.suffix == ".npy":
        z = np.load(path, allow_pickle=False)
    else:
        table = pd.read_csv(path)
        cols = [c for c in table.columns if c.startswith("z") and c[1:].isdigit()]
        if not cols:
            raise ValueError(f"{path}: no latent columns z0..z{model.latent_dim - 1}")
        z = table[cols].to_numpy(dtype=np.float32)
    ok = np.isfinite(z).all(axis=1)
    if not ok.all():
        print(f"skipping {int((~ok).sum())} rows with NaN/inf coordinates")
    df = model.decode_z(z[ok], method=args.method, temperature=args.temperature, seed=args.seed)
    df.insert(0, "row", np.flatnonzero(ok))
    write_table(df, args.output)
    return 0
