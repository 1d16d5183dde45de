"""``molvae sample``: molecules from the prior of a model, printed or written to CSV / Parquet.

    molvae sample [--model PATH] -n N [--temperature T] [--seed S] [--no-faithful] [--prior P] [-o out.csv]
                  [--unique] [--properties qed,logp] [--condition logp=2.5,qed=0.85] [--guidance 0.75]
                  [--tolerance 0.3 | --tolerance logp=0.3,qed=0.05]

Without ``--model``: the shipped ``moses-sampler`` (``moses-conditional`` with ``--condition``).
Large ``-n`` with ``-o`` is streamed chunk by chunk: memory stays flat in ``n``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from molvae.cli.common import (
    CONDITIONAL_MODEL,
    PRIORS,
    SAMPLE_MODEL,
    load_model,
    write_table,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["add_parser", "cmd_sample", "parse_condition", "parse_tolerance"]


def parse_condition(text: str) -> dict[str, float]:
    """``"logp=2.5,qed=0.85"`` -> ``{"logp": 2.5, "qed": 0.85}``; anything else is an argparse error (exit 2).

    Each item is NAME=NUMBER with a property name of :mod:`molvae.properties` and a finite
    number; names do not repeat.
    """
    import math

    from molvae.properties import PROPERTIES

    out: dict[str, float] = {}
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise argparse.ArgumentTypeError(
                f"bad condition {item.strip()!r} in {text!r}: write NAME=VALUE[,NAME=VALUE...], e.g. logp=2.5,qed=0.85")
        if name not in PROPERTIES:
            raise argparse.ArgumentTypeError(f"unknown property {name!r} in {text!r}; known: {', '.join(PROPERTIES)}")
        if name in out:
            raise argparse.ArgumentTypeError(f"property {name!r} is given twice in {text!r}")
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={value!r} in {text!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{name}={value!r} in {text!r}: the value must be a finite number")
        out[name] = number
    return out


def parse_tolerance(text: str) -> float | dict[str, float]:
    """``"0.3"`` (every property of the condition) or ``"logp=0.3,qed=0.05"`` (per property)."""
    try:
        return float(text)
    except ValueError:
        return parse_condition(text)


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("sample", parents=parents, help="sample molecules from the prior")
    s.add_argument("-n", type=int, default=10, help="number of molecules")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--method", default="sample", choices=["sample", "greedy"], help="token decoding")
    s.add_argument("--seed", type=int)
    s.add_argument("--properties", help="comma-separated properties to add, e.g. qed,logp,sa")
    s.add_argument("--unique", action="store_true", help="keep only the first occurrence of each molecule")
    s.add_argument("--no-faithful", dest="faithful", action="store_false",
                   help="keep every decoded string, also those SELFIES had to repair (default: redraw them)")
    s.add_argument("--prior", default="auto", choices=PRIORS,
                   help="latent prior: the model's learned one (auto: when it has one) or N(0, I)")
    s.add_argument("--condition", type=parse_condition, metavar="NAME=VALUE,...",
                   help="property targets for a conditional model, e.g. logp=2.5,qed=0.85 (others marginalized); "
                        "without --model: the shipped moses-conditional model")
    s.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight with --condition (default 0.75; 0: none; larger follows the "
                        "condition more closely, at twice the decoding cost)")
    s.add_argument("--tolerance", type=parse_tolerance, metavar="T | NAME=T,...",
                   help="with --condition: keep only molecules whose RDKit property is within T of its target "
                        "(redrawing the others), e.g. 0.3 or logp=0.3,qed=0.05")
    s.add_argument("--selfies", action="store_true", help="also show / write the SELFIES column")
    s.add_argument("--chunk-size", type=int, default=50_000, help="molecules per chunk when streaming to a file")
    s.add_argument("-o", "--output", help="CSV or .parquet file (default: print); large n is streamed in chunks")
    s.set_defaults(func=cmd_sample)
    return s


def _add_properties(df: pd.DataFrame, names: str | None) -> pd.DataFrame:
    if not names:
        return df
    import pandas as pd

    from molvae.properties import compute

    wanted = [n.strip() for n in names.split(",") if n.strip() and n.strip() not in df.columns]
    if not wanted:  # e.g. computed already by the tolerance filter
        return df
    props = compute(df.smiles.tolist(), wanted)
    return pd.concat([df.reset_index(drop=True), props.drop(columns="smiles")], axis=1)


def _columns(df: pd.DataFrame, args: argparse.Namespace, printing: bool) -> pd.DataFrame:
    """What a person reads: SMILES and the requested properties (plus nll, validity and
    faithfulness in files); the SELFIES column only with --selfies."""
    drop = [] if args.selfies else ["selfies"]
    if printing:
        drop += ["valid", "faithful", "nll"]
    df = df.drop(columns=[c for c in drop if c in df.columns])
    return df.round(3) if printing else df


def _load_sample_model(args: argparse.Namespace):
    """``--model``, else the shipped conditional model when ``--condition`` is given, else the shipped one."""
    if args.model is None and args.condition is not None:
        from molvae.utils.paths import pretrained_dir

        path = pretrained_dir() / f"{CONDITIONAL_MODEL}.pt"
        if not path.exists():
            raise FileNotFoundError(
                f"--condition needs a conditional model: the shipped one ({path}) is not there yet (it is trained "
                "by benchmarks/train_conditional.sh); give --model PATH to a model trained with conditions "
                "(molvae train --conditions logp,qed ...)")
        return load_model(None, args.device, default=CONDITIONAL_MODEL)
    return load_model(args.model, args.device, default=SAMPLE_MODEL)


def cmd_sample(args: argparse.Namespace) -> int:
    model = _load_sample_model(args)
    opts = dict(temperature=args.temperature, seed=args.seed, method=args.method, faithful=args.faithful,
                prior=args.prior)
    if args.condition is not None:
        opts["condition"] = args.condition
        if args.guidance is not None:
            opts["guidance"] = args.guidance
        if args.tolerance is not None:
            opts["tolerance"] = args.tolerance
        if not args.properties:  # show what was achieved for what was asked
            args.properties = ",".join(args.condition)
    elif args.guidance is not None:
        raise ValueError("--guidance needs --condition")
    elif args.tolerance is not None:
        raise ValueError("--tolerance needs --condition (the targets it is measured from)")
    if args.output and _is_parquet(args.output):
        _pyarrow(args.output)  # fail before sampling
    if args.output and args.n > args.chunk_size:
        return _sample_streaming(model, args, opts)
    df = model.sample(args.n, progress=not args.quiet, **opts)
    attrs = dict(df.attrs)
    if args.unique:
        df = df[df.valid].drop_duplicates("smiles").reset_index(drop=True)
    df = _add_properties(df, args.properties)
    valid = df.smiles[df.valid]
    print(f"{len(df):,} sampled ({attrs['prior']} prior, {attrs['n_drawn']:,} decoded, faithful "
          f"{attrs['acceptance_rate']:.3f}{', unfaithful ones redrawn' if args.faithful else ''}): "
          f"valid {df.valid.mean():.3f}, unique {valid.nunique() / max(len(valid), 1):.3f}")
    if args.condition:
        print("condition: " + ", ".join(f"{k}={v:g} (median achieved {df.loc[df.valid, k].median():.3g})"
                                        for k, v in args.condition.items()))
    if "tolerance" in attrs:
        print(f"tolerance {attrs['tolerance']}: {attrs['tolerance_rate']:.3f} of the candidates within it, the rest "
              f"redrawn ({attrs['n_no_property']:,} not scored by RDKit)")
    if args.output and _is_parquet(args.output):
        from molvae.utils.io import atomic_path

        pa, pq = _pyarrow(args.output)
        with atomic_path(args.output) as tmp:
            pq.write_table(pa.Table.from_pandas(_columns(df, args, printing=False), preserve_index=False), tmp)
        print(f"wrote {len(df):,} rows to {args.output}")
    else:
        write_table(_columns(df, args, printing=not args.output), args.output)
    return 0


def _is_parquet(path: str) -> bool:
    return path.lower().endswith(".parquet")


def _pyarrow(path: str):
    """(pyarrow, pyarrow.parquet), or a clear error: Parquet output needs pyarrow, not a dependency of molvae."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow); or write a .csv file") from None
    return pa, pq


class _Unique:
    """Drops repeats of molecules seen in earlier chunks (8-byte digests: memory flat in the SMILES length)."""

    def __init__(self):
        self.seen: set[bytes] = set()

    def keep(self, smiles, valid) -> list[bool]:
        import hashlib

        keep = []
        for s, v in zip(smiles, valid):
            key = hashlib.blake2b(s.encode(), digest_size=8).digest()
            keep.append(bool(v) and key not in self.seen)
            self.seen.add(key)
        return keep


def _sample_streaming(model, args: argparse.Namespace, opts: dict) -> int:
    """Write samples chunk by chunk into a temporary file, renamed over the output at the end:
    memory stays flat in n, and a failed run (disk full, kill) leaves any earlier output intact."""
    from tqdm.auto import tqdm

    from molvae.utils.io import atomic_path, atomic_write

    unique = _Unique() if args.unique else None
    counts = dict.fromkeys(("written", "valid", "dup", "drawn", "faithful"), 0)

    def chunks():
        for df in model.sample_iter(args.n, args.chunk_size, **opts):
            bar.update(len(df))
            counts["valid"] += int(df.valid.sum())
            counts["drawn"] += df.attrs["n_drawn"]
            counts["faithful"] += round(df.attrs["acceptance_rate"] * df.attrs["n_drawn"])
            if unique is not None:
                keep = unique.keep(df.smiles, df.valid)
                counts["dup"] += int(df.valid.sum()) - sum(keep)
                df = df[keep]
            df = _columns(_add_properties(df, args.properties), args, printing=False)
            counts["written"] += len(df)
            yield df

    bar = tqdm(total=args.n, desc="sample", unit="mol", disable=args.quiet)
    try:
        if _is_parquet(args.output):
            pa, pq = _pyarrow(args.output)
            with atomic_path(args.output) as tmp:
                writer = None
                try:
                    for df in chunks():
                        table = pa.Table.from_pandas(df, preserve_index=False)
                        writer = writer or pq.ParquetWriter(tmp, table.schema)
                        writer.write_table(table)
                finally:
                    if writer is not None:
                        writer.close()
        else:
            with atomic_write(args.output, "w", newline="") as fh:
                for i, df in enumerate(chunks()):
                    df.to_csv(fh, header=i == 0, index=False)
    finally:
        bar.close()
    c = counts
    msg = (f"wrote {c['written']:,} rows to {args.output} (sampled {args.n:,} from {c['drawn']:,} decoded, faithful "
           f"{c['faithful'] / max(c['drawn'], 1):.3f}, valid {c['valid'] / max(args.n, 1):.4f}")
    print(msg + (f", duplicates dropped {c['dup']:,})" if args.unique else ")"))
    return 0
