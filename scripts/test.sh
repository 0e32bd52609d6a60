#!/usr/bin/env bash
# Runs every test (unit, integration, CLI, streaming against real broker processes) in release mode, sharing one
# build with the binaries. Installs what the tests start: the tansu broker (cached outside the clone) and
# Debian's docker-compose (to validate docker-compose.yml offline), and the trainer's Python venv. Works on a
# fresh machine (empty cargo registry, no build, no venv): each step says what it does, how long it took, and on
# failure which step failed with what status (its own output above says why).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export STREAMREC_TOOLS="${STREAMREC_TOOLS:-$HOME/.cache/streamrec/tools}"
export STREAMREC_TANSU="$STREAMREC_TOOLS/bin/tansu"

# libsql: a storage that outlives the broker process (the broker-outage test stops and restarts it).
TANSU_FEATURES="dynostore,libsql"
install_tansu() {
    local stamp="$STREAMREC_TOOLS/tansu.features"
    if [ -x "$STREAMREC_TANSU" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$TANSU_FEATURES" ]; then
        echo "tansu: already in $STREAMREC_TOOLS ($TANSU_FEATURES)"; return 0
    fi
    echo "installing the tansu broker (once, ~8 min) with $TANSU_FEATURES into $STREAMREC_TOOLS"
    cargo install tansu --version 0.6.0 --locked --force --features "$TANSU_FEATURES" --root "$STREAMREC_TOOLS"
    echo "$TANSU_FEATURES" > "$stamp"
}
# The trainers' virtualenv (CatBoost, torch, onnxruntime; cached outside the clone): the ranker tests run the Python
# trainer; sourcing also exports ORT_DYLIB_PATH, the onnxruntime library the two-tower tests load.
trainer_venv() { source scripts/trainer-env.sh; }

# Debian's chromium, headless: the operator page's test loads the page in a real browser.
browser() {
    command -v chromium >/dev/null 2>&1 && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
}

streamrec_step "system packages" streamrec_apt_install
streamrec_step "browser (chromium)" browser
# Every crate the workspace needs, dev-dependencies included, from the committed Cargo.lock (a stale lock fails
# here, naming the package, instead of half-way through a build).
streamrec_step "fetch crates" cargo fetch --locked
streamrec_step "tansu broker" install_tansu
streamrec_step "trainer venv" trainer_venv
streamrec_step "trainer smoke test (ranker)" "$STREAMREC_PYTHON" trainer/smoke_test.py
streamrec_step "trainer smoke test (two-tower)" "$STREAMREC_PYTHON" trainer/smoke_test_two_tower.py
streamrec_step "compose file" bash scripts/check-compose.sh
streamrec_step "one feature set" bash scripts/check-features.sh
streamrec_step "build (release, tests and binaries)" streamrec_build tests 696 1270 test --release --workspace --no-run "$@"
streamrec_step "tests" cargo test --release --workspace "$@"
# Every fuzz target for a few seconds from its seeds (fuzz/README.md): a parser that panics fails the run.
streamrec_step "fuzz (${FUZZ_SECONDS:-10} s per target)" bash scripts/fuzz.sh
streamrec_step_summary
