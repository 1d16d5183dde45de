"""``molvae encode``: latent means as CSV (with a status per row) or .npy, from a file or strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import BAD, BAD_ROW, N_GOOD, cli

import molvae

pytestmark = pytest.mark.usefixtures("cache_env")


ZCOLS = [f"z{i}" for i in range(8)]


def test_encode_a_file_to_csv_and_npy(tiny_run, tmp_path):
    model_args = ["--model", str(tiny_run["model"])]
    z_csv = tmp_path / "z.csv"
    code, out, _ = cli(["encode", *model_args, str(tiny_run["data"]), "-o", str(z_csv), "-q"])
    assert code == 0
    assert f"encoded {N_GOOD} of {N_GOOD + 1} molecules" in out
    z = pd.read_csv(z_csv)
    assert len(z) == N_GOOD + 1
    assert list(z.columns) == ["smiles", "status"] + ZCOLS
    bad = z.smiles == BAD
    assert bad.tolist() == [i == BAD_ROW for i in range(N_GOOD + 1)]
    assert z.loc[bad, ZCOLS].isna().all(axis=None)
    assert z.loc[~bad, ZCOLS].notna().all(axis=None)
    assert (z.status[~bad] == "ok").all()
    assert z.status[bad].iloc[0].startswith("invalid SMILES")
    # the same latent means as the library gives
    model = molvae.MolVAE.load(tiny_run["model"], device="cpu")
    assert np.allclose(z.loc[~bad, ZCOLS].to_numpy(np.float32), model.encode(tiny_run["smiles"]), atol=1e-5)

    npy = tmp_path / "z.npy"
    code, out, _ = cli(["encode", *model_args, str(tiny_run["data"]), "-o", str(npy), "-q"])
    assert code == 0 and "rows of NaN: 1 not encodable" in out
    arr = np.load(npy)
    assert arr.shape == (N_GOOD + 1, 8) and np.isnan(arr[BAD_ROW]).all()
    np.testing.assert_allclose(np.delete(arr, BAD_ROW, axis=0), z.loc[~bad, ZCOLS].to_numpy(np.float32), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.csv", "z.npy"]  # nothing left beside them


def test_encode_smiles_given_on_the_command_line(tiny_run, tmp_path):
    dest = tmp_path / "z.csv"
    code, out, _ = cli(["encode", "--model", str(tiny_run["model"]), "CCO", "c1ccccc1", "[Se]", "-o", str(dest), "-q"])
    assert code == 0 and "encoded 2 of 3" in out
    z = pd.read_csv(dest)
    assert z.smiles.tolist() == ["CCO", "c1ccccc1", "[Se]"]
    assert z.status[:2].tolist() == ["ok", "ok"] and "outside the vocabulary" in z.status[2]


def test_encode_prints_the_first_rows_without_output(tiny_run):
    code, out, _ = cli(["encode", "--model", str(tiny_run["model"]), str(tiny_run["data"]), "-q"])
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[1].split() == ["smiles", "status", *ZCOLS]
    assert len(lines) == 2 + 10 + 1 and lines[-1] == f"... {N_GOOD + 1 - 10} more rows (use -o FILE to write them all)"
