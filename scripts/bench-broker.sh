#!/usr/bin/env bash
# Throughput through a broker on loopback: replay --max → serve --emit none (state only, no lists), as separate
# processes. Prints a table for BENCHMARKS.md.
#   scripts/bench-broker.sh DATA_DIR            (e.g. a `streamrec generate --scale small` directory)
# - embedded: `streamrec broker` (librdkafka's mock cluster). serve runs while replay produces, and the rate is
#   all purchases over the time from replay's start until serve has applied the last one. (The mock cluster's log
#   per partition is bounded, so it is measured live, never by filling the topic first.)
# - tansu (when installed by scripts/test.sh): replay fills the topic first, then serve drains it; the rate is
#   all purchases over the time from the group assignment until serve has applied the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DATA=${1:?usage: scripts/bench-broker.sh DATA_DIR}
BIN="$CARGO_TARGET_DIR/release/streamrec"
TANSU="${STREAMREC_TANSU:-$HOME/.cache/streamrec/tools/bin/tansu}"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${BENCH_DEBUG:-}" ] && set -x
export STREAMREC__TWO_TOWER__ENABLED=false STREAMREC__RANKER__KIND=blend
cd "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# The engine's transactions count from /metrics.
applied() { { curl -s "127.0.0.1:$1/metrics" || true; } | awk '/^streamrec_events_total\{.*topic="transactions"/ {print $2}'; }
# Waits until serve has applied $2 purchases (or 120 s); prints the time it got there.
wait_applied() {
    local deadline=$(( $(date +%s) + 120 ))
    until [ "$(applied "$1")" = "$2" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "serve did not apply $2 purchases in time (at $(applied "$1"))" >&2; return 1; }
        sleep 0.02
    done
    now
}
echo "| broker | purchases | replay s | replay → serve s | events/s |"
echo "|---|---|---|---|---|"

# Embedded broker, live.
"$BIN" broker > broker.out 2>&1 & PIDS+=($!)
until grep -q bootstrap= broker.out; do sleep 0.1; done
ADDR=$(head -1 broker.out | sed 's/bootstrap=//')
HTTP=$(free_port)
"$BIN" replay --data "$DATA" --brokers "$ADDR" --max --until 2000-01-01 > replay0.log 2>&1    # topics + reference data only
RUST_LOG=info "$BIN" serve --brokers "$ADDR" --emit none --http "127.0.0.1:$HTTP" > serve.log 2>&1 & PIDS+=($!)
until grep -q assigned serve.log; do sleep 0.1; done
t0=$(now)
"$BIN" replay --data "$DATA" --brokers "$ADDR" --max > replay.log 2>&1
t1=$(now)
n=$(grep -o '[0-9]* transactions' replay.log | awk '{print $1}')
t2=$(wait_applied "$HTTP" "$n")
python3 -c "print(f'| embedded (mock cluster), live | {$n:,} | {$t1-$t0:.2f} | {$t2-$t0:.2f} | {$n/($t2-$t0):,.0f} |')"
kill "${PIDS[@]}" 2>/dev/null || true
PIDS=()

# tansu, topic filled first.
if [ -x "$TANSU" ]; then
    PORT=$(free_port)
    "$TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" > tansu.log 2>&1 & PIDS+=($!)
    sleep 2
    t0=$(now)
    "$BIN" replay --data "$DATA" --brokers "127.0.0.1:$PORT" --max > replay.log 2>&1
    t1=$(now)
    n=$(grep -o '[0-9]* transactions' replay.log | awk '{print $1}')
    HTTP=$(free_port)
    RUST_LOG=info "$BIN" serve --brokers "127.0.0.1:$PORT" --emit none --http "127.0.0.1:$HTTP" > serve.log 2>&1 & PIDS+=($!)
    until grep -q assigned serve.log; do sleep 0.02; done
    t2=$(now)
    t3=$(wait_applied "$HTTP" "$n")
    python3 -c "print(f'| tansu 0.6.0 (memory), filled first | {$n:,} | {$t1-$t0:.2f} | {$t3-$t2:.2f} (drain) | {$n/($t3-$t2):,.0f} |')"
fi
