"""What the subcommands share: the common options, the shipped models they default to, reading
SMILES given as a file or as strings, and writing a table to a file (atomically) or the screen.

Nothing heavy is imported here at module level (``molvae --version`` must stay fast): numpy,
pandas, torch and RDKit are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from molvae.vae.model import MolVAE

__all__ = [
    "SAMPLE_MODEL", "CONDITIONAL_MODEL", "PRIORS", "common_parents", "add_molecule_input", "smiles_input", "load_model",
    "write_table",
]

# the shipped model `molvae sample` and `molvae evaluate` use without --model (the others use "moses")
SAMPLE_MODEL = "moses-sampler"
# the shipped conditional model `molvae sample --condition ...` uses without --model
CONDITIONAL_MODEL = "moses-conditional"
# latent priors (molvae.vae.sampling.PRIORS, spelled out here to keep torch out of the parser)
PRIORS = ["auto", "learned", "standard"]


def common_parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parent parsers: (verbosity: ``-v``/``-q``; model: ``--model``/``--device``)."""
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", help="checkpoint (default: a shipped MOSES model: moses-sampler for sample and "
                            "evaluate, moses-conditional for sample --condition, moses for the rest)")
    model_opts.add_argument("--device", default="auto", help="auto | cpu | cuda")
    return verbosity, model_opts


def add_molecule_input(parser: argparse.ArgumentParser, output_help: str = "CSV") -> None:
    """The positional molecules (a SMILES file or SMILES strings), ``--column`` and ``-o``."""
    parser.add_argument("input", nargs="+", help="a SMILES file, or SMILES strings")
    parser.add_argument("--column", help="SMILES column of a CSV")
    parser.add_argument("-o", "--output", help=output_help)


def smiles_input(values: list[str], column: str | None) -> list[str]:
    """One existing file path -> its SMILES (bad rows dropped and counted); else the strings themselves."""
    if len(values) == 1 and Path(values[0]).exists():
        from molvae.data import read_smiles

        return list(read_smiles(values[0], column=column, validate=False))
    return values


def load_model(path: str | None, device: str = "auto", default: str = "moses") -> MolVAE:
    """The model at ``path``, or the shipped model ``default`` when no path is given."""
    from molvae.vae.checkpoint import load_pretrained
    from molvae.vae.model import MolVAE

    return load_pretrained(default, device=device) if path is None else MolVAE.load(path, device=device)


def write_table(df: pd.DataFrame, path: str | None, head: int = 20) -> None:
    """``df`` as CSV to ``path`` (written aside and renamed: a failure leaves earlier output as it was),
    or its first ``head`` rows on the screen when no path is given."""
    if path:
        from molvae.utils.io import atomic_write

        with atomic_write(path, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        print(f"wrote {len(df):,} rows to {path}")
        return
    import pandas as pd

    with pd.option_context("display.max_colwidth", 80, "display.width", 160):
        print(df.head(head).to_string())
        if len(df) > head:
            print(f"... {len(df) - head:,} more rows (use -o FILE to write them all)")
