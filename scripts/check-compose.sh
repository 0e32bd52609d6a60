#!/usr/bin/env bash
# Validate a compose file offline (no Docker engine needed): `bash scripts/check-compose.sh [FILE]`.
# Uses `docker compose` (v2 plugin) when installed, else Debian's docker-compose 1.29 (installed via apt if
# missing). Prints the validator used; exits non-zero when the file is invalid or no validator can be had.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
file="${1:-$root/docker-compose.yml}"
[ -f "$file" ] || { echo "check-compose: no such file: $file" >&2; exit 2; }

if docker compose version >/dev/null 2>&1; then
    echo "check-compose: validator: $(docker compose version)"
    docker compose -f "$file" config --quiet
else
    if ! command -v docker-compose >/dev/null 2>&1; then
        echo "check-compose: installing Debian's docker-compose"
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    fi
    echo "check-compose: validator: $(docker-compose version --short 2>/dev/null | head -n1) (docker-compose)"
    docker-compose -f "$file" config --quiet
fi
echo "check-compose: OK: $file"
