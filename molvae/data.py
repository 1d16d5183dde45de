"""Datasets, SMILES file readers, token caches and length-bucketed batches.

Readers drop bad rows, count them, log the count and can write them out; they never
raise in the middle of a file.  Errors that concern the whole file (missing, empty, no
SMILES column) raise ``ValueError``/``FileNotFoundError`` with a clear message.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .chem import to_mol
from .paths import cache_dir, data_dir
from .tokenizer import SelfiesTokenizer, tokenize_many

__all__ = [
    "DATASETS",
    "load_dataset",
    "dataset_path",
    "read_smiles",
    "SmilesList",
    "TokenData",
    "tokenize_file",
    "BucketBatchSampler",
]

logger = logging.getLogger(__name__)

DATASETS: dict[tuple[str, str], str] = {
    ("moses", "train"): "moses/train.csv.gz",
    ("moses", "test"): "moses/test.csv.gz",
    ("moses", "test_scaffolds"): "moses/test_scaffolds.csv.gz",
    ("zinc", "valid"): "zinc/valid.txt.gz",
    ("zinc", "test"): "zinc/test.txt.gz",
    ("zinc", "opt_logp"): "zinc/opt.test.logP-SA",
}
_SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi", "mol", "molecule", "structure")


def dataset_path(name: str, split: str = "train") -> Path:
    """Path of a bundled dataset file, e.g. ``dataset_path("moses", "test")``."""
    key = (name.lower(), split.lower())
    if key not in DATASETS:
        known = ", ".join(f"{n}/{s}" for n, s in DATASETS)
        raise ValueError(f"unknown dataset {name!r} split {split!r}; bundled: {known}")
    path = data_dir() / DATASETS[key]
    if not path.exists():
        raise FileNotFoundError(f"bundled dataset missing: {path} (set MOLVAE_DATA_DIR to the repo's data/ folder)")
    return path


def load_dataset(name: str, split: str = "train", limit: int | None = None) -> list[str]:
    """SMILES of a bundled dataset (``moses``: train/test/test_scaffolds; ``zinc``: valid/test/opt_logp).

    The bundled files are clean, so they are read as they are (no re-validation).

    >>> len(load_dataset("zinc", "test"))
    5000
    """
    path = dataset_path(name, split)
    if split.lower() == "opt_logp":
        smiles = load_opt_logp()["smiles"].tolist()
    elif path.name.endswith(".csv.gz"):
        smiles = pd.read_csv(path, usecols=["SMILES"], nrows=limit)["SMILES"].tolist()
    else:
        with gzip.open(path, "rt") as fh:
            smiles = [line.strip() for line in fh if line.strip()]
    return smiles[:limit] if limit is not None else smiles


def load_opt_logp() -> pd.DataFrame:
    """The 800 lowest-penalized-logP ZINC molecules (JT-VAE's constrained-optimization start set)."""
    path = dataset_path("zinc", "opt_logp")
    df = pd.read_csv(path, sep=r"\s+", header=None, names=["smiles", "penalized_logp"])
    return df


# ---------------------------------------------------------------------------- reading user files
class SmilesList(list):
    """A list of SMILES that remembers what was dropped: ``n_read``, ``n_rejected``, ``rejects``."""

    n_read: int = 0
    rejects: pd.DataFrame

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")
    # utf-8-sig strips a BOM; undecodable bytes become U+FFFD and the row is rejected later
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _detect_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    return "smi"  # .smi, .txt, anything else: whitespace-separated, SMILES first


def _pick_column(columns: Sequence[str], rows: list[list[str]], column: str | None, path: Path) -> int:
    if column is not None:
        if column in columns:
            return list(columns).index(column)
        raise ValueError(f"{path}: no column {column!r}; columns are {list(columns)}")
    lowered = [c.strip().lower() for c in columns]
    for name in _SMILES_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    if len(columns) == 1:
        return 0
    if not rows:
        raise ValueError(f"{path}: no data rows under the header {list(columns)}")
    # no telling header: take the column whose first values RDKit parses best
    scores = []
    for j in range(len(columns)):
        vals = [r[j] for r in rows[:50] if j < len(r)]
        scores.append(sum(to_mol(v) is not None for v in vals if 0 < len(v) < 500) / max(len(vals), 1))
    best = int(np.argmax(scores))
    if scores[best] < 0.5:
        raise ValueError(
            f"{path}: no SMILES column found among {list(columns)}; name it with column=... (--column)"
        )
    return best


def read_smiles(
    path: str | os.PathLike,
    column: str | None = None,
    rejects: str | os.PathLike | None = None,
    validate: bool = True,
    max_line_length: int = 10_000,
) -> SmilesList:
    """Read SMILES from a CSV/TSV (header, column auto-detected or named), .smi or .txt file (gz ok).

    Rows RDKit cannot parse (and empty or absurdly long ones) are dropped, counted, logged
    and, when ``rejects`` is given, written there as CSV (line, smiles, reason).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an empty file or a
    table without a SMILES column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    fmt = _detect_format(path)
    try:
        with _open_text(path) as fh:
            text = fh.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable file ({err})") from None
    text_lines = re.split(r"\r\n|\r|\n", text)  # line breaks only (not \x0c, \u2028, ...)
    if not any(line.strip() for line in text_lines):
        raise ValueError(f"{path} is empty: no SMILES to read")
    records: list[tuple[int, str]] = []  # (line number, raw SMILES)
    bad: list[tuple[int, str, str]] = []
    if fmt in ("csv", "tsv"):
        csv.field_size_limit(max(max_line_length * 10, 131072))
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t", strict=True)
        try:
            header = next(reader)
            while not any(cell.strip() for cell in header):  # blank lines before the header
                header = next(reader)
            header_line = reader.line_num
            rows, starts = [], []
            line_before = reader.line_num
            for row in reader:
                rows.append(row)
                starts.append(line_before + 1)  # physical line where the row begins
                line_before = reader.line_num
        except StopIteration:
            raise ValueError(f"{path} is empty: no SMILES to read") from None
        except csv.Error as err:
            raise ValueError(f"{path}: not a readable {fmt.upper()} file ({err})") from None
        j = _pick_column(header, rows, column, path)
        known = {c.strip().lower() for c in header} & set(_SMILES_COLUMNS)
        if column is None and not known and j < len(header) and to_mol(header[j].strip()) is not None:
            rows.insert(0, header)  # no header line: the first row is a molecule
            starts.insert(0, header_line)
        for lineno, row in zip(starts, rows):
            if not any(cell.strip() for cell in row):
                continue
            records.append((lineno, row[j].strip() if j < len(row) else ""))
    else:
        first = text_lines[0].split()
        start = 0
        if first and (first[0].lower() in _SMILES_COLUMNS or (column and column in first)):
            start = 1  # a header line
        for lineno, line in enumerate(text_lines[start:], start=start + 1):
            if not line.strip():
                continue
            records.append((lineno, line.split()[0]))
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


# ---------------------------------------------------------------------------- token cache
@dataclass
class TokenData:
    """Tokenized molecules: ``ids`` (N, seq_len), ``lengths`` (N,), ``index`` (N,) rows of the input kept."""

    ids: np.ndarray
    lengths: np.ndarray
    index: np.ndarray
    tokenizer: SelfiesTokenizer
    n_input: int
    n_failed: int
    key: str = ""

    def __len__(self) -> int:
        return len(self.ids)


def _hash_smiles(smiles: Sequence[str]) -> str:
    h = hashlib.sha256()
    for s in smiles:
        h.update(str(s).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def tokenize_file(
    smiles: Sequence[str],
    tokenizer: SelfiesTokenizer | None = None,
    max_length: int | None = None,
    cache: bool = True,
    n_jobs: int | None = None,
    progress: bool = True,
    mmap: bool = True,
) -> TokenData:
    """Tokenize a SMILES set once and cache the id arrays on disk (``.npy``, memory-mapped on load).

    The cache key hashes the SMILES list and the tokenizer (or ``max_length`` when the
    vocabulary is fitted here), so a changed input or vocabulary never reuses stale arrays.
    """
    smiles = list(smiles)
    data_key = _hash_smiles(smiles)
    tok_key = tokenizer.fingerprint() if tokenizer is not None else f"fit{max_length}"
    key = f"tok-{data_key}-{tok_key}"
    folder = cache_dir() / "tokens" / key
    if cache and (folder / "meta.json").exists():
        t0 = time.perf_counter()
        try:
            meta = json.loads((folder / "meta.json").read_text())
            mode = "r" if mmap else None
            data = TokenData(
                ids=np.load(folder / "ids.npy", mmap_mode=mode),
                lengths=np.load(folder / "lengths.npy"),
                index=np.load(folder / "index.npy"),
                tokenizer=SelfiesTokenizer.from_dict(meta["tokenizer"]),
                n_input=meta["n_input"],
                n_failed=meta["n_failed"],
                key=key,
            )
            logger.info("loaded %d tokenized molecules from %s in %.1fs", len(data), folder, time.perf_counter() - t0)
            return data
        except Exception as err:  # any damage to the cache means: rebuild it
            logger.warning("token cache %s unreadable (%s); rebuilding it", folder, err)
    standardize_input = tokenizer.standardize_input if tokenizer is not None else True
    results = tokenize_many(smiles, n_jobs=n_jobs, progress=progress, standardize_input=standardize_input)
    token_lists = [t for t, _ in results]
    if tokenizer is None:
        tokenizer = SelfiesTokenizer.fit_tokens(token_lists, max_length)
    dtype = np.uint8 if tokenizer.vocab_size <= 256 else np.int16
    # encode in slices, so that only one slice exists as int64 ids at a time
    ids, lengths, index, failures = [], [], [], []
    step = 100_000
    for i in range(0, len(smiles), step):
        part = tokenizer.encode_tokens(token_lists[i : i + step], smiles[i : i + step], [r for _, r in results[i : i + step]])
        ids.append(part.ids.astype(dtype))
        lengths.append(part.lengths.astype(np.int16))
        index.append(part.index.astype(np.int64) + i)
        failures.append(part.failures.assign(index=part.failures["index"] + i))
    del token_lists, results
    failures_df = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=["index", "smiles", "reason"])
    data = TokenData(
        ids=np.concatenate(ids) if ids else np.zeros((0, tokenizer.seq_len), dtype),
        lengths=np.concatenate(lengths) if lengths else np.zeros(0, np.int16),
        index=np.concatenate(index) if index else np.zeros(0, np.int64),
        tokenizer=tokenizer,
        n_input=len(smiles),
        n_failed=len(failures_df),
        key=key,
    )
    if cache:
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "ids.npy", data.ids)
        np.save(tmp / "lengths.npy", data.lengths)
        np.save(tmp / "index.npy", data.index)
        failures_df.to_csv(tmp / "failures.csv", index=False)
        meta = {"n_input": data.n_input, "n_failed": data.n_failed, "tokenizer": tokenizer.to_dict()}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if folder.exists():  # a broken earlier cache
            import shutil

            shutil.rmtree(folder)
        os.replace(tmp, folder)  # atomic: readers see a whole cache or none
        logger.info("token cache written to %s", folder)
    return data


# ---------------------------------------------------------------------------- batching
class BucketBatchSampler:
    """Batches of indices whose molecules have similar lengths, in a seeded random order.

    Sorting inside shuffled windows of ``bucket_factor * batch_size`` keeps padding low
    while every epoch still sees a fresh mix.  With ``world_size > 1`` every global batch is
    split between the ranks (rank r takes rows r, r + world_size, ...), so N processes see
    the same global batches as one process would.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        bucket_factor: int = 50,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.bucket_factor = int(bucket_factor)
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        window = self.batch_size * self.bucket_factor
        out: list[np.ndarray] = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            for b in range(0, len(chunk), self.batch_size):
                batch = chunk[b : b + self.batch_size]
                if self.drop_last and len(batch) < self.batch_size:
                    continue
                out.append(batch)
        perm = rng.permutation(len(out))
        out = [out[i] for i in perm]
        if self.world_size > 1:
            out = [b[self.rank :: self.world_size] for b in out if len(b) >= self.world_size]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
