#!/usr/bin/env bash
# The main job on the embedded default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
# The trainer's venv (CatBoost) for the learned-ranker part; the rest of the demo runs without it.
source scripts/trainer-env.sh || echo "demo: no trainer venv; the learned ranker part will be skipped" >&2
cargo run --release -- demo "$@"
