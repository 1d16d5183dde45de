"""The bundled datasets (MOSES splits, ZINC subsets, the constrained-optimization start set)."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pandas as pd

from molvae.utils.paths import data_dir

logger = logging.getLogger(__name__)

__all__ = ["DATASETS", "dataset_path", "load_dataset", "load_opt_logp"]

DATASETS: dict[tuple[str, str], str] = {
    ("moses", "train"): "moses/train.csv.gz",
    ("moses", "test"): "moses/test.csv.gz",
    ("moses", "test_scaffolds"): "moses/test_scaffolds.csv.gz",
    ("zinc", "valid"): "zinc/valid.txt.gz",
    ("zinc", "test"): "zinc/test.txt.gz",
    ("zinc", "opt_logp"): "zinc/opt.test.logP-SA",
}


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

