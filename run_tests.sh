#!/usr/bin/env bash
# Run the tests: repository checks, unit and integration tests, and the smoke profile end to end.
#
#   ./run_tests.sh              # everything (what CI runs)
#   ./run_tests.sh -m "not smoke"   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
echo "t2p: checking the repository (stripped notebooks, no images or weights in git)"
"$PY" -m t2p_utils.runner.repocheck
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
exec "$PY" -m pytest "$@"
