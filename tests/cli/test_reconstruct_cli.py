"""``molvae reconstruct``: encode then decode, greedy or by beam search, one row per input row."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_helpers import BAD_ROW, N_GOOD, cli

import molvae

pytestmark = pytest.mark.usefixtures("cache_env")


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return molvae.MolVAE.load(tiny_run["model"], device="cpu")


def _reconstruct(tiny_run, dest, *extra) -> tuple[pd.DataFrame, str]:
    code, out, err = cli(["reconstruct", "--model", str(tiny_run["model"]), str(tiny_run["data"]), "-o", str(dest),
                          "-q", *extra])
    assert code == 0, err
    return pd.read_csv(dest, keep_default_na=False), out


def test_reconstruct_greedy(tiny_run, tiny, tmp_path):
    r, out = _reconstruct(tiny_run, tmp_path / "r.csv")
    assert len(r) == N_GOOD + 1
    assert list(r.columns) == ["input", "canonical", "reconstruction", "encoded", "exact"]
    assert r.encoded.tolist() == [i != BAD_ROW for i in range(N_GOOD + 1)]
    assert r.reconstruction[BAD_ROW] == "" and not r.exact[BAD_ROW]
    good = r.drop(index=BAD_ROW)
    assert good.reconstruction.tolist() == tiny.decode(tiny.encode(tiny_run["smiles"]))
    assert (good.exact == (good.canonical == good.reconstruction)).all()
    assert f"exact reconstruction: {r.exact.mean():.3f} of {N_GOOD + 1} (1 not encodable)" in out


def test_reconstruct_beam(tiny_run, tiny, tmp_path):
    greedy, _ = _reconstruct(tiny_run, tmp_path / "greedy.csv")
    beam, _ = _reconstruct(tiny_run, tmp_path / "beam.csv", "--beam", "3")
    want = tiny.reconstruct(tiny_run["smiles"], method="beam", beam_width=3)
    assert beam.drop(index=BAD_ROW).reconstruction.tolist() == want.reconstruction.tolist()
    assert (beam.reconstruction != greedy.reconstruction).any()  # the width was used (the tiny model differs on all 40)
    wide = tiny.reconstruct(tiny_run["smiles"], method="beam", beam_width=5)
    assert want.reconstruction.tolist() != wide.reconstruction.tolist()  # and it is the width asked for


def test_reconstruct_strings_and_print(tiny_run, tiny):
    code, out, _ = cli(["reconstruct", "--model", str(tiny_run["model"]), "CCO", "Oc1ccccc1", "-q"])
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("exact reconstruction: ") and lines[0].endswith("of 2 (0 not encodable)")
    assert lines[1].split() == ["input", "canonical", "reconstruction", "encoded", "exact"]
    rec = tiny.reconstruct(["CCO", "Oc1ccccc1"])
    assert [row.split()[3] for row in lines[2:]] == rec.reconstruction.tolist()
