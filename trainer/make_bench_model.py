"""Makes a deterministic CatBoost model plus rows and CatBoost's own predictions for them: the fixture for the
Rust evaluator's parity tests (within 1e-5) and its benchmarks.

Writes to DIR:
  model.json    CatBoostRegressor with exactly --trees trees of --depth (no early stopping), saved as JSON
  rows.parquet  float32 columns f00, f01, ... (only the features)
  rows.csv      the same values, a header of feature names, each value the shortest repr that round-trips float32
  expected.txt  CatBoost's RawFormulaVal for each row, one float64 repr per line, from the model re-read from
                model.json (the file the Rust side reads)

The rows are the --rows training rows followed by --border-rows rows whose every value sits exactly on one of the
model's borders (or just below or above it), which pins down the strict `value > border` split rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from catboost import CatBoost, CatBoostRegressor, Pool


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Make a deterministic CatBoost model, rows and expected predictions.")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--rows", type=int, default=20000, help="training rows, all written out (default: %(default)s)")
    p.add_argument("--border-rows", type=int, default=256,
                   help="extra rows with values exactly on, just below and just above the model's borders; "
                        "written out, not trained on (default: %(default)s)")
    p.add_argument("--features", type=int, default=40, help="feature count (default: %(default)s)")
    p.add_argument("--trees", type=int, default=500, help="tree count, exactly (default: %(default)s)")
    p.add_argument("--depth", type=int, default=6, help="tree depth, 1-16 (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.1, help="learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="seed for the data and for CatBoost (default: %(default)s)")
    args = p.parse_args(argv)
    if args.rows < 2 or args.features < 1 or args.trees < 1 or args.border_rows < 0:
        p.error("--rows must be at least 2, --features and --trees at least 1, --border-rows 0 or more")
    if not 1 <= args.depth <= 16:
        p.error("--depth must be between 1 and 16")
    return args


def feature_names(n: int) -> list[str]:
    width = max(2, len(str(n - 1)))
    return [f"f{j:0{width}d}" for j in range(n)]


def synthetic_features(rng: np.random.Generator, rows: int, features: int) -> np.ndarray:
    """Column j cycles through the kinds of values ranker features have: continuous, counts with few distinct
    values, mostly-zero, heavy-tailed, bounded."""
    x = np.empty((rows, features), dtype=np.float32)
    for j in range(features):
        kind = j % 5
        if kind == 0:
            col = rng.normal(0.0, 1.0 + j / features, rows)
        elif kind == 1:
            col = rng.integers(0, 3 + j % 7, rows)
        elif kind == 2:
            col = np.where(rng.random(rows) < 0.85, 0.0, rng.exponential(2.0, rows))
        elif kind == 3:
            col = rng.lognormal(0.0, 1.5, rows)
        else:
            col = rng.uniform(-1.0, 1.0, rows)
        x[:, j] = col
    return x


def synthetic_target(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """A nonlinear function of the first (up to 10) columns, with interactions, plus noise."""
    c = [x[:, j % x.shape[1]].astype(np.float64) for j in range(10)]
    y = (np.sin(c[0]) * (1.0 + c[4])
         + 0.5 * c[1] * (c[2] > 0)
         + np.log1p(c[3]) - 0.3 * c[5] ** 2
         + np.where(c[6] > 1.0, c[7], -c[8])
         + 0.2 * c[9])
    return y + rng.normal(0.0, 0.3, len(y))


def border_rows(rng: np.random.Generator, model_json: dict, rows: int, features: int) -> np.ndarray:
    """Rows whose values are exactly a border, the float32 just below it, or just above it; features without
    borders get 0."""
    borders = {f["feature_index"]: np.asarray(f.get("borders") or [], dtype=np.float32)
               for f in model_json["features_info"].get("float_features", [])}
    x = np.zeros((rows, features), dtype=np.float32)
    for j in range(features):
        b = borders.get(j)
        if b is None or len(b) == 0:
            continue
        picked = b[rng.integers(0, len(b), rows)]
        nudge = rng.integers(-1, 2, rows)  # -1 below, 0 on, +1 above
        below = np.nextafter(picked, np.float32(-np.inf))
        above = np.nextafter(picked, np.float32(np.inf))
        x[:, j] = np.where(nudge < 0, below, np.where(nudge > 0, above, picked))
    return x


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    names = feature_names(args.features)
    x = synthetic_features(rng, args.rows, args.features)
    y = synthetic_target(rng, x)

    model = CatBoostRegressor(
        iterations=args.trees,
        depth=args.depth,
        learning_rate=args.learning_rate,
        random_seed=args.seed,
        thread_count=2,
        allow_writing_files=False,
        verbose=False,
    )
    model.fit(Pool(x, y, feature_names=names))
    model_path = os.path.join(args.out, "model.json")
    model.save_model(model_path, format="json")
    with open(model_path, encoding="utf-8") as f:
        model_json = json.load(f)

    rows = np.vstack([x, border_rows(rng, model_json, args.border_rows, args.features)])
    pq.write_table(pa.table({n: rows[:, j] for j, n in enumerate(names)}),
                   os.path.join(args.out, "rows.parquet"))
    with open(os.path.join(args.out, "rows.csv"), "w", encoding="utf-8") as f:
        f.write(",".join(names) + "\n")
        for row in rows:
            # np.float32's repr is the shortest decimal that reads back as the same float32.
            f.write(",".join(str(v) for v in row) + "\n")

    # Expected values come from the JSON file itself, not the in-memory model (they differ in the last bits).
    reloaded = CatBoost().load_model(model_path, format="json")
    expected = reloaded.predict(Pool(rows, feature_names=names), prediction_type="RawFormulaVal", thread_count=2)
    with open(os.path.join(args.out, "expected.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{v!r}\n" for v in expected.tolist()))
    print(f"make_bench_model: {len(rows)} rows ({args.rows} trained on), {args.features} features, "
          f"{reloaded.tree_count_} trees of depth {args.depth} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
