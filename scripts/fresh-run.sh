#!/usr/bin/env bash
# Proves the README's commands work on a fresh machine: clones the committed HEAD into a scratch directory and runs
# `.ci/run` there with empty caches (a new CARGO_HOME, CARGO_TARGET_DIR, pip cache, trainer venv and tools
# directory: no crates, no build, no venv, no tansu), then `scripts/demo.sh` on what that built. Prints each step's
# wall time as a table (cold build, tansu, venv, tests, ...) and keeps the full log.
#
#   bash scripts/fresh-run.sh [--root DIR] [--no-demo] [--default-caches]
#
# Slow (a cold release build: ~45-60 min on 2 cores), so not part of every CI run: run it before a release and
# whenever dependencies, Cargo.lock or the set-up scripts change. DIR (default: a new directory under /tmp) must
# not exist yet; it holds the clone, the caches and fresh-run.log, and is left in place for a look afterwards.
# --default-caches: on a machine that is fresh already (no ~/.cargo/registry, no ~/.cache/streamrec), use the
# default cache locations instead of scratch ones, so the run also leaves the caches every later build reuses;
# refused when any of them exists.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root="" demo=1 defaults=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="$2"; shift 2 ;;
        --no-demo) demo=0; shift ;;
        --default-caches) defaults=1; shift ;;
        *) echo "fresh-run: unknown argument '$1' (usage: fresh-run.sh [--root DIR] [--no-demo] [--default-caches])" >&2
           exit 2 ;;
    esac
done
if [ -z "$root" ]; then root="$(mktemp -d /tmp/streamrec-fresh.XXXXXX)"; rmdir "$root"; fi
if [ -e "$root" ]; then echo "fresh-run: $root exists; give a new directory" >&2; exit 2; fi
mkdir -p "$root"
root="$(cd "$root" && pwd)"
log="$root/fresh-run.log"

# rustup's proxies (cargo, rustc) stay where they are; everything cargo downloads or builds goes to the scratch.
cargo_bin="$(dirname "$(command -v cargo)")"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" PIP_CACHE_DIR="$root/pip-cache"
export PATH="$cargo_bin:$PATH"
if [ "$defaults" = 1 ]; then
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    for p in "$cargo_home/registry" "$cargo_home/git" "$HOME/.cache/streamrec"; do
        if [ -e "$p" ]; then echo "fresh-run: --default-caches, but $p exists: this machine is not fresh" >&2; exit 2; fi
    done
    unset CARGO_TARGET_DIR STREAMREC_VENV STREAMREC_TOOLS STREAMREC_TANSU ORT_DYLIB_PATH STREAMREC_PYTHON
else
    export CARGO_HOME="$root/cargo-home" CARGO_TARGET_DIR="$root/target"
    export STREAMREC_VENV="$root/venv" STREAMREC_TOOLS="$root/tools"
    unset STREAMREC_TANSU ORT_DYLIB_PATH STREAMREC_PYTHON
    mkdir -p "$CARGO_HOME"
fi

git clone -q --no-local "$src" "$root/main"
# The shared folder beside the checkout (the independent MAP@12 scorer) when the source has one, as in CI.
[ -d "$src/../shared" ] && ln -s "$(cd "$src/../shared" && pwd)" "$root/shared"
echo "fresh-run: $(git -C "$root/main" log -1 --format='%h %s') in $root (log: $log)"

start=$SECONDS rc=0
(cd "$root/main" && bash .ci/run) 2>&1 | tee "$log" || rc=$?
ci=$((SECONDS - start))
if [ "$rc" -ne 0 ]; then
    echo "fresh-run: .ci/run FAILED with status $rc after ${ci} s; the log is $log" >&2
    exit "$rc"
fi
demo_s="-"
if [ "$demo" = 1 ]; then
    start=$SECONDS
    (cd "$root/main" && bash scripts/demo.sh) >"$root/demo.log" 2>&1 || {
        echo "fresh-run: scripts/demo.sh FAILED; its log is $root/demo.log" >&2
        tail -n 30 "$root/demo.log" >&2
        exit 1
    }
    demo_s=$((SECONDS - start))
fi

echo
echo "fresh-run: $(git -C "$root/main" log -1 --format='%h') on $(nproc) cores, $(date -u +%F)"
echo "| step | wall s |"
echo "|---|---|"
grep '^step-time | ' "$log" | sed 's/^step-time //'
echo "| .ci/run in all | $ci |"
echo "| then scripts/demo.sh (warm) | $demo_s |"
