"""The ``molvae`` command: a thin layer over the library.

    molvae tokenize FILE [--cache] [--column C]
    molvae train --data FILE|moses --out DIR [--config run.toml] [--epochs N] [--resume]
    molvae sample [--model PATH] -n N [--temperature T] [--seed S] [-o out.csv]
    molvae encode [--model PATH] INPUT -o z.csv      (INPUT: a SMILES file or SMILES strings)
    molvae decode [--model PATH] z.csv|z.npy -o out.csv
    molvae reconstruct [--model PATH] INPUT [-o out.csv] [--beam K]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__

logger = logging.getLogger("molvae")


# ---------------------------------------------------------------------------- helpers
def _smiles_input(values: list[str], column: str | None) -> list[str]:
    """One existing file path -> its SMILES (bad rows dropped and counted); else the strings themselves."""
    from .data import read_smiles

    if len(values) == 1 and Path(values[0]).exists():
        return list(read_smiles(values[0], column=column, validate=False))
    return values


def _load_model(path: str | None, device: str):
    from .model import MolVAE, load_pretrained

    return load_pretrained(device=device) if path is None else MolVAE.load(path, device=device)


def _write_table(df: pd.DataFrame, path: str | None, head: int = 20) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        print(f"wrote {len(df):,} rows to {path}")
    else:
        with pd.option_context("display.max_colwidth", 80, "display.width", 160):
            print(df.head(head).to_string())
            if len(df) > head:
                print(f"... {len(df) - head:,} more rows (use -o FILE to write them all)")


# ---------------------------------------------------------------------------- commands
def cmd_tokenize(args: argparse.Namespace) -> int:
    from .data import read_smiles, tokenize_file
    from .tokenizer import SelfiesTokenizer

    smiles = read_smiles(args.input, column=args.column, rejects=args.rejects)
    tokenizer = SelfiesTokenizer.load(args.vocab) if args.vocab else None
    data = tokenize_file(smiles, tokenizer=tokenizer, max_length=args.max_length, cache=args.cache, n_jobs=args.jobs)
    tok = data.tokenizer
    lengths = np.asarray(data.lengths, dtype=int) - 2
    counts: Counter[str] = Counter()
    for row, n in zip(np.asarray(data.ids[:200_000]), lengths[:200_000]):
        counts.update(tok.itos[i] for i in row[1 : n + 1])
    print(f"file: {args.input}")
    print(f"molecules read: {smiles.n_read:,}; invalid rows dropped: {smiles.n_rejected:,}")
    print(f"tokenized: {len(data):,}; rejected by the tokenizer: {data.n_failed:,}")
    print(f"vocabulary: {tok.vocab_size} tokens (4 special); max_length {tok.max_length}")
    print(f"tokens per molecule: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"95th pct {np.percentile(lengths, 95):.0f}, max {lengths.max()}")
    print("most frequent tokens: " + ", ".join(f"{t} {c / counts.total():.1%}" for t, c in counts.most_common(10)))
    if args.cache:
        from .paths import cache_dir

        print(f"token cache: {cache_dir() / 'tokens' / data.key}")
    if args.save_vocab:
        tok.save(args.save_vocab)
        print(f"vocabulary written to {args.save_vocab}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import ModelConfig, TrainConfig, load_config
    from .data import resolve_smiles_source
    from .train import train

    model_cfg, train_cfg = load_config(args.config) if args.config else (ModelConfig(), TrainConfig())
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "max_molecules": args.max_molecules, "device": args.device,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_hours": args.max_hours,
    }.items() if v is not None}
    train_cfg = dataclasses.replace(train_cfg, **overrides)
    smiles = resolve_smiles_source(args.data, column=args.column)
    model = train(smiles, args.out, model_cfg, train_cfg, resume=args.resume, progress=not args.quiet)
    print(f"best model: {Path(args.out) / 'best.pt'} (latent {model.latent_dim}, vocabulary {model.tokenizer.vocab_size})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    df = model.sample(args.n, temperature=args.temperature, seed=args.seed, method=args.method, progress=not args.quiet)
    if args.properties:
        from .properties import compute

        props = compute(df.smiles.tolist(), args.properties.split(","))
        df = pd.concat([df, props.drop(columns="smiles")], axis=1)
    valid = df.smiles[df.valid]
    print(f"{len(df):,} sampled: valid {df.valid.mean():.3f}, unique {valid.nunique() / max(len(valid), 1):.3f}")
    _write_table(df, args.output)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    smiles = _smiles_input(args.input, args.column)
    z = model.encode(smiles, progress=not args.quiet)
    ok = np.isfinite(z).all(axis=1)
    if args.output and args.output.endswith(".npy"):
        np.save(args.output, z)
        print(f"wrote latent means {z.shape} to {args.output} (rows of NaN: {int((~ok).sum())} not encodable)")
        return 0
    reasons = dict(zip(*[model.tokenizer.encode(smiles).failures[c] for c in ("index", "reason")])) if not ok.all() else {}
    df = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
    df.insert(0, "smiles", smiles)
    df.insert(1, "status", ["ok" if o else reasons.get(i, "rejected") for i, o in enumerate(ok)])
    print(f"encoded {int(ok.sum()):,} of {len(smiles):,} molecules")
    _write_table(df, args.output, head=10)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
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
    _write_table(df, args.output)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    smiles = _smiles_input(args.input, args.column)
    df = model.reconstruct(smiles, method="beam" if args.beam else "greedy", beam_width=args.beam or 5,
                           progress=not args.quiet)
    print(f"exact reconstruction: {df.exact.mean():.3f} of {len(df):,} ({int((~df.encoded).sum())} not encodable)")
    _write_table(df, args.output)
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="molvae", description="SELFIES VAE toolkit for molecular design.")
    p.add_argument("--version", action="version", version=f"molvae {__version__}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", help="checkpoint (default: the shipped MOSES model)")
    model_opts.add_argument("--device", default="auto", help="auto | cpu | cuda")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("tokenize", parents=[verbosity], help="tokenize a SMILES file and print token statistics")
    s.add_argument("input", help="CSV / TSV / .smi / .txt (gz ok)")
    s.add_argument("--column", help="SMILES column (default: detected)")
    s.add_argument("--cache", action="store_true", help="write the token arrays to the cache for training")
    s.add_argument("--vocab", help="use this vocabulary (JSON from --save-vocab) instead of fitting one")
    s.add_argument("--save-vocab", help="write the fitted vocabulary as JSON")
    s.add_argument("--max-length", type=int, help="longest molecule in tokens (default: longest seen)")
    s.add_argument("--rejects", help="write rejected rows (line, smiles, reason) to this CSV")
    s.add_argument("--jobs", type=int, help="processes (default: all cores)")
    s.set_defaults(func=cmd_tokenize)

    s = sub.add_parser("train", parents=[verbosity], help="train a VAE")
    s.add_argument("--data", required=True, help="SMILES file, or 'moses' (bundled MOSES train), or NAME:SPLIT")
    s.add_argument("--out", required=True, help="run folder (config.toml, metrics.csv, last.pt, best.pt)")
    s.add_argument("--config", help="TOML file with [model] and [train] tables")
    s.add_argument("--column", help="SMILES column of a CSV")
    s.add_argument("--epochs", type=int)
    s.add_argument("--max-molecules", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--max-hours", type=float, help="stop cleanly after this wall time (resume later)")
    s.add_argument("--device", help="auto | cpu | cuda")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", parents=[verbosity, model_opts], help="sample molecules from the prior")
    s.add_argument("-n", type=int, default=10, help="number of molecules")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--method", default="sample", choices=["sample", "greedy"], help="token decoding")
    s.add_argument("--seed", type=int)
    s.add_argument("--properties", help="comma-separated properties to add, e.g. qed,logp,sa")
    s.add_argument("-o", "--output", help="CSV file (default: print)")
    s.set_defaults(func=cmd_sample)

    for name, func, text in (("encode", cmd_encode, "latent means of molecules"),
                             ("reconstruct", cmd_reconstruct, "encode then decode molecules")):
        s = sub.add_parser(name, parents=[verbosity, model_opts], help=text)
        s.add_argument("input", nargs="+", help="a SMILES file, or SMILES strings")
        s.add_argument("--column", help="SMILES column of a CSV")
        s.add_argument("-o", "--output", help="CSV (or .npy for encode)")
        if name == "reconstruct":
            s.add_argument("--beam", type=int, default=0, help="beam width (default: greedy)")
        s.set_defaults(func=func)

    s = sub.add_parser("decode", parents=[verbosity, model_opts], help="decode latent points to molecules")
    s.add_argument("input", help=".npy array (N, D) or CSV with columns z0..zD-1")
    s.add_argument("--method", default="greedy", choices=["greedy", "sample", "beam"])
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int)
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_decode)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if args.verbose:
            raise
        print(f"molvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
