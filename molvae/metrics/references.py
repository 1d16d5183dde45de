"""Statistics of a reference set (ChemNet moments, packed fingerprints, fragment and scaffold
counts, property arrays) and of a training set (hashes of its canonical SMILES, for novelty),
computed once and cached under ``cache_dir()/metrics``.

Cache files are named by the set, a digest of its contents and of the versions that change
the values (RDKit, fcd, ``CACHE_VERSION``), and the subsample: ``ref-<name>-<digest>[-n<k>-s<seed>]-v1.npz``
and ``train-<name>-<digest>-v1.npy`` (sorted unique 64-bit BLAKE2b hashes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from rdkit import rdBase

from molvae.chem import canonical_many
from molvae.data.datasets import dataset_path, load_dataset
from molvae.data.readers import read_smiles
from molvae.metrics._common import PROGRESS_MIN, as_list
from molvae.metrics.chemnet import chemnet_moments
from molvae.metrics.features import FP_BITS, PROPERTY_NAMES, describe_many
from molvae.utils.io import atomic_write
from molvae.utils.paths import cache_dir

__all__ = [
    "CACHE_VERSION",
    "NAMED_REFERENCES",
    "ALL_PARTS",
    "ReferenceStats",
    "compute_stats",
    "reference_stats",
    "ref_for",
    "subsample",
    "hash64",
    "train_hashes",
]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
NAMED_REFERENCES = {"test": "Test", "test_scaffolds": "TestSF"}  # MOSES split -> metric label
ALL_PARTS = frozenset({"fp", "frag", "scaf", "props", "fcd"})
_TRAIN_PROBE = 20000  # training SMILES probed before trusting a set to be canonical already


@dataclass
class ReferenceStats:
    """Statistics of a molecule set; fields not computed are None."""

    name: str
    n: int
    fps: np.ndarray | None = None  # (n, 128) packed Morgan bits
    frag: Counter | None = None
    scaf: Counter | None = None
    props: dict[str, np.ndarray] | None = None
    fcd_mu: np.ndarray | None = None
    fcd_sigma: np.ndarray | None = None
    smiles: list[str] | None = field(default=None, repr=False)  # canonical; not cached
    from_cache: bool = False
    cache_path: Path | None = None


def compute_stats(
    smiles: Sequence, name: str, parts: Iterable[str], n_jobs: int | None, device="cpu", extra: Iterable[str] = ()
) -> tuple[ReferenceStats, list[dict]]:
    """Statistics ``parts`` (fp, frag, scaf, props, fcd) of the valid molecules of ``smiles``,
    and the per-molecule rows (with the ``extra`` features too)."""
    parts = frozenset(parts)
    rows = describe_many(smiles, (parts - {"fcd"}) | frozenset(extra), n_jobs, f"describe {name}")
    stats = ReferenceStats(name=name, n=len(rows), smiles=[r["smiles"] for r in rows])
    if "fp" in parts:
        stats.fps = np.stack([r["fp"] for r in rows]) if rows else np.zeros((0, FP_BITS // 8), np.uint8)
    if "frag" in parts:
        stats.frag = Counter()
        for r in rows:
            stats.frag.update(r["frag"])
    if "scaf" in parts:
        stats.scaf = Counter(r["scaf"] for r in rows if r["scaf"] is not None)
    if "props" in parts:
        arr = np.array([r["props"] for r in rows], dtype=np.float64).reshape(len(rows), len(PROPERTY_NAMES))
        stats.props = {k: arr[:, i] for i, k in enumerate(PROPERTY_NAMES)}
    if "fcd" in parts:
        stats.fcd_mu, stats.fcd_sigma = chemnet_moments(stats.smiles, device=device)
    return stats, rows


def subsample(smiles: list, max_reference: int | None, seed: int = 0) -> list:
    """A deterministic random subset of ``max_reference`` SMILES, in their order (all when fewer)."""
    if not max_reference or len(smiles) <= max_reference:
        return smiles
    idx = np.sort(np.random.default_rng(seed).choice(len(smiles), size=max_reference, replace=False))
    return [smiles[i] for i in idx]


# --------------------------------------------------------------------------- cache files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _env_tag() -> bytes:
    """Versions that change cached values (canonical SMILES, fragments, ChemNet)."""
    try:
        fcd_version = version("fcd")
    except PackageNotFoundError:
        fcd_version = "?"
    return f"rdkit={rdBase.rdkitVersion};fcd={fcd_version};v={CACHE_VERSION}".encode()


def _metrics_cache() -> Path:
    path = cache_dir() / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _source_path(source: str | os.PathLike, named: bool) -> Path:
    """The file of a MOSES split name (``named``) or of a path; FileNotFoundError when missing."""
    if named:
        return dataset_path("moses", str(source))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{source!r}: {path} not found")
    return path


def _source_smiles(source: str | os.PathLike, path: Path, named: bool) -> list[str]:
    """SMILES of a MOSES split or a file, unvalidated (invalid ones are counted where used)."""
    return load_dataset("moses", str(source)) if named else list(read_smiles(path, validate=False))


def _encode_keys(keys: Sequence[str]) -> np.ndarray:
    return np.frombuffer("\n".join(keys).encode(), dtype=np.uint8)


def _decode_keys(blob: np.ndarray, n: int) -> list[str]:
    return blob.tobytes().decode().split("\n") if n else []


def _save_stats(stats: ReferenceStats, path: Path, meta: dict) -> None:
    frag_keys = list(stats.frag)
    scaf_keys = list(stats.scaf)
    has_fcd = stats.fcd_mu is not None
    arrays = {
        "meta": np.array(json.dumps({**meta, "n": stats.n, "name": stats.name, "has_fcd": has_fcd})),
        "fps": stats.fps,
        "frag_keys": _encode_keys(frag_keys),
        "frag_counts": np.array([stats.frag[k] for k in frag_keys], dtype=np.int64),
        "scaf_keys": _encode_keys(scaf_keys),
        "scaf_counts": np.array([stats.scaf[k] for k in scaf_keys], dtype=np.int64),
        "fcd_mu": stats.fcd_mu if has_fcd else np.zeros(0),
        "fcd_sigma": stats.fcd_sigma if has_fcd else np.zeros((0, 0)),
    }
    for k in PROPERTY_NAMES:
        arrays[f"prop_{k}"] = stats.props[k]
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays)


def _load_stats(path: Path) -> ReferenceStats:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        fk = _decode_keys(z["frag_keys"], len(z["frag_counts"]))
        sk = _decode_keys(z["scaf_keys"], len(z["scaf_counts"]))
        return ReferenceStats(
            name=meta["name"],
            n=int(meta["n"]),
            fps=z["fps"],
            frag=Counter(dict(zip(fk, z["frag_counts"].tolist()))),
            scaf=Counter(dict(zip(sk, z["scaf_counts"].tolist()))),
            props={k: z[f"prop_{k}"] for k in PROPERTY_NAMES},
            fcd_mu=z["fcd_mu"] if meta["has_fcd"] else None,
            fcd_sigma=z["fcd_sigma"] if meta["has_fcd"] else None,
            from_cache=True,
            cache_path=path,
        )


# --------------------------------------------------------------------------- reference sets


def reference_stats(
    reference: str | os.PathLike | Sequence[str] = "test",
    *,
    name: str | None = None,
    max_reference: int | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    device="cpu",
    cache: bool = True,
) -> ReferenceStats:
    """All reference statistics of a MOSES set name (``"test"``, ``"test_scaffolds"``),
    a SMILES file, or a list of SMILES; loaded from / saved to ``cache_dir()/metrics``.

    ``max_reference`` keeps a deterministic random subset (``seed``) of that many SMILES.
    """
    if isinstance(reference, ReferenceStats):
        return reference
    path: Path | None = None
    if isinstance(reference, (str, os.PathLike)):
        named = str(reference) in NAMED_REFERENCES
        path = _source_path(reference, named)
        name = name or (str(reference) if named else path.name.split(".")[0])
        digest = _sha(path.read_bytes() + _env_tag())
        smiles: list | None = None
    else:
        smiles = as_list(reference)
        name = name or "custom"
        digest = _sha("\n".join(map(str, smiles)).encode() + b"\0" + _env_tag())
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    sub = f"-n{max_reference}-s{seed}" if max_reference else ""
    path_out = _metrics_cache() / f"ref-{safe}-{digest[:16]}{sub}-v{CACHE_VERSION}.npz" if cache else None
    if path_out is not None and path_out.exists():
        try:
            stats = _load_stats(path_out)
            logger.info("loaded reference statistics %r (%d molecules) from %s", name, stats.n, path_out)
            return stats
        except Exception as exc:  # corrupt or old file: rebuild
            logger.warning("ignoring unreadable cache %s (%s)", path_out, exc)
    if smiles is None:
        smiles = _source_smiles(reference, path, named)
    smiles = subsample(smiles, max_reference, seed)
    logger.info("computing reference statistics %r for %d molecules", name, len(smiles))
    stats, _ = compute_stats(smiles, name, ALL_PARTS, n_jobs, device)
    if stats.n < len(smiles):
        logger.warning("reference %r: %d of %d SMILES are invalid and ignored", name, len(smiles) - stats.n, len(smiles))
    if path_out is not None:
        meta = {"source": "list" if path is None else str(reference), "max_reference": max_reference, "seed": seed}
        _save_stats(stats, path_out, {**meta, "env": _env_tag().decode()})
        stats.cache_path = path_out
        logger.info("cached reference statistics %r in %s", name, path_out)
    return stats


def ref_for(reference, parts: Iterable[str], n_jobs: int | None, device="cpu", max_reference: int | None = None) -> ReferenceStats:
    """Named/file references go through the cache; plain lists compute only ``parts``."""
    if isinstance(reference, ReferenceStats):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return reference_stats(reference, n_jobs=n_jobs, device=device, max_reference=max_reference)
    return compute_stats(subsample(as_list(reference), max_reference), "reference", parts, n_jobs, device)[0]


# --------------------------------------------------------------------------- training set (novelty)

_TRAIN_MEMO: dict[str, np.ndarray] = {}


def hash64(strings: Iterable[str]) -> np.ndarray:
    """Sorted unique 64-bit BLAKE2b hashes of ``strings``."""
    out = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in strings),
        dtype=np.uint64,
    )
    return np.unique(out)


def _canonical_hashes(smiles: list, n_jobs: int | None) -> np.ndarray:
    """hash64 of the canonical forms of the parsable ``smiles`` (used as they are when a probe
    of ``_TRAIN_PROBE`` of them is canonical already)."""
    canon = canonical_many(smiles, n_jobs=n_jobs, probe=_TRAIN_PROBE, progress=len(smiles) >= PROGRESS_MIN)
    return hash64(c for c in canon if c)


def train_hashes(train: str | os.PathLike | Sequence[str], n_jobs: int | None = None) -> np.ndarray:
    """hash64 of the canonical training set: ``"moses"`` (MOSES train), a SMILES file (both cached
    on disk and in memory), or a list of SMILES."""
    if not isinstance(train, (str, os.PathLike)):
        return _canonical_hashes(as_list(train), n_jobs)
    named = str(train) == "moses"
    path = _source_path("train" if named else train, named)
    digest = _sha(path.read_bytes() + _env_tag())[:16]
    stem = "moses" if named else "".join(c if c.isalnum() else "_" for c in path.name.split(".")[0])
    cpath = _metrics_cache() / f"train-{stem}-{digest}-v{CACHE_VERSION}.npy"
    key = str(cpath)
    if key in _TRAIN_MEMO:
        return _TRAIN_MEMO[key]
    if cpath.exists():
        hashes = np.load(cpath, allow_pickle=False)
        logger.info("loaded %d training-set hashes from %s", len(hashes), cpath)
    else:
        logger.info("building canonical training set from %s", path)
        hashes = _canonical_hashes(_source_smiles("train" if named else train, path, named), n_jobs)
        with atomic_write(cpath, "wb") as fh:
            np.save(fh, hashes)
        logger.info("cached %d training-set hashes in %s", len(hashes), cpath)
    _TRAIN_MEMO[key] = hashes
    return hashes
