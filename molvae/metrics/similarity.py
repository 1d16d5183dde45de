"""The bulk similarity reductions of the MOSES metrics: nearest-neighbour Tanimoto (SNN),
the first two moments of Tanimoto over all pairs (IntDiv), and the cosine similarity of
count vectors (Frag, Scaf).

Tanimoto blocks come from :func:`molvae.chem.fingerprints.tanimoto_matrix` on unpacked
0/1 rows, chunk by chunk (torch, CPU or CUDA); the matrix product runs in the cheapest float
type that counts bit intersections exactly (float16 on CUDA, bfloat16 on a CPU with native
support when no row has more than 256 bits set, else float32).  Two empty fingerprints have
similarity 1, as in MOSES.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from molvae.chem.fingerprints import tanimoto_matrix
from molvae.metrics._common import nan, torch_threads

__all__ = ["matmul_dtype", "tanimoto_reduce", "snn_from_fps", "intdiv_from_fps", "cos_similarity"]

_BF16_EXACT = 256  # bfloat16 holds the integers 0..256 exactly
_CHUNKS = {"cpu": (256, 2048), "cuda": (2048, 8192)}  # default block shapes (query x reference rows)
_SMALL = 4_000_000  # query x reference pairs below which one torch thread is faster on CPU


def matmul_dtype(device, max_bits: int):
    """Cheapest float type that counts bit intersections of rows with <= ``max_bits`` bits exactly."""
    import torch  # heavy: imported by the code paths that need it

    from molvae.utils.device import native_bf16  # imports torch

    if device.type == "cuda":
        return torch.float16  # integers <= 2048 are exact; intersections <= 1024
    if max_bits <= _BF16_EXACT and native_bf16(device):
        return torch.bfloat16
    return torch.float32


def _unpack(packed: np.ndarray, device, dtype):
    import torch

    return torch.from_numpy(np.unpackbits(packed, axis=1)).to(device=device, dtype=dtype)


def _popcounts(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(packed, axis=1).sum(1) if len(packed) else np.zeros(0, int)


def tanimoto_reduce(
    query: np.ndarray,
    ref: np.ndarray | None = None,
    *,
    reduce: str = "max",
    device="cpu",
    q_chunk: int | None = None,
    r_chunk: int | None = None,
    dtype=None,
    desc: str = "tanimoto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-query aggregate of Tanimoto similarity against ``ref`` (packed uint8 fingerprints).

    ``reduce="max"`` returns the nearest-neighbour similarity per query row (float64);
    ``reduce="moments"`` returns (sum_j T_ij, sum_j T_ij^2) per query row.  With
    ``ref=None`` the query set is compared with itself, using the symmetry of T.
    Blocks are ``q_chunk x r_chunk`` (``q_chunk x q_chunk`` when symmetric); by default
    small on CPU (the temporaries of a block stay in cache) and large on CUDA.
    """
    import torch

    from molvae.utils.device import resolve_device  # imports torch

    if reduce not in ("max", "moments"):
        raise ValueError(f"unknown reduce {reduce!r}")
    dev = resolve_device(device)
    default_q, default_r = _CHUNKS["cuda" if dev.type == "cuda" else "cpu"]
    q_chunk, r_chunk = q_chunk or default_q, r_chunk or default_r
    symmetric = ref is None
    if symmetric:
        ref = query
    pq = _popcounts(query)
    pr = pq if symmetric else _popcounts(ref)
    dtype = dtype or matmul_dtype(dev, int(max(pq.max(initial=0), pr.max(initial=0))))
    nq, nr = len(query), len(ref)
    if reduce == "max":
        best = torch.zeros(nq, dtype=torch.float32, device=dev)
    else:
        s1 = torch.zeros(nq, dtype=torch.float64, device=dev)
        s2 = torch.zeros(nq, dtype=torch.float64, device=dev)
    if nq and nr:
        if symmetric:
            r_chunk = q_chunk
        q_starts = list(range(0, nq, q_chunk))
        qbits = [_unpack(query[i : i + q_chunk], dev, dtype) for i in q_starts]
        qcnt = [torch.from_numpy(pq[i : i + q_chunk]).to(dev, torch.float32) for i in q_starts]
        r_starts = list(range(0, nr, r_chunk))
        total = len(q_starts) * (len(q_starts) + 1) // 2 if symmetric else len(r_starts) * len(q_starts)
        bar = tqdm(total=total, desc=desc, disable=total < 50, mininterval=2)
        with torch.no_grad(), torch_threads(dev.type == "cpu" and nq * nr <= _SMALL):
            for jb, j in enumerate(r_starts):
                if symmetric:
                    rb, rcnt = qbits[jb], qcnt[jb]
                else:
                    rb = _unpack(ref[j : j + r_chunk], dev, dtype)
                    rcnt = torch.from_numpy(pr[j : j + r_chunk]).to(dev, torch.float32)
                for ib, i in enumerate(q_starts):
                    if symmetric and ib > jb:
                        continue
                    t = tanimoto_matrix(qbits[ib], rb, qcnt[ib], rcnt, empty=1.0)
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


def snn_from_fps(gen_fps: np.ndarray, ref_fps: np.ndarray | None, device="cpu", desc: str = "SNN") -> float:
    """Mean over ``gen_fps`` rows of the max Tanimoto similarity to ``ref_fps`` (NaN if either is empty)."""
    if len(gen_fps) == 0 or ref_fps is None or len(ref_fps) == 0:
        return nan()
    return float(np.mean(tanimoto_reduce(gen_fps, ref_fps, reduce="max", device=device, desc=desc)))


def intdiv_from_fps(fps: np.ndarray, ps: Sequence[int], device="cpu") -> dict[int, float]:
    """``{p: IntDiv_p}`` for p in {1, 2}: ``1 - mean_i (mean_j T_ij^p)^(1/p)``, self pairs included."""
    if any(p not in (1, 2) for p in ps):
        raise ValueError("internal_diversity supports p=1 and p=2")
    if len(fps) == 0:
        return {p: nan() for p in ps}
    s1, s2 = tanimoto_reduce(fps, None, reduce="moments", device=device, desc="IntDiv")
    n = len(fps)
    return {p: float(1 - np.mean(s1 / n)) if p == 1 else float(1 - np.mean(np.sqrt(s2 / n))) for p in ps}


def cos_similarity(ref: Mapping[str, int] | None, gen: Mapping[str, int] | None) -> float:
    """Cosine similarity of two count vectors given as dicts (NaN if either is empty)."""
    if not ref or not gen:
        return nan()
    keys = sorted(set(ref) | set(gen))
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))
