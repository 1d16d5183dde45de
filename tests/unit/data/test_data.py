"""Tests for molvae.data (bundled datasets, SMILES readers, token cache, bucketed batches)."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pandas as pd
import pytest

import molvae.data as data_mod
import molvae.data.tokens as tokens_mod
from molvae.data import (
    BucketBatchSampler,
    SmilesList,
    dataset_path,
    load_dataset,
    read_smiles,
    tokenize_file,
)
from molvae.tokenizer import SelfiesTokenizer

INVALID = "invalid SMILES (RDKit cannot parse it)"


# ----------------------------------------------------------------------------- bundled datasets
def test_load_dataset_documented_counts():
    zinc = load_dataset("zinc", "test")
    assert len(zinc) == 5000
    assert all(isinstance(s, str) and s and s == s.strip() for s in zinc)
    opt = load_dataset("zinc", "opt_logp")
    assert len(opt) == 800
    assert opt[0] == "COc1cc2c(cc1OC)CC([NH3+])C2"  # first line, without its penalized logP
    assert len(load_dataset("zinc", "valid")) > 0


@pytest.mark.parametrize("name, split", sorted(data_mod.DATASETS))
def test_every_bundled_dataset_loads_with_a_limit(name, split):
    assert dataset_path(name, split).exists()
    head = load_dataset(name, split, limit=7)
    assert len(head) == 7
    assert all(isinstance(s, str) and s for s in head)


def test_load_dataset_limit_keeps_the_first_rows():
    assert load_dataset("zinc", "test", limit=25) == load_dataset("zinc", "test")[:25]


def test_moses_test_is_a_smiles_column():
    head = load_dataset("moses", "test", limit=50)
    assert head == pd.read_csv(dataset_path("moses", "test"), nrows=50)["SMILES"].tolist()


@pytest.mark.parametrize("name, split", [("chembl", "train"), ("zinc", "train"), ("moses", "valid")])
def test_unknown_dataset_lists_the_options(name, split):
    with pytest.raises(ValueError) as info:
        load_dataset(name, split)
    msg = str(info.value)
    assert name in msg
    for option in ("moses/train", "moses/test", "zinc/test", "zinc/valid", "zinc/opt_logp"):
        assert option in msg


def test_dataset_names_are_case_insensitive():
    assert load_dataset("ZINC", "Test", limit=5) == load_dataset("zinc", "test", limit=5)


def test_opt_logp_split_name_is_case_insensitive():
    assert len(load_dataset("zinc", "OPT_LOGP")) == 800


# ----------------------------------------------------------------------------- read_smiles
def _write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    return path


def test_csv_with_smiles_column_among_others(tmp_path):
    path = _write(tmp_path, "a.csv", b"id,SMILES,logp\n1,CCO,0.1\n2,C1CC,0.2\n3,c1ccccc1,1.0\n")
    out = read_smiles(path)
    assert isinstance(out, SmilesList)
    assert list(out) == ["CCO", "c1ccccc1"]
    assert out.n_read == 3
    assert out.n_rejected == 1
    assert out.rejects.to_dict("records") == [{"line": 3, "smiles": "C1CC", "reason": INVALID}]


def test_csv_with_a_named_column(tmp_path):
    path = _write(tmp_path, "b.csv", b"id,structure_col,x\n1,CCO,CCCC\n2,CCN,CCCC\n")
    assert list(read_smiles(path, column="structure_col")) == ["CCO", "CCN"]
    assert list(read_smiles(path, column="x")) == ["CCCC", "CCCC"]
    with pytest.raises(ValueError, match="no column 'nope'"):
        read_smiles(path, column="nope")


def test_csv_column_detected_by_content(tmp_path):
    path = _write(tmp_path, "c.csv", b"id,value,mol_smiles\n1,2.5,CCO\n2,3.5,CCN\n3,1.0,c1ccccc1\n")
    assert list(read_smiles(path)) == ["CCO", "CCN", "c1ccccc1"]


def test_headerless_smi_with_names(tmp_path):
    path = _write(tmp_path, "d.smi", b"CCO ethanol\nc1ccccc1\tbenzene\nC1CC broken ring\n\nCCN  ethyl amine\n")
    out = read_smiles(path)
    assert list(out) == ["CCO", "c1ccccc1", "CCN"]
    assert out.n_read == 4
    assert out.rejects.to_dict("records") == [{"line": 3, "smiles": "C1CC", "reason": INVALID}]


def test_smi_with_a_header_line(tmp_path):
    path = _write(tmp_path, "e.smi", b"SMILES Name\nCCO eth\nCCN amine\n")
    out = read_smiles(path)
    assert list(out) == ["CCO", "CCN"]
    assert out.n_rejected == 0


def test_txt_file(tmp_path):
    path = _write(tmp_path, "f.txt", b"CCO\nCCN\nxyz\nc1ccccc1O\n")
    out = read_smiles(path)
    assert list(out) == ["CCO", "CCN", "c1ccccc1O"]
    assert out.rejects["line"].tolist() == [3]


def test_gzipped_csv(tmp_path):
    path = _write(tmp_path, "g.csv.gz", b"smiles,name\nCCO,eth\nCCN,amine\nC(C,bad\n")
    out = read_smiles(path)
    assert list(out) == ["CCO", "CCN"]
    assert out.rejects["line"].tolist() == [4]


def test_tsv(tmp_path):
    path = _write(tmp_path, "h.tsv", b"name\tsmiles\neth\tCCO\namine\tCCN\n")
    assert list(read_smiles(path)) == ["CCO", "CCN"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("i.csv", b"smiles,name\r\nCCO,eth\r\nC1CC,bad\r\nCCN,amine\r\n"),
        ("i.smi", b"CCO eth\r\nC1CC bad\r\nCCN amine\r\n"),
        ("i.txt", b"CCO\r\nC1CC\r\nCCN\r\n"),
    ],
)
def test_crlf_line_endings(tmp_path, name, content):
    out = read_smiles(_write(tmp_path, name, content))
    assert list(out) == ["CCO", "CCN"]  # no stray '\r'
    assert out.rejects["line"].tolist() == ([3] if name.endswith(".csv") else [2])


@pytest.mark.parametrize("name", ["j.csv", "j.txt", "j.csv.gz"])
def test_utf8_bom(tmp_path, name):
    body = b"smiles,name\nCCO,eth\nCCN,amine\n" if ".csv" in name else b"CCO\nCCN\n"
    out = read_smiles(_write(tmp_path, name, b"\xef\xbb\xbf" + body))
    assert list(out) == ["CCO", "CCN"]
    assert out.n_rejected == 0


def test_quoted_csv_fields(tmp_path):
    path = _write(
        tmp_path,
        "k.csv",
        b'smiles,name\n"CC(C)O","isopropanol, 2-propanol"\n"CC(=O)O",acetic acid\nCCN,"ethyl ""amine"""\n',
    )
    out = read_smiles(path)
    assert list(out) == ["CC(C)O", "CC(=O)O", "CCN"]
    assert out.n_rejected == 0


def test_reject_line_numbers_after_a_multiline_quoted_field(tmp_path):
    path = _write(tmp_path, "k2.csv", b'smiles,name\n"CCO","two\nlines"\nC1CC,bad\nCCN,x\n')
    out = read_smiles(path)
    assert list(out) == ["CCO", "CCN"]
    assert out.rejects["line"].tolist() == [4]  # physical line of 'C1CC,bad'


def test_non_utf8_row_is_rejected_and_the_rest_read(tmp_path):
    path = _write(tmp_path, "l.csv", b"smiles,name\nCCO,eth\nC\xe9O,latin1\nCCN,amine\nCCC,caf\xe9\n")
    out = read_smiles(path)
    # a bad byte in the SMILES rejects the row; one in another column does not matter
    assert list(out) == ["CCO", "CCN", "CCC"]
    assert out.n_read == 4
    assert out.n_rejected == 1
    (reject,) = out.rejects.to_dict("records")
    assert reject["line"] == 3
    assert reject["reason"] == "not valid UTF-8"


def test_invalid_rows_are_counted_and_written_to_a_rejects_file(tmp_path):
    path = _write(
        tmp_path,
        "m.csv",
        b"smiles,name\nCCO,ok\n\nC1CC,ring\n,empty\nxyz,junk\nCCN,ok\n" + b"C" * 100 + b",long\n",
    )
    rejects = tmp_path / "rejects.csv"
    out = read_smiles(path, rejects=rejects, max_line_length=50)
    assert list(out) == ["CCO", "CCN"]
    assert out.n_read == 6  # the blank line is not a row
    assert out.n_rejected == 4
    lines = [4, 5, 6, 8]
    reasons = [INVALID, "empty", INVALID, "longer than 50 characters"]
    assert list(out.rejects.columns) == ["line", "smiles", "reason"]
    assert out.rejects["line"].tolist() == lines
    assert out.rejects["reason"].tolist() == reasons
    assert out.rejects["smiles"].tolist()[:3] == ["C1CC", "", "xyz"]
    assert out.rejects["smiles"].iloc[3] == "C" * 80 + "..."  # a long row is shown cut to 80 characters
    on_disk = pd.read_csv(rejects, keep_default_na=False)
    assert list(on_disk.columns) == ["line", "smiles", "reason"]
    assert on_disk["line"].tolist() == lines
    assert on_disk["reason"].tolist() == reasons
    assert on_disk["smiles"].tolist()[:3] == ["C1CC", "", "xyz"]


def test_no_rejects_file_when_nothing_is_rejected(tmp_path):
    rejects = tmp_path / "rejects.csv"
    read_smiles(_write(tmp_path, "n.txt", b"CCO\nCCN\n"), rejects=rejects)
    assert not rejects.exists()


def test_validate_false_keeps_unparsable_rows(tmp_path):
    out = read_smiles(_write(tmp_path, "o.txt", b"CCO\nC1CC\n"), validate=False)
    assert list(out) == ["CCO", "C1CC"]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n \t\n", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("name", ["p.csv", "p.smi", "p.txt.gz"])
def test_empty_file(tmp_path, name, content):
    with pytest.raises(ValueError, match="empty"):
        read_smiles(_write(tmp_path, name, content))


def test_csv_without_a_smiles_column(tmp_path):
    path = _write(tmp_path, "q.csv", b"name,value\nalpha,1.5\nbeta,2.5\ngamma,3.5\n")
    with pytest.raises(ValueError, match="column"):
        read_smiles(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_smiles(tmp_path / "nope.csv")


@pytest.mark.parametrize("name, content", [("r.csv", b"smiles\nxyz\nC1CC\n"), ("r.txt", b"xyz\n\nC(C\n")])
def test_all_rows_invalid(tmp_path, name, content):
    rejects = tmp_path / "rejects.csv"
    with pytest.raises(ValueError, match="none of its 2 rows"):
        read_smiles(_write(tmp_path, name, content), rejects=rejects)
    # the rejects are still written for the user to inspect
    assert pd.read_csv(rejects)["line"].tolist() == ([2, 3] if name.endswith(".csv") else [1, 3])


def test_uppercase_gz_suffix(tmp_path):
    path = tmp_path / "S.CSV.GZ"
    path.write_bytes(gzip.compress(b"smiles,name\nCCO,eth\nCCN,amine\n"))
    assert list(read_smiles(path)) == ["CCO", "CCN"]


# ----------------------------------------------------------------------------- token cache
@pytest.fixture(scope="module")
def cache_smiles():
    return load_dataset("zinc", "test", limit=150) + ["C1CC", "CC(=O)[O-].[Na+]"]


def _forbid_tokenizing(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("tokenize_many called: the cache was not used")

    monkeypatch.setattr(tokens_mod, "tokenize_many", boom)


def _count_tokenizing(monkeypatch):
    calls = []
    real = tokens_mod.tokenize_many

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens_mod, "tokenize_many", counting)
    return calls


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a.ids), np.asarray(b.ids))
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.index, b.index)
    assert a.tokenizer == b.tokenizer
    assert (a.n_input, a.n_failed, a.key) == (b.n_input, b.n_failed, b.key)


def test_token_cache_second_call_loads_from_disk(cache_env, cache_smiles, monkeypatch):
    first = tokenize_file(cache_smiles, progress=False)
    assert first.n_input == len(cache_smiles)
    assert first.n_failed == 1  # C1CC; the salt is kept as acetate
    assert len(first) == len(cache_smiles) - 1
    assert first.index.tolist() == list(range(len(cache_smiles) - 2)) + [len(cache_smiles) - 1]
    folder = cache_env / "tokens" / first.key
    assert (folder / "meta.json").exists()
    assert (folder / "ids.npy").exists()
    # the arrays match a plain encode with the fitted vocabulary
    batch = first.tokenizer.encode(cache_smiles)
    np.testing.assert_array_equal(first.ids, batch.ids)
    np.testing.assert_array_equal(first.lengths, batch.lengths)
    np.testing.assert_array_equal(first.index, batch.index)

    _forbid_tokenizing(monkeypatch)
    second = tokenize_file(cache_smiles, progress=False)
    _same(first, second)
    assert isinstance(second.ids, np.memmap)  # memory-mapped on load
    third = tokenize_file(cache_smiles, progress=False, mmap=False)
    assert not isinstance(third.ids, np.memmap)
    _same(first, third)


def test_token_cache_with_a_given_tokenizer(cache_env, cache_smiles, monkeypatch):
    tok = SelfiesTokenizer.fit(cache_smiles, progress=False)
    first = tokenize_file(cache_smiles, tokenizer=tok, progress=False)
    assert first.tokenizer == tok
    np.testing.assert_array_equal(first.ids, tok.encode(cache_smiles).ids)
    _forbid_tokenizing(monkeypatch)
    _same(first, tokenize_file(cache_smiles, tokenizer=tok, progress=False))


def test_token_cache_keys(cache_env, cache_smiles):
    base = tokenize_file(cache_smiles, progress=False)
    tok = base.tokenizer
    wider = SelfiesTokenizer(tok.itos, tok.max_length + 10)
    bigger = SelfiesTokenizer(tok.itos + ["[Se]"], tok.max_length)
    keys = {
        base.key,
        tokenize_file(cache_smiles, tokenizer=tok, progress=False).key,
        tokenize_file(cache_smiles, tokenizer=wider, progress=False).key,
        tokenize_file(cache_smiles, tokenizer=bigger, progress=False).key,
        tokenize_file(cache_smiles, max_length=30, progress=False).key,
        tokenize_file(cache_smiles[:-1], progress=False).key,
        tokenize_file(cache_smiles[::-1], progress=False).key,
        tokenize_file(cache_smiles[:-1] + ["CCO"], progress=False).key,
    }
    assert len(keys) == 8
    assert {p.name for p in (cache_env / "tokens").iterdir()} == keys  # one folder per key, no leftovers
    # same input and same tokenizer: same key
    assert tokenize_file(list(cache_smiles), tokenizer=SelfiesTokenizer.from_dict(tok.to_dict()), progress=False).key \
        == tokenize_file(cache_smiles, tokenizer=tok, progress=False).key
    # the wider tokenizer pads further
    assert tokenize_file(cache_smiles, tokenizer=wider, progress=False).ids.shape[1] == base.ids.shape[1] + 10


def test_cache_false_writes_nothing(cache_env, cache_smiles):
    data = tokenize_file(cache_smiles, cache=False, progress=False)
    assert len(data) == len(cache_smiles) - 1
    assert not (cache_env / "tokens").exists() or not any((cache_env / "tokens").iterdir())


@pytest.mark.parametrize(
    "target, corrupt",
    [
        ("ids.npy", lambda b: b[: len(b) // 2]),
        ("ids.npy", lambda b: b[:50]),  # cut inside the header
        ("lengths.npy", lambda b: b[: len(b) - 7]),
        ("meta.json", lambda b: b[:10]),
        ("meta.json", lambda b: b"{}"),
    ],
    ids=["ids-half", "ids-header", "lengths-short", "meta-truncated", "meta-empty-dict"],
)
@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "no-mmap"])
def test_corrupted_cache_is_rebuilt_with_a_warning(cache_env, cache_smiles, monkeypatch, caplog, target, corrupt, mmap):
    good = tokenize_file(cache_smiles, progress=False, mmap=False)
    path = cache_env / "tokens" / good.key / target
    path.write_bytes(corrupt(path.read_bytes()))
    calls = _count_tokenizing(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="molvae.data"):
        rebuilt = tokenize_file(cache_smiles, progress=False, mmap=mmap)
    assert calls == [1]
    assert any("rebuilding" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    _same(good, rebuilt)
    # the rebuilt cache is whole again
    _forbid_tokenizing(monkeypatch)
    _same(good, tokenize_file(cache_smiles, progress=False, mmap=mmap))


@pytest.mark.parametrize("target", ["ids.npy", "lengths.npy"])
def test_empty_cache_file_is_rebuilt(cache_env, cache_smiles, target, monkeypatch):
    good = tokenize_file(cache_smiles, progress=False, mmap=False)
    path = cache_env / "tokens" / good.key / target
    path.write_bytes(b"")
    calls = _count_tokenizing(monkeypatch)
    rebuilt = tokenize_file(cache_smiles, progress=False, mmap=False)
    assert calls == [1]  # the empty file was not read as data: the molecules were tokenized again
    assert path.stat().st_size > 0  # and the cache file is whole again
    np.testing.assert_array_equal(np.asarray(rebuilt.ids), np.asarray(good.ids))
    np.testing.assert_array_equal(rebuilt.lengths, good.lengths)
    assert (rebuilt.n_input, rebuilt.n_failed, rebuilt.key) == (good.n_input, good.n_failed, good.key)


def test_tokenize_file_honours_the_tokenizer_standardize_setting(cache_env):
    smiles = ["CCO", "[13CH3]O", "CC(=O)O.[Na+]"]
    tok = SelfiesTokenizer.fit(["CCO", "CC(=O)O"], progress=False, standardize_input=False)
    batch = tok.encode(smiles)
    data = tokenize_file(smiles, tokenizer=tok, cache=False, progress=False)
    assert data.index.tolist() == batch.index.tolist() == [0]


def test_cache_meta_is_plain_json(cache_env, cache_smiles):
    data = tokenize_file(cache_smiles, progress=False)
    meta = json.loads((cache_env / "tokens" / data.key / "meta.json").read_text())
    assert meta["n_input"] == len(cache_smiles)
    assert meta["n_failed"] == 1
    assert SelfiesTokenizer.from_dict(meta["tokenizer"]) == data.tokenizer
    failures = pd.read_csv(cache_env / "tokens" / data.key / "failures.csv")
    assert failures["smiles"].tolist() == ["C1CC"]


# ----------------------------------------------------------------------------- BucketBatchSampler
@pytest.fixture(scope="module")
def lengths():
    rng = np.random.default_rng(3)
    return rng.integers(5, 90, size=3001)


def _padding(batches, lengths):
    """Mean number of pad positions per molecule when each batch is padded to its longest."""
    pad = sum(int((lengths[b].max() - lengths[b]).sum()) for b in batches)
    return pad / sum(len(b) for b in batches)


def test_every_index_once_per_epoch(lengths):
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        flat = np.concatenate(batches)
        assert np.array_equal(np.sort(flat), np.arange(len(lengths)))
        assert all(1 <= len(b) <= 32 for b in batches)


def test_batches_are_length_homogeneous(lengths):
    batches = BucketBatchSampler(lengths, batch_size=32, seed=0).batches()
    rng = np.random.default_rng(0)
    random_batches = np.array_split(rng.permutation(len(lengths)), len(batches))
    bucketed, random_pad = _padding(batches, lengths), _padding(random_batches, lengths)
    assert bucketed < 0.25 * random_pad, (bucketed, random_pad)


def test_epochs_and_seeds(lengths):
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=5)
    e0 = np.concatenate(sampler.batches())
    sampler.set_epoch(1)
    e1 = np.concatenate(sampler.batches())
    assert not np.array_equal(e0, e1)
    sampler.set_epoch(0)
    np.testing.assert_array_equal(np.concatenate(sampler.batches()), e0)
    twin = BucketBatchSampler(lengths, batch_size=32, seed=5)
    twin.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate(twin.batches()), e1)
    other = BucketBatchSampler(lengths, batch_size=32, seed=6)
    assert not np.array_equal(np.concatenate(other.batches()), e0)


def test_drop_last_gives_only_full_batches(lengths):
    batches = BucketBatchSampler(lengths, batch_size=32, seed=0, drop_last=True).batches()
    assert all(len(b) == 32 for b in batches)
    flat = np.concatenate(batches)
    assert len(np.unique(flat)) == len(flat)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_distributed_ranks_split_the_same_global_batches(lengths, world_size, drop_last):
    single = BucketBatchSampler(lengths, batch_size=32, seed=9, drop_last=drop_last)
    single.set_epoch(2)
    global_batches = [b for b in single.batches() if len(b) >= world_size]
    shards = []
    for rank in range(world_size):
        sampler = BucketBatchSampler(
            lengths, batch_size=32, seed=9, rank=rank, world_size=world_size, drop_last=drop_last
        )
        sampler.set_epoch(2)
        shards.append(sampler.batches())
        assert len(sampler) == len(shards[-1])
    # every rank takes the same number of steps (no rank waits forever in an all-reduce)
    assert {len(s) for s in shards} == {len(global_batches)}
    # the ranks' pieces are disjoint
    flats = [np.concatenate(s) for s in shards]
    everything = np.concatenate(flats)
    assert len(np.unique(everything)) == len(everything)
    # step k of all ranks together is global batch k, split into near-equal pieces
    for k, batch in enumerate(global_batches):
        pieces = [s[k] for s in shards]
        assert np.array_equal(np.sort(np.concatenate(pieces)), np.sort(batch))
        sizes = [len(p) for p in pieces]
        assert max(sizes) - min(sizes) <= 1, sizes
        if len(batch) % world_size == 0:
            assert len(set(sizes)) == 1
    if drop_last and 32 % world_size == 0:
        assert len({len(f) for f in flats}) == 1  # equal numbers of molecules per rank
    if not drop_last:
        # only batches smaller than world_size can be left out
        assert len(lengths) - len(everything) < world_size * int(np.ceil(len(lengths) / (32 * 50)))


def test_distributed_shards_change_with_the_epoch(lengths):
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=9, rank=1, world_size=2)
    e0 = np.concatenate(sampler.batches())
    sampler.set_epoch(1)
    assert not np.array_equal(e0, np.concatenate(sampler.batches()))


def test_a_smi_header_after_blank_lines_is_a_header(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n\nsmiles name\nCCO ethanol\n\nc1ccccc1O phenol\n")
    out = read_smiles(path)
    assert list(out) == ["CCO", "c1ccccc1O"] and out.n_read == 2 and out.n_rejected == 0
    from molvae.data.readers import iter_records

    assert list(iter_records(path)) == [(4, "CCO"), (6, "c1ccccc1O")]  # physical line numbers


def test_records_keep_the_physical_line_of_a_quoted_multiline_row(tmp_path):
    from molvae.data.readers import iter_records

    path = tmp_path / "mols.csv"
    path.write_text('name,smiles\n"two\nlines",CCO\nphenol,c1ccccc1O\n')
    assert list(iter_records(path)) == [(2, "CCO"), (4, "c1ccccc1O")]
