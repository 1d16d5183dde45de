"""benchmarks/balanced_subset.py: the property-balanced draw of the stage-3 conditional experiment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import load_benchmark

from molvae.data.datasets import load_dataset
from molvae.properties import compute

bs = load_benchmark("balanced_subset")


@pytest.fixture(scope="module")
def moses_props():
    smiles = load_dataset("moses", "test", limit=3000)
    return compute(smiles, ["logp", "qed"], n_jobs=1).dropna().reset_index(drop=True)


def test_the_draw_flattens_the_property_distribution_of_real_molecules(moses_props):
    values = moses_props[["logp", "qed"]].to_numpy()
    pick = bs.balanced_pick(values, 1000, alpha=1.0, rng=np.random.default_rng(0))
    assert len(pick) == len(set(pick.tolist())) == 1000  # without replacement
    kept = moses_props.iloc[pick]
    # the sparse ends of MOSES gain share, its crowded middle loses it
    for name, lo, hi in (("logp", 1.35, 3.65), ("qed", 0.65, 0.95)):
        tails = lambda df: float(((df[name] < lo) | (df[name] > hi)).mean())  # noqa: E731
        assert tails(kept) > 1.3 * tails(moses_props)
    # alpha 0 is a plain uniform draw: the shares stay those of the pool
    plain = moses_props.iloc[bs.balanced_pick(values, 1000, alpha=0.0, rng=np.random.default_rng(0))]
    assert abs(plain["logp"].mean() - moses_props["logp"].mean()) < 0.1


def test_the_script_writes_the_subset(tmp_path, capsys):
    out = tmp_path / "balanced.csv"
    bs.main(["--pool", "600", "--n", "200", "--seed", "1", "--out", str(out)])
    df = pd.read_csv(out)
    assert list(df.columns) == ["smiles", "logp", "qed"] and len(df) == 200
    assert df["smiles"].is_unique and df[["logp", "qed"]].notna().all().all()
    assert "logp 1.0: within 0.35" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="more than the 600 molecules"):
        bs.main(["--pool", "600", "--n", "700", "--out", str(out)])
