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
import csv
import itertools
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OUTPUT_COLUMNS", "add_parser", "cmd_score", "iter_smiles_chunks"]

logger = logging.getLogger("molvae")

#: The columns ``molvae score`` writes, in order (``n_tokens`` follows them).
OUTPUT_COLUMNS = ("smiles", "elbo", "recon_nll", "kl", "log_px", "reason")
_EXTRA_COLUMNS = ("n_tokens",)
_PEEK_ROWS = 50  # rows read ahead to find the SMILES column


def _csv_values(fh, path: Path, delimiter: str, column: str | None) -> Iterator[str]:
    """SMILES cells of a CSV/TSV stream, with the column picked as :func:`molvae.data.read_smiles` does."""
    from molvae.chem import to_mol
    from molvae.data.readers import SMILES_COLUMNS, pick_column

    csv.field_size_limit(1_000_000)
    reader = csv.reader(fh, delimiter=delimiter, strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise ValueError(f"{path} is empty: no SMILES to read")
        peek = list(itertools.islice((row for row in reader if any(cell.strip() for cell in row)), _PEEK_ROWS))
        j = pick_column(header, peek, column, path)
        known = {c.strip().lower() for c in header} & set(SMILES_COLUMNS)
        if column is None and not known and j < len(header) and to_mol(header[j].strip()) is not None:
            peek.insert(0, header)  # no header line: the first row is a molecule
        for row in itertools.chain(peek, reader):
            if any(cell.strip() for cell in row):
                yield row[j].strip() if j < len(row) else ""
    except csv.Error as err:
        raise ValueError(f"{path}: not a readable {'CSV' if delimiter == ',' else 'TSV'} file ({err})") from None


def _smi_values(fh, path: Path, column: str | None) -> Iterator[str]:
    """First whitespace-separated field of each non-blank line (``column``: that field of a header line)."""
    from molvae.data.readers import SMILES_COLUMNS

    lines = (line for line in fh if line.strip())
    first = next(lines, None)
    if first is None:
        raise ValueError(f"{path} is empty: no SMILES to read")
    fields = first.split()
    j = 0
    if column is not None:
        if column not in fields:
            raise ValueError(f"{path}: no column {column!r}; the first line has {fields}")
        j = fields.index(column)
    elif fields[0].lower() not in SMILES_COLUMNS:
        lines = itertools.chain([first], lines)  # no header line
    for line in lines:
        parts = line.split()
        yield parts[j] if j < len(parts) else ""


def iter_smiles_chunks(path: str | os.PathLike, column: str | None = None, chunk_size: int = 10_000) -> Iterator[list[str]]:
    """Lists of at most ``chunk_size`` SMILES from a CSV/TSV/.smi/.txt file (gz ok), one per non-blank row.

    Unlike :func:`molvae.data.read_smiles` nothing is dropped (a bad row is scored as
    unscorable, so output rows line up with input rows) and the file is never read whole.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an empty file, a
    file with no data rows or a missing column.
    """
    from molvae.data.readers import detect_format, open_text

    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a SMILES file")
    fmt = detect_format(path)
    n = 0
    try:
        with open_text(path) as fh:
            values = _smi_values(fh, path, column) if fmt == "smi" else _csv_values(fh, path, "," if fmt == "csv" else "\t", column)
            while chunk := list(itertools.islice(values, chunk_size)):
                n += len(chunk)
                yield chunk
    except (EOFError, UnicodeError) as err:
        raise ValueError(f"{path}: not a readable file ({err})") from None
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

    from molvae.vae.likelihood import score
    from molvae.vae.model import MolVAE, load_pretrained

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    chunks = iter_smiles_chunks(args.input, column=args.column, chunk_size=args.chunk_size)
    chunks = itertools.chain([next(chunks)], chunks)  # a missing, empty or column-less file fails here, first
    device = getattr(args, "device", None) or "auto"
    model_path = getattr(args, "model", None)
    model = load_pretrained(device=device) if model_path is None else MolVAE.load(model_path, device=device)
    columns = list(OUTPUT_COLUMNS) + list(_EXTRA_COLUMNS)
    quiet = bool(getattr(args, "quiet", False))
    out = Path(args.output) if args.output else None
    tmp = None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part{os.getpid()}")
    n_rows = n_scored = 0
    sum_log_px = 0.0
    reasons: Counter[str] = Counter()
    bar = tqdm(desc=f"score (k={args.k})", unit="mol", disable=quiet)
    try:
        with _quiet_per_chunk_logs():
            for i, smiles in enumerate(chunks):
                df = score(model, smiles, k=args.k, batch_size=args.batch_size, seed=args.seed)[columns]
                if tmp is not None:
                    df.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
                else:
                    df.to_csv(sys.stdout, header=i == 0, index=False)
                    sys.stdout.flush()
                ok = df["reason"] == ""
                n_rows += len(df)
                n_scored += int(ok.sum())
                sum_log_px += float(df.loc[ok, "log_px"].sum())
                reasons.update(r.split(":")[0] for r in df.loc[~ok, "reason"])
                bar.update(len(df))
        if tmp is not None:
            os.replace(tmp, out)
    finally:
        bar.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    mean = f", mean log p(x) {sum_log_px / n_scored:.2f} nats" if n_scored else ""
    failed = f" ({', '.join(f'{r}: {c:,}' for r, c in reasons.most_common(5))})" if reasons else ""
    where = f"; wrote {n_rows:,} rows to {out}" if out is not None else ""
    print(f"scored {n_scored:,} of {n_rows:,} molecules with k={args.k}{mean}; "
          f"not scorable: {n_rows - n_scored:,}{failed}{where}", file=sys.stdout if out is not None else sys.stderr)
    return 0
