# Sourced by run_all.sh and run_tests.sh: find or make the Python environment, install t2p.
#
# - An active virtualenv or conda env is used as it is (Colab, conda users).
# - Otherwise ./.venv is created with python3 -m venv.
# The package (pinned in pyproject.toml) is (re)installed when pyproject.toml changed since
# the last install into that environment. Sets $PY.
set -euo pipefail
T2P_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export T2P_ROOT
if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
  PY="$(command -v python)"
else
  if [ ! -x "$T2P_ROOT/.venv/bin/python" ]; then
    echo "t2p: creating a virtual environment in $T2P_ROOT/.venv" >&2
    python3 -m venv "$T2P_ROOT/.venv"
  fi
  PY="$T2P_ROOT/.venv/bin/python"
fi
prefix="$("$PY" -c 'import sys; print(sys.prefix)')"
stamp="$prefix/.t2p-installed"
want="$(sha256sum "$T2P_ROOT/pyproject.toml" | cut -c1-16)"
# T2P_SKIP_INSTALL=1 (the end-to-end tests, which run copies of the repository): use the environment as it is,
# never re-point its editable install at the copy
if [ -z "${T2P_SKIP_INSTALL:-}" ] && { [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || ! "$PY" -c 'import t2p_utils' 2>/dev/null; }; then
  echo "t2p: installing t2p_utils and its pinned dependencies into $prefix (first run: a few minutes)" >&2
  # torch and torchvision first, together, so that pip resolves the pinned pair in one go
  "$PY" -m pip install --disable-pip-version-check -q "torch==2.14.1" "torchvision==0.29.1"
  "$PY" -m pip install --disable-pip-version-check -q -e "$T2P_ROOT[dev]"
  echo "$want" > "$stamp"
fi
export PY
