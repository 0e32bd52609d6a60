"""Scores rows with a CatBoost JSON model the way CatBoost itself does: the reference the Rust evaluator is checked
and benchmarked against.

Feature columns are found by name when the input has every model feature (any order, extra columns ignored);
otherwise a ranker file (group_id, label, n_truth, article, then the features) or a file of exactly the features
is read by position. Prints one raw score (RawFormulaVal, float64 repr) per row. With --repeat N it also times
CatBoost's predict over the whole batch, on a prebuilt Pool and including building the Pool from the numpy array,
and prints the timings as one JSON line on stderr.

Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from catboost import CatBoost, Pool

from ranking_data import LEADING_COLUMNS, InputError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Predict raw scores with a CatBoost JSON model (and time CatBoost).")
    p.add_argument("--model", required=True, metavar="model.json", help="CatBoost model saved with format=json")
    p.add_argument("--input", required=True, metavar="ROWS", help="rows to score: .parquet or .csv (with a header)")
    p.add_argument("--features-from-manifest", metavar="MANIFEST",
                   help="take the feature list from this manifest.json instead of the model's feature_names_ "
                        "(they must agree)")
    p.add_argument("--out", metavar="FILE", help="write the scores here instead of stdout")
    p.add_argument("--threads", type=int, default=1, help="thread_count for CatBoost's predict (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=0, metavar="N",
                   help="also time predict N times (after one warm-up call) and print best/median wall time and "
                        "µs/row as a JSON line on stderr (default: %(default)s = no timing)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.repeat < 0:
        p.error("--repeat must be 0 or more")
    return args


def log(msg: str) -> None:
    print(f"predict: {msg}", file=sys.stderr, flush=True)


def load_model(path: str) -> CatBoost:
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        return CatBoost().load_model(path, format="json")
    except Exception as e:  # CatBoostError, or a JSON error from its parser
        raise InputError(f"{path}: not a CatBoost JSON model: {e}") from e


def feature_names(model: CatBoost, manifest_path: str | None) -> list[str]:
    names = list(model.feature_names_ or [])
    if manifest_path is None:
        return names
    try:
        with open(manifest_path, encoding="utf-8") as f:
            listed = json.load(f).get("features")
    except (OSError, json.JSONDecodeError, AttributeError) as e:
        raise InputError(f"{manifest_path}: not a readable manifest: {e}") from e
    if not isinstance(listed, list):
        raise InputError(f"{manifest_path}: no 'features' list")
    if names and listed != names:
        raise InputError(f"{manifest_path}: its features differ from the model's ({len(listed)} vs {len(names)})")
    return listed


def read_table(path: str, features: list[str]) -> pa.Table:
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        if path.endswith(".parquet"):
            return pq.read_table(path)
        if path.endswith(".csv"):
            # Parsed straight to float32, so a float32 written as its shortest repr comes back bit for bit.
            convert = pacsv.ConvertOptions(column_types={name: pa.float32() for name in features})
            return pacsv.read_csv(path, convert_options=convert)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not readable: {e}") from e
    raise InputError(f"{path}: expected a .parquet or .csv file")


def feature_matrix(table: pa.Table, features: list[str], path: str) -> np.ndarray:
    names = table.column_names
    if all(f in names for f in features):
        columns = features
    elif tuple(names[: len(LEADING_COLUMNS)]) == LEADING_COLUMNS and len(names) - len(LEADING_COLUMNS) == len(features):
        columns = names[len(LEADING_COLUMNS):]
        log(f"{path}: feature columns are not named like the model's; using the {len(features)} after "
            f"{', '.join(LEADING_COLUMNS)} by position")
    elif len(names) == len(features):
        columns = names
        log(f"{path}: feature columns are not named like the model's; using all {len(names)} by position")
    else:
        missing = [f for f in features if f not in names]
        raise InputError(f"{path}: cannot find the model's {len(features)} features (missing e.g. {missing[:5]}) "
                         f"among its {len(names)} columns")
    x = np.empty((table.num_rows, len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = table.column(name)
        if col.null_count:
            raise InputError(f"{path}: column '{name}' has {col.null_count} empty values")
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise InputError(f"{path}: column '{name}' is {col.type}, not numeric")
        x[:, j] = col.to_numpy()
    return x


def summarize(seconds: list[float], rows: int) -> dict:
    best, median = min(seconds), statistics.median(seconds)
    return {
        "best_s": best,
        "median_s": median,
        "best_us_per_row": best * 1e6 / rows,
        "median_us_per_row": median * 1e6 / rows,
    }


def time_predict(model: CatBoost, x: np.ndarray, threads: int, repeat: int) -> dict:
    def raw(pool: Pool) -> np.ndarray:
        return model.predict(pool, prediction_type="RawFormulaVal", thread_count=threads)

    prebuilt = Pool(x)
    raw(prebuilt)  # warm-up: first-call allocations are not what we compare
    on_pool, with_build = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        raw(prebuilt)
        on_pool.append(time.perf_counter() - t)
    for _ in range(repeat):
        t = time.perf_counter()
        raw(Pool(x))
        with_build.append(time.perf_counter() - t)
    return {
        "rows": int(x.shape[0]),
        "features": int(x.shape[1]),
        "trees": int(model.tree_count_),
        "threads": threads,
        "repeat": repeat,
        "prebuilt_pool": summarize(on_pool, x.shape[0]),
        "with_pool_build": summarize(with_build, x.shape[0]),
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        model = load_model(args.model)
        features = feature_names(model, args.features_from_manifest)
        if not features:
            raise InputError(f"{args.model}: the model names no features; pass --features-from-manifest")
        x = feature_matrix(read_table(args.input, features), features, args.input)
    except InputError as e:
        log(f"error: {e}")
        return 2
    if x.shape[0] == 0:
        log(f"{args.input}: no rows")
        scores = np.empty(0)
    else:
        scores = model.predict(Pool(x), prediction_type="RawFormulaVal", thread_count=args.threads)
    text = "".join(f"{v!r}\n" for v in np.asarray(scores, dtype=np.float64).ravel().tolist())
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.repeat and x.shape[0]:
        print(json.dumps(time_predict(model, x, args.threads, args.repeat)), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
