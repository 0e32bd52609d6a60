#!/usr/bin/env bash
# Runs every test (unit, integration, CLI) in release mode, sharing one build with the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
cargo test --release --workspace "$@"
