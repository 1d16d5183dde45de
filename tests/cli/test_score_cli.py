"""``molvae score``: the rows it reads are those ``read_smiles`` reads, the output goes to a file
atomically or to standard output as it comes.  (Likelihood values and the shipped model:
``tests/unit/vae/test_likelihood.py``.)"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from cli_helpers import cli
from helpers import zinc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import molvae
from molvae.cli.score import OUTPUT_COLUMNS, iter_smiles_chunks
from molvae.data import read_smiles

pytestmark = pytest.mark.usefixtures("cache_env")


_PIECES = [
    b"CCO", b"c1ccccc1O", b"CC(=O)[O-].[Na+]", b"smiles", b"SMILES", b"name", b"id", b"\n", b"\r\n", b"\r", b",",
    b"\t", b" ", b'"', b'""', b"\xef\xbb\xbf", b"\xff", b"\x00", b"\x0c", b"(((", b"C" * 12_000, b"not_a_smiles",
]


def _read_like_read_smiles(path) -> list[str]:
    """What ``score`` reads, less the rows ``read_smiles(validate=False)`` drops (empty, too long, not UTF-8)."""
    rows = [s for chunk in iter_smiles_chunks(path, chunk_size=7) for s in chunk]
    return [s for s in rows if s and len(s) <= 10_000 and "\ufffd" not in s]


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=30)), max_size=30),
       st.sampled_from([".csv", ".tsv", ".smi", ".txt", ".csv.gz"]))
@example([b"name,smiles\n", b"a,CCO\n", b"\n", b",\n", b"b,c1ccccc1O\n"], ".csv")
@example([b"CCO,x\n", b"c1ccccc1O,y\n"], ".csv")  # no header line: the first row is a molecule
@example([b"\n", b"smiles name\r\n", b"CCO m1\r", b"c1ccccc1O m2\n"], ".smi")
def test_score_reads_the_molecules_read_smiles_reads(tmp_path_factory, pieces, suffix):
    import gzip

    path = tmp_path_factory.mktemp("read") / f"input{suffix}"
    raw = b"".join(pieces)
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    try:
        want = list(read_smiles(path, validate=False))
    except ValueError:
        want = None
    try:
        got = _read_like_read_smiles(path)
    except ValueError:
        assert want is None, "score refused a file read_smiles reads"
        return
    if want is not None:
        assert got == want


def test_a_named_column_and_a_headerless_file(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("id,smiles,other\n1,CCO,c1ccccc1\n2,,CCN\n\n3,CCC,CCCC\n")
    assert _read_like_read_smiles(table) == list(read_smiles(table, validate=False)) == ["CCO", "CCC"]
    assert [s for c in iter_smiles_chunks(table) for s in c] == ["CCO", "", "CCC"]  # the empty cell is scored: a row
    other = [s for c in iter_smiles_chunks(table, column="other") for s in c]
    assert other == ["c1ccccc1", "CCN", "CCCC"] == list(read_smiles(table, column="other", validate=False))
    bare = tmp_path / "bare.csv"
    bare.write_text("CCO,a\nc1ccccc1O,b\n")
    assert [s for c in iter_smiles_chunks(bare) for s in c] == ["CCO", "c1ccccc1O"] == list(read_smiles(bare))


def test_score_to_a_file_and_to_standard_output(tiny_run, tmp_path, capsys):
    model = molvae.MolVAE.load(tiny_run["model"], device="cpu")
    rows = zinc(5) + ["not_a_smiles", "[Se]"]
    src = tmp_path / "in.smi"
    src.write_text("\n".join(rows) + "\n")
    argv = ["score", "--model", str(tiny_run["model"]), str(src), "-k", "2", "--chunk-size", "3", "-q"]
    dest = tmp_path / "scores.csv"
    code, out, err = cli([*argv, "-o", str(dest)])
    assert code == 0
    assert out.strip() == f"scored 5 of 7 molecules with k=2, mean log p(x) {_mean_log_px(model, rows):.2f} nats; " \
                          f"not scorable: 2 (invalid SMILES (RDKit cannot parse it): 1, tokens outside the vocabulary: 1); "\
                          f"wrote 7 rows to {dest}"
    written = pd.read_csv(dest, keep_default_na=False, na_values=[""])
    assert list(written.columns) == [*OUTPUT_COLUMNS, "n_tokens"] and written.smiles.tolist() == rows
    lib = model.score(rows, k=2)
    pd.testing.assert_series_equal(written.log_px, lib.log_px, check_exact=False, rtol=1e-6)
    code, out, err = cli(argv)  # no -o: the CSV on standard output, the summary on standard error
    assert code == 0 and err.startswith("scored 5 of 7 molecules")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""]), written)


def _mean_log_px(model, rows) -> float:
    df = model.score(rows, k=2)
    return float(df.log_px[df.reason == ""].mean())


def test_a_failure_midway_leaves_the_earlier_output(tiny_run, tmp_path, monkeypatch):
    import molvae.vae.likelihood as likelihood

    real, calls = likelihood.score, {"n": 0}

    def fails_on_the_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(likelihood, "score", fails_on_the_second_chunk)
    src = tmp_path / "in.smi"
    src.write_text("\n".join(zinc(6)) + "\n")
    dest = tmp_path / "scores.csv"
    dest.write_text("earlier output\n")
    code, _, err = cli(["score", "--model", str(tiny_run["model"]), str(src), "--chunk-size", "3", "-o", str(dest), "-q"])
    assert code == 2 and "out of memory (simulated)" in err and calls["n"] == 2
    assert dest.read_text() == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.smi", "scores.csv"]
