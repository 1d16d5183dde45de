"""The shared plumbing: the process pool, the atomic write, the LRU cache, the device resolver."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

import molvae.utils.parallel as parallel
from molvae.chem import canonical
from molvae.data import load_dataset
from molvae.utils.cache import LRUCache
from molvae.utils.device import resolve_device
from molvae.utils.io import atomic_path, atomic_write


def _canonical_chunk(chunk: list) -> list:
    return [canonical(s) for s in chunk]


def _die_in_a_worker(chunk: list) -> list:
    if parallel._IN_WORKER:
        os._exit(3)  # a worker killed mid-batch (out of memory, a signal)
    return [len(s) for s in chunk]


def test_chunked_map_keeps_order_and_matches_the_calling_process():
    smiles = load_dataset("zinc", "test")[:3001]
    serial = [canonical(s) for s in smiles]
    assert parallel.chunked_map(_canonical_chunk, smiles, n_jobs=2, min_chunk=100, max_chunk=250) == serial
    assert parallel.map_items(canonical, smiles, n_jobs=2, min_chunk=100) == serial
    assert parallel.chunked_map(_canonical_chunk, smiles, n_jobs=1) == serial
    assert parallel.chunked_map(_canonical_chunk, [], n_jobs=2) == []


def test_a_worker_that_dies_falls_back_to_the_calling_process(caplog):
    items = [f"C{'C' * (i % 9)}" for i in range(2000)]
    with caplog.at_level(logging.WARNING, logger="molvae.utils.parallel"):
        out = parallel.chunked_map(_die_in_a_worker, items, n_jobs=2, min_chunk=100)
    assert out == [len(s) for s in items]
    assert any("worker process died" in r.getMessage() for r in caplog.records)
    # the broken pool was dropped; the next call builds a working one
    assert parallel.map_items(canonical, ["OCC"] * 1000, n_jobs=2, min_chunk=100) == ["CCO"] * 1000


def test_default_jobs_follows_the_environment(monkeypatch):
    monkeypatch.setenv("MOLVAE_JOBS", "3")
    assert parallel.default_jobs() == 3
    monkeypatch.setenv("MOLVAE_JOBS", "many")
    assert parallel.default_jobs() == len(os.sched_getaffinity(0))


def test_atomic_write_replaces_only_a_whole_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as fh:
            fh.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary left behind
    with atomic_write(target) as fh:
        fh.write("smiles\nCCO\n")
    assert target.read_text() == "smiles\nCCO\n"
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(target, "a"):
            pass


def test_atomic_path_keeps_the_suffix_libraries_look_at(tmp_path):
    target = tmp_path / "sub" / "values.npz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".npz") and tmp.parent == target.parent
        np.savez(tmp, x=np.arange(3))
    with np.load(target) as f:
        assert f["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["values.npz"]


def test_lru_cache_evicts_the_least_recently_used():
    cache = LRUCache(2)
    cache.put("a", 1.0)
    cache.put("b", 2.0)
    assert cache.get("a") == 1.0  # "a" is now the most recent
    cache.put("c", 3.0)
    assert cache.get("b") is None and cache.get("a") == 1.0 and cache.get("c") == 3.0
    assert (cache.hits, cache.misses, len(cache)) == (3, 1, 2)


def test_resolve_device():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_submitted_chunks_come_back_in_order_while_the_caller_works():
    smiles = load_dataset("zinc", "test")[:2500]
    pending = parallel.submit_chunks(_canonical_chunk, smiles, n_jobs=2, min_chunk=200)
    mine = [canonical(s) for s in smiles[:100]]  # the calling process is free meanwhile
    assert pending() == [canonical(s) for s in smiles]
    assert mine == pending()[:100]
    small = parallel.submit_chunks(_canonical_chunk, smiles[:10], n_jobs=2)  # no pool: runs when asked
    assert small() == [canonical(s) for s in smiles[:10]]
    assert parallel.submit_chunks(_die_in_a_worker, ["CC"] * 1000, n_jobs=2, min_chunk=100)() == [2] * 1000
