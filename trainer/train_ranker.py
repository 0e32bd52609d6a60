"""Trains the learned ranker with CatBoost; the Rust binary runs this as a subprocess.

Reads the train and valid parquet files and META.json the Rust side wrote, trains with the valid set for early
stopping (keeping the best iteration), scores validation MAP@12 exactly as the backtest does (denominator
min(n_truth, 12)), and writes DIR/model.json (CatBoost's JSON format, which the Rust evaluator reads) and then
DIR/manifest.json. The manifest is written last and atomically: a directory with a manifest is a finished run.

Logs go to stderr; stdout stays empty. Exit status: 0 done, 2 bad input, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import catboost
import numpy as np
from catboost import CatBoostClassifier, CatBoostError, CatBoostRanker, Pool
from catboost.utils import get_gpu_device_count

from common import write_json_atomic
from ranking_data import InputError, RankingSet, map_at_k, read_ranking_set

RANKING_LOSSES = {
    "YetiRank", "YetiRankPairwise", "PairLogit", "PairLogitPairwise", "QueryRMSE", "QuerySoftMax",
    "QueryCrossEntropy", "StochasticFilter", "StochasticRank", "LambdaMart",
}
CLASSIFIER_LOSSES = {"Logloss", "CrossEntropy"}
META_REQUIRED = ("version", "trained_until", "features", "data_fingerprint")
LOG_PERIOD = 50


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train the streamrec ranker with CatBoost and write DIR/model.json and DIR/manifest.json.",
    )
    p.add_argument("--train", required=True, metavar="TRAIN.parquet",
                   help="training rows: group_id, label, n_truth, article, then META's features (float32)")
    p.add_argument("--valid", required=True, metavar="VALID.parquet",
                   help="validation rows, same layout; used for early stopping and the reported MAP@12")
    p.add_argument("--meta", required=True, metavar="META.json",
                   help="JSON object with at least version, trained_until, features, data_fingerprint; "
                        "all its keys are copied into the manifest")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--loss", default="YetiRank",
                   help="CatBoost loss, parameters allowed (e.g. YetiRank:top=12). Ranking losses ("
                        + ", ".join(sorted(RANKING_LOSSES)) + ") train a CatBoostRanker; "
                        + ", ".join(sorted(CLASSIFIER_LOSSES)) + " a CatBoostClassifier (default: %(default)s)")
    p.add_argument("--eval-metric", default="MAP:top=12",
                   help="CatBoost metric on the valid set that early stopping and the kept best iteration follow; "
                        "its MAP divides by the positives among the candidates, not n_truth (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=500, help="maximum number of trees (default: %(default)s)")
    p.add_argument("--depth", type=int, default=6, help="depth of each (oblivious) tree, 1-16 (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.1, help="learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads CatBoost uses (default: all cores, %(default)s here)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto = GPU when CatBoost sees one, else CPU (default: %(default)s)")
    p.add_argument("--early-stopping-rounds", type=int, default=50,
                   help="stop after this many iterations without improvement on the valid set; 0 = never, the best "
                        "iteration is still kept (default: %(default)s)")
    args = p.parse_args(argv)
    for name in ("iterations", "depth", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if not 1 <= args.depth <= 16:
        p.error("--depth must be between 1 and 16")
    if args.learning_rate <= 0:
        p.error("--learning-rate must be positive")
    if args.early_stopping_rounds < 0:
        p.error("--early-stopping-rounds must be 0 or more")
    base = args.loss.split(":", 1)[0]
    if base not in RANKING_LOSSES | CLASSIFIER_LOSSES:
        known = ", ".join(sorted(RANKING_LOSSES | CLASSIFIER_LOSSES))
        p.error(f"--loss {args.loss}: unsupported; use one of {known}")
    return args


def log(msg: str) -> None:
    print(f"train_ranker: {msg}", file=sys.stderr, flush=True)


def read_meta(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable JSON: {e}") from e
    if not isinstance(meta, dict):
        raise InputError(f"{path}: must hold a JSON object")
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise InputError(f"{path}: missing keys {missing}")
    features = meta["features"]
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        raise InputError(f"{path}: 'features' must be a non-empty list of names")
    if len(set(features)) != len(features):
        raise InputError(f"{path}: 'features' lists a name twice")
    return meta


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    # On machines without a usable CUDA driver CatBoost prints a scary "Error 35 ... ignored" line; the answer
    # (no GPU) is all that matters, so its native stderr is muted for the call.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        count = get_gpu_device_count()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return "gpu" if count > 0 else "cpu"


def build_model(args: argparse.Namespace, device: str):
    params = dict(
        loss_function=args.loss,
        eval_metric=args.eval_metric,
        iterations=args.iterations,
        depth=args.depth,
        learning_rate=args.learning_rate,
        random_seed=args.seed,
        thread_count=args.threads,
        task_type=device.upper(),
        allow_writing_files=False,
        metric_period=1,
    )
    if device == "gpu":
        params["devices"] = "0"
    base = args.loss.split(":", 1)[0]
    return CatBoostRanker(**params) if base in RANKING_LOSSES else CatBoostClassifier(**params)


def to_pool(data: RankingSet, features: list[str]):
    return Pool(data.features, label=data.label, group_id=data.group_id, feature_names=features)


def train(args: argparse.Namespace) -> dict:
    meta = read_meta(args.meta)
    features = meta["features"]
    train_set = read_ranking_set(args.train, features)
    valid_set = read_ranking_set(args.valid, features)
    for name, data in (("train", train_set), ("valid", valid_set)):
        if data.positives == 0:
            raise InputError(f"{getattr(args, name)}: no positive rows (label 1.0); nothing to learn or measure")
        log(f"{name}: {data.rows} rows, {data.groups} groups, {data.positives} positives, {len(features)} features")

    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    model_path = os.path.join(args.out, "model.json")
    # From here on the directory is unfinished: a manifest from an earlier run must not vouch for it.
    if os.path.exists(manifest_path):
        os.remove(manifest_path)

    device = resolve_device(args.device)
    log(f"training {args.loss} on {device}: up to {args.iterations} trees, depth {args.depth}, "
        f"learning rate {args.learning_rate}, early stopping on {args.eval_metric} after "
        f"{args.early_stopping_rounds or 'no'} rounds")
    model = build_model(args, device)
    train_pool = to_pool(train_set, features)
    valid_pool = to_pool(valid_set, features)
    started = time.perf_counter()
    model.fit(
        train_pool,
        eval_set=valid_pool,
        use_best_model=True,
        early_stopping_rounds=args.early_stopping_rounds or None,
        verbose=LOG_PERIOD,
        log_cout=sys.stderr,
        log_cerr=sys.stderr,
    )
    train_seconds = time.perf_counter() - started

    # CatBoostRanker.predict has no prediction_type; the base class's gives raw scores for both model kinds.
    scores = catboost.CatBoost.predict(model, valid_pool, prediction_type="RawFormulaVal", thread_count=args.threads)
    map12, scored = map_at_k(scores, valid_set)
    map12_input, _ = map_at_k(np.zeros(valid_set.rows), valid_set)
    if scored < valid_set.groups:
        log(f"valid: {valid_set.groups - scored} groups with n_truth 0 left out of MAP@12")
    log(f"{model.tree_count_} trees kept (best iteration {model.get_best_iteration()}) in {train_seconds:.1f} s; "
        f"validation MAP@12 {map12:.5f} (input order {map12_input:.5f})")

    tmp_model = f"{model_path}.tmp.{os.getpid()}"
    model.save_model(tmp_model, format="json")
    os.replace(tmp_model, model_path)

    manifest = dict(meta)
    manifest.update(
        model="model.json",
        loss=args.loss,
        eval_metric=args.eval_metric,
        iterations=int(model.tree_count_),
        iterations_max=args.iterations,
        depth=args.depth,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=device,
        catboost_version=catboost.__version__,
        train_rows=train_set.rows,
        train_groups=train_set.groups,
        valid_rows=valid_set.rows,
        valid_groups=valid_set.groups,
        train_seconds=round(train_seconds, 3),
        validation_map12=map12,
        validation_map12_input_order=map12_input,
    )
    write_json_atomic(manifest_path, manifest)
    log(f"wrote {model_path} and {manifest_path}")
    return manifest


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except InputError as e:
        log(f"error: {e}")
        return 2
    except CatBoostError as e:
        log(f"catboost failed: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
