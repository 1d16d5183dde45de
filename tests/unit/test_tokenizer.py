"""Tests for molvae.tokenizer (SELFIES vocabulary, encoding, decoding)."""

from __future__ import annotations

import json
import random
import threading

import numpy as np
import pandas as pd
import pytest

import molvae.tokenizer as tok_mod
import molvae.utils.parallel as parallel
from molvae.chem import canonical, to_mol
from molvae.data import load_dataset
from molvae.tokenizer import (
    PARALLEL_THRESHOLD,
    SPECIAL_TOKENS,
    SelfiesTokenizer,
    TokenizationError,
    smiles_to_tokens,
    tokenize_many,
)

MOSES_SAMPLE = 20_000
SEED = 20240521
POOL_TIMEOUT_S = 300


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def roundtrip():
    """ZINC test (5,000) + a seeded 20,000-molecule MOSES test sample: fit, encode, decode once.

    ``fit`` and ``encode`` both tokenize the same list; ``tokenize_many`` is memoized for the
    duration of the fixture so the 25k molecules are tokenized once (through the process pool:
    25k >= PARALLEL_THRESHOLD and n_jobs=2), and the pool's use is recorded.
    """
    zinc = load_dataset("zinc", "test")
    moses = load_dataset("moses", "test")
    rng = np.random.default_rng(SEED)
    sample = [moses[i] for i in np.sort(rng.choice(len(moses), MOSES_SAMPLE, replace=False))]
    smiles = zinc + sample
    assert len(smiles) >= PARALLEL_THRESHOLD

    real_tokenize_many = tok_mod.tokenize_many
    real_chunked_map = tok_mod.chunked_map
    memo: dict = {}
    calls: list[dict] = []
    contexts: list[str] = []

    def memo_tokenize_many(smi, n_jobs=None, progress=True, standardize_input=True):
        smi = list(smi)
        calls.append({"n": len(smi), "n_jobs": n_jobs, "standardize_input": standardize_input})
        key = (tuple(smi), standardize_input)
        if key not in memo:
            memo[key] = real_tokenize_many(smi, n_jobs=n_jobs, progress=progress, standardize_input=standardize_input)
        return memo[key]

    def spy_chunked_map(fn, items, n_jobs=None, **kwargs):
        contexts.append(n_jobs)
        out = real_chunked_map(fn, items, n_jobs=n_jobs, **kwargs)
        contexts.append(parallel._POOL is not None and parallel._POOL_JOBS)  # the pool that did the work
        return out

    def fit_and_encode(out):
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(tok_mod, "tokenize_many", memo_tokenize_many)
                mp.setattr(tok_mod, "chunked_map", spy_chunked_map)
                out["tok"] = SelfiesTokenizer.fit(smiles, n_jobs=2, progress=False)
                out["batch"] = out["tok"].encode(smiles, n_jobs=2)
        except BaseException as err:  # re-raised below, in the test's thread
            out["error"] = err

    # multiprocessing.Pool waits forever for the task of a worker that died: turn a hang into a failure
    out: dict = {}
    worker = threading.Thread(target=fit_and_encode, args=(out,), daemon=True)
    worker.start()
    worker.join(POOL_TIMEOUT_S)
    if worker.is_alive():
        pytest.fail(f"fit/encode of {len(smiles)} molecules with n_jobs=2 did not finish in {POOL_TIMEOUT_S} s")
    if "error" in out:
        raise out["error"]
    tok, batch = out["tok"], out["batch"]
    decoded = tok.decode(batch.ids)
    return {
        "smiles": smiles,
        "tok": tok,
        "batch": batch,
        "decoded": decoded,
        "calls": calls,
        "contexts": contexts,
        "results": next(iter(memo.values())),
    }


@pytest.fixture(scope="module")
def moses_tok():
    """A vocabulary fitted on 1,000 MOSES molecules plus acetate (MOSES has no Se, no metals)."""
    tok = SelfiesTokenizer.fit(load_dataset("moses", "test", limit=1000) + ["CC(=O)[O-]"], progress=False)
    assert "[Se]" not in tok.stoi and "[Na+1]" not in tok.stoi
    return tok


@pytest.fixture(scope="module")
def zinc_small():
    return load_dataset("zinc", "test", limit=600)


# ----------------------------------------------------------------------------- round trip
def test_round_trip_zinc_and_moses(roundtrip):
    smiles, batch, decoded = roundtrip["smiles"], roundtrip["batch"], roundtrip["decoded"]
    failing: list[tuple[int, str, str]] = [
        (int(r["index"]), r["smiles"], f"encode failed: {r['reason']}") for _, r in batch.failures.iterrows()
    ]
    assert len(decoded) == len(batch.index)
    for row, i in enumerate(batch.index):
        want = canonical(smiles[i])
        got = decoded[row]
        if got == want:
            continue
        got_c = canonical(got)
        if got_c != want:
            failing.append((int(i), smiles[i], f"decoded to {got!r}, canonical {got_c!r} != {want!r}"))
    n = len(smiles)
    ok = n - len(failing)
    listing = "\n".join(f"  [{i}] {s}: {why}" for i, s, why in sorted(failing)[:100])
    assert ok / n >= 0.999, (
        f"round trip holds for {ok}/{n} molecules ({ok / n:.4%}), below 99.9%; "
        f"{len(failing)} failing (first 100):\n{listing}"
    )


def test_round_trip_tokenized_through_the_process_pool(roundtrip):
    # fit and encode each asked for 25k molecules with n_jobs=2 ...
    assert [c["n_jobs"] for c in roundtrip["calls"]] == [2, 2]
    assert all(c["n"] == len(roundtrip["smiles"]) for c in roundtrip["calls"])
    # ... and the (single, memoized) tokenization went through the two-worker forked pool
    assert roundtrip["contexts"] == [2, 2]
    # the pool returns the same as the in-process path, in input order
    head = roundtrip["smiles"][:150] + roundtrip["smiles"][-150:]
    serial = tokenize_many(head, n_jobs=1, progress=False)
    assert serial == roundtrip["results"][:150] + roundtrip["results"][-150:]


def test_batch_layout(roundtrip):
    tok, batch = roundtrip["tok"], roundtrip["batch"]
    n = len(roundtrip["smiles"])
    ids, lengths = batch.ids, batch.lengths
    assert ids.dtype == np.int64
    assert ids.shape == (len(batch), tok.max_length + 2) == (len(batch), tok.seq_len)
    assert lengths.shape == batch.index.shape == (len(batch),)
    assert len(batch) + len(batch.failures) == n
    assert np.all(np.diff(batch.index) > 0)  # kept rows in input order
    # max_length defaults to the longest molecule: some row is full
    assert lengths.max() == tok.max_length + 2
    assert np.all(ids[:, 0] == tok.bos_id)
    rows = np.arange(len(batch))
    assert np.all(ids[rows, lengths - 1] == tok.eos_id)
    positions = np.arange(tok.seq_len)[None, :]
    inner = (positions >= 1) & (positions < (lengths - 1)[:, None])
    assert np.all((ids >= len(SPECIAL_TOKENS)) == inner)  # real tokens exactly between the markers
    assert np.all(ids[positions >= lengths[:, None]] == tok.pad_id)
    # lengths = number of SELFIES tokens + 2, for every molecule
    results = roundtrip["results"]
    assert all(lengths[k] == len(results[i][0]) + 2 for k, i in enumerate(batch.index))


# ----------------------------------------------------------------------------- random sequences
def test_random_token_sequences_decode_to_valid_molecules(roundtrip):
    tok = roundtrip["tok"]
    mask = tok.atom_token_mask()
    assert mask.shape == (tok.vocab_size,)
    assert not mask[: len(SPECIAL_TOKENS)].any()
    assert mask.sum() > 10
    rng = np.random.default_rng(SEED)
    regular = np.arange(len(SPECIAL_TOKENS), tok.vocab_size)
    bad, n_atoms, n_structural = [], 0, 0
    for _ in range(2000):
        length = int(rng.integers(1, 61))
        seq = rng.choice(regular, size=length)
        ids = np.full(tok.seq_len + 60, tok.pad_id)
        ids[0] = tok.bos_id
        ids[1 : length + 1] = seq
        ids[length + 1] = tok.eos_id
        smi = tok.decode(ids[None, :])[0]
        if mask[seq].any():
            n_atoms += 1
            if smi is None or to_mol(smi) is None:
                bad.append((" ".join(tok.itos[t] for t in seq), smi))
        else:
            n_structural += 1
            assert smi is None, (seq, smi)
    assert n_atoms > 1500
    assert not bad, f"{len(bad)} random sequences decode to no valid molecule, e.g. {bad[:5]}"


def test_only_structural_tokens_decode_to_none(roundtrip):
    tok = roundtrip["tok"]
    mask = tok.atom_token_mask()
    structural = [i for i in range(len(SPECIAL_TOKENS), tok.vocab_size) if not mask[i]]
    assert structural, "expected branch/ring tokens in the vocabulary"
    assert all("Branch" in tok.itos[i] or "Ring" in tok.itos[i] for i in structural)
    rng = np.random.default_rng(1)
    rows = [[tok.bos_id, i, tok.eos_id] + [tok.pad_id] * 4 for i in structural]
    rows += [[tok.bos_id, *rng.choice(structural, size=5), tok.eos_id] for _ in range(20)]
    assert tok.decode(np.array(rows)) == [None] * len(rows)
    assert tok.decode(np.array([[tok.bos_id, tok.eos_id, tok.pad_id]])) == [None]


# ----------------------------------------------------------------------------- vocabulary
def test_vocabulary_is_deterministic_and_sorted(zinc_small):
    a = SelfiesTokenizer.fit(zinc_small, progress=False)
    b = SelfiesTokenizer.fit(zinc_small, progress=False)
    shuffled = list(zinc_small)
    random.Random(7).shuffle(shuffled)
    c = SelfiesTokenizer.fit(shuffled, n_jobs=1, progress=False)
    assert a.itos == b.itos == c.itos
    assert a.max_length == b.max_length == c.max_length
    assert a == b == c
    assert a.fingerprint() == c.fingerprint()
    assert a.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (a.pad_id, a.bos_id, a.eos_id, a.unk_id) == (0, 1, 2, 3)
    assert [a.stoi[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert a.itos[4:] == sorted(a.itos[4:])
    assert len(set(a.itos)) == a.vocab_size
    assert all(a.stoi[t] == i for i, t in enumerate(a.itos))
    # the vocabulary is exactly the tokens seen
    seen = {t for s in zinc_small for t in smiles_to_tokens(s)}
    assert set(a.itos[4:]) == seen


def test_vocabulary_does_not_depend_on_order_of_tokens():
    a = SelfiesTokenizer(["[O]", "[C]", "[=O]", "[C]", "<eos>"], max_length=5)
    b = SelfiesTokenizer(["[=O]", "[C]", "[O]"], max_length=5)
    assert a.itos == b.itos == list(SPECIAL_TOKENS) + ["[=O]", "[C]", "[O]"]


def test_dict_round_trip_and_json(moses_tok, tmp_path):
    d = moses_tok.to_dict()
    text = json.dumps(d)  # plain JSON types only
    back = SelfiesTokenizer.from_dict(json.loads(text))
    assert back == moses_tok
    assert back.itos == moses_tok.itos
    assert back.max_length == moses_tok.max_length
    assert back.standardize_input == moses_tok.standardize_input
    assert back.fingerprint() == moses_tok.fingerprint()
    smi = ["CCO", "c1ccccc1C(=O)N"]
    np.testing.assert_array_equal(back.encode(smi).ids, moses_tok.encode(smi).ids)
    path = tmp_path / "tok.json"
    moses_tok.save(path)
    assert SelfiesTokenizer.load(path) == moses_tok


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tokens": ["[C]"], "max_length": 3},
        {"format": "something-else", "version": 1, "tokens": ["[C]"], "max_length": 3},
        ["[C]"],
        None,
    ],
    ids=["empty", "no-format", "foreign-format", "a-list", "none"],
)
def test_from_dict_rejects_foreign_data(data):
    with pytest.raises(ValueError, match="format"):
        SelfiesTokenizer.from_dict(data)


def test_from_dict_rejects_a_newer_version(moses_tok):
    d = moses_tok.to_dict()
    d["version"] = d["version"] + 1
    with pytest.raises(ValueError, match="newer"):
        SelfiesTokenizer.from_dict(d)


def test_fingerprint_changes_with_vocabulary_and_settings():
    a = SelfiesTokenizer(["[C]", "[O]"], max_length=5)
    assert a.fingerprint() == SelfiesTokenizer(["[O]", "[C]"], max_length=5).fingerprint()
    assert a.fingerprint() != SelfiesTokenizer(["[C]", "[O]", "[N]"], max_length=5).fingerprint()
    assert a.fingerprint() != SelfiesTokenizer(["[C]", "[O]"], max_length=6).fingerprint()
    assert a.fingerprint() != SelfiesTokenizer(["[C]", "[O]"], max_length=5, standardize_input=False).fingerprint()


def test_constructor_and_fit_reject_nonsense():
    with pytest.raises(ValueError):
        SelfiesTokenizer([], max_length=5)
    with pytest.raises(ValueError):
        SelfiesTokenizer(list(SPECIAL_TOKENS), max_length=5)
    with pytest.raises(ValueError):
        SelfiesTokenizer(["[C]"], max_length=0)
    with pytest.raises(ValueError, match="no molecule"):
        SelfiesTokenizer.fit(["xyz", "C1CC", None, ""], progress=False)


def test_fit_skips_bad_molecules_and_respects_max_length():
    tok = SelfiesTokenizer.fit(["CCO", "xyz", None, "C[Se]C", "CCCCCCCCCCCC"], max_length=4, progress=False)
    assert tok.max_length == 4
    # C[Se]C has 3 tokens: kept; the 12-carbon chain is longer than max_length: not in the vocabulary
    assert "[Se]" in tok.stoi
    assert set(tok.itos[4:]) == {"[C]", "[O]", "[Se]"}
    auto = SelfiesTokenizer.fit(["CCO", "CCCCCC"], progress=False)
    assert auto.max_length == 6


# ----------------------------------------------------------------------------- bad input
def _reason(batch, index):
    rows = batch.failures[batch.failures["index"] == index]
    assert len(rows) == 1, batch.failures
    return rows["reason"].iloc[0]


def test_encode_reports_bad_molecules_and_keeps_the_good_ones(moses_tok):
    assert "[Se]" not in moses_tok.stoi
    too_long = "C" * (moses_tok.max_length + 5)
    smiles = ["CCO", "C1CC", "c1ccccc1", "xyz", "", None, "CCN", "C[Se]C", too_long, "   ", 42, "CC(=O)O"]
    batch = moses_tok.encode(smiles)
    assert batch.index.tolist() == [0, 2, 6, 11]
    assert len(batch) == 4
    assert list(batch.failures.columns) == ["index", "smiles", "reason"]
    assert batch.failures["index"].tolist() == [1, 3, 4, 5, 7, 8, 9, 10]
    assert _reason(batch, 1) == "invalid SMILES (RDKit cannot parse it)"
    assert _reason(batch, 3) == "invalid SMILES (RDKit cannot parse it)"
    assert _reason(batch, 4) == "empty or not a string"
    assert _reason(batch, 5) == "empty or not a string"
    assert _reason(batch, 7) == "tokens outside the vocabulary: [Se]"
    assert _reason(batch, 8) == (
        f"too long: {moses_tok.max_length + 5} tokens > max_length {moses_tok.max_length}"
    )
    assert _reason(batch, 9) == "empty or not a string"
    assert _reason(batch, 10) == "empty or not a string"
    by_index = dict(zip(batch.failures["index"], batch.failures["smiles"]))
    assert by_index[1] == "C1CC" and by_index[7] == "C[Se]C" and by_index[8] == too_long
    assert pd.isna(by_index[5])  # None input
    # the kept rows are the molecules at those positions
    assert moses_tok.decode(batch.ids) == [canonical(s) for s in ["CCO", "c1ccccc1", "CCN", "CC(=O)O"]]


def test_encode_of_only_bad_molecules_gives_an_empty_batch(moses_tok):
    batch = moses_tok.encode(["xyz", None])
    assert len(batch) == 0
    assert batch.ids.shape == (0, moses_tok.seq_len)
    assert batch.lengths.shape == batch.index.shape == (0,)
    assert batch.failures["index"].tolist() == [0, 1]


def test_encode_accepts_a_single_string(moses_tok):
    batch = moses_tok.encode("CCO")
    assert len(batch) == 1
    np.testing.assert_array_equal(batch.ids[0], moses_tok.encode_one("CCO"))


@pytest.mark.parametrize(
    "smiles, reason",
    [
        ("C1CC", "invalid SMILES (RDKit cannot parse it)"),
        ("xyz", "invalid SMILES (RDKit cannot parse it)"),
        ("", "empty or not a string"),
        (None, "empty or not a string"),
        ("C[Se]C", "tokens outside the vocabulary: [Se]"),
    ],
)
def test_encode_one_raises_with_smiles_and_reason(moses_tok, smiles, reason):
    with pytest.raises(TokenizationError) as info:
        moses_tok.encode_one(smiles)
    assert info.value.smiles == smiles
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    assert reason in str(info.value)


def test_a_molecule_selfies_cannot_round_trip_is_refused_with_the_molecule_it_would_become(moses_tok):
    # a naphthalene dianion with charged aromatic carbons (found by the hostile-input tests):
    # SELFIES' Kekule structure of it decodes to a non-aromatic isomer
    smiles = "[CH-2]NC(=O)c1ccc(NC(=O)NCCOc2[c-]ccc3c[c-]ccc23)cc1"
    with pytest.raises(TokenizationError) as info:
        smiles_to_tokens(smiles)
    assert info.value.reason.startswith("SELFIES does not round-trip this molecule (decodes to ")
    assert canonical(info.value.reason.split("decodes to ")[1].rstrip(")")) != canonical(smiles)
    batch = moses_tok.encode([smiles, "CCO"])
    assert list(batch.index) == [1]
    assert batch.failures["reason"].iloc[0].startswith("SELFIES does not round-trip")
    # an ordinary charged aromatic ring still round-trips
    assert smiles_to_tokens("C[n+]1ccccc1")


def test_encode_one_too_long(moses_tok):
    smi = "C" * (moses_tok.max_length + 1)
    with pytest.raises(TokenizationError) as info:
        moses_tok.encode_one(smi)
    assert info.value.smiles == smi
    assert info.value.reason.startswith("too long:")
    # exactly max_length tokens still fits
    row = moses_tok.encode_one("C" * moses_tok.max_length)
    assert row[-1] == moses_tok.eos_id


# ----------------------------------------------------------------------------- decode
def test_decode_stops_at_eos_and_ignores_pad_and_unk():
    tok = SelfiesTokenizer(["[C]", "[O]", "[N]"], max_length=8)
    C, O, N = tok.stoi["[C]"], tok.stoi["[O]"], tok.stoi["[N]"]
    bos, eos, pad, unk = tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id
    ids = np.array(
        [
            [bos, C, C, O, eos, N, N, N, pad, pad],  # after eos: ignored
            [bos, C, pad, O, pad, eos, N, pad, pad, pad],  # pad inside: skipped
            [bos, C, unk, C, O, eos, pad, pad, pad, pad],  # unk: skipped
            [bos, C, C, C, C, C, C, C, C, N],  # no eos: read to the end
            [C, O, eos, pad, pad, pad, pad, pad, pad, pad],  # no bos: fine
        ]
    )
    assert tok.decode(ids) == ["CCO", "CO", "CCO", "CCCCCCCCN", "CO"]
    assert tok.decode_selfies(ids)[0] == "[C][C][O]"
    # a single row is accepted as a batch of one
    assert tok.decode(ids[0]) == ["CCO"]


def test_encode_decode_preserves_stereo_charge_and_uses_canonical_form(moses_tok):
    smiles = ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "C/C=C/C(=O)O", "C/C=C\\C(=O)O", "C[NH3+]", "OCC"]
    vocab = SelfiesTokenizer.fit(smiles, progress=False)
    batch = vocab.encode(smiles)
    assert len(batch.failures) == 0
    assert vocab.decode(batch.ids) == [canonical(s) for s in smiles]


# ----------------------------------------------------------------------------- molecule policy
def test_salt_encodes_as_its_largest_fragment(moses_tok):
    salt = moses_tok.encode_one("CC(=O)[O-].[Na+]")
    acetate = moses_tok.encode_one("CC(=O)[O-]")
    np.testing.assert_array_equal(salt, acetate)
    assert moses_tok.decode(salt[None]) == ["CC(=O)[O-]"]
    assert smiles_to_tokens("CC(=O)[O-].[Na+]") == smiles_to_tokens("CC(=O)[O-]")
    batch = moses_tok.encode(["CC(=O)[O-].[Na+]", "[Na+].CC(=O)[O-]"])
    assert len(batch.failures) == 0
    np.testing.assert_array_equal(batch.ids[0], batch.ids[1])


def test_isotopes_are_stripped(moses_tok):
    np.testing.assert_array_equal(moses_tok.encode_one("[13CH3]C(=O)O"), moses_tok.encode_one("CC(=O)O"))
    assert moses_tok.decode(moses_tok.encode_one("[13CH3][15NH2]")[None]) == ["CN"]


def test_deuterium_labels_are_stripped(moses_tok):
    np.testing.assert_array_equal(moses_tok.encode_one("[2H]OC"), moses_tok.encode_one("CO"))


def test_standardize_input_false_keeps_fragments_and_isotopes():
    tok = SelfiesTokenizer.fit(["CCO", "CC(=O)O"], progress=False, standardize_input=False)
    batch = tok.encode(["[13CH3]O", "CC(=O)O.CCO", "CCO"])
    assert batch.index.tolist() == [2]
    assert batch.failures["reason"].str.startswith("tokens outside the vocabulary").all()
