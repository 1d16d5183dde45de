"""``molvae score``: likelihoods and anomaly scores of a SMILES file, streamed chunk by chunk.

    molvae score molecules.csv -o scores.csv [--model PATH] [-k 10] [--batch-size 512] [--seed 0] [--column smiles]
    molvae score molecules.smi -k 10 | head          # no -o: CSV on standard output

Output columns: ``smiles, elbo, recon_nll, kl, log_px, reason`` (then ``n_tokens``), one row
per non-blank input row in input order; rows that cannot be scored (invalid SMILES, atoms
outside the model's vocabulary) keep NaN scores and say why in ``reason``.  Definitions:
:mod:`molvae.vae.likelihood`.  Memory stays flat in the file size; the output file appears only
when complete, so a failed run leaves any earlier output untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator

__all__ = ["OUTPUT_COLUMNS", "add_parser", "cmd_score", "iter_smiles_chunks"]

logger = logging.getLogger("molvae")

#: The columns ``molvae score`` writes, in order (``n_tokens`` follows them).
OUTPUT_COLUMNS = ("smiles", "elbo", "recon_nll", "kl", "log_px", "reason")
_EXTRA_COLUMNS = ("n_tokens",)


def iter_smiles_chunks(path: str | os.PathLike, column: str | None = None, chunk_size: int = 10_000) -> Iterator[list[str]]:
    """Lists of at most ``chunk_size`` SMILES from a CSV/TSV/.smi/.txt file (gz ok), one per non-blank row.

    The rows and the column are those :func:`molvae.data.read_smiles` reads (both use
    :func:`molvae.data.readers.iter_records`); unlike it nothing is dropped (a bad row is scored
    as unscorable, so output rows line up with input rows) and the file is never read whole.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an empty file, a
    file with no data rows or a missing column.
    """
    from molvae.data.readers import iter_records

    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    values = (smiles for _, smiles in iter_records(path, column))
    n = 0
    while chunk := list(itertools.islice(values, chunk_size)):
        n += len(chunk)
        yield chunk
    if n == 0:
        raise ValueError(f"{path}: no data rows, no SMILES to score")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``score``; ``parents`` bring ``--model``/``--device`` and the verbosity flags."""
    s = subparsers.add_parser(
        "score",
        parents=parents,
        help="likelihoods / anomaly scores (ELBO, importance-weighted log p(x)) of a SMILES file",
        description="Score each molecule of a SMILES file under the model: ELBO, reconstruction NLL, KL and "
        "the importance-weighted log p(x) with K posterior samples (nats; -log_px is an anomaly score). "
        "Streams: the file is read and written in chunks.",
    )
    s.add_argument("input", help="CSV / TSV (SMILES column detected or --column) or .smi / .txt, gz ok")
    s.add_argument("-o", "--output", help="output CSV (default: standard output)")
    s.add_argument("-k", type=int, default=10, help="posterior samples per molecule for log p(x) (default 10)")
    s.add_argument("--batch-size", type=int, default=512, help="decoder rows (molecule x sample) per pass")
    s.add_argument("--seed", type=int, default=0, help="posterior samples' seed (default 0)")
    s.add_argument("--column", help="SMILES column of a CSV/TSV")
    s.add_argument("--chunk-size", type=int, default=10_000, help="molecules read, scored and written at a time")
    s.set_defaults(func=cmd_score)
    return s


@contextlib.contextmanager
def _quiet_per_chunk_logs() -> Iterator[None]:
    """The per-call 'N molecules cannot be scored' messages would repeat every chunk: the
    summary at the end counts them instead."""
    names = ("molvae.vae.likelihood", "molvae.tokenizer")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def cmd_score(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from molvae.cli.common import load_model
    from molvae.utils.io import atomic_write
    from molvae.vae.likelihood import score

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    chunks = iter_smiles_chunks(args.input, column=args.column, chunk_size=args.chunk_size)
    chunks = itertools.chain([next(chunks)], chunks)  # a missing, empty or column-less file fails here, first
    model = load_model(getattr(args, "model", None), getattr(args, "device", None) or "auto")
    columns = list(OUTPUT_COLUMNS) + list(_EXTRA_COLUMNS)
    n_rows = n_scored = 0
    sum_log_px = 0.0
    reasons: Counter[str] = Counter()
    bar = tqdm(desc=f"score (k={args.k})", unit="mol", disable=bool(getattr(args, "quiet", False)))
    # the output file appears only when complete; without -o, CSV goes to standard output as it comes
    sink = atomic_write(args.output, "w", newline="") if args.output else contextlib.nullcontext(sys.stdout)
    try:
        with _quiet_per_chunk_logs(), sink as fh:
            for i, smiles in enumerate(chunks):
                df = score(model, smiles, k=args.k, batch_size=args.batch_size, seed=args.seed)[columns]
                df.to_csv(fh, header=i == 0, index=False)
                fh.flush()
                ok = df["reason"] == ""
                n_rows += len(df)
                n_scored += int(ok.sum())
                sum_log_px += float(df.loc[ok, "log_px"].sum())
                reasons.update(r.split(":")[0] for r in df.loc[~ok, "reason"])
                bar.update(len(df))
    finally:
        bar.close()
    mean = f", mean log p(x) {sum_log_px / n_scored:.2f} nats" if n_scored else ""
    failed = f" ({', '.join(f'{r}: {c:,}' for r, c in reasons.most_common(5))})" if reasons else ""
    where = f"; wrote {n_rows:,} rows to {args.output}" if args.output else ""
    print(f"scored {n_scored:,} of {n_rows:,} molecules with k={args.k}{mean}; "
          f"not scorable: {n_rows - n_scored:,}{failed}{where}", file=sys.stdout if args.output else sys.stderr)
    return 0
