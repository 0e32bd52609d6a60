"""End-to-end check of the two-tower trainer on small synthetic data, in a temporary directory (~50 s on 2 cores):
make_two_tower_data.py, then train_two_tower.py on CPU: the mean user tower twice with the same seed (the second time
on a copy of the export without `history_days`, as older exports are), once with image vectors, and the sasrec user
tower twice with the same seed; each model checked against the contract (files, manifest, ONNX interface) and re-run
in onnxruntime against parity.json; then bad exports must fail with exit status 2 and a message naming the problem,
and bad history_days must be refused by the reader. The trainings run side by side (4 at a time).

    "$(bash scripts/trainer-env.sh)" trainer/smoke_test_two_tower.py

Ends with an "N passed, M failed" line; exit status 1 if anything failed.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from common import InputError
from smoke import check, results, run
from two_tower_data import Export

ITEMS = 600
DIM = 16
PARITY_TOLERANCE = 1e-4
MODEL_FILES = ("user_tower.onnx", "item_tower.onnx", "item_vocab.json", "parity.json", "manifest.json")
USER_INPUTS = {"mean": ["user_features", "history"], "sasrec": ["user_features", "history", "history_age"]}
METRICS = ("valid_recall_at_100", "valid_recall_at_12", "valid_samples", "train_samples", "epochs", "samples_per_s",
           "train_seconds", "device", "final_loss")


def train(data: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    return run("train_two_tower.py", "--data", data, "--out", out, "--version", "smoke-1", "--dim", str(DIM),
               "--epochs", "2", "--batch-size", "256", "--device", "cpu", "--threads", "2", "--seed", "7", *extra)


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def onnx_session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def check_model(name: str, out: str, data: str, meta: dict, image_dim: int | None, tower: str = "mean") -> dict | None:
    """The contract, checked from outside the trainer: files, manifest, ONNX interface, onnxruntime vs parity.json."""
    missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(out, f))]
    check(f"{name}: all model files written", not missing, f"missing {missing}")
    if missing:
        return None
    manifest = load(os.path.join(out, "manifest.json"))
    newest_other = max(os.path.getmtime(os.path.join(out, f)) for f in MODEL_FILES if f != "manifest.json")
    check(f"{name}: manifest.json written last", os.path.getmtime(os.path.join(out, "manifest.json")) >= newest_other)
    want = {"kind": "two_tower", "version": "smoke-1", "trained_until": meta["trained_until"],
            "fingerprint": meta["fingerprint"], "dim": DIM, "user_features": meta["user_features"],
            "history_len": meta["history_len"], "item_columns": meta["item_columns"],
            "item_cardinalities": meta["item_cardinalities"], "image_dim": image_dim, "seed": 7,
            "user_tower": tower, "user_inputs": USER_INPUTS[tower]}
    wrong = {k: manifest.get(k) for k, v in want.items() if manifest.get(k) != v}
    check(f"{name}: manifest fields", not wrong and isinstance(manifest.get("params"), dict), f"wrong: {wrong}")
    metrics = manifest.get("metrics", {})
    check(f"{name}: manifest metrics", all(k in metrics for k in METRICS) and metrics["device"] == "cpu"
          and metrics["epochs"] == 2 and metrics["samples_per_s"] > 0, json.dumps(metrics))
    check(f"{name}: item_vocab.json copied unchanged",
          load(os.path.join(out, "item_vocab.json")) == load(os.path.join(data, "item_vocab.json")))

    parity = load(os.path.join(out, "parity.json"))
    user = onnx_session(os.path.join(out, "user_tower.onnx"))
    item = onnx_session(os.path.join(out, "item_tower.onnx"))
    u, h = len(meta["user_features"]), meta["history_len"]
    c = len(meta["item_columns"])
    want_user = [("user_features", "tensor(float)", u), ("history", "tensor(int64)", h)]
    if tower == "sasrec":
        want_user.append(("history_age", "tensor(float)", h))
    want_item = [("item_codes", "tensor(int64)", c)] + ([("image_vector", "tensor(float)", image_dim)]
                                                        if image_dim else [])
    got_user = [(i.name, i.type, i.shape[1]) for i in user.get_inputs()]
    got_item = [(i.name, i.type, i.shape[1]) for i in item.get_inputs()]
    dynamic = all(isinstance(i.shape[0], str) for s in (user, item) for i in [*s.get_inputs(), *s.get_outputs()])
    outputs = [(o.name, o.type, o.shape[1]) for s in (user, item) for o in s.get_outputs()]
    check(f"{name}: ONNX inputs and outputs as the contract says",
          got_user == want_user and got_item == want_item and dynamic
          and outputs == [("user_vector", "tensor(float)", DIM), ("item_vector", "tensor(float)", DIM)],
          f"user {got_user}, item {got_item}, outputs {outputs}, dynamic batch {dynamic}")

    pu, pi = parity["user"], parity["item"]
    rows = len(pu["history"])
    check(f"{name}: parity.json has 64 rows per tower", rows == 64 and len(pi["item_codes"]) == 64)
    hist = np.array(pu["history"], dtype=np.int64)
    codes = np.array(pi["item_codes"], dtype=np.int64)
    cards = np.array(meta["item_cardinalities"])
    check(f"{name}: parity rows include padded histories and out-of-range codes",
          (hist == 0).all(axis=1).any() and ((hist[:, 0] == 0) & (hist[:, -1] > 0)).any()
          and (hist >= cards[meta["item_columns"].index("article")]).any() and (codes >= cards).any())
    feeds_u = {"user_features": np.array(pu["user_features"], dtype=np.float32), "history": hist}
    if tower == "sasrec":
        age = np.array(pu.get("history_age", []), dtype=np.float32)
        check(f"{name}: parity rows include zero and huge history ages",
              age.shape == hist.shape and (age == 0).all(axis=1).any() and age.max() >= 1e6, f"shape {age.shape}")
        if age.shape != hist.shape:
            return None
        feeds_u["history_age"] = age
    feeds_i = {"item_codes": codes}
    if image_dim:
        feeds_i["image_vector"] = np.array(pi["image_vector"], dtype=np.float32)
    uv = user.run(["user_vector"], feeds_u)[0]
    iv = item.run(["item_vector"], feeds_i)[0]
    diff_u = float(np.abs(uv - np.array(pu["user_vector"], dtype=np.float32)).max())
    diff_i = float(np.abs(iv - np.array(pi["item_vector"], dtype=np.float32)).max())
    check(f"{name}: onnxruntime reproduces parity.json (user {diff_u:.1e}, item {diff_i:.1e})",
          diff_u <= PARITY_TOLERANCE and diff_i <= PARITY_TOLERANCE)
    norms = np.linalg.norm(np.concatenate([uv, iv]), axis=1)
    check(f"{name}: vectors are L2-normalised", np.abs(norms - 1).max() < 1e-5, f"norms {norms.min()}..{norms.max()}")
    # Any batch size; codes far past the cardinality (and negative) do not crash and read as unknown (0).
    one = item.run(["item_vector"], {k: v[5:6] for k, v in feeds_i.items()})[0]
    one_user = user.run(["user_vector"], {k: v[:1] for k, v in feeds_u.items()})[0]
    three_user = user.run(["user_vector"], {k: v[1:4] for k, v in feeds_u.items()})[0]
    huge = feeds_i.copy()
    huge["item_codes"] = np.full_like(codes[:3], 10**12)
    huge["item_codes"][1] = -5
    zeros = {k: (np.zeros_like(v[:3]) if k == "item_codes" else v[:3]) for k, v in feeds_i.items()}
    if image_dim:
        huge["image_vector"] = zeros["image_vector"] = np.zeros_like(feeds_i["image_vector"][:3])
    a = item.run(["item_vector"], huge)[0]
    b = item.run(["item_vector"], zeros)[0]
    check(f"{name}: batches of 1 and 3, and huge or negative codes read as unknown",
          np.abs(one - iv[5:6]).max() <= PARITY_TOLERANCE and np.abs(a - b).max() <= 1e-6
          and np.abs(one_user - uv[:1]).max() <= PARITY_TOLERANCE
          and np.abs(three_user - uv[1:4]).max() <= PARITY_TOLERANCE)

    recall100 = metrics.get("valid_recall_at_100") or 0.0
    baseline = 100 / meta["n_items"]
    check(f"{name}: recall@100 {recall100:.3f} beats random ranking ({baseline:.3f})", recall100 > 2 * baseline,
          json.dumps(metrics))
    return manifest


def export_variant(data: str, dest: str, change) -> str:
    """A copy of the export at `dest` whose samples.parquet is `change(table)`."""
    shutil.copytree(data, dest)
    path = os.path.join(dest, "samples.parquet")
    pq.write_table(change(pq.read_table(path)), path)
    return dest


def history_days(table: pa.Table, rows: list[list[int]]) -> pa.Table:
    i = table.column_names.index("history_days")
    return table.set_column(i, "history_days", pa.array(rows, type=pa.list_(pa.int32())))


def bad_exports(tmp: str, data: str, old: str) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(name, export, extra options, what the message must say) of exports that must fail with exit status 2."""
    missing = os.path.join(tmp, "no-samples")
    shutil.copytree(data, missing)
    os.remove(os.path.join(missing, "samples.parquet"))
    short = os.path.join(tmp, "short-history")
    shutil.copytree(data, short)
    meta = load(os.path.join(short, "meta.json"))
    meta["history_len"] = 12
    with open(os.path.join(short, "meta.json"), "w") as f:
        json.dump(meta, f)

    return [
        ("missing samples.parquet", missing, (), "samples.parquet: no such file"),
        ("missing export directory", os.path.join(tmp, "nowhere"), (), "no such directory"),
        ("history length differs from meta.json", short, (), "'history' has 16 values, expected 12"),
        ("sasrec on an export without history_days", old, ("--user-tower", "sasrec"),
         "missing columns ['history_days']"),
    ]


def bad_history_days(tmp: str, data: str) -> None:
    """history_days the reader must refuse (read in this process: the exit status 2 path is the one above)."""

    def negative(table: pa.Table) -> pa.Table:
        rows = table.column("history_days").to_pylist()
        rows[5][-1] = -3
        return history_days(table, rows)

    def short_days(table: pa.Table) -> pa.Table:
        return history_days(table, [r[1:] for r in table.column("history_days").to_pylist()])

    for name, change, needle in (("negative history_days", negative, "row 5: 'history_days' holds -3"),
                                 ("history_days of the wrong length", short_days,
                                  "'history_days' has 15 values, expected 16")):
        export = export_variant(data, os.path.join(tmp, name.replace(" ", "-")), change)
        try:
            Export(export, history_days=True)
            error = "no error"
        except InputError as e:
            error = str(e)
        check(f"{name}: refused with a message", needle in error, error)


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streamrec-two-tower-") as tmp:
        data = os.path.join(tmp, "export")
        r = run("make_two_tower_data.py", "--out", data, "--items", str(ITEMS), "--samples", "8000",
                "--image-dim", "8", "--seed", "3")
        check("make_two_tower_data exits 0", r.returncode == 0, r.stderr)
        if r.returncode:
            return 1
        meta = load(os.path.join(data, "meta.json"))
        # As exports written before history_days was added are.
        old = export_variant(data, os.path.join(tmp, "export-without-days"), lambda t: t.drop(["history_days"]))
        image = ("--image-vectors", os.path.join(data, "image_vectors.parquet"))
        # name, export, tower, extra options. The second run of each tower must give the first one's outputs
        # (same seed); the mean tower's reads the export without history_days.
        good = [("mean 1", data, "mean", ()), ("mean 2 (export without history_days)", old, "mean", ()),
                ("sasrec 1", data, "sasrec", ()), ("sasrec 2", data, "sasrec", ()),
                ("with image vectors", data, "mean", image)]
        bad = bad_exports(tmp, data, old)
        # The runs are independent processes, each with a fixed --threads (so the same outputs however many run at
        # once): running them side by side halves the wall time, most of which is single-threaded (imports, export).
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            good_runs = [pool.submit(train, export, os.path.join(tmp, f"model-{i}"), "--user-tower", tower, *extra)
                         for i, (_, export, tower, extra) in enumerate(good)]
            bad_runs = [pool.submit(train, export, os.path.join(tmp, f"bad-model-{i}"), *extra)
                        for i, (_, export, extra, _) in enumerate(bad)]
        manifests = {}
        for i, ((name, export, tower, extra), job) in enumerate(zip(good, good_runs)):
            r, out = job.result(), os.path.join(tmp, f"model-{i}")
            check(f"{name}: train_two_tower exits 0 with nothing on stdout", r.returncode == 0 and not r.stdout,
                  r.stderr[-3000:])
            if r.returncode == 0:
                manifests[name] = (out, check_model(name, out, export, meta, 8 if extra else None, tower))
        for tower, first, second in (("mean", "mean 1", "mean 2 (export without history_days)"),
                                     ("sasrec", "sasrec 1", "sasrec 2")):
            if first in manifests and second in manifests:
                (a, ma), (b, mb) = manifests[first], manifests[second]
                check(f"{tower}: same seed, same parity outputs",
                      load(os.path.join(a, "parity.json")) == load(os.path.join(b, "parity.json")))
                check(f"{tower}: same seed, same loss and recall",
                      ma is not None and mb is not None and all(ma["metrics"][k] == mb["metrics"][k]
                                                                 for k in ("final_loss", "valid_recall_at_100")))
        for i, ((name, _, _, needle), job) in enumerate(zip(bad, bad_runs)):
            r = job.result()
            check(f"{name}: exit 2 with a message", r.returncode == 2 and needle in r.stderr
                  and not os.path.exists(os.path.join(tmp, f"bad-model-{i}", "manifest.json")),
                  f"exit {r.returncode}: {r.stderr[-1500:]}")
        bad_history_days(tmp, data)
    print(f"({time.perf_counter() - started:.0f} s)")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
