#!/usr/bin/env bash
# Makes the Python virtualenv the learned ranker's trainer runs in (catboost, pyarrow, numpy) and tells where its
# python is. It lives outside the clone, in ${STREAMREC_VENV:-$HOME/.cache/streamrec/venv}, so every checkout and
# CI reuse one install; requirements are (re)installed only when trainer/requirements-ranker.txt's sha256 differs
# from the stamp kept in the venv, so a warm run costs a few milliseconds.
#
#   bash scripts/trainer-env.sh      # last line of stdout: the venv's python; everything else goes to stderr
#   source scripts/trainer-env.sh    # exports STREAMREC_PYTHON; returns 1 if the setup failed
#
# The base interpreter is $STREAMREC_BASE_PYTHON, else Debian's /usr/bin/python3, else python3 on PATH. Concurrent
# runs (parallel tests) serialise on a lock file beside the venv.

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: do the work in a process of its own, so strict mode and its failures never leak into the caller
    # (and errexit still works there: bash ignores it inside an `if` condition of the caller's shell).
    if STREAMREC_PYTHON="$(bash "${BASH_SOURCE[0]}")"; then
        export STREAMREC_PYTHON
        return 0
    fi
    echo "trainer-env: setting up the trainer's virtualenv failed" >&2
    return 1
fi

set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STREAMREC_VENV:-$HOME/.cache/streamrec/venv}"
req="$root/trainer/requirements-ranker.txt"
stamp="$venv/.streamrec-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

ready() { [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }

# Fast path, no lock: the venv is there and was installed from this exact requirements file.
if ready; then
    echo "$venv/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another run may have finished the job while this one waited for the lock.
if ready; then
    echo "$venv/bin/python"
    exit 0
fi

base="${STREAMREC_BASE_PYTHON:-}"
if [ -z "$base" ]; then
    if [ -x /usr/bin/python3 ]; then base=/usr/bin/python3; else base="$(command -v python3)"; fi
fi
# Debian splits venv's pip bootstrap (ensurepip) into the python3-venv package.
if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "trainer-env: installing Debian's python3-venv (needed by $base -m venv)" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >&2
fi
# A venv whose interpreter no longer runs (base python upgraded or removed) is rebuilt from scratch.
if [ -e "$venv" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    "$base" -m venv "$venv" >&2
fi

echo "trainer-env: installing trainer/requirements-ranker.txt into $venv (once per change, ~15 s)" >&2
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
"$venv/bin/python" -c 'import catboost, numpy, pyarrow' >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
