#!/usr/bin/env bash
# The main job on the embedded default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
# The trainers' venv (CatBoost; torch and onnxruntime, whose library it exports as ORT_DYLIB_PATH) for the learned
# parts; the rest of the demo runs without it.
source scripts/trainer-env.sh || echo "demo: no trainer venv; the two-tower and learned ranker parts will be skipped" >&2
cargo run --release -- demo "$@"
