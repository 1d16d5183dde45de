"""Reference and training-set statistics and their disk cache (molvae.metrics.references)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from metrics_molecules import REF, TRAIN
from rdkit import Chem

from molvae.data import load_dataset
from molvae.metrics import references as R
from molvae.metrics.features import PROPERTY_NAMES


def _canon(smiles):
    return [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]


def test_reference_stats_cache_roundtrip(tmp_cache, monkeypatch):
    first = R.reference_stats(REF)
    assert not first.from_cache and first.n == len(REF)
    files = sorted((tmp_cache / "metrics").glob("ref-custom-*-v*.npz"))
    assert len(files) == 1 and first.cache_path == files[0]
    assert not [p for p in (tmp_cache / "metrics").iterdir() if ".tmp" in p.name]  # atomic write left nothing

    def boom(*args, **kwargs):
        raise AssertionError("recomputed instead of loading the cache")

    with monkeypatch.context() as m:
        m.setattr(R, "compute_stats", boom)
        second = R.reference_stats(REF)
    assert second.from_cache
    assert second.n == first.n
    np.testing.assert_array_equal(second.fps, first.fps)
    assert second.frag == first.frag and second.scaf == first.scaf
    for k in PROPERTY_NAMES:
        np.testing.assert_allclose(second.props[k], first.props[k])
    np.testing.assert_allclose(second.fcd_mu, first.fcd_mu)
    np.testing.assert_allclose(second.fcd_sigma, first.fcd_sigma)

    # another list or a subsample gets its own file; subsampling is deterministic
    sub1 = R.reference_stats(REF, max_reference=5, seed=3)
    sub2 = R.reference_stats(REF, max_reference=5, seed=3)
    assert sub1.n == 5 and not sub1.from_cache and sub2.from_cache
    np.testing.assert_array_equal(sub1.fps, sub2.fps)
    assert len(list((tmp_cache / "metrics").glob("ref-*.npz"))) == 2


def test_unreadable_cache_is_rebuilt(tmp_cache):
    first = R.reference_stats(REF[:4])
    first.cache_path.write_bytes(b"not an npz")
    again = R.reference_stats(REF[:4])
    assert not again.from_cache and again.n == 4
    assert R.reference_stats(REF[:4]).from_cache  # rewritten


def test_reference_stats_of_named_split_and_file(tmp_data, tmp_cache, tmp_path):
    named = R.reference_stats("test")
    assert named.name == "test" and named.n == len(REF)
    assert named.cache_path.name.startswith("ref-test-")
    path = tmp_path / "mine.smi"
    path.write_text("\n".join(f"{s} id{i}" for i, s in enumerate(REF[:6])) + "\nnot_a_smiles id6\n")
    from_file = R.reference_stats(path)
    assert from_file.name == "mine" and from_file.n == 6  # the invalid line is counted, then ignored
    np.testing.assert_array_equal(from_file.fps, named.fps[:6])
    with pytest.raises(FileNotFoundError):
        R.reference_stats(tmp_path / "missing.smi")


def test_compute_stats_parts_and_invalid_rows():
    stats, rows = R.compute_stats([*REF[:5], "xyz", None], "x", {"fp", "scaf"}, 1, extra={"filters"})
    assert stats.n == 5 and len(rows) == 5 and stats.smiles == _canon(REF[:5])
    assert stats.fps.shape == (5, 128) and stats.frag is None and stats.props is None and stats.fcd_mu is None
    assert all("filters" in r for r in rows)
    empty, _ = R.compute_stats(["xyz"], "x", {"fp", "props"}, 1)
    assert empty.n == 0 and empty.fps.shape == (0, 128) and all(len(v) == 0 for v in empty.props.values())


def test_subsample_is_deterministic_and_ordered():
    items = list(range(100))
    a = R.subsample(items, 10, seed=1)
    assert a == R.subsample(items, 10, seed=1) and a == sorted(a) and len(set(a)) == 10
    assert a != R.subsample(items, 10, seed=2)
    assert R.subsample(items, None) is items and R.subsample(items, 500) is items


def test_hash64_sorted_unique():
    h = R.hash64(["CCO", "CCN", "CCO"])
    assert h.dtype == np.uint64 and len(h) == 2 and np.all(h[:-1] < h[1:])
    assert np.array_equal(R.hash64(["CCN", "CCO"]), h)
    assert len(R.hash64([])) == 0


def test_train_hashes_are_of_canonical_smiles(tmp_cache, tmp_path):
    written_differently = [Chem.MolToSmiles(Chem.MolFromSmiles(s), doRandom=True, canonical=False) for s in TRAIN]
    expected = R.hash64(_canon(TRAIN))
    assert np.array_equal(R.train_hashes(written_differently + ["xyz"]), expected)
    path = tmp_path / "train.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("id,smiles\n" + "".join(f"{i},{s}\n" for i, s in enumerate(written_differently)))
    assert np.array_equal(R.train_hashes(path), expected)
    cached = list((tmp_cache / "metrics").glob("train-train-*.npy"))
    assert len(cached) == 1 and np.array_equal(np.load(cached[0]), expected)
    assert R.train_hashes(path) is R.train_hashes(path)  # kept in memory too


def test_train_hashes_of_a_large_canonical_set_skip_the_parse(monkeypatch):
    """A training set whose probed sample is canonical already is used as it is (not parsed
    molecule by molecule); a small one is always parsed."""
    from molvae.chem import molecules

    monkeypatch.setattr(R, "_TRAIN_PROBE", 500)  # the probe size, small for the test (20,000 in use)
    distinct = sorted(set(_canon(load_dataset("moses", "train", limit=300))))
    large = distinct * 10
    calls = []
    real = molecules.map_items
    monkeypatch.setattr(molecules, "map_items", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    assert np.array_equal(R.train_hashes(large, n_jobs=1), R.hash64(distinct))
    assert not calls
    written_differently = [Chem.MolToSmiles(Chem.MolFromSmiles(s), kekuleSmiles=True) for s in distinct]
    assert np.array_equal(R.train_hashes(written_differently, n_jobs=1), R.hash64(distinct))
    assert calls == [len(distinct)]
