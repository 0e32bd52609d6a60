"""Training throughput of the two-tower trainer per user tower and batch size, for a GPU machine: generates a synthetic
export with make_two_tower_data.py, runs train_two_tower.py once per (tower, batch size) and prints a table of
samples/s, epoch time and validation recall. Needs only this folder and a Python with torch, onnx, onnxruntime,
pyarrow and numpy (no Rust build, no venv; the ONNX export also needs onnxscript: without it a run's training figures
still count and its export column says "failed").

    python3 trainer/bench_two_tower_gpu.py                         # the GPU figures, ~6 min on one H100/H200
    python3 trainer/bench_two_tower_gpu.py --items 2000 --samples 20000 --batches 256,1024 --device cpu   # a try

Each run is capped by --max-seconds (training only; reading the data, validation and the ONNX export add ~20-30 s a
run). The --compiled runs (default: the mean tower at batch 32768) repeat a run with --compile and --compile-seconds
more (compiling counts as training time, in the first epoch; each run is a new process and compiles again): at a large
batch the B x B logits' elementwise passes are much of a step, and compiling fuses them.
"samples/s" is the last whole epoch's after the first (which pays for warm-up and compiling; the last cut one's if
none), "all" is over every epoch, "epoch s" the training samples at "samples/s", recall the final validation's (over
all validation samples, after the epochs that ran: a run cut by --max-seconds has seen less). A final short
run with --sync-debug counts the distinct host-device synchronisations torch warns about inside the training steps
(on CUDA). The logs stay in --work (default: a temporary directory, removed unless --keep).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Two-tower training throughput per tower and batch size.")
    p.add_argument("--items", type=int, default=int(env("BENCH_ITEMS", 105000)),
                   help="catalogue size (env BENCH_ITEMS; default: %(default)s)")
    p.add_argument("--samples", type=int, default=int(env("BENCH_SAMPLES", 2000000)),
                   help="samples (env BENCH_SAMPLES; default: %(default)s)")
    p.add_argument("--batches", default=env("BENCH_BATCHES", "1024,8192,32768"),
                   help="batch sizes, comma-separated (env BENCH_BATCHES; default: %(default)s)")
    p.add_argument("--towers", default=env("BENCH_TOWERS", "mean,sasrec"),
                   help="user towers, comma-separated (env BENCH_TOWERS; default: %(default)s)")
    p.add_argument("--epochs", type=int, default=int(env("BENCH_EPOCHS", 2)),
                   help="epochs per run (env BENCH_EPOCHS; default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=float(env("BENCH_MAX_SECONDS", 15)),
                   help="training time cap per run (env BENCH_MAX_SECONDS; default: %(default)s)")
    p.add_argument("--device", default=env("BENCH_DEVICE", "cuda"), choices=("auto", "cpu", "cuda"),
                   help="(env BENCH_DEVICE; default: %(default)s)")
    p.add_argument("--trainer-args", default=env("BENCH_TRAINER_ARGS", "--lr-scale sqrt"),
                   help="more train_two_tower.py options for every run (env BENCH_TRAINER_ARGS; default: "
                        "%(default)r)")
    p.add_argument("--compiled", default=env("BENCH_COMPILED", "mean:32768"),
                   help="tower:batch runs to repeat with --compile (given --max-seconds + --compile-seconds), "
                        "comma-separated; '' = none (env BENCH_COMPILED; default: %(default)s)")
    p.add_argument("--compile-seconds", type=float, default=float(env("BENCH_COMPILE_SECONDS", 60)),
                   help="extra training time a compiled run gets, for compiling (env BENCH_COMPILE_SECONDS; "
                        "default: %(default)s)")
    p.add_argument("--no-sync-check", action="store_true", help="skip the final --sync-debug run")
    p.add_argument("--data", metavar="DIR", help="use this export instead of generating one")
    p.add_argument("--work", metavar="DIR", help="where the export, models and logs go (default: a temporary "
                                                 "directory)")
    p.add_argument("--keep", action="store_true", help="keep --work's temporary directory")
    return p.parse_args(argv)


def say(msg: str) -> None:
    print(msg, flush=True)


EPOCH = re.compile(r"epoch (\d+)/\d+: loss ([0-9.naninf-]+), ([0-9,]+) samples/s \(([0-9.]+) s\), "
                   r"valid recall@100 ([0-9.]+|nan), recall@12 ([0-9.]+|nan).*?(stopped by --max-seconds)?$", re.M)
TRAIN_SAMPLES = re.compile(r"user tower on \S+: (\d+) samples")


def bench_run(args: argparse.Namespace, data: str, work: str, tower: str, batch: int, extra: list[str],
              epochs: int, max_seconds: float) -> dict:
    name = f"{tower}-{batch}{''.join(e.replace('--', '-') for e in extra)}"
    out = os.path.join(work, name)
    cmd = [sys.executable, os.path.join(HERE, "train_two_tower.py"), "--data", data, "--out", out,
           "--version", name, "--user-tower", tower, "--batch-size", str(batch), "--epochs", str(epochs),
           "--device", args.device, "--max-seconds", str(max_seconds), *shlex.split(args.trainer_args), *extra]
    started = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    with open(os.path.join(work, f"{name}.log"), "w", encoding="utf-8") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n" + r.stderr)
    epochs = [m.groups() for m in EPOCH.finditer(r.stderr)]
    compiled = bool(re.search(r"user tower on .*, compiled$", r.stderr, re.M)) and "compile failed" not in r.stderr
    row = {"tower": tower + (" compiled" if compiled else ""), "batch": batch, "exit": r.returncode, "wall_s": wall, "epochs": len(epochs),
           "export": "ok" if os.path.exists(os.path.join(out, "manifest.json")) else "failed",
           "syncs": len(re.findall(r"called a synchronizing CUDA operation", r.stderr))}
    n_train = TRAIN_SAMPLES.search(r.stderr)
    if epochs and n_train:
        rates = [float(e[2].replace(",", "")) for e in epochs]
        secs = [float(e[3]) for e in epochs]
        # The steady rate: a later epoch's if there is one (the first pays for warm-up and compiling), a whole one's
        # rather than one --max-seconds cut short.
        later = list(range(1, len(epochs))) or [0]
        steady = ([i for i in later if not epochs[i][6]] or later)[-1]
        _, loss, _, _, r100, r12, _ = epochs[-1]
        row.update(loss=float(loss), rate=rates[steady], rate_all=sum(r * t for r, t in zip(rates, secs)) / sum(secs),
                   epoch_s=int(n_train.group(1)) / rates[steady], recall100=float(r100), recall12=float(r12),
                   cut=bool(epochs[-1][6]))
    else:
        say(f"  {name}: no epoch finished (exit {r.returncode}); the end of its log:\n{r.stderr[-2000:]}")
    return row


def table(rows: list[dict]) -> str:
    lines = ["| tower | batch | samples/s | samples/s (all) | epoch s | epochs | recall@100 | recall@12 | export |",
             "| --- " * 9 + "|"]
    for r in rows:
        if "rate" not in r:
            lines.append(f"| {r['tower']} | {r['batch']} | failed (exit {r['exit']}) | | | | | | |")
            continue
        cut = " (last cut)" if r["cut"] else ""
        lines.append(f"| {r['tower']} | {r['batch']} | {r['rate']:,.0f} | {r['rate_all']:,.0f} | {r['epoch_s']:.1f} "
                     f"| {r['epochs']}{cut} | {r['recall100']:.4f} | {r['recall12']:.4f} | {r['export']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch  # only for the header: the runs are subprocesses

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    say(f"bench_two_tower_gpu: torch {torch.__version__}, {gpu}, {os.cpu_count()} CPUs; {args.items} items, "
        f"{args.samples} samples, batches {args.batches}, towers {args.towers}, {args.epochs} epochs or "
        f"{args.max_seconds:g} s per run, trainer args {args.trainer_args!r}")
    work = args.work or tempfile.mkdtemp(prefix="streamrec-bench-two-tower-")
    os.makedirs(work, exist_ok=True)
    try:
        data = args.data
        if not data:
            data = os.path.join(work, "export")
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, os.path.join(HERE, "make_two_tower_data.py"), "--out", data,
                                "--items", str(args.items), "--samples", str(args.samples)],
                               capture_output=True, text=True)
            if r.returncode:
                say(f"make_two_tower_data.py failed (exit {r.returncode}):\n{r.stderr}")
                return 1
            say(f"export generated in {time.perf_counter() - t0:.1f} s: {r.stderr.strip()}")
        runs = [(tower, int(batch), []) for tower in args.towers.split(",") for batch in args.batches.split(",")]
        runs += [(tower, int(batch), ["--compile"]) for tower, batch in
                 (c.split(":") for c in args.compiled.split(",") if c)]
        # The dense update of the ID table (no host synchronisation on CUDA), beside the sparse default.
        runs += [(tower, int(batch), ["--id-grad", "dense"]) for tower, batch in
                 (c.split(":") for c in args.compiled.split(",") if c)]
        rows = []
        for tower, batch, extra in runs:
            row = bench_run(args, data, work, tower, batch, extra, args.epochs,
                            args.max_seconds + (args.compile_seconds if extra else 0))
            rows.append(row)
            say(f"  {row['tower']} batch {batch}: {row.get('rate', 0):,.0f} samples/s, exit {row['exit']}, "
                f"{row['wall_s']:.0f} s in all")
        say("\n" + table(rows))
        if not args.no_sync_check:
            tower, batch = args.towers.split(",")[0], int(args.batches.split(",")[-1])
            row = bench_run(args, data, work, tower, batch, ["--sync-debug"], 1, min(args.max_seconds, 5.0))
            say(f"\nsync check ({tower}, batch {batch}, --sync-debug): {row['syncs']} distinct synchronising "
                f"calls warned about inside the training steps"
                f"{' (CPU run: nothing to check)' if args.device == 'cpu' else ''}")
        kept = args.work or args.keep
        say(f"\nbench_two_tower_gpu: done in {time.perf_counter() - started:.0f} s"
            f"{f'; logs in {work}' if kept else ' (--keep keeps the logs)'}")
        return 0 if all(r["exit"] == 0 for r in rows) else 1
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
