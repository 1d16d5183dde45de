"""``molvae sample``: files and printed tables, faithful and not, greedy decoding, ``--unique``,
``--properties``, streaming in chunks, Parquet, learned priors."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from cli_helpers import cli

import molvae
from molvae.chem import to_mol
from molvae.properties import compute

pytestmark = pytest.mark.usefixtures("cache_env")


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return molvae.MolVAE.load(tiny_run["model"], device="cpu")


def _sample(tiny_run, *extra: str) -> tuple[int, str, str]:
    return cli(["sample", "--model", str(tiny_run["model"]), "--no-faithful", "-q", *extra])


def test_sample(tiny_run, tmp_path):
    dest = tmp_path / "s.csv"
    assert _sample(tiny_run, "-n", "20", "--seed", "0", "-o", str(dest))[0] == 0
    df = pd.read_csv(dest)
    assert len(df) == 20
    assert list(df.columns) == ["smiles", "valid", "faithful", "nll"]  # no SELFIES unless asked
    assert df.valid.all() and all(to_mol(s) is not None for s in df.smiles)
    again = tmp_path / "s2.csv"
    assert _sample(tiny_run, "-n", "20", "--seed", "0", "-o", str(again), "--selfies")[0] == 0
    both = pd.read_csv(again)
    assert "selfies" in both.columns
    pd.testing.assert_frame_equal(df, both.drop(columns="selfies"))


def test_sample_prints_a_readable_table_of_faithful_molecules():
    """The README's main command: SMILES and the properties asked for, the acceptance rate."""
    code, out, _ = cli(["sample", "-n", "6", "--seed", "0", "--properties", "qed,logp", "-q"])
    assert code == 0
    first, header, *rows = out.strip().splitlines()
    assert "6 sampled" in first and "faithful" in first and "redrawn" in first
    assert header.split() == ["smiles", "qed", "logp"]
    assert len(rows) == 6 and max(len(r) for r in rows) < 100
    smiles = [r.split()[1] for r in rows]
    assert all(to_mol(s) is not None for s in smiles)
    want = compute(smiles, ["qed", "logp"]).round(3)
    assert [float(r.split()[2]) for r in rows] == pytest.approx(want.qed.tolist(), abs=1e-3)
    assert [float(r.split()[3]) for r in rows] == pytest.approx(want.logp.tolist(), abs=1e-3)
    code, out, _ = cli(["sample", "-n", "4", "--seed", "0", "--no-faithful", "--prior", "standard", "--selfies", "-q"])
    assert code == 0
    assert "faithful" in out.splitlines()[0] and "redrawn" not in out.splitlines()[0]
    assert out.splitlines()[1].split() == ["smiles", "selfies"]


def test_greedy_method_decodes_each_prior_point_greedily(tiny_run, tiny, tmp_path):
    dest = tmp_path / "greedy.csv"
    assert _sample(tiny_run, "-n", "30", "--seed", "3", "--method", "greedy", "--prior", "standard",
                   "-o", str(dest))[0] == 0
    z = torch.randn(30, tiny.latent_dim, generator=torch.Generator().manual_seed(3))  # the points drawn for seed 3
    assert pd.read_csv(dest).smiles.tolist() == tiny.decode(z, method="greedy")
    sampled = tmp_path / "sampled.csv"
    assert _sample(tiny_run, "-n", "30", "--seed", "3", "--prior", "standard", "-o", str(sampled))[0] == 0
    assert pd.read_csv(sampled).smiles.tolist() != pd.read_csv(dest).smiles.tolist()


@pytest.mark.parametrize("streamed", [False, True], ids=["one-table", "streamed"])
def test_unique_keeps_the_first_of_each_molecule(tiny_run, tmp_path, streamed):
    """Greedy decoding of a tiny model repeats molecules: --unique keeps each one once, in order."""
    chunks = ["--chunk-size", "25"] if streamed else []
    base = ["-n", "60", "--seed", "0", "--method", "greedy", *chunks]
    every, unique = tmp_path / "every.csv", tmp_path / "unique.csv"
    assert _sample(tiny_run, *base, "-o", str(every))[0] == 0
    code, out, _ = _sample(tiny_run, *base, "--unique", "-o", str(unique))
    assert code == 0
    a, b = pd.read_csv(every), pd.read_csv(unique)
    assert len(a) == 60 and a.valid.all()
    want = a.drop_duplicates("smiles").reset_index(drop=True)
    assert len(want) < 50  # there were repeats to drop (45 distinct, seed 0)
    pd.testing.assert_frame_equal(b, want)
    if streamed:
        assert f"duplicates dropped {60 - len(want):,})" in out
    else:
        assert f"wrote {len(want):,} rows" in out


@pytest.mark.parametrize("streamed", [False, True], ids=["one-table", "streamed"])
def test_properties_are_those_of_the_sampled_molecules(tiny_run, tmp_path, streamed):
    chunks = ["--chunk-size", "7"] if streamed else []
    dest = tmp_path / "props.csv"
    assert _sample(tiny_run, "-n", "16", "--seed", "1", "--properties", "qed, logp,mw", *chunks, "-o", str(dest))[0] == 0
    df = pd.read_csv(dest)
    assert list(df.columns) == ["smiles", "valid", "faithful", "nll", "qed", "logp", "mw"]
    want = compute(df.smiles.tolist(), ["qed", "logp", "mw"])
    pd.testing.assert_frame_equal(df[["qed", "logp", "mw"]], want[["qed", "logp", "mw"]], check_exact=False, atol=1e-9)


def test_streamed_file_holds_the_chunks_the_library_draws(tiny_run, tiny, tmp_path):
    dest = tmp_path / "big.csv"
    code, out, _ = _sample(tiny_run, "-n", "50", "--chunk-size", "20", "--seed", "4", "-o", str(dest))
    assert code == 0 and out.startswith(f"wrote 50 rows to {dest}")
    want = pd.concat(list(tiny.sample_iter(50, chunk_size=20, seed=4, faithful=False)), ignore_index=True)
    got = pd.read_csv(dest)
    assert got.smiles.tolist() == want.smiles.tolist()
    assert got.nll.to_numpy() == pytest.approx(want.nll.to_numpy(), rel=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]  # nothing left beside it


@pytest.mark.parametrize("n", ["10", "30"], ids=["one-table", "streamed"])
def test_parquet_without_pyarrow_is_a_clear_error_before_sampling(tiny_run, tmp_path, monkeypatch, n):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    dest = tmp_path / "s.parquet"
    code, _, err = _sample(tiny_run, "-n", n, "--chunk-size", "20", "-o", str(dest))
    assert code == 2
    assert err.startswith("molvae sample: error:") and "pip install pyarrow" in err and str(dest) in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("n", ["10", "30"], ids=["one-table", "streamed"])
def test_parquet_output(tiny_run, tmp_path, n):
    pytest.importorskip("pyarrow")
    csv, parquet = tmp_path / "s.csv", tmp_path / "s.parquet"
    for dest in (csv, parquet):
        assert _sample(tiny_run, "-n", n, "--chunk-size", "20", "--seed", "2", "--properties", "qed",
                       "-o", str(dest))[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), pd.read_csv(csv), check_exact=False)


def test_sample_with_a_learned_prior_the_model_lacks_is_a_usage_error(tiny_run):
    code, _, err = cli(["sample", "--model", str(tiny_run["model"]), "-n", "3", "--prior", "learned", "-q"])
    assert code == 2 and "no learned prior" in err
