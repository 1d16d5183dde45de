"""``molvae decode``: latent points from CSV or .npy to molecules; rows with NaN are skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import BAD_ROW, N_GOOD, cli

import molvae

pytestmark = pytest.mark.usefixtures("cache_env")


@pytest.fixture(scope="module")
def points(tiny_run, tmp_path_factory):
    """The latent means of the data file (NaN in the bad row) as z.csv and z.npy."""
    root = tmp_path_factory.mktemp("points")
    for name in ("z.csv", "z.npy"):
        code, _, err = cli(["encode", "--model", str(tiny_run["model"]), str(tiny_run["data"]), "-o", str(root / name),
                            "-q"])
        assert code == 0, err
    return root


def test_decode_csv_and_npy(tiny_run, points, tmp_path):
    model = molvae.MolVAE.load(tiny_run["model"], device="cpu")
    model_args = ["--model", str(tiny_run["model"])]
    d_csv = tmp_path / "d.csv"
    code, out, _ = cli(["decode", *model_args, str(points / "z.csv"), "-o", str(d_csv), "-q"])
    assert code == 0 and "skipping 1 rows with NaN/inf coordinates" in out
    d = pd.read_csv(d_csv)
    assert d.row.tolist() == [i for i in range(N_GOOD + 1) if i != BAD_ROW]
    assert d.valid.all()
    z = np.delete(np.load(points / "z.npy"), BAD_ROW, axis=0)
    assert d.smiles.tolist() == model.decode(z)
    d2 = tmp_path / "d2.csv"
    assert cli(["decode", *model_args, str(points / "z.npy"), "-o", str(d2), "-q"])[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(d2), d)


def test_decode_methods(tiny_run, points, tmp_path):
    model = molvae.MolVAE.load(tiny_run["model"], device="cpu")
    z = np.delete(np.load(points / "z.npy"), BAD_ROW, axis=0)
    for method, extra, want in [
        ("sample", ["--seed", "7", "--temperature", "1.5"], model.decode(z, method="sample", seed=7, temperature=1.5)),
        ("beam", [], model.decode(z, method="beam")),
    ]:
        dest = tmp_path / f"{method}.csv"
        assert cli(["decode", "--model", str(tiny_run["model"]), str(points / "z.npy"), "--method", method, *extra,
                    "-o", str(dest), "-q"])[0] == 0
        assert pd.read_csv(dest).smiles.tolist() == want, method


def test_decode_a_csv_without_latent_columns_is_a_usage_error(tiny_run, tmp_path):
    table = tmp_path / "no_z.csv"
    table.write_text("a,b\n1,2\n")
    code, _, err = cli(["decode", "--model", str(tiny_run["model"]), str(table), "-q"])
    assert code == 2 and "no latent columns z0..z7" in err
