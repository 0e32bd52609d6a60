#!/usr/bin/env bash
# The compose stack's trainer service: once the data is there, retrain the learned ranker (CatBoost) and the
# two-tower model (PyTorch; CUDA when the container has a GPU) every STREAMREC_RETRAIN_EVERY_S seconds and
# publish each new version on `model-updates`. Every engine loads it and swaps between two events; a version
# that did not beat what serves on its held-out week is refused there (the gate), and the engine says so on
# /health and its page.
#
#   STREAMREC_DATA=/data               the H&M-format CSVs (the replay service generates them; `.ready` marks done)
#   STREAMREC_BROKERS=kafka:9092
#   STREAMREC_RETRAIN_EVERY_S=21600    between the end of one round and the start of the next
#   STREAMREC_TRAIN_ARGS=""            extra flags for both `train` commands (e.g. --holdout-weeks 1)
set -euo pipefail
data="${STREAMREC_DATA:-/data}"
brokers="${STREAMREC_BROKERS:-kafka:9092}"
every="${STREAMREC_RETRAIN_EVERY_S:-21600}"
read -r -a extra <<<"${STREAMREC_TRAIN_ARGS:-}"

log() { echo "trainer-loop: $(date -u +%FT%TZ) $*"; }

until [ -f "$data/.ready" ]; do
    log "waiting for the data in $data (the replay service writes $data/.ready when it is generated)"
    sleep 10
done

# Announces the newest version under models/$1 (what the training just wrote).
publish_newest() {
    local dir
    dir="$(ls -1dt "models/$1"/*/ 2>/dev/null | head -n1)"
    if [ -z "$dir" ]; then log "$1: no version to publish"; return 0; fi
    streamrec models publish --brokers "$brokers" --path "$dir" || log "$1: publishing $dir failed (status $?)"
}

while true; do
    log "round starts: ranker"
    if streamrec train ranker --data "$data" "${extra[@]}"; then
        publish_newest ranker
    else
        log "ranker training failed (status $?): the engines keep what they serve"
    fi
    log "two-tower"
    if streamrec train two-tower --data "$data" "${extra[@]}"; then
        publish_newest two_tower
    else
        log "two-tower training failed (status $?): the engines keep what they serve"
    fi
    log "round done; next in ${every} s"
    sleep "$every"
done
