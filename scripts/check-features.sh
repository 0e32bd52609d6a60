#!/usr/bin/env bash
# Fails when `cargo build --release` and `cargo test --release --workspace` would enable different features of a
# shared dependency: each would then keep its own build of the heavy tree (lance, datafusion; ~30 min on 2 cores).
# Fix a failure by pinning the named features in Cargo.toml's "Not used directly" block.
# Not --offline: on a machine whose registry lacks the dev-dependencies, cargo fetches them here; cargo's own
# errors are shown, never hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() {
    local out
    if ! out=$(cargo tree --locked "$@" -f '{p} {f}' --prefix none); then
        echo "check-features: 'cargo tree $*' failed (cargo's message above)" >&2
        return 1
    fi
    echo "$out" | sed 's/ (\*)$//' | sort -u
}
build=$(tree -e normal,build)
test=$(tree --workspace -e normal,build,dev)
drift=$(comm -23 <(echo "$build") <(echo "$test"))
if [ -n "$drift" ]; then
    echo "feature sets differ between binaries and tests; the binaries' side:" >&2
    echo "$drift" >&2
    echo "the tests' side:" >&2
    for p in $(echo "$drift" | awk '{print $1}' | sort -u); do echo "$test" | grep "^$p " >&2; done
    exit 1
fi
echo "binaries and tests share one feature set"
