"""``molvae encode``: latent means of molecules, as CSV (smiles, status, z0..) or a .npy array.

    molvae encode [--model PATH] INPUT -o z.csv      (INPUT: a SMILES file or SMILES strings)
    molvae encode [--model PATH] INPUT -o z.npy      (NaN rows: molecules that cannot be encoded)
"""

from __future__ import annotations

import argparse

from molvae.cli.common import add_molecule_input, load_model, smiles_input, write_table

__all__ = ["add_parser", "cmd_encode"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("encode", parents=parents, help="latent means of molecules")
    add_molecule_input(s, output_help="CSV, or .npy for the latent array only")
    s.set_defaults(func=cmd_encode)
    return s


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    model = load_model(args.model, args.device)
    smiles = smiles_input(args.input, args.column)
    z = model.encode(smiles, progress=not args.quiet)
    ok = np.isfinite(z).all(axis=1)
    if args.output and args.output.endswith(".npy"):
        from molvae.utils.io import atomic_write

        with atomic_write(args.output, "wb") as fh:
            np.save(fh, z)
        print(f"wrote latent means {z.shape} to {args.output} (rows of NaN: {int((~ok).sum())} not encodable)")
        return 0
    reasons = dict(zip(*[model.tokenizer.encode(smiles).failures[c] for c in ("index", "reason")])) if not ok.all() else {}
    df = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
    df.insert(0, "smiles", smiles)
    df.insert(1, "status", ["ok" if o else reasons.get(i, "rejected") for i, o in enumerate(ok)])
    print(f"encoded {int(ok.sum()):,} of {len(smiles):,} molecules")
    write_table(df, args.output, head=10)
    return 0
