#!/usr/bin/env bash
# The main job on the embedded default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
cargo run --release -- demo "$@"
