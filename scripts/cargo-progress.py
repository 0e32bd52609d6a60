#!/usr/bin/env python3
"""Progress lines for a long cargo build: reads `cargo ... --message-format=json-render-diagnostics` on stdin
(cargo itself prints errors and warnings to stderr) and prints, at most every INTERVAL seconds, how many
compilation units are done, how long it has taken, roughly how long is left, and which crate finished last:

    build: 212/700 units (30%), 6 min 40 s so far, ~14 min left (cold build: ~21 min on 2 cores) · lance-index

The total and the expected time come from the previous build in the same target directory
(<target>/.streamrec-build-<name>.json, written at the end); without one (a fresh machine) from the figures
given on the command line, measured on the project's standard machine. A warm build (every unit fresh) prints
one line.

usage: cargo build ... --message-format=json-render-diagnostics | cargo-progress.py NAME TARGET_DIR UNITS SECONDS
"""
import json
import os
import sys
import time

INTERVAL = 20.0


def fmt(secs):
    secs = int(secs)
    return f"{secs // 60} min {secs % 60:02d} s" if secs >= 60 else f"{secs} s"


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    name, target, units, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    record = os.path.join(target, f".streamrec-build-{name}.json")
    source = "measured on 2 cores"
    try:
        with open(record) as f:
            last = json.load(f)
        if last.get("cold_units", 0) > 0:
            units, seconds, source = last["cold_units"], last["cold_seconds"], "the last cold build here"
    except (OSError, ValueError, KeyError):
        pass
    start = time.monotonic()
    done = fresh = 0
    shown = start
    last_crate = ""
    ok = False
    print(f"build ({name}): a cold build compiles ~{units} units in ~{fmt(seconds)} ({source}); "
          "a warm one takes seconds", flush=True)
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            print(line, end="", flush=True)
            continue
        reason = msg.get("reason")
        if reason == "compiler-artifact":
            done += 1
            fresh += 1 if msg.get("fresh") else 0
            last_crate = msg.get("target", {}).get("name", "")
        elif reason == "build-finished":
            ok = bool(msg.get("success"))
        now = time.monotonic()
        if now - shown >= INTERVAL and done > fresh:
            shown = now
            elapsed = now - start
            if fresh > 0.1 * done:
                # A warm build (most units fresh): only what changed compiles; no cold estimate applies.
                print(f"build: {done - fresh} units compiled, {fresh} fresh, {fmt(elapsed)} so far · {last_crate}", flush=True)
                continue
            share = min(done / max(units, 1), 0.99)
            # Heavy crates come late: the time left from the expected total, not from the share done.
            left = max(seconds - elapsed, 0) if elapsed < seconds else None
            eta = f"~{fmt(left)} left" if left else "longer than expected"
            print(f"build: {done}/{units} units ({share:.0%}), {fmt(elapsed)} so far, {eta} · {last_crate}", flush=True)
    elapsed = time.monotonic() - start
    compiled = done - fresh
    print(f"build ({name}): {'done' if ok else 'FAILED'} in {fmt(elapsed)}: {compiled} units compiled, {fresh} fresh",
          flush=True)
    # A build that compiled (nearly) everything is a cold one: its count and time inform the next estimate.
    if ok and compiled > 0.9 * done and done > 50:
        try:
            with open(record, "w") as f:
                json.dump({"cold_units": done, "cold_seconds": round(elapsed)}, f)
        except OSError:
            pass
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
