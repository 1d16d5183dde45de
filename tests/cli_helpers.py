"""What the CLI test modules share: a tiny model trained once through ``molvae train`` (on 40
ZINC molecules and one bad row), its TOML, a CSV writer and an in-process runner.

The ``tiny_run`` fixture of ``tests/conftest.py`` hands the model to the tests; it is trained
once per session, whichever test asks first.
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest
from helpers import TINY_MODEL_TOML, zinc

from molvae.cli.main import main

TINY_TOML = TINY_MODEL_TOML + """
[train]
epochs = 2
batch_size = 16
n_prior_samples = 20
max_val = 32
val_fraction = 0.1
log_every = 5
num_threads = 1
kl_warmup_steps = 10
device = "cpu"
"""

BAD = "not_a_smiles"
N_GOOD = 40
BAD_ROW = 20  # the bad row's index in the data file

_RUNS: dict[str, dict] = {}


def write_smiles_csv(path, smiles) -> None:
    pd.DataFrame({"name": [f"m{i}" for i in range(len(smiles))], "smiles": smiles}).to_csv(path, index=False)


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``molvae ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def tiny_run(tmp_path_factory) -> dict:
    """A tiny model trained through the CLI, with its data file (40 molecules, one bad row at
    index 20) and run folder; trained once per session."""
    if "run" not in _RUNS:
        root = tmp_path_factory.mktemp("cli")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MOLVAE_CACHE_DIR", str(root / "cache"))
            smiles = zinc(N_GOOD)
            data = root / "mols.csv"
            write_smiles_csv(data, smiles[:BAD_ROW] + [BAD] + smiles[BAD_ROW:])
            (root / "tiny.toml").write_text(TINY_TOML)
            code, _, err = cli(["train", "--data", str(data), "--out", str(root / "run"), "--config",
                                str(root / "tiny.toml"), "-q"])
            assert code == 0, err
        _RUNS["run"] = {"root": root, "data": data, "out": root / "run", "model": root / "run" / "best.pt",
                        "toml": root / "tiny.toml", "smiles": smiles}
    return _RUNS["run"]
