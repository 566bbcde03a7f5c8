#!/usr/bin/env bash
# Run the whole study: notebooks 01..05 through papermill, then reports/<profile>/index.html.
#
#   ./run_all.sh            # full with CUDA, cpu otherwise
#   ./run_all.sh smoke      # synthetic data, tiny models (~3 min on 2 CPU cores)
#   ./run_all.sh cpu        # real sprites, small models from scratch (~20 min on 2 CPU cores)
#   ./run_all.sh full       # GPU + Hugging Face hub: fine-tunes timbrooks/instruct-pix2pix
#   ./run_all.sh cpu --force | --from 04_finetune
#   ./run_all.sh my.yaml    # your own data: a params file (or --params my.yaml); see README "Your own line art"
#
# A re-run resumes from the first unfinished step. Sets up ./.venv when no env is active.
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")"
source scripts/env.sh
profile=""
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then profile="$1"; shift; fi
if [ -z "$profile" ] && [ "${1:-}" = "--params" ] && [ $# -ge 2 ]; then profile="$2"; shift 2; fi
# a params file given relative to where the command was typed
if [[ "$profile" == *.yaml || "$profile" == *.yml || "$profile" == */* ]] && [[ "$profile" != /* ]]; then
  profile="$caller/$profile"
fi
if [ -z "$profile" ]; then
  profile="$("$PY" -m t2p_utils.runner.pipeline default-profile)"
  echo "t2p: no profile given; picked '$profile' ($( [ "$profile" = full ] && echo 'CUDA is available' || echo 'no CUDA GPU found'))"
else
  echo "t2p: profile '$profile'"
fi
exec "$PY" -m t2p_utils.runner.pipeline run "$profile" "$@"
