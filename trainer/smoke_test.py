"""End-to-end check of the trainer scripts on small generated data, in a temporary directory (~10 s):
train_ranker.py with YetiRank and Logloss, predict.py against CatBoost, make_bench_model.py's fixture, and a
plain-numpy evaluator of the JSON model that spells out the semantics the Rust evaluator must follow.

    "$(bash scripts/trainer-env.sh)" trainer/smoke_test.py

Ends with an "N passed, M failed" line; exit status 1 if anything failed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from catboost import CatBoost, Pool

from ranking_data import map_at_k, read_ranking_set
from smoke import check, results, run

FEATURES = [f"feat_{i}" for i in range(6)]


def write_ranking_file(path: str, rng: np.random.Generator, groups: int, first_id: int) -> None:
    """Candidate lists whose positives depend on the features, so a model has something to learn."""
    parts = []
    for g in range(groups):
        n = int(rng.integers(8, 30))
        x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
        x[:, 2] = rng.integers(0, 4, n)
        x[:, 3] = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(size=n))
        p = 1.0 / (1.0 + np.exp(-(1.5 * x[:, 0] - x[:, 1] ** 2 + 0.8 * x[:, 2] - 3.0)))
        label = (rng.random(n) < p).astype(np.float32)
        n_truth = max(1, int(label.sum()) + int(rng.integers(0, 3)))
        parts.append((np.full(n, first_id + g, np.uint64), label, np.full(n, n_truth, np.uint32),
                      rng.integers(0, 10**6, n).astype(np.uint32), x))
    cols = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    table = {"group_id": cols[0], "label": cols[1], "n_truth": cols[2], "article": cols[3]}
    table.update({f: cols[4][:, j] for j, f in enumerate(FEATURES)})
    pq.write_table(pa.table(table), path)


def evaluate_json(model: dict, x: np.ndarray) -> np.ndarray:
    """CatBoost's JSON model by hand: per tree, bit i of the leaf index is `x[f] > border` of splits[i] (strict),
    leaf_values has 2^depth entries, and the result is scale * sum + bias. (No NaN here; README.md says how
    nan_value_treatment maps NaN.)"""
    column = [f["flat_feature_index"] for f in model["features_info"]["float_features"]]
    total = np.zeros(len(x))
    for tree in model["oblivious_trees"]:
        leaf = np.zeros(len(x), dtype=np.int64)
        for i, split in enumerate(tree["splits"]):
            value = x[:, column[split["float_feature_index"]]]
            leaf |= (value > np.float32(split["border"])).astype(np.int64) << i
        total += np.asarray(tree["leaf_values"])[leaf]
    scale, bias = model["scale_and_bias"]
    return scale * total + bias[0]


def read_scores(path_or_text: str) -> np.ndarray:
    return np.array([float(line) for line in path_or_text.splitlines() if line])


def test_ranker(tmp: str) -> None:
    rng = np.random.default_rng(11)
    train, valid, meta = (os.path.join(tmp, n) for n in ("train.parquet", "valid.parquet", "META.json"))
    write_ranking_file(train, rng, 300, 1)
    write_ranking_file(valid, rng, 120, 100000)
    with open(meta, "w") as f:
        json.dump({"version": 1, "trained_until": "2020-09-15", "features": FEATURES, "data_fingerprint": "x"}, f)
    valid_set = read_ranking_set(valid, FEATURES)
    for loss in ("YetiRank", "Logloss"):
        out = os.path.join(tmp, loss)
        r = run("train_ranker.py", "--train", train, "--valid", valid, "--meta", meta, "--out", out,
                "--loss", loss, "--iterations", "80", "--threads", "2")
        check(f"train {loss} exits 0", r.returncode == 0, r.stderr[-2000:])
        if r.returncode:
            continue
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        check(f"{loss} manifest keeps META and adds the run's facts",
              manifest["data_fingerprint"] == "x" and manifest["loss"] == loss and manifest["valid_groups"] == 120)
        check(f"{loss} model beats input order",
              manifest["validation_map12"] > manifest["validation_map12_input_order"], json.dumps(manifest))
        r = run("predict.py", "--model", os.path.join(out, "model.json"), "--input", valid,
                "--features-from-manifest", os.path.join(out, "manifest.json"))
        scores = read_scores(r.stdout)
        model = CatBoost().load_model(os.path.join(out, "model.json"), format="json")
        ref = model.predict(Pool(valid_set.features), prediction_type="RawFormulaVal")
        check(f"{loss} predict.py equals CatBoost", r.returncode == 0 and np.array_equal(scores, ref), r.stderr)
        check(f"{loss} manifest MAP@12 matches predict.py's scores",
              abs(map_at_k(scores, valid_set)[0] - manifest["validation_map12"]) < 1e-12)
        with open(os.path.join(out, "model.json")) as f:
            by_hand = evaluate_json(json.load(f), valid_set.features)
        check(f"{loss} hand evaluation of model.json", np.abs(by_hand - ref).max() < 1e-9)

    no_pos = os.path.join(tmp, "no_positives.parquet")
    t = pq.read_table(valid)
    pq.write_table(t.set_column(1, "label", pa.array(np.zeros(t.num_rows, np.float32))), no_pos)
    r = run("train_ranker.py", "--train", no_pos, "--valid", valid, "--meta", meta, "--out", os.path.join(tmp, "bad"))
    check("no positives is exit 2 with a message", r.returncode == 2 and "no positive rows" in r.stderr, r.stderr)


def test_bench_model(tmp: str) -> None:
    out = os.path.join(tmp, "bench")
    r = run("make_bench_model.py", "--out", out, "--rows", "1500", "--features", "12", "--trees", "40",
            "--depth", "5", "--border-rows", "200")
    check("make_bench_model exits 0", r.returncode == 0, r.stderr)
    if r.returncode:
        return
    with open(os.path.join(out, "expected.txt")) as f:
        expected = read_scores(f.read())
    for name in ("rows.parquet", "rows.csv"):
        r = run("predict.py", "--model", os.path.join(out, "model.json"), "--input", os.path.join(out, name))
        check(f"predict.py on {name} equals expected.txt", np.array_equal(read_scores(r.stdout), expected), r.stderr)
    x = np.column_stack([c.to_numpy() for c in pq.read_table(os.path.join(out, "rows.parquet")).columns])
    with open(os.path.join(out, "model.json")) as f:
        model = json.load(f)
    check("hand evaluation matches expected.txt", np.abs(evaluate_json(model, x) - expected).max() < 1e-9)
    # With `>=` the border rows must score differently, or they would not be testing the comparison.
    for tree in model["oblivious_trees"]:
        for split in tree["splits"]:
            split["border"] = float(np.nextafter(np.float32(split["border"]), np.float32(-np.inf)))
    check("border rows tell > from >=", np.abs(evaluate_json(model, x[1500:]) - expected[1500:]).max() > 1e-6)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="streamrec-trainer-") as tmp:
        test_ranker(tmp)
        test_bench_model(tmp)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
