# Sourced by the project's scripts: shared build directory outside the clone (so CI and every checkout reuse
# one dependency build), and the system packages the build and the reports need.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamrec/target}"
mkdir -p "$CARGO_TARGET_DIR"

streamrec_apt_install() {
    local missing=()
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing system packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# streamrec_step NAME CMD...: runs one step of a script, prints its wall time, and on failure names the step and
# its exit status before the script stops (set -e), so a failing step is never silent. streamrec_step_summary
# prints every step's time as a table (scripts/fresh-run.sh collects these lines).
STREAMREC_STEPS=()
streamrec_step() {
    local name="$1"; shift
    local start=$SECONDS rc=0
    echo "==> $name"
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if [ "$rc" -ne 0 ]; then
        echo "FAILED: step '$name' exited with status $rc after ${took} s (command: $*)" >&2
        exit "$rc"
    fi
    STREAMREC_STEPS+=("$name|$took")
    echo "<== $name: ${took} s"
}
streamrec_step_summary() {
    echo "step times (s):"
    local s
    for s in "${STREAMREC_STEPS[@]}"; do echo "step-time | ${s%|*} | ${s##*|} |"; done
}

# streamrec_build NAME UNITS SECONDS CARGO_ARGS...: `cargo CARGO_ARGS` with a progress line every 20 s (units
# done, time so far, roughly how long is left: scripts/cargo-progress.py). UNITS and SECONDS are a cold build's
# size and time on the standard machine, used until this target directory has its own figures. Returns cargo's
# status.
streamrec_build() {
    local name="$1" units="$2" secs="$3"; shift 3
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    cargo "$@" --message-format=json-render-diagnostics \
        | python3 "$here/cargo-progress.py" "$name" "$CARGO_TARGET_DIR" "$units" "$secs" && return 0
    local st=("${PIPESTATUS[@]}")
    [ "${st[0]}" -ne 0 ] && return "${st[0]}"
    return "${st[1]}"
}
