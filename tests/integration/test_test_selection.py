"""The suite's switches select what they say: slow tests stay out of the default run, also
under ``-m "not notebooks"`` (which notebooks/README.md recommends), and ``-m slow`` runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a few files that hold slow tests, notebook tests and ordinary ones (collecting all of tests/ takes longer)
FILES = ["tests/integration/test_notebooks.py", "tests/unit/test_oracles.py", "tests/integration/test_constrained_logp.py"]


def _collected(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args, *FILES],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_switches_select_slow_and_notebook_tests():
    slow = _collected("-m", "slow")
    default = _collected()
    without_notebooks = _collected("-m", "not notebooks")
    no_notebooks_flag = _collected("--no-notebooks")
    everything = _collected("--slow")
    notebooks = {t for t in default if "test_notebooks.py::test_notebook_runs" in t}
    assert slow and notebooks
    assert not slow & default  # the default run leaves the slow tests out ...
    assert not slow & without_notebooks  # ... and so does -m "not notebooks"
    assert without_notebooks == no_notebooks_flag == default - notebooks
    assert everything == default | slow
