"""``molvae reconstruct``: encode then decode molecules, and how many come back exactly.

    molvae reconstruct [--model PATH] INPUT [-o out.csv] [--beam K]     (INPUT: a SMILES file or SMILES strings)
"""

from __future__ import annotations

import argparse

from molvae.cli.common import add_molecule_input, load_model, smiles_input, write_table

__all__ = ["add_parser", "cmd_reconstruct"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("reconstruct", parents=parents, help="encode then decode molecules")
    add_molecule_input(s, output_help="CSV")
    s.add_argument("--beam", type=int, default=0, help="beam width (default: greedy)")
    s.set_defaults(func=cmd_reconstruct)
    return s


def cmd_reconstruct(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.device)
    smiles = smiles_input(args.input, args.column)
    df = model.reconstruct(smiles, method="beam" if args.beam else "greedy", beam_width=args.beam or 5,
                           progress=not args.quiet)
    print(f"exact reconstruction: {df.exact.mean():.3f} of {len(df):,} ({int((~df.encoded).sum())} not encodable)")
    write_table(df, args.output)
    return 0
