"""MOSES distribution-learning metrics (Polykovskiy et al. 2020), computed the way the
MOSES reference implementation computes them.

``get_all_metrics(gen)`` returns validity, unique@k, novelty, IntDiv/IntDiv2, Filters,
and FCD/SNN/Frag/Scaf against the MOSES test and scaffold-test sets, plus Wasserstein
distances of logP, SA, QED and molecular weight against the test set.

Conventions (as in MOSES): invalid strings only count against ``valid``; every other
metric uses the valid generated molecules as canonical SMILES (duplicates kept, except
for unique@k and novelty).  unique@k looks at the first k *valid* molecules.  Fingerprints
are Morgan radius 2, 1024 bits.  Scaffolds with fewer than two rings are ignored, and
the ring filter rejects rings of eight or more atoms (MOSES ``len(ring) >= 8``).
IntDiv_p is MOSES's ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all ordered pairs, self
pairs included.

Reference statistics (ChemNet mean/covariance, packed fingerprints, fragment and
scaffold counts, property arrays) are computed once and cached as ``.npz`` under
``cache_dir()/metrics``; the MOSES training set used for novelty is cached there as
sorted 64-bit hashes of its canonical SMILES.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from rdkit import Chem, DataStructs, RDConfig, rdBase
from rdkit.Chem import Crippen, Descriptors, QED, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from tqdm.auto import tqdm

from molvae.chem import quiet_rdkit, to_mol
from molvae.utils.paths import cache_dir, data_dir

__all__ = [
    "ReferenceStats",
    "get_all_metrics",
    "metrics_table",
    "reference_stats",
    "fraction_valid",
    "fraction_unique",
    "novelty",
    "internal_diversity",
    "fraction_passes_filters",
    "mol_passes_filters",
    "snn",
    "frag_similarity",
    "scaffold_similarity",
    "fcd",
    "wasserstein_properties",
    "fingerprints",
]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
FP_RADIUS = 2
FP_BITS = 1024
PROPERTY_NAMES = ("logP", "SA", "QED", "weight")
NAMED_REFERENCES = {"test": "Test", "test_scaffolds": "TestSF"}
_ALL_PARTS = frozenset({"fp", "frag", "scaf", "props", "fcd"})
_FCD_PAD = 350  # ChemNet's trained padding length (fcd.utils DEFAULT_PAD_LEN)
_PARALLEL_MIN = 2000  # below this many molecules, work serially
_PROGRESS_MIN = 5000  # show a progress bar from this many items


# --------------------------------------------------------------------------- helpers


def _resolve_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return max(1, int(n_jobs))


def _init_worker() -> None:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def _map(func: Callable, items: Sequence, n_jobs: int | None, desc: str) -> list:
    """``[func(x) for x in items]``, in a process pool when large; order is kept."""
    jobs = _resolve_jobs(n_jobs)
    show = len(items) >= _PROGRESS_MIN
    if jobs <= 1 or len(items) < _PARALLEL_MIN:
        with quiet_rdkit():
            return [func(x) for x in tqdm(items, desc=desc, disable=not show, mininterval=2)]
    chunk = max(16, min(1000, len(items) // (jobs * 8)))
    with multiprocessing.get_context().Pool(jobs, initializer=_init_worker) as pool:
        it = pool.imap(func, items, chunksize=chunk)
        return list(tqdm(it, total=len(items), desc=desc, disable=not show, mininterval=2))


@contextlib.contextmanager
def _torch_threads(small: bool):
    """One torch thread for small workloads (thread start-up and barriers dominate there)."""
    import torch

    prev = torch.get_num_threads()
    if small and prev != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small and prev != 1:
            torch.set_num_threads(prev)


def _nan() -> float:
    return float("nan")


def _as_list(smiles: Iterable) -> list:
    if isinstance(smiles, (str, bytes)):
        raise TypeError("expected a list of SMILES, got a single string")
    return list(smiles)


_MORGAN = None


def _morgan():
    global _MORGAN
    if _MORGAN is None:
        _MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    return _MORGAN


def _fp_packed(mol: Chem.Mol) -> np.ndarray:
    return np.packbits(_morgan().GetFingerprintAsNumPy(mol).astype(np.uint8, copy=False))


_SASCORER = None


def _sascorer():
    """RDKit Contrib's ``sascorer``, imported on first use."""
    global _SASCORER
    if _SASCORER is None:
        path = os.path.join(RDConfig.RDContribDir, "SA_Score")
        if path not in sys.path:
            sys.path.append(path)
        _SASCORER = importlib.import_module("sascorer")
    return _SASCORER


def _properties(mol: Chem.Mol) -> tuple[float, float, float, float]:
    """(logP, SA, QED, weight) as in MOSES; NaN where RDKit fails."""
    out = []
    for fn in (Crippen.MolLogP, lambda m: _sascorer().calculateScore(m), QED.qed, Descriptors.MolWt):
        try:
            out.append(float(fn(mol)))
        except Exception:
            out.append(math.nan)
    return tuple(out)  # type: ignore[return-value]


def _fragments(mol: Chem.Mol) -> list[str]:
    """SMILES of the BRICS fragments (with dummy atoms), duplicates kept."""
    try:
        return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")
    except Exception:
        return []


def _scaffold(mol: Chem.Mol, min_rings: int = 2) -> str | None:
    """Bemis-Murcko scaffold SMILES, or None below ``min_rings`` rings."""
    try:
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
        smi = Chem.MolToSmiles(scaf)
    except Exception:
        return None
    if not smi or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return smi


# --------------------------------------------------------------------------- filters

_FILTERS: dict[str, list] = {}
_ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})


def _filter_patterns() -> list:
    """MCF + PAINS SMARTS from ``data_dir()/moses/filters`` as (query, pattern fingerprint),
    compiled once per process."""
    import csv

    folder = data_dir() / "moses" / "filters"
    key = str(folder)
    if key not in _FILTERS:
        smarts: list[str] = []
        with open(folder / "mcf.csv", newline="") as fh:
            smarts += [row["smarts"].strip() for row in csv.DictReader(fh)]
        with open(folder / "wehi_pains.csv", newline="") as fh:
            smarts += [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]
        patterns = []
        for s in smarts:
            p = Chem.MolFromSmarts(s)
            if p is None:
                logger.warning("skipping unparsable filter SMARTS %r", s)
            else:
                patterns.append((p, Chem.PatternFingerprint(p)))
        _FILTERS[key] = patterns
    return _FILTERS[key]


def mol_passes_filters(mol: Chem.Mol | str | None) -> bool:
    """MOSES ``mol_passes_filters``: no ring of >= 8 atoms, no charged atom, only
    C/N/S/O/F/Cl/Br/H, no MCF or PAINS match, and a non-empty SMILES round trip."""
    if not isinstance(mol, Chem.Mol):
        mol = to_mol(mol)
    if mol is None:
        return False
    if any(len(r) >= 8 for r in mol.GetRingInfo().AtomRings()):
        return False
    if any(a.GetFormalCharge() != 0 for a in mol.GetAtoms()):
        return False
    if any(a.GetSymbol() not in _ALLOWED_ATOMS for a in mol.GetAtoms()):
        return False
    h_mol = Chem.AddHs(mol)
    h_fp = Chem.PatternFingerprint(h_mol)
    # pattern fingerprints only screen out impossible matches (no false negatives)
    if any(DataStructs.AllProbeBitsMatch(pfp, h_fp) and h_mol.HasSubstructMatch(p) for p, pfp in _filter_patterns()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and to_mol(smiles) is not None


# --------------------------------------------------------------------------- per-molecule work


def _describe(smiles: object, parts: frozenset) -> dict | None:
    """Canonical SMILES plus the requested per-molecule features, or None if invalid."""
    mol = to_mol(smiles)
    if mol is None:
        return None
    try:
        canon = Chem.MolToSmiles(mol)
    except Exception:
        return None
    out: dict = {"smiles": canon}
    with quiet_rdkit():
        if "fp" in parts:
            out["fp"] = _fp_packed(mol)
        if "frag" in parts:
            out["frag"] = _fragments(mol)
        if "scaf" in parts:
            out["scaf"] = _scaffold(mol)
        if "props" in parts:
            out["props"] = _properties(mol)
        if "filters" in parts:
            try:
                out["filters"] = mol_passes_filters(mol)
            except Exception:
                out["filters"] = False
    return out


def _canonical_or_none(smiles: object) -> str | None:
    mol = to_mol(smiles)
    if mol is None:
        return None
    try:
        return Chem.MolToSmiles(mol)
    except Exception:
        return None


def _canonicalize(smiles: Sequence, n_jobs: int | None, desc: str = "canonicalize") -> list[str | None]:
    return _map(_canonical_or_none, smiles, n_jobs, desc)


def fingerprints(smiles: Sequence, n_jobs: int | None = None) -> np.ndarray:
    """Packed Morgan (r=2, 1024 bits) fingerprints of the valid molecules, shape (n, 128) uint8."""
    rows = [r for r in _map(partial(_describe, parts=frozenset({"fp"})), _as_list(smiles), n_jobs, "fingerprints") if r]
    return np.stack([r["fp"] for r in rows]) if rows else np.zeros((0, FP_BITS // 8), np.uint8)


# --------------------------------------------------------------------------- Tanimoto kernels

_BF16_OK: bool | None = None


def _matmul_dtype(device, max_bits: int):
    """Cheapest float type that counts bit intersections exactly on ``device``."""
    import torch

    global _BF16_OK
    if device.type == "cuda":
        return torch.float16  # integers <= 2048 are exact; intersections <= 1024
    if max_bits <= 256:  # bf16 holds integers <= 256 exactly
        if _BF16_OK is None:
            try:
                _BF16_OK = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
            except Exception:
                _BF16_OK = False
        if _BF16_OK:
            return torch.bfloat16
    return torch.float32


def _unpack(packed: np.ndarray, device, dtype):
    import torch

    return torch.from_numpy(np.unpackbits(packed, axis=1)).to(device=device, dtype=dtype)


def _tanimoto_block(q, r, qc, rc):
    """Tanimoto matrix (float32) of bit blocks ``q`` x ``r`` with popcounts ``qc``, ``rc``;
    0/0 (two empty fingerprints) counts as 1, as in MOSES."""
    import torch

    inter = torch.mm(q, r.T).float()
    denom = torch.add(qc[:, None], rc[None, :])
    denom.sub_(inter)
    inter.div_(denom)
    return inter.nan_to_num_(nan=1.0)


def _tanimoto_reduce(
    query: np.ndarray,
    ref: np.ndarray | None = None,
    *,
    reduce: str = "max",
    device: str = "cpu",
    q_chunk: int = 2048,
    r_chunk: int = 8192,
    dtype=None,
    desc: str = "tanimoto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-query aggregate of Tanimoto similarity against ``ref`` (packed uint8 fingerprints).

    ``reduce="max"`` returns the nearest-neighbour similarity per query row;
    ``reduce="moments"`` returns (sum_j T_ij, sum_j T_ij^2) per query row.  With
    ``ref=None`` the query set is compared with itself, using the symmetry of T.
    """
    import torch

    dev = torch.device(device)
    symmetric = ref is None
    if symmetric:
        ref = query
    pq = np.unpackbits(query, axis=1).sum(1) if len(query) else np.zeros(0, int)
    pr = pq if symmetric else (np.unpackbits(ref, axis=1).sum(1) if len(ref) else np.zeros(0, int))
    max_bits = int(max(pq.max(initial=0), pr.max(initial=0)))
    dtype = dtype or _matmul_dtype(dev, max_bits)
    nq, nr = len(query), len(ref)
    if reduce == "max":
        best = torch.zeros(nq, dtype=torch.float32, device=dev)
    elif reduce == "moments":
        s1 = torch.zeros(nq, dtype=torch.float64, device=dev)
        s2 = torch.zeros(nq, dtype=torch.float64, device=dev)
    else:
        raise ValueError(f"unknown reduce {reduce!r}")
    if nq == 0 or nr == 0:
        return best.cpu().numpy() if reduce == "max" else (s1.cpu().numpy(), s2.cpu().numpy())

    if symmetric:
        r_chunk = q_chunk
    q_starts = list(range(0, nq, q_chunk))
    qbits = [_unpack(query[i : i + q_chunk], dev, dtype) for i in q_starts]
    qcnt = [torch.from_numpy(pq[i : i + q_chunk]).to(dev, torch.float32) for i in q_starts]
    r_starts = list(range(0, nr, r_chunk))
    total = len(q_starts) * (len(q_starts) + 1) // 2 if symmetric else len(r_starts) * len(q_starts)
    bar = tqdm(total=total, desc=desc, disable=total < 50, mininterval=2)
    with torch.no_grad(), _torch_threads(dev.type == "cpu" and nq * nr <= 4_000_000):
        for jb, j in enumerate(r_starts):
            if symmetric:
                rb, rcnt = qbits[jb], qcnt[jb]
            else:
                rb = _unpack(ref[j : j + r_chunk], dev, dtype)
                rcnt = torch.from_numpy(pr[j : j + r_chunk]).to(dev, torch.float32)
            for ib, i in enumerate(q_starts):
                if symmetric and ib > jb:
                    continue
                t = _tanimoto_block(qbits[ib], rb, qcnt[ib], rcnt)
                rows = slice(i, i + t.shape[0])
                if reduce == "max":
                    best[rows] = torch.maximum(best[rows], t.amax(1))
                else:
                    off_diag = symmetric and ib != jb  # the transposed block belongs to rows j..
                    cols = slice(j, j + t.shape[1])
                    s1[rows] += t.sum(1, dtype=torch.float64)
                    if off_diag:
                        s1[cols] += t.sum(0, dtype=torch.float64)
                    t.mul_(t)
                    s2[rows] += t.sum(1, dtype=torch.float64)
                    if off_diag:
                        s2[cols] += t.sum(0, dtype=torch.float64)
                bar.update(1)
    bar.close()
    if reduce == "max":
        return best.cpu().numpy().astype(np.float64)
    return s1.cpu().numpy(), s2.cpu().numpy()


# --------------------------------------------------------------------------- ChemNet / FCD


def _chemnet_moments(smiles: Sequence[str], device: str = "cpu", batch_size: int = 512, chunk: int = 4096):
    """Mean and covariance of ChemNet activations (fcd package, padding 350)."""
    import warnings

    import fcd as fcd_pkg
    import torch

    n = len(smiles)
    if n < 2:
        logger.warning("can't compute FCD statistics for fewer than 2 molecules (got %d)", n)
        return None, None
    model = fcd_pkg.load_ref_model()
    short = [s for s in smiles if len(s) < _FCD_PAD]
    long_ = [s for s in smiles if len(s) >= _FCD_PAD]
    total = np.zeros(512, np.float64)
    outer = np.zeros((512, 512), np.float64)
    # long SMILES change the padding of a whole batch in fcd, so they go one at a time
    batches = [short[i : i + chunk] for i in range(0, len(short), chunk)] + [[s] for s in long_]
    with torch.no_grad(), warnings.catch_warnings(), _torch_threads(n <= 256):
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for batch in tqdm(batches, desc="ChemNet", disable=n < _PROGRESS_MIN, mininterval=2):
            act = fcd_pkg.get_predictions(model, batch, batch_size=batch_size, n_jobs=0, device=device)
            act = np.asarray(act, dtype=np.float64)
            total += act.sum(0)
            outer += act.T @ act
    mu = total / n
    sigma = (outer - n * np.outer(mu, mu)) / (n - 1)
    return mu, sigma


def _frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1-mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), via symmetric eigendecompositions."""
    try:  # one BLAS thread: 512x512 is small, and threads stall on a busy machine
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    except Exception:
        limit = contextlib.nullcontext()
    with limit:
        vals, vecs = np.linalg.eigh(sigma1)
        root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
        m = root1 @ sigma2 @ root1
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(d, 0.0)


# --------------------------------------------------------------------------- set statistics


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


def _compute_stats(
    smiles: Sequence, name: str, parts: Iterable[str], n_jobs: int | None, device: str, extra: Iterable[str] = ()
) -> tuple[ReferenceStats, list[dict]]:
    parts = frozenset(parts)
    wanted = (parts - {"fcd"}) | frozenset(extra)
    rows = [r for r in _map(partial(_describe, parts=wanted), _as_list(smiles), n_jobs, f"describe {name}") if r]
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
        stats.fcd_mu, stats.fcd_sigma = _chemnet_moments(stats.smiles, device=device)
    return stats, rows


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _env_tag() -> bytes:
    """Versions that change cached values (canonical SMILES, fragments, ChemNet)."""
    try:
        from importlib.metadata import version

        fcd_version = version("fcd")
    except Exception:
        fcd_version = "?"
    return f"rdkit={rdBase.rdkitVersion};fcd={fcd_version};v={CACHE_VERSION}".encode()


def _metrics_cache() -> Path:
    path = cache_dir() / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_smiles_file(path: Path) -> list[str]:
    import pandas as pd

    if path.suffix in {".smi", ".txt"} or path.name.endswith((".smi.gz", ".txt.gz")):
        df = pd.read_csv(path, header=None, sep=r"\s+", usecols=[0])
        return df.iloc[:, 0].astype(str).tolist()
    df = pd.read_csv(path)
    col = "SMILES" if "SMILES" in df.columns else df.columns[0]
    return df[col].astype(str).tolist()


def _named_path(name: str) -> Path:
    return data_dir() / "moses" / f"{name}.csv.gz"


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
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


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


def reference_stats(
    reference: str | os.PathLike | Sequence[str] = "test",
    *,
    name: str | None = None,
    max_reference: int | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    device: str = "cpu",
    cache: bool = True,
) -> ReferenceStats:
    """All reference statistics of a MOSES set name (``"test"``, ``"test_scaffolds"``),
    a SMILES file, or a list of SMILES; loaded from / saved to ``cache_dir()/metrics``.

    ``max_reference`` keeps a deterministic random subset (``seed``) of that many SMILES.
    """
    if isinstance(reference, ReferenceStats):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        path = _named_path(str(reference)) if str(reference) in NAMED_REFERENCES else Path(reference)
        if not path.exists():
            raise FileNotFoundError(f"reference {reference!r}: {path} not found")
        name = name or (str(reference) if str(reference) in NAMED_REFERENCES else path.name.split(".")[0])
        digest = _sha(path.read_bytes() + _env_tag())
        smiles: list | None = None
    else:
        smiles = _as_list(reference)
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
        smiles = _read_smiles_file(path)
    if max_reference and len(smiles) > max_reference:
        idx = np.sort(np.random.default_rng(seed).choice(len(smiles), size=max_reference, replace=False))
        smiles = [smiles[i] for i in idx]
    logger.info("computing reference statistics %r for %d molecules", name, len(smiles))
    stats, _ = _compute_stats(smiles, name, _ALL_PARTS, n_jobs, device)
    if stats.n < len(smiles):
        logger.warning("reference %r: %d of %d SMILES are invalid and ignored", name, len(smiles) - stats.n, len(smiles))
    if path_out is not None:
        _save_stats(stats, path_out, {"source": str(reference) if smiles is None else "list", "max_reference": max_reference, "seed": seed, "env": _env_tag().decode()})
        stats.cache_path = path_out
        logger.info("cached reference statistics %r in %s", name, path_out)
    return stats


def _ref_for(reference, parts: set[str], n_jobs, device, max_reference=None) -> ReferenceStats:
    """Named/file references go through the cache; plain lists compute only ``parts``."""
    if isinstance(reference, ReferenceStats):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return reference_stats(reference, n_jobs=n_jobs, device=device, max_reference=max_reference)
    smiles = _as_list(reference)
    if max_reference and len(smiles) > max_reference:
        idx = np.sort(np.random.default_rng(0).choice(len(smiles), size=max_reference, replace=False))
        smiles = [smiles[i] for i in idx]
    return _compute_stats(smiles, "reference", parts, n_jobs, device)[0]


# --------------------------------------------------------------------------- training set (novelty)

_TRAIN_MEMO: dict[str, np.ndarray] = {}


def _hash64(strings: Iterable[str]) -> np.ndarray:
    """Sorted unique 64-bit BLAKE2b hashes of ``strings``."""
    out = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in strings),
        dtype=np.uint64,
    )
    return np.unique(out)


def _canonical_train(smiles: list, n_jobs: int | None, sample: int = 20000) -> list[str]:
    """Canonical forms of ``smiles``; skips the work when a sample is already canonical."""
    if len(smiles) > sample:
        probe = smiles[:: max(1, len(smiles) // sample)]
        changed = sum(c != s for s, c in zip(probe, _canonicalize(probe, 1)))
        if changed == 0:
            logger.info("training set looks canonical (%d probed); using it as is", len(probe))
            return [s for s in smiles if isinstance(s, str) and s]
        logger.info("%d of %d probed training SMILES are not canonical for RDKit %s; canonicalizing all",
                    changed, len(probe), rdBase.rdkitVersion)
    return [c for c in _canonicalize(smiles, n_jobs, "canonicalize train") if c is not None]


def _train_hashes(train: str | os.PathLike | Sequence[str], n_jobs: int | None = None) -> np.ndarray:
    if isinstance(train, (str, os.PathLike)):
        path = _named_path("train") if str(train) == "moses" else Path(train)
        digest = _sha(path.read_bytes() + _env_tag())[:16]
        stem = "moses" if str(train) == "moses" else "".join(c if c.isalnum() else "_" for c in path.name.split(".")[0])
        cpath = _metrics_cache() / f"train-{stem}-{digest}-v{CACHE_VERSION}.npy"
        key = str(cpath)
        if key in _TRAIN_MEMO:
            return _TRAIN_MEMO[key]
        if cpath.exists():
            hashes = np.load(cpath, allow_pickle=False)
            logger.info("loaded %d training-set hashes from %s", len(hashes), cpath)
        else:
            logger.info("building canonical training set from %s", path)
            hashes = _hash64(_canonical_train(_read_smiles_file(path), n_jobs))
            tmp = cpath.with_name(cpath.name + f".tmp{os.getpid()}.npy")
            np.save(tmp, hashes)
            os.replace(tmp, cpath)
            logger.info("cached %d training-set hashes in %s", len(hashes), cpath)
        _TRAIN_MEMO[key] = hashes
        return hashes
    return _hash64(_canonical_train(_as_list(train), n_jobs))


def _novelty_from_canonical(canon: Iterable[str], train_hashes: np.ndarray) -> float:
    unique = _hash64(set(canon))
    if len(unique) == 0:
        return _nan()
    pos = np.searchsorted(train_hashes, unique)
    pos = np.minimum(pos, max(len(train_hashes) - 1, 0))
    seen = train_hashes[pos] == unique if len(train_hashes) else np.zeros(len(unique), bool)
    return float(1.0 - seen.mean())


# --------------------------------------------------------------------------- metrics on plain lists


def fraction_valid(gen: Sequence, n_jobs: int | None = None) -> float:
    """Fraction of entries RDKit parses into a non-empty molecule (NaN for an empty list)."""
    gen = _as_list(gen)
    if not gen:
        return _nan()
    canon = _canonicalize(gen, n_jobs, "validity")
    return sum(c is not None for c in canon) / len(gen)


def _unique_at(canon_valid: Sequence[str], k: int | None) -> float:
    if k is not None:
        if len(canon_valid) < k:
            logger.warning("unique@%d: only %d valid molecules; computing on those", k, len(canon_valid))
        canon_valid = canon_valid[:k]
    return len(set(canon_valid)) / len(canon_valid) if len(canon_valid) else _nan()


def fraction_unique(gen: Sequence, k: int | None = None, n_jobs: int | None = None) -> float:
    """unique@k: distinct canonical SMILES among the first ``k`` valid molecules (MOSES
    applies it after dropping invalid ones); all valid molecules when ``k`` is None."""
    canon = [c for c in _canonicalize(_as_list(gen), n_jobs, "unique") if c is not None]
    return _unique_at(canon, k)


def novelty(gen: Sequence, train: str | Sequence[str] = "moses", n_jobs: int | None = None) -> float:
    """Fraction of distinct valid generated molecules absent from the training set
    (``"moses"``, a SMILES file, or a list); both sides compared as canonical SMILES."""
    canon = [c for c in _canonicalize(_as_list(gen), n_jobs, "novelty") if c is not None]
    return _novelty_from_canonical(canon, _train_hashes(train, n_jobs))


def _intdiv_from_fps(fps: np.ndarray, ps: Sequence[int], device: str) -> dict[int, float]:
    if len(fps) == 0:
        return {p: _nan() for p in ps}
    s1, s2 = _tanimoto_reduce(fps, None, reduce="moments", device=device, desc="IntDiv")
    n = len(fps)
    out = {}
    for p in ps:
        if p == 1:
            out[p] = float(1 - np.mean(s1 / n))
        elif p == 2:
            out[p] = float(1 - np.mean(np.sqrt(s2 / n)))
        else:
            raise ValueError("internal_diversity supports p=1 and p=2")
    return out


def internal_diversity(gen: Sequence, p: int = 1, device: str = "cpu", n_jobs: int | None = None) -> float:
    """IntDiv_p = 1 - mean_i (mean_j T_ij^p)^(1/p) over the valid molecules (MOSES), p in {1, 2}."""
    return _intdiv_from_fps(fingerprints(gen, n_jobs), [p], device)[p]


def fraction_passes_filters(gen: Sequence, n_jobs: int | None = None) -> float:
    """Fraction of valid molecules passing ``mol_passes_filters`` (NaN when none are valid)."""
    rows = [r for r in _map(partial(_describe, parts=frozenset({"filters"})), _as_list(gen), n_jobs, "filters") if r]
    return float(np.mean([r["filters"] for r in rows])) if rows else _nan()


def _snn_from(gen_fps: np.ndarray, ref: ReferenceStats, device: str) -> float:
    if len(gen_fps) == 0 or ref.fps is None or len(ref.fps) == 0:
        return _nan()
    return float(np.mean(_tanimoto_reduce(gen_fps, ref.fps, reduce="max", device=device, desc=f"SNN {ref.name}")))


def snn(gen: Sequence, reference, device: str = "cpu", n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Mean over valid generated molecules of the max Tanimoto similarity to the reference."""
    ref = _ref_for(reference, {"fp"}, n_jobs, device, max_reference)
    return _snn_from(fingerprints(gen, n_jobs), ref, device)


def _cos_similarity(ref: Mapping[str, int] | None, gen: Mapping[str, int] | None) -> float:
    """Cosine similarity of two count vectors given as dicts (NaN if either is empty)."""
    if not ref or not gen:
        return _nan()
    keys = sorted(set(ref) | set(gen))
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))


def frag_similarity(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Cosine similarity of BRICS fragment count vectors (MOSES Frag)."""
    ref = _ref_for(reference, {"frag"}, n_jobs, "cpu", max_reference)
    return _cos_similarity(ref.frag, _compute_stats(_as_list(gen), "gen", {"frag"}, n_jobs, "cpu")[0].frag)


def scaffold_similarity(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Cosine similarity of Bemis-Murcko scaffold count vectors (>= 2 rings; MOSES Scaf)."""
    ref = _ref_for(reference, {"scaf"}, n_jobs, "cpu", max_reference)
    return _cos_similarity(ref.scaf, _compute_stats(_as_list(gen), "gen", {"scaf"}, n_jobs, "cpu")[0].scaf)


def _fcd_from(gen: ReferenceStats, ref: ReferenceStats) -> float:
    if gen.fcd_mu is None or ref.fcd_mu is None:
        return _nan()
    return _frechet_distance(gen.fcd_mu, gen.fcd_sigma, ref.fcd_mu, ref.fcd_sigma)


def fcd(gen: Sequence, reference, device: str = "cpu", n_jobs: int | None = None, max_reference: int | None = None) -> float:
    """Fréchet ChemNet Distance between the valid generated molecules and the reference."""
    ref = _ref_for(reference, {"fcd"}, n_jobs, device, max_reference)
    return _fcd_from(_compute_stats(_as_list(gen), "gen", {"fcd"}, n_jobs, device)[0], ref)


def _wasserstein_from(gen_props, ref_props) -> dict[str, float]:
    from scipy.stats import wasserstein_distance

    out = {}
    for k in PROPERTY_NAMES:
        g = gen_props[k][np.isfinite(gen_props[k])] if gen_props else np.zeros(0)
        r = ref_props[k][np.isfinite(ref_props[k])] if ref_props else np.zeros(0)
        out[k] = float(wasserstein_distance(r, g)) if len(g) and len(r) else _nan()
    return out


def wasserstein_properties(gen: Sequence, reference, n_jobs: int | None = None, max_reference: int | None = None) -> dict[str, float]:
    """Wasserstein-1 distances of logP, SA, QED and weight: ``{"logP": .., "SA": .., "QED": .., "weight": ..}``."""
    ref = _ref_for(reference, {"props"}, n_jobs, "cpu", max_reference)
    return _wasserstein_from(_compute_stats(_as_list(gen), "gen", {"props"}, n_jobs, "cpu")[0].props, ref.props)


# --------------------------------------------------------------------------- everything


def _resolve_references(reference) -> list[tuple[str, object]]:
    """[(label, reference)] from names, a SMILES list, ReferenceStats, or {label: ref}."""
    if isinstance(reference, Mapping):
        return list(reference.items())
    if isinstance(reference, ReferenceStats):
        return [("Test", reference)]
    if isinstance(reference, (str, os.PathLike)):
        reference = [reference]
    refs = list(reference)

    def is_ref(r) -> bool:
        return isinstance(r, (ReferenceStats, os.PathLike)) or (
            isinstance(r, str) and (r in NAMED_REFERENCES or (("." in r or os.sep in r) and os.path.isfile(r)))
        )

    if refs and all(is_ref(r) for r in refs):
        labels = [NAMED_REFERENCES.get(r) if isinstance(r, str) else None for r in refs]
        return [(lab or ("Test" if i == 0 else f"Test{i + 1}"), r) for i, (lab, r) in enumerate(zip(labels, refs))]
    return [("Test", refs)]


def get_all_metrics(
    gen: Sequence,
    reference=("test", "test_scaffolds"),
    train: str | Sequence[str] | None = "moses",
    k: int | Sequence[int] = (1000, 10000),
    n_jobs: int | None = None,
    device: str = "cpu",
    max_reference: int | None = None,
) -> dict[str, float]:
    """The MOSES metric suite for a list of generated SMILES.

    ``reference``: MOSES set names (``"test"`` -> ``/Test``, ``"test_scaffolds"`` ->
    ``/TestSF``), a list of SMILES (``/Test``), ReferenceStats, or ``{label: ref}``.
    Property distances (``logP/<label>`` etc.) use the first reference only, as in MOSES.
    ``train``: ``"moses"``, a SMILES list or file, or None to skip novelty.
    """
    gen = _as_list(gen)
    ks = [k] if isinstance(k, int) else list(k)
    refs = _resolve_references(reference)
    metrics: dict[str, float] = {}

    parts = _ALL_PARTS if refs else frozenset({"fp"})
    gen_stats, rows = _compute_stats(gen, "gen", parts, n_jobs, device, extra={"filters"})
    canon = gen_stats.smiles
    metrics["valid"] = len(canon) / len(gen) if gen else _nan()
    for kk in ks:
        metrics[f"unique@{kk}"] = _unique_at(canon, kk)
    if not canon:
        logger.warning("no valid molecules in the generated set; metrics are NaN")

    ref_stats = [
        (label, reference_stats(r, name=f"custom-{label}" if not isinstance(r, (str, os.PathLike)) else None,
                                max_reference=max_reference, n_jobs=n_jobs, device=device))
        for label, r in refs
    ]
    for label, ref in ref_stats:
        metrics[f"FCD/{label}"] = _fcd_from(gen_stats, ref)
        metrics[f"SNN/{label}"] = _snn_from(gen_stats.fps, ref, device)
        metrics[f"Frag/{label}"] = _cos_similarity(ref.frag, gen_stats.frag)
        metrics[f"Scaf/{label}"] = _cos_similarity(ref.scaf, gen_stats.scaf)
    intdiv = _intdiv_from_fps(gen_stats.fps, [1, 2], device)
    metrics["IntDiv"] = intdiv[1]
    metrics["IntDiv2"] = intdiv[2]
    metrics["Filters"] = float(np.mean([r["filters"] for r in rows])) if rows else _nan()
    if ref_stats:
        label, ref = ref_stats[0]
        for prop, value in _wasserstein_from(gen_stats.props, ref.props).items():
            metrics[f"{prop}/{label}"] = value
    if train is not None:
        metrics["novelty"] = _novelty_from_canonical(canon, _train_hashes(train, n_jobs)) if canon else _nan()
    return metrics


def metrics_table(results: Mapping[str, float] | Sequence[Mapping[str, float]]):
    """DataFrame indexed by metric with the mean, std (ddof=1) and count over runs (e.g. seeds)."""
    import pandas as pd

    if isinstance(results, Mapping):
        results = [results]
    df = pd.DataFrame(list(results), dtype=float)
    table = pd.DataFrame({"mean": df.mean(), "std": df.std(ddof=1), "n": df.count()})
    table.index.name = "metric"
    return table
