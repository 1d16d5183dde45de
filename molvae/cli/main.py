"""The ``molvae`` command: a thin layer over the library, one module per subcommand.

    molvae tokenize FILE [--cache] [--column C]
    molvae train --data FILE|moses --out DIR [--config run.toml] [--epochs N] [--resume]
    molvae sample [--model PATH] -n N [--temperature T] [--seed S] [--no-faithful] [--prior P] [-o out.csv]
                  [--condition logp=2.5,qed=0.85]   (a conditional model; default: the shipped moses-conditional)
    molvae fit-prior [--model PATH] --data moses|FILE [-n 100000] [--components 32] -o model.pt
    molvae encode [--model PATH] INPUT -o z.csv      (INPUT: a SMILES file or SMILES strings)
    molvae reconstruct [--model PATH] INPUT [-o out.csv] [--beam K]
    molvae evaluate [--model PATH] -n 30000 [--seed S ...] [-o report.json] | --smiles FILE
    molvae optimize --objective qed --budget 500 [--start SMILES ...] [--min-similarity 0.4] -o out.csv
    molvae score [--model PATH] FILE -o scores.csv [-k K] [--column C]
    molvae decode [--model PATH] z.csv|z.npy -o out.csv

Each module ``molvae.cli.NAME`` has ``add_parser(subparsers, parents)``, which registers its
subcommand with ``func`` set to the function that runs it.  Nothing heavy is imported before
a command runs, so ``molvae --version`` and ``molvae --help`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from molvae._version import __version__
from molvae.cli.common import common_parents

__all__ = ["COMMANDS", "build_parser", "main"]

# (module under molvae.cli, whether the command takes --model/--device), in the order of `molvae --help`
COMMANDS: tuple[tuple[str, bool], ...] = (
    ("tokenize", False),
    ("train", False),
    ("sample", True),
    ("fit_prior", True),
    ("encode", True),
    ("reconstruct", True),
    ("evaluate", True),
    ("optimize", True),
    ("score", True),
    ("decode", True),
)

# errors a command reports in one line (exit code 2) instead of a traceback
USAGE_ERRORS = (ValueError, OSError, EOFError, RuntimeError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="molvae", description="SELFIES VAE toolkit for molecular design.")
    p.add_argument("--version", action="version", version=f"molvae {__version__}")
    verbosity, model_opts = common_parents()
    sub = p.add_subparsers(dest="command", required=True)
    for name, uses_model in COMMANDS:
        module = importlib.import_module(f"molvae.cli.{name}")
        module.add_parser(sub, [verbosity, model_opts] if uses_model else [verbosity])
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # at once, without building every subcommand's parser
        print(f"molvae {__version__}")
        raise SystemExit(0)
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except USAGE_ERRORS as err:
        if args.verbose:
            raise
        print(f"molvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
