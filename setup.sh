#!/usr/bin/env bash
# Set up molvae in ./.venv: torch first (the CPU build unless MOLVAE_TORCH says otherwise),
# then the package in editable mode with its dev extras.  Safe to run again.
#   bash setup.sh --postgres          also what the PostgreSQL tests need: the postgres extra
#                                     (psycopg2) and, when no server binaries (initdb, pg_ctl)
#                                     are found, Debian's postgresql package (root + apt-get only).
#                                     The tests start their own throw-away server; nothing is
#                                     left running.  MOLVAE_POSTGRES=1 does the same.
#   MOLVAE_TORCH="torch==2.13.0"      default; e.g. MOLVAE_TORCH="torch --index-url https://download.pytorch.org/whl/cu124"
#   MOLVAE_PYTHON=python3.12          interpreter for the virtual environment (default python3)
set -euo pipefail
cd "$(dirname "$0")"
postgres=${MOLVAE_POSTGRES:-0}
for arg in "$@"; do
  case "$arg" in
    --postgres) postgres=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg (use --postgres or nothing)" >&2; exit 2 ;;
  esac
done

# Server binaries as tests/conftest.py looks for them: on PATH or in Debian's versioned folder.
have_postgres_server() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && return 0
  done
  return 1
}
if [ "$postgres" = 1 ] && ! have_postgres_server; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: installing PostgreSQL (apt-get install postgresql) for the postgres tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "setup.sh: no PostgreSQL server binaries (initdb, pg_ctl) found, and installing them needs" >&2
    echo "  root and apt-get: install PostgreSQL yourself (or set MOLVAE_TEST_POSTGRES_URL to a server);" >&2
    echo "  until then the postgres tests are skipped (and fail under CI=true)" >&2
  fi
fi
py=${MOLVAE_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  python -m pip install -q ${MOLVAE_TORCH:-torch==2.13.0}
fi
extras=dev
if [ "$postgres" = 1 ]; then extras=dev,postgres; fi
python -m pip install -q -e ".[$extras]"
# GuacaMol's scoring functions (the PMO oracles).  --no-deps: it pins the retired rdkit-pypi;
# what it needs (numpy, scipy, joblib, rdkit) is already here.
python -m pip install -q --no-deps "guacamol==0.5.5"
python -c "import molvae, torch, rdkit; print(f'molvae {molvae.__version__} ready (torch {torch.__version__}, rdkit {rdkit.__version__})')"
