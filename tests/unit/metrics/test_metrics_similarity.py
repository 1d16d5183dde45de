"""Bulk Tanimoto and count-vector reductions of the metrics (molvae.metrics.similarity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_molecules import GEN, REF, naive_fps
from rdkit import DataStructs

from molvae.data import load_dataset
from molvae.metrics import similarity as S
from molvae.metrics.features import fingerprints
from molvae.utils.device import native_bf16


def _naive_tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = a.astype(float) @ b.T.astype(float)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


@pytest.fixture(scope="module")
def zinc_fps():
    return fingerprints(load_dataset("zinc", "test", limit=400), n_jobs=1)


@pytest.mark.parametrize("dense", [False, True])
def test_tanimoto_reduce_chunking(dense):
    rng = np.random.default_rng(1)
    p = 0.5 if dense else 0.04  # dense rows exceed 256 bits -> float32 path
    q = (rng.random((150, 1024)) < p).astype(np.uint8)
    r = (rng.random((230, 1024)) < p).astype(np.uint8)
    q[0] = 0
    r[0] = 0  # empty vs empty counts as similarity 1 (MOSES)
    qp, rp = np.packbits(q, axis=1), np.packbits(r, axis=1)
    best = S.tanimoto_reduce(qp, rp, reduce="max", q_chunk=40, r_chunk=64)
    np.testing.assert_allclose(best, _naive_tanimoto(q, r).max(1), rtol=1e-6)
    assert best[0] == 1.0
    ts = _naive_tanimoto(q, q)
    s1, s2 = S.tanimoto_reduce(qp, None, reduce="moments", q_chunk=32)
    np.testing.assert_allclose(s1, ts.sum(1), rtol=1e-5)
    np.testing.assert_allclose(s2, (ts**2).sum(1), rtol=1e-5)


def test_tanimoto_reduce_default_blocks_match_rdkit(zinc_fps):
    fps = naive_fps(load_dataset("zinc", "test", limit=400))
    expected = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    s1, s2 = S.tanimoto_reduce(zinc_fps, None, reduce="moments")
    np.testing.assert_allclose(s1, expected.sum(1), rtol=1e-6)
    np.testing.assert_allclose(s2, (expected**2).sum(1), rtol=1e-6)
    nn = S.tanimoto_reduce(zinc_fps[:100], zinc_fps[100:], reduce="max")
    np.testing.assert_allclose(nn, expected[:100, 100:].max(1), rtol=1e-6)
    assert nn.dtype == np.float64 and nn.shape == (100,)


def test_matmul_dtype_counts_exactly():
    cpu = torch.device("cpu")
    assert S.matmul_dtype(torch.device("cuda"), 1024) is torch.float16
    assert S.matmul_dtype(cpu, 257) is torch.float32  # bf16 is exact up to 256 only
    assert S.matmul_dtype(cpu, 256) is (torch.bfloat16 if native_bf16(cpu) else torch.float32)


def test_bfloat16_and_float32_give_identical_similarities(zinc_fps):
    """Real ZINC fingerprints (< 256 bits set) counted in bf16 equal the float32 result exactly."""
    assert np.unpackbits(zinc_fps, axis=1).sum(1).max() <= 256
    a = S.tanimoto_reduce(zinc_fps[:150], zinc_fps[150:], reduce="max", dtype=torch.bfloat16)
    b = S.tanimoto_reduce(zinc_fps[:150], zinc_fps[150:], reduce="max", dtype=torch.float32)
    np.testing.assert_array_equal(a, b)


def test_tanimoto_reduce_empty_inputs_and_bad_reduce():
    empty = np.zeros((0, 128), np.uint8)
    some = np.packbits(np.eye(8, 1024, dtype=np.uint8), axis=1)
    assert S.tanimoto_reduce(empty, some).shape == (0,)
    np.testing.assert_array_equal(S.tanimoto_reduce(some, empty), np.zeros(8))
    s1, s2 = S.tanimoto_reduce(empty, None, reduce="moments")
    assert s1.shape == s2.shape == (0,)
    with pytest.raises(ValueError, match="unknown reduce"):
        S.tanimoto_reduce(some, some, reduce="mean")


def test_snn_and_intdiv_from_fps_match_naive():
    gen, ref = fingerprints(GEN), fingerprints(REF)
    gen_n, ref_n = naive_fps(GEN), naive_fps(REF)
    expected = np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref_n)) for f in gen_n])
    assert S.snn_from_fps(gen, ref) == pytest.approx(expected, abs=1e-6)
    assert math.isnan(S.snn_from_fps(gen, None)) and math.isnan(S.snn_from_fps(gen[:0], ref))
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, gen_n) for f in gen_n])
    got = S.intdiv_from_fps(gen, [1, 2])
    assert got[1] == pytest.approx(1 - sims.mean(), abs=1e-6)
    assert got[2] == pytest.approx(1 - np.mean(np.sqrt((sims**2).mean(1))), abs=1e-6)
    assert all(math.isnan(v) for v in S.intdiv_from_fps(gen[:0], [1, 2]).values())
    # one molecule repeated: every pair is identical, no diversity
    assert S.intdiv_from_fps(np.repeat(gen[:1], 5, axis=0), [1, 2]) == pytest.approx({1: 0.0, 2: 0.0}, abs=1e-7)


def test_cos_similarity_of_count_dicts():
    assert S.cos_similarity({"a": 1, "b": 1}, {"a": 1, "c": 1}) == pytest.approx(0.5)
    assert S.cos_similarity({"a": 3}, {"a": 1}) == pytest.approx(1.0)  # scale-free
    assert S.cos_similarity({"a": 1}, {"b": 2}) == 0.0
    assert math.isnan(S.cos_similarity({}, {"a": 1})) and math.isnan(S.cos_similarity(None, {"a": 1}))
