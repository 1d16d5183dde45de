#!/usr/bin/env bash
# Set up molvae in ./.venv: torch first (the CPU build unless MOLVAE_TORCH says otherwise),
# then the package in editable mode with its dev extras.  Safe to run again.
#   MOLVAE_TORCH="torch==2.13.0"      default; e.g. MOLVAE_TORCH="torch --index-url https://download.pytorch.org/whl/cu124"
#   MOLVAE_PYTHON=python3.12          interpreter for the virtual environment (default python3)
set -euo pipefail
cd "$(dirname "$0")"
py=${MOLVAE_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  python -m pip install -q ${MOLVAE_TORCH:-torch==2.13.0}
fi
python -m pip install -q -e ".[dev]"
# GuacaMol's scoring functions (the PMO oracles).  --no-deps: it pins the retired rdkit-pypi;
# what it needs (numpy, scipy, joblib, rdkit) is already here.
python -m pip install -q --no-deps "guacamol==0.5.5"
python -c "import molvae, torch, rdkit; print(f'molvae {molvae.__version__} ready (torch {torch.__version__}, rdkit {rdkit.__version__})')"
