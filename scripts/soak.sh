#!/usr/bin/env bash
# Soak: replay a dataset at a steady rate through tansu for MINUTES (default 30) while `serve` is killed (-9)
# periodically and the broker is stopped (SIGSTOP: connections stay open, nothing answers) for a while,
# periodically; optionally the broker is also killed (-9) once and brought back on its sqlite storage. (tansu 0.6.0
# on sqlite reads its whole store on a restart: on small data a restarted broker answered nothing for 20 min after
# 220k purchases and their lists (830 MB), nor for 3 min after 8k (98 MB, most of it reference data); the kill
# and restart is tested on tiny data by tests/reliability.rs.) Prints tables for BENCHMARKS.md:
# memory over time (serve and broker RSS), the faults, an HTTP burst idle and under ingest, latency from each
# purchase to its list, and the check that no list was lost: each customer's latest list on `recommendations`
# equals the latest list of a run without faults (the same engine through a fresh tansu, fed with --max).
#   scripts/soak.sh DATA_DIR [MINUTES]        (e.g. a `streamrec generate --scale small` directory)
# Settings (environment): SOAK_SERVE_KILL_S (300) seconds between kills of serve, SOAK_BROKER_KILL_AT (none) when
# the broker is killed, SOAK_BROKER_STOP_S (420) seconds between broker stops, SOAK_OUTAGE_S (15) how long the
# broker stays down each time, SOAK_STORAGE (sqlite) the broker's storage: sqlite (survives a kill) or memory
# (tansu on sqlite stalled for good on small data after a 15 s stop with ~220k purchases stored; use memory
# there, without SOAK_BROKER_KILL_AT), SOAK_KEEP=1 keeps the work dir.
# Needs the release build and tansu (scripts/test.sh installs both). Not part of the test command (30 min).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DATA=$(realpath "${1:?usage: scripts/soak.sh DATA_DIR [MINUTES]}")
MINUTES=${2:-30}
SERVE_KILL_S=${SOAK_SERVE_KILL_S:-300}
BROKER_KILL_AT=${SOAK_BROKER_KILL_AT:-1000000000}
BROKER_STOP_S=${SOAK_BROKER_STOP_S:-420}
OUTAGE_S=${SOAK_OUTAGE_S:-15}
STORAGE=${SOAK_STORAGE:-sqlite}
case "$STORAGE" in sqlite) STORAGE_URL=sqlite://tansu.db ;; memory) STORAGE_URL=memory://tansu/ ;; *) echo "SOAK_STORAGE: sqlite or memory" >&2; exit 2 ;; esac
# tansu 0.6.0's memory storage answers a ListOffsets for the end with the newest record batch's base offset + 1, not
# its last offset + 1 (tansu-storage/src/dynostore.rs, list_offsets): the reference data, written at full speed in
# batches of thousands, would be reported short, and a restarted serve rightly refuses a checkpoint that is past a
# topic's end. So the reference data goes once (the purchases' replay sends no more), one record per batch (tansu
# then reads it back at ~1.4k records/s: ~65 s for small's 91k rows on a restart without a checkpoint). The
# purchases at a steady rate go in small batches anyway, and serve's checkpoints trail what replay has written by
# more than one batch.
BIN="$CARGO_TARGET_DIR/release/streamrec"
ref_replay() { STREAMREC_KAFKA_PROPERTIES="${STREAMREC_KAFKA_PROPERTIES:+$STREAMREC_KAFKA_PROPERTIES;}batch.num.messages=1" "$BIN" replay "$@"; }
TANSU="${STREAMREC_TANSU:-$HOME/.cache/streamrec/tools/bin/tansu}"
HERE=$PWD
[ -x "$BIN" ] || { echo "no release build at $BIN (run scripts/test.sh)" >&2; SOAK_KEEP=1; exit 1; }
[ -x "$TANSU" ] || { echo "no tansu at $TANSU (run scripts/test.sh)" >&2; SOAK_KEEP=1; exit 1; }
WORK=$(mktemp -d)
declare -A PID=()
cleanup() {
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${SOAK_KEEP:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "soak: failed at line $LINENO; the logs are kept in $WORK" >&2; SOAK_KEEP=1' ERR
cd "$WORK"
export STREAMREC__TWO_TOWER__ENABLED=false STREAMREC__RANKER__KIND=blend STREAMREC__ENGINE__EMIT=event
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
rss_kb() { ps -o rss= -p "$1" 2>/dev/null | tr -d ' ' || true; }
alive() { kill -0 "$1" 2>/dev/null; }

PORT=$(free_port); ADDR="127.0.0.1:$PORT"
HTTP="127.0.0.1:$(free_port)"
start_broker() {
    "$TANSU" broker --storage-engine "$STORAGE_URL" --listener-url "tcp://$ADDR" --advertised-listener-url "tcp://$ADDR" \
        >> broker.log 2>&1 & PID[broker]=$!
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null; do sleep 0.1; done
}
start_serve() {
    RUST_LOG=info "$BIN" serve --brokers "$ADDR" --http "$HTTP" --checkpoint-dir ckpt --idle-close-ms 1000 >> serve.log 2>&1 &
    PID[serve]=$!
}
health() { curl -s --max-time 2 "$HTTP/health" || true; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read() or '{}'); print(d$1)" 2>/dev/null || echo "?"; }

TOTAL=$(( $(wc -l < "$DATA/transactions_train.csv") - 1 ))
RATE=$(python3 -c "print(round($TOTAL / ($MINUTES * 60.0), 1))")
log "soak: $TOTAL purchases at $RATE/s (~$MINUTES min), serve killed every ${SERVE_KILL_S}s, broker killed at ${BROKER_KILL_AT}s (1000000000: never) and stopped every ${BROKER_STOP_S}s, ${OUTAGE_S}s each; work dir $WORK"
start_broker
ref_replay --data "$DATA" --brokers "$ADDR" --max --until 2000-01-01 > replay0.log 2>&1   # topics + reference data
start_serve
"$BIN" replay --data "$DATA" --brokers "$ADDR" --rate "$RATE" --purchases-only > replay.log 2>&1 & PID[replay]=$!

burst() { # label → one table row: 2,000 GETs of /recommendations, 20 at a time
    python3 "$HERE/scripts/http_burst.py" "$HTTP" "$DATA/customers.csv" 2000 20 "$1" || true   # errors are in its row
}
echo "time_s,serve_rss_mb,broker_rss_mb,events,status" > samples.csv
faults=()
t0=$(date +%s); next_serve_kill=$((t0 + SERVE_KILL_S)); next_broker_kill=$((t0 + BROKER_KILL_AT)); next_broker_stop=$((t0 + BROKER_STOP_S)); next_sample=$t0
burst_done=""; replay_restarts=0; exits=0
while :; do
    now=$(date +%s); el=$((now - t0))
    if [ "$now" -ge "$next_sample" ]; then
        h=$(health)
        s=$(rss_kb "${PID[serve]}"); b=$(rss_kb "${PID[broker]:-0}")
        echo "$el,$(( ${s:-0} / 1024 )),$(( ${b:-0} / 1024 )),$(echo "$h" | field "['events_in_state']"),$(echo "$h" | field "['status']")" >> samples.csv
        next_sample=$((now + 10))
    fi
    if [ -z "$burst_done" ] && [ "$el" -ge $((MINUTES * 30)) ] && alive "${PID[serve]}" && [ "$(health | field "['status']")" = ok ]; then
        burst "under ingest ($RATE purchases/s)" > burst_ingest.txt; burst_done=1
    fi
    if [ "$now" -ge "$next_serve_kill" ] && alive "${PID[replay]}"; then
        kill -9 "${PID[serve]}" 2>/dev/null || true; wait "${PID[serve]}" 2>/dev/null || true
        faults+=("| ${el} s | serve killed (-9) at $(tail -1 samples.csv | cut -d, -f4) purchases applied; restarted at once |")
        log "serve killed"; start_serve; next_serve_kill=$((now + SERVE_KILL_S))
    fi
    if [ "$now" -ge "$next_broker_kill" ] && alive "${PID[replay]}"; then
        kill -9 "${PID[broker]}"; wait "${PID[broker]}" 2>/dev/null || true
        log "broker killed"; sleep "$OUTAGE_S"
        status=$(health | field "['status']")
        start_broker; log "broker back"
        faults+=("| ${el} s | broker killed (-9), restarted on its storage after ${OUTAGE_S} s; serve's /health meanwhile: $status |")
        next_broker_kill=$((now + 10 ** 9))
    fi
    if [ "$now" -ge "$next_broker_stop" ] && alive "${PID[replay]}"; then
        kill -STOP "${PID[broker]}"; log "broker stopped"; sleep "$OUTAGE_S"
        status=$(health | field "['status']")
        kill -CONT "${PID[broker]}"; log "broker continued"
        faults+=("| ${el} s | broker stopped (SIGSTOP) for ${OUTAGE_S} s; serve's /health meanwhile: $status |")
        next_broker_stop=$(( $(date +%s) + BROKER_STOP_S ))
    fi
    if ! alive "${PID[serve]}"; then
        wait "${PID[serve]}" && rc=0 || rc=$?
        exits=$((exits + 1))
        if [ "$exits" -gt 5 ]; then   # it will not start: stop here with its reason
            echo "soak: serve exited $exits times in a row (status $rc):" >&2; tail -3 serve.log >&2; SOAK_KEEP=1; exit 1
        fi
        faults+=("| ${el} s | serve exited by itself (status $rc); restarted |"); log "serve exited ($rc)"; tail -5 serve.log >&2; start_serve
    elif [ "$(health | field "['status']")" = ok ]; then
        exits=0
    fi
    if ! alive "${PID[replay]}"; then
        if wait "${PID[replay]}"; then break; fi
        # The producer gave up during an outage: go on from its resume point (or from the start; serve skips
        # repeated seqs).
        replay_restarts=$((replay_restarts + 1)); log "replay exited with an error; resuming"; tail -3 replay.log >&2
        faults+=("| ${el} s | replay exited with an error (producer gave up); resumed |")
        resume=(); [ -f .streamrec-replay.json ] && resume=(--resume)
        "$BIN" replay --data "$DATA" --brokers "$ADDR" --rate "$RATE" --purchases-only "${resume[@]}" >> replay.log 2>&1 & PID[replay]=$!
    fi
    sleep 1
done
log "replay done after $(( $(date +%s) - t0 )) s; waiting for serve to apply all $TOTAL purchases"
deadline=$(( $(date +%s) + 300 ))
until [ "$(health | field "['events_in_state']")" = "$TOTAL" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "serve did not apply every purchase: $(health)" >&2; tail -20 serve.log >&2; SOAK_KEEP=1; exit 1; }
    sleep 1
done
sleep 3   # the last baskets close on quiet input
burst "idle (caught up)" > burst_idle.txt
kill -INT "${PID[serve]}"; wait "${PID[serve]}" && rc=0 || rc=$?
[ "$rc" -eq 0 ] || { echo "serve did not stop cleanly ($rc)" >&2; tail -20 serve.log >&2; SOAK_KEEP=1; exit 1; }
"$BIN" subscribe --brokers "$ADDR" --from-beginning --to-end > soak_lists.jsonl
"$BIN" bench-latency --brokers "$ADDR" --per 60 > latency.txt

# The same purchases without faults: a fresh tansu (memory), replay --max, serve until idle.
log "control run without faults"
kill -9 "${PID[broker]}"; wait "${PID[broker]}" 2>/dev/null || true
CPORT=$(free_port); CADDR="127.0.0.1:$CPORT"
"$TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://$CADDR" --advertised-listener-url "tcp://$CADDR" > control_broker.log 2>&1 & PID[control]=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $CPORT), 1)" 2>/dev/null; do sleep 0.1; done
"$BIN" replay --data "$DATA" --brokers "$CADDR" --max > control_replay.log 2>&1
"$BIN" serve --brokers "$CADDR" --exit-when-idle --idle-close-ms 1000 > control_serve.log 2>&1
"$BIN" subscribe --brokers "$CADDR" --from-beginning --to-end > control_lists.jsonl
kill -9 "${PID[control]}"; wait "${PID[control]}" 2>/dev/null || true; unset 'PID[control]'

echo
echo "Soak: $TOTAL purchases at $RATE/s through tansu 0.6.0 ($STORAGE storage); replay restarts: $replay_restarts"
echo
echo "| at | fault |"
echo "|---|---|"
printf '%s\n' "${faults[@]}"
echo
python3 - samples.csv <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| minute | serve RSS MB | broker RSS MB | purchases applied | health |")
print("|---|---|---|---|---|")
last = -1
for r in rows:
    m = int(r["time_s"]) // 300 * 5
    if m != last:
        print(f"| {m} | {r['serve_rss_mb']} | {r['broker_rss_mb']} | {r['events']} | {r['status']} |")
        last = m
s = [int(r["serve_rss_mb"]) for r in rows if r["serve_rss_mb"] != "0"]
print(f"\nserve RSS over {len(s)} samples (every 10 s): min {min(s)} MB, max {max(s)} MB, last {s[-1]} MB")
EOF
echo
echo "| HTTP burst (2,000 GET /recommendations, 20 concurrent) | ok | errors | p50 ms | p99 ms | max ms |"
echo "|---|---|---|---|---|---|"
cat burst_ingest.txt burst_idle.txt 2>/dev/null
echo
cat latency.txt
echo
python3 - soak_lists.jsonl control_lists.jsonl <<'EOF'
import json, sys
def latest(path):
    out = {}
    for line in open(path):
        v = json.loads(line)
        c = v["customer_id"]
        if c not in out or v["seq"] >= out[c][0]:
            out[c] = (v["seq"], [i["article_id"] for i in v["items"]])
    return out
soak, ctrl = latest(sys.argv[1]), latest(sys.argv[2])
missing = [c for c in ctrl if c not in soak]
differ = [c for c in ctrl if c in soak and soak[c] != ctrl[c]]
extra = [c for c in soak if c not in ctrl]
print(f"no lost list: {len(ctrl)} customers with a list in the control run; soak: {len(missing)} missing, {len(differ)} different, {len(extra)} extra")
sys.exit(1 if missing or differ or extra else 0)
EOF
