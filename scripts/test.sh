#!/usr/bin/env bash
# Runs every test (unit, integration, CLI, streaming against real broker processes) in release mode, sharing one
# build with the binaries. Installs what the tests start: the tansu broker (cached outside the clone) and
# Debian's docker-compose (to validate docker-compose.yml offline), and the trainer's Python venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
TOOLS="$HOME/.cache/streamrec/tools"
if [ ! -x "$TOOLS/bin/tansu" ]; then
    echo "installing the tansu broker (once, ~7 min) into $TOOLS"
    cargo install tansu --version 0.6.0 --locked --features dynostore --root "$TOOLS"
fi
export STREAMREC_TANSU="$TOOLS/bin/tansu"
# The trainers' virtualenv (CatBoost, torch, onnxruntime; cached outside the clone): the ranker tests run the Python
# trainer; sourcing also exports ORT_DYLIB_PATH, the onnxruntime library the two-tower tests load.
source scripts/trainer-env.sh
"$STREAMREC_PYTHON" trainer/smoke_test.py
"$STREAMREC_PYTHON" trainer/smoke_test_two_tower.py
bash scripts/check-compose.sh
bash scripts/check-features.sh
cargo test --release --workspace "$@"
