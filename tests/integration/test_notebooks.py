"""Execute the example notebooks top to bottom (nbclient, the ``python3`` kernel of this
interpreter), with the notebooks folder as working directory.

The kernel gets ``OMP_NUM_THREADS=1`` (the CI machine has 2 cores) and the suite's private
``MOLVAE_CACHE_DIR``.  The notebooks must be committed without outputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 600


def test_notebooks_are_present():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_quickstart.ipynb",
        "02_latent_space.ipynb",
        "03_optimization.ipynb",
        "04_train_your_own.ipynb",
        "05_conditional_generation.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs; strip them before committing"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    t0 = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, with the cell and traceback, on the first failure
    elapsed = time.perf_counter() - t0

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 2, f"{path.name}: expected figures and molecule grids, got {images} images"
    print(f"{path.name}: {elapsed:.0f} s")
