"""The ``molvae`` command: a thin layer over the library.

    molvae tokenize FILE [--cache] [--column C]
    molvae train --data FILE|moses --out DIR [--config run.toml] [--epochs N] [--resume]
    molvae sample [--model PATH] -n N [--temperature T] [--seed S] [--no-faithful] [--prior P] [-o out.csv]
                  [--condition logp=2.5,qed=0.85]   (a conditional model; default: the shipped moses-conditional)
    molvae fit-prior [--model PATH] --data moses|FILE [-n 100000] [--components 32] -o model.pt
    molvae score [--model PATH] FILE -o scores.csv [-k K] [--column C]
    molvae encode [--model PATH] INPUT -o z.csv      (INPUT: a SMILES file or SMILES strings)
    molvae decode [--model PATH] z.csv|z.npy -o out.csv
    molvae reconstruct [--model PATH] INPUT [-o out.csv] [--beam K]
    molvae evaluate [--model PATH] -n 30000 [--seed S ...] [-o report.json] | --smiles FILE
    molvae optimize --objective qed --budget 500 [--start SMILES ...] [--min-similarity 0.4] -o out.csv
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

from molvae._version import __version__

logger = logging.getLogger("molvae")
# the shipped model `molvae sample` uses without --model (the others use "moses")
SAMPLE_MODEL = "moses-sampler"
# the shipped conditional model `molvae sample --condition ...` uses without --model
CONDITIONAL_MODEL = "moses-conditional"


# ---------------------------------------------------------------------------- helpers
def _smiles_input(values: list[str], column: str | None) -> list[str]:
    """One existing file path -> its SMILES (bad rows dropped and counted); else the strings themselves."""
    from molvae.data import read_smiles

    if len(values) == 1 and Path(values[0]).exists():
        return list(read_smiles(values[0], column=column, validate=False))
    return values


def _load_model(path: str | None, device: str, default: str = "moses"):
    """The model at ``path``, or the shipped model ``default`` when no path is given."""
    from molvae.vae.model import MolVAE, load_pretrained

    return load_pretrained(default, device=device) if path is None else MolVAE.load(path, device=device)


def _write_table(df: pd.DataFrame, path: str | None, head: int = 20) -> None:
    if path:
        import os

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part{os.getpid()}")
        try:  # write aside, then rename: a failure never leaves half a file over earlier output
            df.to_csv(tmp, index=False)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {len(df):,} rows to {path}")
    else:
        with pd.option_context("display.max_colwidth", 80, "display.width", 160):
            print(df.head(head).to_string())
            if len(df) > head:
                print(f"... {len(df) - head:,} more rows (use -o FILE to write them all)")


# ---------------------------------------------------------------------------- commands
def cmd_tokenize(args: argparse.Namespace) -> int:
    from molvae.data import read_smiles, tokenize_file
    from molvae.tokenizer import SelfiesTokenizer

    smiles = read_smiles(args.input, column=args.column, rejects=args.rejects)
    tokenizer = SelfiesTokenizer.load(args.vocab) if args.vocab else None
    data = tokenize_file(smiles, tokenizer=tokenizer, max_length=args.max_length, cache=args.cache, n_jobs=args.jobs)
    tok = data.tokenizer
    if len(data) == 0:
        raise ValueError(f"{args.input}: no molecule could be tokenized with this vocabulary")
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
        from molvae.utils.paths import cache_dir

        print(f"token cache: {cache_dir() / 'tokens' / data.key}")
    if args.save_vocab:
        tok.save(args.save_vocab)
        print(f"vocabulary written to {args.save_vocab}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from molvae.config import ModelConfig, TrainConfig, load_config
    from molvae.data import resolve_smiles_source
    from molvae.training.loop import train

    model_cfg, train_cfg = load_config(args.config) if args.config else (ModelConfig(), TrainConfig())
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "max_molecules": args.max_molecules, "device": args.device,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_hours": args.max_hours,
        "init_from": args.init_from, "conditions": args.conditions,
    }.items() if v is not None}
    train_cfg = dataclasses.replace(train_cfg, **overrides)
    smiles = resolve_smiles_source(args.data, column=args.column)
    model = train(smiles, args.out, model_cfg, train_cfg, resume=args.resume, progress=not args.quiet)
    print(f"best model: {Path(args.out) / 'best.pt'} (latent {model.latent_dim}, vocabulary {model.tokenizer.vocab_size})")
    return 0


def _add_properties(df: pd.DataFrame, names: str | None) -> pd.DataFrame:
    if not names:
        return df
    from molvae.properties import compute

    props = compute(df.smiles.tolist(), [n.strip() for n in names.split(",") if n.strip()])
    return pd.concat([df.reset_index(drop=True), props.drop(columns="smiles")], axis=1)


def _sample_columns(df: pd.DataFrame, args: argparse.Namespace, printing: bool) -> pd.DataFrame:
    """What a person reads: SMILES and the requested properties (plus nll, validity and
    faithfulness in files); the SELFIES column only with --selfies."""
    drop = [] if args.selfies else ["selfies"]
    if printing:
        drop += ["valid", "faithful", "nll"]
    df = df.drop(columns=[c for c in drop if c in df.columns])
    return df.round(3) if printing else df


def parse_condition(text: str) -> dict[str, float]:
    """``"logp=2.5,qed=0.85"`` -> ``{"logp": 2.5, "qed": 0.85}``; anything else is an argparse error (exit 2).

    Each item is NAME=NUMBER with a property name of :mod:`molvae.properties` and a finite
    number; names do not repeat.
    """
    import math

    from molvae.properties import PROPERTIES

    out: dict[str, float] = {}
    items = text.split(",")
    for item in items:
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
        return _load_model(None, args.device, default=CONDITIONAL_MODEL)
    return _load_model(args.model, args.device, default=SAMPLE_MODEL)


def cmd_sample(args: argparse.Namespace) -> int:
    model = _load_sample_model(args)
    opts = dict(temperature=args.temperature, seed=args.seed, method=args.method, faithful=args.faithful,
                prior=args.prior)
    if args.condition is not None:
        opts["condition"] = args.condition
        if not args.properties:  # show what was achieved for what was asked
            args.properties = ",".join(args.condition)
    if not args.output or args.n <= args.chunk_size:
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
        _write_table(_sample_columns(df, args, printing=not args.output), args.output)
        return 0
    return _sample_streaming(model, args, opts)


def _sample_streaming(model, args: argparse.Namespace, opts: dict) -> int:
    """Write samples chunk by chunk into a temporary file, renamed over the output at the end:
    memory stays flat in n, and a failed run (disk full, kill) leaves any earlier output intact."""
    import hashlib
    import os

    from tqdm.auto import tqdm

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part{os.getpid()}")
    parquet = out.suffix == ".parquet"
    writer = None
    seen: set[bytes] = set()
    n_written = n_valid = n_dup = n_drawn = n_faithful = 0
    bar = tqdm(total=args.n, desc="sample", unit="mol", disable=args.quiet)
    try:
        for i, df in enumerate(model.sample_iter(args.n, args.chunk_size, **opts)):
            bar.update(len(df))
            n_valid += int(df.valid.sum())
            n_drawn += df.attrs["n_drawn"]
            n_faithful += round(df.attrs["acceptance_rate"] * df.attrs["n_drawn"])
            if args.unique:
                keys = [hashlib.blake2b(s.encode(), digest_size=8).digest() for s in df.smiles]
                keep = []
                for k, v in zip(keys, df.valid):
                    keep.append(bool(v) and k not in seen)
                    seen.add(k)
                n_dup += int(df.valid.sum()) - sum(keep)
                df = df[keep]
            df = _sample_columns(_add_properties(df, args.properties), args, printing=False)
            if parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(df, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            else:
                df.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
            n_written += len(df)
        if writer is not None:
            writer.close()
        os.replace(tmp, out)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    msg = (f"wrote {n_written:,} rows to {out} (sampled {args.n:,} from {n_drawn:,} decoded, faithful "
           f"{n_faithful / max(n_drawn, 1):.3f}, valid {n_valid / max(args.n, 1):.4f}")
    print(msg + (f", duplicates dropped {n_dup:,})" if args.unique else ")"))
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


def cmd_fit_prior(args: argparse.Namespace) -> int:
    from molvae.data import resolve_smiles_source
    from molvae.vae.prior import fit_prior

    model = _load_model(args.model, args.device)
    smiles = resolve_smiles_source(args.data, column=args.column)
    if not smiles:
        raise ValueError(f"no molecules in {args.data}")
    if args.n and len(smiles) > args.n:
        pick = np.random.default_rng(args.seed).choice(len(smiles), size=args.n, replace=False)
        smiles = [smiles[i] for i in np.sort(pick)]
    model.prior = fit_prior(model, smiles, kind=args.kind, n_components=args.components, covariance=args.covariance,
                            seed=args.seed, progress=not args.quiet)
    meta = dict(getattr(model, "metadata", {}), prior_data=str(args.data), prior_n=len(smiles))
    model.save(args.output, half=args.half, metadata=meta)
    print(f"{model.prior!r} fitted on {model.prior.info['n_molecules']:,} molecules in "
          f"{model.prior.info['fit_seconds']} s; wrote {args.output}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.device)
    smiles = _smiles_input(args.input, args.column)
    df = model.reconstruct(smiles, method="beam" if args.beam else "greedy", beam_width=args.beam or 5,
                           progress=not args.quiet)
    print(f"exact reconstruction: {df.exact.mean():.3f} of {len(df):,} ({int((~df.encoded).sum())} not encodable)")
    _write_table(df, args.output)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from molvae.evaluate import evaluate

    smiles = None
    if args.smiles:
        from molvae.data.readers import read_smiles

        smiles = list(read_smiles(args.smiles, column=args.column, validate=False))
        model = None
    else:
        model = _load_model(args.model, args.device, default=SAMPLE_MODEL)
    report = evaluate(model, n=args.n, seeds=args.seed, smiles=smiles, reference=args.reference, train=args.train,
                      max_reference=args.max_reference, temperature=args.temperature, faithful=args.faithful,
                      prior=args.prior, n_reconstruct=0 if args.smiles else args.n_reconstruct, progress=not args.quiet)
    if args.smiles:
        report["smiles_file"] = args.smiles
    else:
        report["model"] = args.model or f"shipped:{SAMPLE_MODEL}"
    rows = [(m, v["mean"], v["std"]) for m, v in report["summary"].items()]
    print(f"{'metric':<16}{'mean':>10}{'std':>10}")
    for m, mean, std in rows:
        print(f"{m:<16}{mean:>10.4f}{std:>10.4f}" if std == std else f"{m:<16}{mean:>10.4f}{'':>10}")
    if "latent" in report:
        lat = report["latent"]
        print(f"latent: active units {lat['active_units']} ({lat['active_fraction']:.0%}), KL {lat['kl_total']:.1f} nats, "
              f"MI {lat['mutual_info']:.2f}, greedy exact reconstruction {lat['recon_exact']:.3f} "
              f"of {lat['n_molecules']:,} MOSES test molecules")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=1, default=float))
        print(f"report written to {args.output}")
    return 0


# ---------------------------------------------------------------------------- parser
def _condition_names(text: str) -> tuple[str, ...]:
    """``--conditions logp,qed`` -> validated names (argparse error, exit 2, otherwise)."""
    from molvae.vae.conditions import check_names

    try:
        return check_names(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="molvae", description="SELFIES VAE toolkit for molecular design.")
    p.add_argument("--version", action="version", version=f"molvae {__version__}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", help="checkpoint (default: a shipped MOSES model: moses-sampler for sample and evaluate, moses-conditional for sample --condition, moses for the rest)")
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
    s.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start from this checkpoint ('pretrained' for the shipped model); its sizes "
                        "and vocabulary are kept, molecules with other tokens are counted and left out")
    s.add_argument("--conditions", type=_condition_names, metavar="NAMES",
                   help="a conditional VAE on these properties, e.g. logp,qed,sa,mw,tpsa (molvae.properties)")
    s.add_argument("--device", help="auto | cpu | cuda")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", parents=[verbosity, model_opts], help="sample molecules from the prior")
    s.add_argument("-n", type=int, default=10, help="number of molecules")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--method", default="sample", choices=["sample", "greedy"], help="token decoding")
    s.add_argument("--seed", type=int)
    s.add_argument("--properties", help="comma-separated properties to add, e.g. qed,logp,sa")
    s.add_argument("--unique", action="store_true", help="keep only the first occurrence of each molecule")
    s.add_argument("--no-faithful", dest="faithful", action="store_false",
                   help="keep every decoded string, also those SELFIES had to repair (default: redraw them)")
    s.add_argument("--prior", default="auto", choices=["auto", "learned", "standard"],
                   help="latent prior: the model's learned one (auto: when it has one) or N(0, I)")
    s.add_argument("--condition", type=parse_condition, metavar="NAME=VALUE,...",
                   help="property targets for a conditional model, e.g. logp=2.5,qed=0.85 (others marginalized); "
                        "without --model: the shipped moses-conditional model")
    s.add_argument("--selfies", action="store_true", help="also show / write the SELFIES column")
    s.add_argument("--chunk-size", type=int, default=50_000, help="molecules per chunk when streaming to a file")
    s.add_argument("-o", "--output", help="CSV or .parquet file (default: print); large n is streamed in chunks")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("fit-prior", parents=[verbosity, model_opts],
                       help="fit a learned latent prior (the aggregate posterior) and save the model with it")
    s.add_argument("--data", required=True, help="moses | zinc | NAME:SPLIT | a SMILES file (the model's training data)")
    s.add_argument("--column", help="SMILES column of a CSV file (default: detected)")
    s.add_argument("-n", type=int, default=100_000, help="molecules drawn at random from the data (0: all)")
    s.add_argument("--kind", default="gmm", choices=["gmm", "aggregate"])
    s.add_argument("--components", type=int, default=32)
    s.add_argument("--covariance", default="full", choices=["full", "diag"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--half", action="store_true", help="store the weights in float16")
    s.add_argument("-o", "--output", required=True, help="checkpoint to write (the model and its prior)")
    s.set_defaults(func=cmd_fit_prior)

    for name, func, text in (("encode", cmd_encode, "latent means of molecules"),
                             ("reconstruct", cmd_reconstruct, "encode then decode molecules")):
        s = sub.add_parser(name, parents=[verbosity, model_opts], help=text)
        s.add_argument("input", nargs="+", help="a SMILES file, or SMILES strings")
        s.add_argument("--column", help="SMILES column of a CSV")
        s.add_argument("-o", "--output", help="CSV (or .npy for encode)")
        if name == "reconstruct":
            s.add_argument("--beam", type=int, default=0, help="beam width (default: greedy)")
        s.set_defaults(func=func)

    s = sub.add_parser("evaluate", parents=[verbosity, model_opts], help="MOSES metrics of samples or of a SMILES file")
    s.add_argument("-n", type=int, default=30_000, help="molecules sampled per seed")
    s.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed; mean and std reported")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--no-faithful", dest="faithful", action="store_false",
                   help="score every decoded string (default: as `sample`, unfaithful strings redrawn)")
    s.add_argument("--prior", default="auto", choices=["auto", "learned", "standard"])
    s.add_argument("--smiles", help="score this file's SMILES instead of sampling (any generator's output)")
    s.add_argument("--column", help="SMILES column of --smiles")
    s.add_argument("--reference", nargs="+", default=["test", "test_scaffolds"], help="MOSES reference sets")
    s.add_argument("--train", default="moses", help="training set for novelty: 'moses' or a SMILES file")
    s.add_argument("--max-reference", type=int, help="subsample the references (quick looks only)")
    s.add_argument("--n-reconstruct", type=int, default=0,
                   help="latent diagnostics and greedy reconstruction on this many MOSES test molecules")
    s.add_argument("-o", "--output", help="JSON report")
    s.set_defaults(func=cmd_evaluate)

    from molvae.cli.optimize import add_parser as add_optimize_parser

    add_optimize_parser(sub, [verbosity, model_opts])
    from molvae.cli.score import add_parser as add_score_parser

    add_score_parser(sub, [verbosity, model_opts])

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
    except (ValueError, OSError, EOFError, RuntimeError) as err:
        if args.verbose:
            raise
        print(f"molvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
