"""Where molvae finds its bundled data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "cache_dir", "pretrained_dir"]


def data_dir() -> Path:
    """The bundled ``data/`` folder (override with ``MOLVAE_DATA_DIR``)."""
    env = os.environ.get("MOLVAE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def cache_dir() -> Path:
    """Folder for derived files (token caches, reference statistics); ``MOLVAE_CACHE_DIR`` overrides
    the default ``~/.cache/molvae``. Created on first use."""
    env = os.environ.get("MOLVAE_CACHE_DIR")
    path = Path(env) if env else Path.home() / ".cache" / "molvae"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pretrained_dir() -> Path:
    """Folder of the models shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "pretrained"
