"""Fixtures of the metrics tests: a private cache folder and a tiny MOSES-like data folder."""

from __future__ import annotations

import gzip
import shutil

import pytest
from metrics_molecules import REF, TEST_SCAFFOLDS, TRAIN

from molvae.utils.paths import data_dir


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("MOLVAE_CACHE_DIR", str(path))
    return path


@pytest.fixture
def tmp_data(tmp_path, monkeypatch):
    """A data dir with tiny MOSES-like files (the real filter SMARTS copied)."""
    root = tmp_path / "data"
    (root / "moses").mkdir(parents=True)
    shutil.copytree(data_dir() / "moses" / "filters", root / "moses" / "filters")
    for name, smiles in [("train", TRAIN), ("test", REF), ("test_scaffolds", TEST_SCAFFOLDS)]:
        with gzip.open(root / "moses" / f"{name}.csv.gz", "wt") as fh:
            fh.write("SMILES\n" + "\n".join(smiles) + "\n")
    monkeypatch.setenv("MOLVAE_DATA_DIR", str(root))
    return root
