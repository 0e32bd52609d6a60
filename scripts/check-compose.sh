#!/usr/bin/env bash
# Validate a compose file offline (no Docker engine needed): `bash scripts/check-compose.sh [FILE]`.
# Uses `docker compose` (v2 plugin) when installed, else Debian's docker-compose 1.29 (installed via apt if
# missing). Prints the validator used; exits non-zero when the file is invalid or no validator can be had.
# For the project's own file it also validates it with the GPU override laid over it, checks that every file it
# mounts from the checkout (./deploy/...) exists, that the Grafana board and provisioning parse, and that every
# Dockerfile stage the file builds exists.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
file="${1:-$root/docker-compose.yml}"
[ -f "$file" ] || { echo "check-compose: no such file: $file" >&2; exit 2; }

validate() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@" config --quiet
    else
        docker-compose "$@" config --quiet
    fi
}
if docker compose version >/dev/null 2>&1; then
    echo "check-compose: validator: $(docker compose version)"
else
    if ! command -v docker-compose >/dev/null 2>&1; then
        echo "check-compose: installing Debian's docker-compose"
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    fi
    echo "check-compose: validator: $(docker-compose version --short 2>/dev/null | head -n1) (docker-compose)"
fi
validate -f "$file"
if [ "$file" = "$root/docker-compose.yml" ]; then
    validate -f "$file" -f "$root/docker-compose.gpu.yml"
    # Files the services mount from the checkout, and the Dockerfile stages they build.
    for src in $(grep -oE '^\s*- \./[^:]+' "$file" | sed -E 's/^\s*- \.\///'); do
        [ -e "$root/$src" ] || { echo "check-compose: $file mounts ./$src, which does not exist" >&2; exit 1; }
    done
    for target in $(grep -oE '^\s*target: [a-z-]+' "$file" | awk '{ print $2 }' | sort -u); do
        grep -qiE "^FROM .* AS $target\$" "$root/Dockerfile" || { echo "check-compose: no Dockerfile stage '$target'" >&2; exit 1; }
    done
    python3 -m json.tool "$root/deploy/grafana/dashboards/streamrec.json" >/dev/null \
        || { echo "check-compose: the Grafana board is not JSON" >&2; exit 1; }
    # Several engine services are one group's instances: each says how many there are, and shares a state store.
    engines=$(grep -cE '^  engine-[0-9]+:' "$file" || true)
    if [ "$engines" -gt 1 ]; then
        said=$(grep -cE "STREAMREC__KAFKA__INSTANCES: \"$engines\"" "$file" || true)
        [ "$said" -eq "$engines" ] \
            || { echo "check-compose: $engines engine services, but $said of them set STREAMREC__KAFKA__INSTANCES: \"$engines\"" >&2; exit 1; }
        grep -q -- '"--state-store"' "$file" || { echo "check-compose: several engines need serve --state-store" >&2; exit 1; }
    fi
    # Every engine service is scraped.
    for engine in $(grep -oE '^  engine-[0-9]+:' "$file" | tr -d ' :'); do
        grep -qE "targets: \[.*\"$engine:8080\"" "$root/deploy/prometheus/prometheus.yml" \
            || { echo "check-compose: Prometheus does not scrape $engine:8080" >&2; exit 1; }
    done
fi
echo "check-compose: OK: $file"
