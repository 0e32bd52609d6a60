#!/usr/bin/env python3
"""Side-by-side load benchmark: streamrec's loader vs polars and pandas read_csv on the same transactions file,
each in its own process (wall time and peak RSS from wait4), in one run so the page cache state is shared.

usage: load_compare.py --data DIR --bin PATH/TO/streamrec [--repeat N]
Needs polars and pandas in the running interpreter (scripts/bench-env.sh installs them in a venv).
"""
import argparse, os, subprocess, sys, time

POLARS = "import polars as pl, sys; df = pl.read_csv(sys.argv[1]); print(df.height)"
PANDAS = "import pandas as pd, sys; df = pd.read_csv(sys.argv[1]); print(len(df))"


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return secs, ru.ru_maxrss * 1024, out.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    tx = os.path.join(a.data, "transactions_train.csv")
    size = os.path.getsize(tx)
    rows = -1  # data lines (the header is not a row)
    with open(tx, "rb") as f:  # also warms the page cache, as in the reference figures
        while chunk := f.read(1 << 24):
            rows += chunk.count(b"\n")
    cases = [
        ("streamrec (transactions only)", [a.bin, "stats", "--data", a.data, "--only-transactions"]),
        ("streamrec (articles + customers + transactions)", [a.bin, "stats", "--data", a.data]),
        ("polars read_csv", [sys.executable, "-c", POLARS, tx]),
        ("pandas read_csv", [sys.executable, "-c", PANDAS, tx]),
    ]
    print(f"file: {tx} ({size / 1e6:.0f} MB)")
    print("| loader | best wall s | peak RSS MB | M rows/s | MB/s |")
    print("|---|---|---|---|---|")
    for name, cmd in cases:
        best = None
        for _ in range(a.repeat):
            secs, rss, out = run(cmd)
            if best is None or secs < best[0]:
                best = (secs, rss, out)
        secs, rss, out = best
        print(f"| {name} | {secs:.2f} | {rss / 1e6:.0f} | {rows / secs / 1e6:.2f} | {size / 1e6 / secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
