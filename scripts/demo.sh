#!/usr/bin/env bash
# The main job on the embedded default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
streamrec_apt_install
# The trainers' venv (CatBoost; torch and onnxruntime, whose library it exports as ORT_DYLIB_PATH) for the learned
# parts; the rest of the demo runs without it. On a first run it downloads while the binary compiles (the one
# waits on the network, the other on the cores): its output goes to a log, read back below.
venv_log="$CARGO_TARGET_DIR/demo-trainer-env.log"
bash scripts/trainer-env.sh >"$venv_log" 2>&1 &
venv_pid=$!
# The release binary (a first build is the long part of a first run: progress every 20 s), then the demo.
streamrec_build demo 646 1070 build --release --bin streamrec
if ! { wait "$venv_pid" && source scripts/trainer-env.sh; }; then
    cat "$venv_log" >&2
    echo "demo: no trainer venv; the two-tower and learned ranker parts will be skipped" >&2
fi
exec "$CARGO_TARGET_DIR/release/streamrec" demo "$@"
