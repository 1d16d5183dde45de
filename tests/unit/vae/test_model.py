"""Tests for molvae.vae.model: shapes, decoding, the user API and checkpoint files.

Everything runs on an untrained tiny model (seconds on one CPU thread).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY_MODEL, masked_log_probs, sequence_log_prob, zinc  # noqa: F401

from molvae.chem import standardize, to_mol
from molvae.tokenizer import SelfiesTokenizer
from molvae.vae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from molvae.vae.model import MolVAE


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenizer() -> SelfiesTokenizer:
    tok = SelfiesTokenizer.fit(zinc(100), progress=False)
    assert "[Se]" not in tok.stoi  # used below as an out-of-vocabulary atom
    return tok


@pytest.fixture(scope="module")
def model(tokenizer) -> MolVAE:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return MolVAE(tokenizer, TINY_MODEL).eval()


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer.encode(zinc(6))
    assert len(enc) == 6
    return torch.as_tensor(enc.ids), torch.as_tensor(enc.lengths)


@pytest.fixture(scope="module")
def ckpt_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    model.save(path)
    return path


def _z(n: int, seed: int = 1, d: int = TINY_MODEL.latent_dim) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _logits(m: MolVAE, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return m(ids, lengths, sample_z=False)["logits"]


# ----------------------------------------------------------------------------- forward
def test_forward_shapes(model, batch, tokenizer):
    ids, lengths = batch
    t = int(lengths.max())
    v, d = tokenizer.vocab_size, TINY_MODEL.latent_dim
    with torch.no_grad():
        out = model(ids, lengths)
    assert out["logits"].shape == (6, t - 1, v)
    assert out["targets"].shape == (6, t - 1)
    assert torch.equal(out["targets"], ids[:, 1:t])
    for k in ("mu", "logvar", "z"):
        assert out[k].shape == (6, d)
    with torch.no_grad():
        det = model(ids, lengths, sample_z=False)
    assert torch.equal(det["z"], det["mu"])
    assert model.config.vocab_size == v and model.config.max_length == tokenizer.max_length


def test_encoder_ignores_padding_and_batch_composition(model, batch):
    """Packed sequences: extra padding columns and batch neighbours do not change a posterior."""
    ids, lengths = batch
    with torch.no_grad():
        mu, logvar = model.encode_ids(ids, lengths)
        wide = torch.cat([ids, torch.zeros(6, 7, dtype=ids.dtype)], dim=1)
        mu2, logvar2 = model.encode_ids(wide, lengths)
        mu_one, _ = model.encode_ids(ids[2:3, : int(lengths[2])], lengths[2:3])
    assert torch.allclose(mu, mu2, atol=1e-6) and torch.allclose(logvar, logvar2, atol=1e-6)
    assert torch.allclose(mu[2:3], mu_one, atol=1e-6)


# ----------------------------------------------------------------------------- generation
def _check_rows(ids: torch.Tensor, tok: SelfiesTokenizer):
    atom = torch.as_tensor(tok.atom_token_mask())
    for row in ids.tolist():
        assert row[0] == tok.bos_id
        assert atom[row[1]], f"first token {tok.itos[row[1]]} places no atom"
        assert tok.eos_id in row, "row without <eos>"
        end = row.index(tok.eos_id)
        assert all(i == tok.pad_id for i in row[end + 1 :]), "tokens after <eos>"
        body = row[1:end]
        assert all(i not in (tok.pad_id, tok.bos_id, tok.unk_id, tok.eos_id) for i in body)
        assert len(body) <= tok.max_length


def test_greedy_is_deterministic_and_rows_are_well_formed(model, tokenizer):
    z = _z(16)
    a, nll_a = model.generate(z)
    b, nll_b = model.generate(z)
    assert torch.equal(a, b) and torch.equal(nll_a, nll_b)
    _check_rows(a, tokenizer)
    assert a.shape == (16, tokenizer.max_length + 2)


def test_sampling_is_reproducible_with_a_generator(model, tokenizer):
    z = _z(16)
    a, _ = model.generate(z, method="sample", generator=torch.Generator().manual_seed(5))
    b, _ = model.generate(z, method="sample", generator=torch.Generator().manual_seed(5))
    c, _ = model.generate(z, method="sample", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    _check_rows(a, tokenizer)
    _check_rows(c, tokenizer)
    hot, _ = model.generate(z, method="sample", temperature=3.0, generator=torch.Generator().manual_seed(5))
    _check_rows(hot, tokenizer)


def test_generate_nll_is_the_teacher_forced_likelihood(model):
    z = _z(8)
    for method, gen in (("greedy", None), ("sample", torch.Generator().manual_seed(0))):
        ids, nll = model.generate(z, method=method, generator=gen)
        assert torch.allclose(-sequence_log_prob(model, z, ids), nll, rtol=1e-4, atol=1e-3)
        assert torch.isfinite(nll).all() and (nll > 0).all()


def test_generate_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="decoding method"):
        model.generate(_z(2), method="nucleus")
    with pytest.raises(ValueError, match="temperature"):
        model.generate(_z(2), method="sample", temperature=0.0)


def test_short_max_length_still_ends_with_eos(model, tokenizer):
    ids, _ = model.generate(_z(8), max_length=3)
    assert ids.shape == (8, 5)
    _check_rows(ids, tokenizer)


def test_untrained_model_samples_are_all_valid_and_seeded(model):
    df = model.sample(200, seed=0, progress=False, faithful=False)
    assert len(df) == 200
    assert list(df.columns) == ["smiles", "selfies", "valid", "faithful", "nll"]
    assert df.valid.all()
    assert all(to_mol(s) is not None for s in df.smiles)
    again = model.sample(200, seed=0, progress=False, faithful=False)
    pd.testing.assert_frame_equal(df, again)
    other = model.sample(200, seed=1, progress=False, faithful=False)
    assert other.smiles.tolist() != df.smiles.tolist()


@torch.no_grad()
def test_a_two_layer_decoder_generates_what_it_scores(tokenizer):
    """decoder_layers=2 (the default size): each layer starts from its own part of z's projection, and
    the step-by-step decoders (rows leaving the batch, both layers' states) agree with teacher forcing."""
    torch.manual_seed(0)
    m = MolVAE(tokenizer, dataclasses.replace(TINY_MODEL, decoder_layers=2, decoder_dropout=0.2)).eval()
    assert m.decoder.num_layers == 2
    z = _z(12, seed=4)
    h = m.init_hidden(z)
    assert h.shape == (2, 12, TINY_MODEL.decoder_hidden_dim) and not torch.allclose(h[0], h[1])
    for method, gen in (("greedy", None), ("sample", torch.Generator().manual_seed(1))):
        ids, nll = m.generate(z, method=method, generator=gen)
        assert torch.allclose(-sequence_log_prob(m, z, ids), nll, rtol=1e-4, atol=1e-3), method
    greedy, _ = m.generate(z)
    assert torch.equal(m.beam_search(z, beam_width=1), greedy)
    lengths = (greedy != tokenizer.pad_id).sum(dim=1)
    assert lengths.min() < lengths.max()  # rows did finish at different steps
    df = m.sample(30, seed=0, progress=False, faithful=False)
    assert df.valid.all() and all(to_mol(s) is not None for s in df.smiles)


@torch.no_grad()
def test_the_precomputed_step_decodes_exactly_as_the_gru(monkeypatch):
    """generate() steps a one-layer float32 decoder with its input projections computed once
    (vae.decoding._Stepper); on the shipped model and real molecules' latent points it gives
    the tokens and NLL of torch.nn.GRU itself, greedy and seeded sampling alike.  Under
    bfloat16 autocast its bf16 form samples like nn.GRU does there: the same model, so
    nearly the same tokens and NLL (rounding differs)."""
    import molvae as mv
    from molvae.vae import decoding

    model = mv.load_pretrained("moses")
    z = model.encode(mv.load_dataset("moses", "test", limit=48))
    assert np.isfinite(z).all()
    z = torch.as_tensor(z)
    used = []
    real = decoding._Stepper
    monkeypatch.setattr(decoding, "_Stepper", lambda *a, **k: used.append(k.get("bf16", False)) or real(*a, **k))
    fast = {m: model.generate(z, method=m, generator=torch.Generator().manual_seed(3)) for m in ("greedy", "sample")}
    assert used == [False, False]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.generate(z, method="greedy")
    assert used == [False, False, True]
    monkeypatch.setattr(decoding, "_fast_steps", lambda *a: None)
    for method, (ids, nll) in fast.items():
        ref_ids, ref_nll = model.generate(z, method=method, generator=torch.Generator().manual_seed(3))
        assert torch.equal(ids, ref_ids), method
        assert torch.allclose(nll, ref_nll, rtol=1e-5, atol=1e-4), method
    lengths = (fast["greedy"][0] != model.tokenizer.pad_id).sum(dim=1)
    assert lengths.min() < lengths.max()  # rows left the batch at different steps
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_ids, ref_nll = model.generate(z, method="greedy")
    same_rows = (bf16[0] == ref_ids).all(dim=1).float().mean()
    assert same_rows >= 0.8, same_rows  # bf16 rounding flips a near-tie now and then
    assert torch.allclose(bf16[1].mean(), ref_nll.mean(), rtol=0.05)
    monkeypatch.undo()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert decoding._fast_steps(model, z) == "bf16"
    assert decoding._fast_steps(model, z) == "fp32"


# ----------------------------------------------------------------------------- beam search
def test_beam_width_one_is_greedy(model):
    z = _z(16)
    greedy, _ = model.generate(z)
    assert torch.equal(model.beam_search(z, beam_width=1), greedy)
    df_beam = model.decode_z(z, method="beam", beam_width=1)
    df_greedy = model.decode_z(z, method="greedy")
    assert df_beam.smiles.tolist() == df_greedy.smiles.tolist()


def _reference_beam(model: MolVAE, z: torch.Tensor, k: int, max_length: int) -> dict[str, tuple[list[int], float]]:
    """Plain beam search over full prefixes, scored by the model's log-likelihood (one z).

    At ``max_length`` every open beam must end with ``<eos>``; whether that forced ``<eos>``
    is charged its log-probability (``charged``: the sequence's likelihood) or taken as free
    (``free``) only changes the final ranking, so both results are returned:
    ``{"charged": (ids, log-likelihood), "free": (ids, log-likelihood)}``.
    """
    tok = model.tokenizer
    beams: list[tuple[list[int], float, bool]] = [([tok.bos_id], 0.0, False)]
    for t in range(max_length):
        cands = []
        for prefix, score, done in beams:
            if done:
                cands.append((prefix, score, True))
                continue
            lp = masked_log_probs(model, z[None], torch.tensor([prefix]))[0, -1]
            for v in torch.nonzero(torch.isfinite(lp)).flatten().tolist():
                cands.append((prefix + [v], score + float(lp[v]), v == tok.eos_id))
        cands.sort(key=lambda c: -c[1])
        beams = cands[:k]
    final = []  # (ids, likelihood, score with a free forced <eos>)
    for prefix, score, done in beams:
        if done:
            final.append((prefix, score, score))
        else:
            lp = masked_log_probs(model, z[None], torch.tensor([prefix]))[0, -1]
            final.append((prefix + [tok.eos_id], score + float(lp[tok.eos_id]), score))
    charged = max(final, key=lambda c: c[1])
    free = max(final, key=lambda c: c[2])
    return {"charged": (charged[0], charged[1]), "free": (free[0], free[1])}


@torch.no_grad()
@pytest.mark.parametrize("layers", [1, 2])
def test_beam_search_matches_a_reference_implementation(tokenizer, layers):
    """The batched beam search (reordered hidden states, finished beams, forced end) keeps the
    same beams as a plain per-prefix one and returns its best sequence; with two decoder layers
    the hidden states of both are reordered."""
    torch.manual_seed(0)
    m = MolVAE(tokenizer, dataclasses.replace(TINY_MODEL, decoder_layers=layers)).eval()
    # sharper, <eos>-friendlier outputs than at init: a mix of sequences that end by
    # themselves and sequences cut at max_length
    m.output.weight.mul_(2.0)
    m.output.bias.mul_(2.0)
    m.output.bias[tokenizer.eos_id] += {1: 0.5, 2: 0.3}[layers]
    z = _z(8, seed=3)
    max_length = 16
    greedy, _ = m.generate(z, max_length=max_length)
    greedy_lp = sequence_log_prob(m, z, greedy)
    natural = 0
    for k in (2, 4):
        beam = m.beam_search(z, beam_width=k, max_length=max_length)
        assert beam.shape == (8, max_length + 2)
        beam_lp = sequence_log_prob(m, z, beam)
        for i in range(len(z)):
            ref = _reference_beam(m, z[i], k, max_length)
            got = [x for x in beam[i].tolist() if x != tokenizer.pad_id]
            # the library may or may not charge the forced <eos>; it must be one of the two
            assert got in (ref["charged"][0], ref["free"][0]), f"beam {k}, z {i}"
            expected = ref["charged"][1] if got == ref["charged"][0] else ref["free"][1]
            assert float(beam_lp[i]) == pytest.approx(expected, abs=1e-3)
            natural += len(got) - 2 < max_length
        # beam search is not guaranteed to beat greedy on every input, but it must not lose
        # by much, and on average it finds more likely sequences
        assert (beam_lp >= greedy_lp - 0.5).all(), (k, (beam_lp - greedy_lp).tolist())
        assert float((beam_lp - greedy_lp).mean()) > 0
    assert 0 < natural < 16  # the premise: both kinds of ending occurred


def _all_sequences(tok: SelfiesTokenizer, model: MolVAE) -> torch.Tensor:
    """Every sequence with max_length=2: <bos> a <eos> and <bos> a b <eos> (a an atom, b any token)."""
    atoms = torch.nonzero(model._first_ok & ~model._banned).flatten().tolist()
    others = [v for v in torch.nonzero(~model._banned).flatten().tolist() if v != tok.eos_id]
    rows = [[tok.bos_id, a, tok.eos_id, tok.pad_id] for a in atoms]
    rows += [[tok.bos_id, a, b, tok.eos_id] for a, b in itertools.product(atoms, others)]
    return torch.tensor(rows)


@torch.no_grad()
def test_exhaustive_beam_finds_the_most_likely_sequence(model, tokenizer):
    """With a beam wider than the number of sequences, beam search is exact search: its result
    must be the most likely sequence (by the model's own likelihood), never below greedy's."""
    z = _z(4, seed=2)
    seqs = _all_sequences(tokenizer, model)
    greedy, greedy_nll = model.generate(z, max_length=2)
    beam = model.beam_search(z, beam_width=len(seqs) + 10, max_length=2)
    for i in range(len(z)):
        zi = z[i : i + 1]
        all_lp = sequence_log_prob(model, zi.expand(len(seqs), -1), seqs)
        best = float(all_lp.max())
        beam_lp = float(sequence_log_prob(model, zi, beam[i : i + 1]))
        greedy_lp = float(sequence_log_prob(model, zi, greedy[i : i + 1]))
        assert greedy_lp == pytest.approx(-float(greedy_nll[i]), abs=1e-3)
        assert beam_lp >= greedy_lp - 1e-4
        assert beam_lp == pytest.approx(best, abs=1e-4), (beam[i].tolist(), seqs[all_lp.argmax()].tolist())


# ----------------------------------------------------------------------------- user API
def test_encode_marks_unencodable_rows_with_nan(model):
    good = zinc(2, start=10)
    z = model.encode(["xyz", good[0], "C[Se]C", good[1]])
    assert z.shape == (4, TINY_MODEL.latent_dim)
    assert z.dtype == np.float32
    assert np.isnan(z[0]).all() and np.isnan(z[2]).all()
    assert np.isfinite(z[1]).all() and np.isfinite(z[3]).all()
    # same values as encoding the good ones alone, in any batch size
    alone = model.encode(good, batch_size=1)
    assert np.allclose(z[[1, 3]], alone, atol=1e-5)
    assert model.encode(good[0]).shape == (1, TINY_MODEL.latent_dim)


def test_encode_sample_draws_around_the_mean(model):
    smi = zinc(3)
    torch.manual_seed(0)
    mean = model.encode(smi)
    drawn = model.encode(smi, sample=True)
    assert drawn.shape == mean.shape and np.isfinite(drawn).all()
    assert not np.allclose(drawn, mean)


def test_decode_rejects_nan_and_wrong_shapes(model):
    z = np.zeros((2, TINY_MODEL.latent_dim), dtype=np.float32)
    z[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.decode(z)
    with pytest.raises(ValueError, match="NaN"):
        model.decode(model.encode(["xyz"]))
    with pytest.raises(ValueError, match="dimensions"):
        model.decode(np.zeros((2, TINY_MODEL.latent_dim + 1), dtype=np.float32))


def test_decode_returns_valid_canonical_smiles(model):
    z = _z(10).numpy()
    out = model.decode(z)
    assert len(out) == 10
    assert all(to_mol(s) is not None and standardize(s) == s for s in out)
    df = model.decode_z(z[0])  # one point as a 1-D vector
    assert len(df) == 1 and df.smiles[0] == out[0]


def test_reconstruct_reports_each_row(model):
    smi = zinc(3) + ["xyz"]
    df = model.reconstruct(smi)
    assert len(df) == 4
    assert df.encoded.tolist() == [True, True, True, False]
    assert df.reconstruction[3] == "" and not df.exact[3]
    assert df.canonical[0] == standardize(smi[0])
    expected = model.decode(model.encode(smi[:3]))
    assert df.reconstruction[:3].tolist() == expected
    assert (df.exact == (df.canonical == df.reconstruction)).all()


def test_interpolate_runs_from_one_molecule_to_the_other(model):
    a, b = zinc(2, start=20)
    za, zb = model.encode([a, b])
    ends = model.decode(np.stack([za, zb]))
    for method in ("slerp", "linear"):
        df = model.interpolate(a, b, steps=5, method=method)
        assert len(df) == 5
        assert df.t.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
        assert df.smiles.iloc[0] == ends[0]
        assert df.smiles.iloc[-1] == ends[1]
        assert df.valid.all()
    with pytest.raises(ValueError):
        model.interpolate(a, b, method="cubic")
    with pytest.raises(ValueError, match="cannot encode"):
        model.interpolate(a, "xyz")


def test_neighbors_are_distinct_and_exclude_the_query(model):
    query = zinc(1, start=30)[0]
    df = model.neighbors(query, n=5, radius=1.0, seed=0)
    assert 1 <= len(df) <= 5
    assert list(df.columns) == ["smiles", "distance", "similarity"]
    assert df.smiles.is_unique
    assert standardize(query) not in set(df.smiles)
    assert df.similarity.between(0.0, 1.0).all()
    assert df.distance.is_monotonic_increasing and (df.distance > 0).all()
    pd.testing.assert_frame_equal(df, model.neighbors(query, n=5, radius=1.0, seed=0))
    with pytest.raises(ValueError, match="cannot encode"):
        model.neighbors("C[Se]C")


def test_neighbors_drop_the_query_and_duplicates(model, monkeypatch):
    """With a decoder that keeps returning the query and a few repeats, only distinct
    other molecules come back, at most n, each at its smallest distance."""
    query = "CCOc1ccccc1"  # encodable by the ZINC vocabulary
    assert np.isfinite(model.encode([query])).all()
    canon = standardize(query)
    pool = [canon, "CCO", canon, "CCN", "CCO", "c1ccccc1", "CCCl"]

    def fake_decode(z, method="greedy", **kwargs):
        smiles = [pool[i % len(pool)] for i in range(len(z))]
        return pd.DataFrame({"smiles": smiles, "faithful": [s != "CCCl" for s in smiles]})

    monkeypatch.setattr(model, "decode_z", fake_decode)
    df = model.neighbors("c1ccccc1OCC", n=3, radius=0.5, seed=1)  # the query, written non-canonically
    assert len(df) == 3
    assert canon not in set(df.smiles) and df.smiles.is_unique
    assert set(df.smiles) <= {"CCO", "CCN", "c1ccccc1", "CCCl"}
    assert df.similarity.between(0.0, 1.0).all()
    everything = model.neighbors(query, n=10, radius=0.5, seed=1)
    assert set(everything.smiles) == {"CCO", "CCN", "c1ccccc1", "CCCl"}
    # faithful=True leaves out what SELFIES had to repair (here: the fake marks CCCl so)
    assert set(model.neighbors(query, n=10, radius=0.5, seed=1, faithful=True).smiles) == {"CCO", "CCN", "c1ccccc1"}

    monkeypatch.setattr(model, "decode_z", lambda z, **kw: pd.DataFrame({"smiles": [canon] * len(z),
                                                                         "faithful": [True] * len(z)}))
    assert len(model.neighbors(query, n=3, max_tries=2)) == 0


# ----------------------------------------------------------------------------- checkpoints
def test_save_load_gives_identical_logits(model, batch, ckpt_file):
    ids, lengths = batch
    loaded = MolVAE.load(ckpt_file, device="cpu")
    assert loaded.config == model.config
    assert loaded.tokenizer == model.tokenizer
    assert not loaded.training
    assert torch.equal(_logits(loaded, ids, lengths), _logits(model, ids, lengths))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert "created" in loaded.metadata


def test_half_precision_checkpoint_is_close(model, batch, tmp_path):
    ids, lengths = batch
    path = tmp_path / "half.pt"
    model.save(path, half=True)
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    model.save(tmp_path / "full.pt")
    assert path.stat().st_size < 0.75 * (tmp_path / "full.pt").stat().st_size
    loaded = MolVAE.load(path, device="cpu")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.allclose(_logits(loaded, ids, lengths), _logits(model, ids, lengths), atol=1e-2)


def test_checkpoint_loads_with_weights_only(ckpt_file, model):
    raw = torch.load(ckpt_file, weights_only=True)
    assert raw["format"] == "molvae-checkpoint"
    assert raw["format_version"] == 1
    assert raw["tokenizer"] == model.tokenizer.to_dict()
    assert set(raw["state_dict"]) == set(model.state_dict())


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        MolVAE.load(p)


def test_truncated_file(tmp_path, ckpt_file):
    data = ckpt_file.read_bytes()
    p = tmp_path / "truncated.pt"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        MolVAE.load(p)


def test_text_and_random_files(tmp_path):
    p = tmp_path / "notes.pt"
    p.write_text("these are not weights\n")
    with pytest.raises(CheckpointError):
        MolVAE.load(p)
    p.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(CheckpointError):
        MolVAE.load(p)


def test_foreign_file(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"a": 1}, p)
    with pytest.raises(CheckpointError, match="not a molvae checkpoint"):
        MolVAE.load(p)
    torch.save([torch.zeros(3)], p)
    with pytest.raises(CheckpointError, match="not a molvae checkpoint"):
        MolVAE.load(p)


def test_newer_format_version(tmp_path, ckpt_file):
    raw = torch.load(ckpt_file, weights_only=True)
    raw["format_version"] = 99
    p = tmp_path / "future.pt"
    torch.save(raw, p)
    with pytest.raises(CheckpointError, match="version 99"):
        MolVAE.load(p)


def test_inconsistent_content(tmp_path, ckpt_file):
    raw = torch.load(ckpt_file, weights_only=True)
    del raw["state_dict"]["output.weight"]
    p = tmp_path / "broken.pt"
    torch.save(raw, p)
    with pytest.raises(CheckpointError, match="inconsistent"):
        MolVAE.load(p)


def _record_unpickling(marker: str) -> dict:
    """Runs only if someone unpickles a _Payload: leaves a file behind as evidence."""
    Path(marker).write_text("unpickled")
    return {}


class _Payload:
    """A pickle that executes code when loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_record_unpickling, (self.marker,))


class _StatefulPayload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).write_text("unpickled")


@pytest.mark.parametrize("payload_cls", [_Payload, _StatefulPayload])
def test_pickle_with_custom_objects_is_refused_unexecuted(tmp_path, payload_cls):
    marker = tmp_path / "side-effect.txt"
    p = tmp_path / "evil.pt"
    torch.save({"format": "molvae-checkpoint", "format_version": 1, "x": payload_cls(marker)}, p)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        MolVAE.load(p)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert not marker.exists(), "the checkpoint's code ran while loading"
    # the marker mechanism works: a full (unsafe) unpickle does leave the file
    torch.load(p, weights_only=False)
    assert marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        MolVAE.load(tmp_path / "nope.pt")


def test_save_is_atomic(tmp_path, model, monkeypatch):
    folder = tmp_path / "run"
    path = folder / "model.pt"
    model.save(path)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]  # no temporary file left
    save_checkpoint(path, model.checkpoint_dict())
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    good = path.read_bytes()

    def failing_save(obj, fh, *args, **kwargs):
        fh.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good  # the old checkpoint is untouched
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
    MolVAE.load(path)
