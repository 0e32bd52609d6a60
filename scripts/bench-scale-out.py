#!/usr/bin/env python3
"""Scale-out figures on the tansu broker process: the same purchases served by 1, 2 and 3 engine instances.

    python3 scripts/bench-scale-out.py DATA_DIR [--from 2020-07-01] [--rate 3000] [--partitions 8]

DATA_DIR is a `streamrec generate` directory. Two phases, each with 1, 2 and 3 instances (1: one engine as a group
member, `kafka.instances` = 1; 2 and 3: scale-out, `kafka.instances` = N with one state store), every run with its
own group and store, blend ranking, a list per basket:

- throughput: the instances join on the reference data and the purchases before --from; once each holds its
  share the rest is replayed at full speed (`replay --max`, faster than any engine), and the rate is those
  purchases over the time until every instance has folded every purchase; the lists each one made are counted
  once the last day's baskets have closed;
- live: `replay --rate R` while the instances serve; every 0.5 s each instance's `/health` watermark (the seq its
  item state stands at) is read: the item-state lag of an instance is how far its watermark is behind the newest
  of all instances' at that moment (purchases, and seconds at R), and the purchase → list delay is read from
  `streamrec_purchase_to_list_seconds` at the end (p50 / p99 over every instance's histogram).

Prints two Markdown tables for BENCHMARKS.md. Needs the release binary ($CARGO_TARGET_DIR/release/streamrec or
$STREAMREC_BIN) and tansu ($STREAMREC_TANSU or ~/.cache/streamrec/tools/bin/tansu).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HOME = os.path.expanduser("~")
BIN = os.environ.get("STREAMREC_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", f"{HOME}/.cache/streamrec/target"), "release/streamrec")
TANSU = os.environ.get("STREAMREC_TANSU", f"{HOME}/.cache/streamrec/tools/bin/tansu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(addr: str, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def health(addr: str) -> dict | None:
    body = get(addr, "/health")
    return json.loads(body) if body else None


def wait(what: str, cond, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise SystemExit(f"bench-scale-out: timed out waiting for {what}")


class Bench:
    def __init__(self, data: str, partitions: int, work: str):
        self.data, self.partitions, self.work = data, partitions, work
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, STREAMREC__TWO_TOWER__ENABLED="false", STREAMREC__RANKER__KIND="blend",
                        STREAMREC__TEXT__ENABLED="false",
                        STREAMREC__KAFKA__TRANSACTIONS_PARTITIONS=str(partitions), RUST_LOG="info")

    def spawn(self, args: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        with open(os.path.join(self.work, log), "w") as out:
            p = subprocess.Popen(args, cwd=self.work, env=env or self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def broker(self) -> str:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.spawn([TANSU, "broker", "--storage-engine", "memory://tansu/", "--listener-url", url,
                    "--advertised-listener-url", url], "tansu.log")
        wait("tansu to listen", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 20)
        return f"127.0.0.1:{port}"

    def replay(self, addr: str, *args: str) -> subprocess.Popen:
        return self.spawn([BIN, "replay", "--data", self.data, "--brokers", addr, *args], f"replay-{time.time_ns()}.log")

    def engines(self, addr: str, n: int, run: str, extra: list[str]) -> list[tuple[subprocess.Popen, str]]:
        env = dict(self.env, STREAMREC__KAFKA__GROUP_ID=f"bench-{run}", STREAMREC__KAFKA__INSTANCES=str(n),
                   STREAMREC__ENGINE__MERGE_GRACE_MS="10000")
        out = []
        for i in range(n):
            http = f"127.0.0.1:{free_port()}"
            args = [BIN, "serve", "--brokers", addr, "--http", http, *extra]
            if n > 1:
                args += ["--state-store", os.path.join(self.work, f"store-{run}")]
            out.append((self.spawn(args, f"serve-{run}-{i}.log", env), http))
        return out

    def shared_out(self, engines) -> bool:
        """Every instance holds its share (one instance: all partitions; several: each some, all held)."""
        views = [health(h) for _, h in engines]
        if any(v is None for v in views):
            return False
        if len(engines) == 1:
            return len(views[0]["group"]["partitions"]) == self.partitions
        owned = sorted(int(p) for v in views for p in (v.get("shares") or {}).get("owned", {}))
        return owned == list(range(self.partitions)) and all((v.get("shares") or {}).get("owned") for v in views)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def lists_made(log: str) -> int:
    m = re.search(r"engine: (\d+) events, (\d+) recommendations", open(log).read())
    if not m:
        raise SystemExit(f"bench-scale-out: no report line in {log}")
    return int(m.group(2))


def settled(engines) -> list[int]:
    """Each instance's lists so far, once no count has moved for 3 s (baskets close on quiet input)."""
    last, still = None, 0
    while still < 6:
        now = [(health(h) or {}).get("recommendations") for _, h in engines]
        still = still + 1 if now == last else 0
        last = now
        time.sleep(0.5)
    return last


def buckets(texts: list[str]) -> dict[float, float]:
    """streamrec_purchase_to_list_seconds' cumulative bucket counts, summed over instances."""
    out: dict[float, float] = {}
    for t in texts:
        for line in t.splitlines():
            if line.startswith("streamrec_purchase_to_list_seconds_bucket{"):
                le = re.search(r'le="([^"]+)"', line).group(1)
                bound = float("inf") if le == "+Inf" else float(le)
                out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def quantiles(after: dict[float, float], before: dict[float, float]) -> tuple[float, float]:
    """p50 and p99 (seconds, the upper bound of the bucket they fall in) of the delays recorded between two reads."""
    buckets = {b: n - before.get(b, 0.0) for b, n in after.items()}
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return float("nan"), float("nan")
    q = lambda f: next(b for b in bounds if buckets[b] >= f * total)
    return q(0.5), q(0.99)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--from", dest="from_day", default="2020-07-01", help="replay purchases from this day")
    p.add_argument("--rate", type=int, default=3000, help="purchases/s of the live phase (default %(default)s)")
    p.add_argument("--live-seconds", type=int, default=40, help="length of the live phase (default %(default)s)")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--instances", default="1,2,3")
    p.add_argument("--phases", default="throughput,live", help="throughput, live or both (default %(default)s)")
    a = p.parse_args()
    counts = [int(x) for x in a.instances.split(",")]
    # replay's --until is inclusive: the first part ends the day before --from.
    day_before = (datetime.date.fromisoformat(a.from_day) - datetime.timedelta(days=1)).isoformat()
    for path in (BIN, TANSU):
        if not os.path.exists(path):
            raise SystemExit(f"bench-scale-out: {path} not found")
    work = tempfile.mkdtemp(prefix="bench-scale-out-")
    data = os.path.abspath(a.data)
    rows_t, rows_l = [], []
    try:
        # Throughput: the instances join on the reference data and the purchases before --from, then the rest is
        # replayed at full speed (a broker of its own per instance count, so each run reads the same).
        total = sum(1 for _ in open(os.path.join(data, "transactions_train.csv"))) - 1
        events = sum(1 for line in open(os.path.join(data, "transactions_train.csv")) if line[0].isdigit() and line[:10] >= a.from_day)
        for n in counts if "throughput" in a.phases else []:
            b = Bench(data, a.partitions, work)
            try:
                addr = b.broker()
                b.replay(addr, "--max", "--until", day_before).wait()
                engines = b.engines(addr, n, f"t{n}", ["--idle-close-ms", "1000"])
                wait(f"{n} instances to hold their shares", lambda: b.shared_out(engines), 120)
                first = total - events
                wait("the purchases before --from folded", lambda: all((health(h) or {}).get("events_in_state") == first for _, h in engines), 1800)
                before = settled(engines)
                t0 = time.monotonic()
                b.replay(addr, "--max", "--purchases-only", "--from", a.from_day)
                in_state = lambda: all((health(h) or {}).get("events_in_state") == total for _, h in engines)
                wait("every instance to fold every purchase", in_state, 1800, every=0.02)
                secs = time.monotonic() - t0
                lists = [x - y for x, y in zip(settled(engines), before)]
                rows_t.append((n, events, secs, lists))
                print(f"throughput, {n} instance(s): {events} purchases in {secs:.1f} s, lists {lists}", file=sys.stderr)
            finally:
                b.stop()
        # Live: a paced replay while the instances serve.
        for n in counts if "live" in a.phases else []:
            b = Bench(data, a.partitions, work)
            try:
                addr = b.broker()
                b.replay(addr, "--max", "--until", day_before).wait()
                engines = b.engines(addr, n, f"l{n}", [])
                wait(f"{n} instances to hold their shares", lambda: b.shared_out(engines), 120)
                first = total - events
                wait("the purchases before --from folded", lambda: all((health(h) or {}).get("events_in_state") == first for _, h in engines), 1800)
                settled(engines)
                # Only the live purchases' delays: the history's were recorded while it was folded at full speed.
                before = buckets([get(h, "/metrics") or "" for _, h in engines])
                t_r = time.monotonic()
                replay = b.replay(addr, "--rate", str(a.rate), "--purchases-only", "--from", a.from_day)
                lags: list[int] = []
                end = t_r + a.live_seconds
                while time.monotonic() < end and replay.poll() is None:
                    # Sent by now on the replay's schedule, against what each instance has folded.
                    sent = min(events, int(a.rate * (time.monotonic() - t_r)))
                    folded = [(health(h) or {}).get("events_in_state") for _, h in engines]
                    if all(f is not None for f in folded):
                        lags.extend(max(0, sent - (f - first)) for f in folded)
                    time.sleep(0.5)
                # The lists of the last live day close on quiet input.
                replay.wait()
                settled(engines)
                p50, p99 = quantiles(buckets([get(h, "/metrics") or "" for _, h in engines]), before)
                lags.sort()
                pick = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))] if lags else float("nan")
                rows_l.append((n, len(lags), pick(0.5), pick(0.99), max(lags, default=float("nan")), p50, p99))
                print(f"live, {n} instance(s): lag samples {len(lags)}, p50 {pick(0.5)}, p99 {pick(0.99)}", file=sys.stderr)
            finally:
                b.stop()
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"bench-scale-out: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if rows_t:
        base = rows_t[0][1] / rows_t[0][2]
        print(f"\nThroughput (filled topic, {a.partitions} partitions, purchases from {a.from_day}):\n")
        print("| instances | purchases | s | purchases/s | vs one | lists made by each |")
        print("|---|---|---|---|---|---|")
        for n, events, secs, lists in rows_t:
            print(f"| {n} | {events:,} | {secs:.1f} | {events / secs:,.0f} | {events / secs / base:.2f} | {' + '.join(f'{x:,}' for x in lists)} = {sum(lists):,} |")
    if not rows_l:
        return 0
    print(f"\nLive ({a.rate:,} purchases/s for up to {a.live_seconds} s): item-state lag = purchases sent by the replay's schedule that an instance's state does not hold yet (seconds at the rate), purchase → list delay over all instances:\n")
    print("| instances | samples | lag p50 | lag p99 | lag max | purchase → list p50 | p99 |")
    print("|---|---|---|---|---|---|---|")
    for n, k, l50, l99, lmax, q50, q99 in rows_l:
        sec = lambda x: f"{x:,} ({x / a.rate * 1000:.0f} ms)"
        print(f"| {n} | {k} | {sec(l50)} | {sec(l99)} | {sec(lmax)} | ≤ {q50 * 1000:g} ms | ≤ {q99 * 1000:g} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
