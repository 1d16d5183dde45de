"""SMILES from user files (CSV, TSV, .smi, gzipped or not) and from dataset names.

Readers drop bad rows, count them, log the count and can write them out; they never
raise in the middle of a file.  Errors that concern the whole file (missing, empty, no
SMILES column) raise ``ValueError``/``FileNotFoundError`` with a clear message.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import io
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.chem import to_mol
from molvae.data.datasets import load_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "SMILES_COLUMNS",
    "SmilesList",
    "read_smiles",
    "iter_records",
    "resolve_smiles_source",
    "open_text",
    "detect_format",
    "pick_column",
]

PEEK_ROWS = 50  # rows under the header that pick the SMILES column
SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi", "mol", "molecule", "structure")


class SmilesList(list):
    """A list of SMILES that remembers what was dropped: ``n_read``, ``n_rejected``, ``rejects``."""

    n_read: int = 0
    rejects: pd.DataFrame

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")
    # utf-8-sig strips a BOM; undecodable bytes become U+FFFD and the row is rejected later
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def detect_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    return "smi"  # .smi, .txt, anything else: whitespace-separated, SMILES first


def pick_column(columns: Sequence[str], rows: list[list[str]], column: str | None, path: Path) -> int:
    if column is not None:
        if column in columns:
            return list(columns).index(column)
        raise ValueError(f"{path}: no column {column!r}; columns are {list(columns)}")
    lowered = [c.strip().lower() for c in columns]
    for name in SMILES_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    if len(columns) == 1:
        return 0
    if not rows:
        raise ValueError(f"{path}: no data rows under the header {list(columns)}")
    # no telling header: take the column whose first values RDKit parses best
    scores = []
    for j in range(len(columns)):
        vals = [r[j] for r in rows[:PEEK_ROWS] if j < len(r)]
        scores.append(sum(to_mol(v) is not None for v in vals if 0 < len(v) < 500) / max(len(vals), 1))
    best = int(np.argmax(scores))
    if scores[best] < 0.5:
        raise ValueError(
            f"{path}: no SMILES column found among {list(columns)}; name it with column=... (--column)"
        )
    return best


def _table_records(fh, path: Path, delimiter: str, column: str | None) -> Iterator[tuple[int, str]]:
    reader = csv.reader(fh, delimiter=delimiter, strict=True)
    kind = "CSV" if delimiter == "," else "TSV"
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise ValueError(f"{path} is empty: no SMILES to read")
        header_line = line_before = reader.line_num
        peek, starts = [], []  # the rows (blank ones too) that pick the column, and their first lines
        for row in itertools.islice(reader, PEEK_ROWS):
            peek.append(row)
            starts.append(line_before + 1)
            line_before = reader.line_num
        j = pick_column(header, peek, column, path)
        known = {c.strip().lower() for c in header} & set(SMILES_COLUMNS)
        if column is None and not known and j < len(header) and to_mol(header[j].strip()) is not None:
            peek.insert(0, header)  # no header line: the first row is a molecule
            starts.insert(0, header_line)
        for lineno, row in zip(starts, peek):
            if any(cell.strip() for cell in row):
                yield lineno, (row[j].strip() if j < len(row) else "")
        for row in reader:
            lineno, line_before = line_before + 1, reader.line_num
            if any(cell.strip() for cell in row):
                yield lineno, (row[j].strip() if j < len(row) else "")
    except csv.Error as err:
        raise ValueError(f"{path}: not a readable {kind} file ({err})") from None


def _smi_records(fh, path: Path, column: str | None) -> Iterator[tuple[int, str]]:
    lines = enumerate((line.rstrip("\r\n") for line in fh), start=1)  # newline="": \n, \r and \r\n end a line
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        raise ValueError(f"{path} is empty: no SMILES to read")
    fields = first[1].split()
    if not (fields[0].lower() in SMILES_COLUMNS or (column and column in fields)):
        lines = itertools.chain([first], lines)  # no header line
    for lineno, line in lines:
        if line.strip():
            yield lineno, line.split()[0]


def iter_records(path: str | os.PathLike, column: str | None = None, max_field: int = 131_072) -> Iterator[tuple[int, str]]:
    """``(line number, SMILES cell)`` of each non-blank data row of a SMILES file, streamed.

    The one reading logic of the package (:func:`read_smiles` and ``molvae score`` use it):
    CSV/TSV take the first non-blank row as the header (unless it is itself a molecule) and
    the column named ``column``, a known SMILES header, or the one whose first values RDKit
    parses best; .smi/.txt take the first whitespace-separated field of each line, after a
    header line when the first one names a SMILES column.  Nothing is validated here.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unreadable or
    empty file or a missing column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a SMILES file")
    fmt = detect_format(path)
    csv.field_size_limit(max(max_field, 131_072))
    try:
        with open_text(path) as fh:
            if fmt == "smi":
                yield from _smi_records(fh, path, column)
            else:
                yield from _table_records(fh, path, "," if fmt == "csv" else "\t", column)
    except (OSError, EOFError, UnicodeError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable file ({err})") from None


def read_smiles(
    path: str | os.PathLike,
    column: str | None = None,
    rejects: str | os.PathLike | None = None,
    validate: bool = True,
    max_line_length: int = 10_000,
) -> SmilesList:
    """Read SMILES from a CSV/TSV (header, column auto-detected or named), .smi or .txt file (gz ok).

    Rows RDKit cannot parse (and empty or absurdly long ones) are dropped, counted, logged
    and, when ``rejects`` is given, written there as CSV (line, smiles, reason).  The rows
    and the column are those of :func:`iter_records`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an empty file or a
    table without a SMILES column.
    """
    records = list(iter_records(path, column, max_field=max_line_length * 10))
    bad: list[tuple[int, str, str]] = []
    out = SmilesList()
    for lineno, smi in records:
        if not smi:
            bad.append((lineno, smi, "empty"))
        elif len(smi) > max_line_length:
            bad.append((lineno, smi[:80] + "...", f"longer than {max_line_length} characters"))
        elif "\ufffd" in smi:
            bad.append((lineno, smi, "not valid UTF-8"))
        elif validate and to_mol(smi) is None:
            bad.append((lineno, smi, "invalid SMILES (RDKit cannot parse it)"))
        else:
            out.append(smi)
    out.n_read = len(records)
    out.rejects = pd.DataFrame(bad, columns=["line", "smiles", "reason"])
    if bad:
        logger.warning("%s: dropped %d of %d rows (invalid or empty SMILES)", path, len(bad), len(records))
        if rejects is not None:
            out.rejects.to_csv(rejects, index=False)
            logger.warning("rejected rows written to %s", rejects)
    if not out:
        raise ValueError(f"{path}: none of its {len(records)} rows holds a valid SMILES")
    return out


def resolve_smiles_source(source: str | os.PathLike, column: str | None = None, limit: int | None = None) -> list[str]:
    """``moses``/``zinc`` (bundled training sets), ``name:split`` or a file path -> SMILES."""
    text = str(source)
    if text in ("moses", "zinc"):
        return load_dataset(text, "train" if text == "moses" else "valid", limit=limit)
    if ":" in text and not Path(text).exists():
        name, split = text.split(":", 1)
        return load_dataset(name, split, limit=limit)
    smiles = read_smiles(text, column=column)
    return smiles[:limit] if limit is not None else smiles


