#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short while (FUZZ_SECONDS each, default 10): the seeds in
# fuzz/corpus/<target>/ plus what libFuzzer grows from them in a scratch directory (never the clone). Fails on the
# first input that panics a target; the input is left in fuzz/artifacts/<target>/ (see fuzz/README.md).
# Installs cargo-fuzz into the tools directory once. cargo-fuzz passes nightly-only flags to rustc: it uses the
# nightly toolchain where rustup has one, else the stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export STREAMREC_TOOLS="${STREAMREC_TOOLS:-$HOME/.cache/streamrec/tools}"
export PATH="$STREAMREC_TOOLS/bin:$PATH"
seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
    echo "installing cargo-fuzz 0.13.2 into $STREAMREC_TOOLS (once, ~2 min)"
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$STREAMREC_TOOLS"
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd fuzz
targets=$(cargo "${toolchain[@]}" fuzz list)
cargo "${toolchain[@]}" fuzz build -s none
for t in $targets; do
    mkdir -p "$work/$t"
    echo "fuzz $t: ${seconds}s"
    status=0
    cargo "${toolchain[@]}" fuzz run -s none "$t" "$work/$t" "$PWD/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=65536 > "$work/$t.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -40 "$work/$t.log"
        echo "fuzz $t: failed with status $status (the input is in fuzz/artifacts/$t/)"
        exit 1
    fi
    grep -E "^Done" "$work/$t.log" || { tail -20 "$work/$t.log"; echo "fuzz $t: no summary line"; exit 1; }
done
