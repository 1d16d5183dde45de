"""Tokenized training sets, cached on disk under the molvae cache folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from molvae.utils.paths import cache_dir
from molvae.tokenizer import SelfiesTokenizer, failure_frame, tokenize_many

logger = logging.getLogger(__name__)

__all__ = ["TokenData", "tokenize_file", "hash_smiles"]

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


def hash_smiles(smiles: Sequence[str]) -> str:
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
    data_key = hash_smiles(smiles)
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
    failures_df = pd.concat(failures, ignore_index=True) if failures else failure_frame([])
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

