"""Reads the learned ranker's parquet files (written by the Rust side) and scores MAP@12 the way the backtest does.

Layout of a file: `group_id` (one group = one customer's candidate list, rows contiguous), `label` (1.0 = bought in
the label week), `n_truth` (distinct articles the customer bought in the label week: the MAP@12 denominator is
min(n_truth, 12), so customers whose candidates miss everything still count), `article` (debugging only), then the
float32 feature columns in the order the run's META.json lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import InputError  # noqa: F401 (re-exported: the scripts import it from here)

LEADING_COLUMNS = ("group_id", "label", "n_truth", "article")
MAP_K = 12


@dataclass
class RankingSet:
    group_id: np.ndarray  # uint64, one per row
    label: np.ndarray  # float32, 0.0 or 1.0
    n_truth: np.ndarray  # uint32, one per row (constant within a group)
    article: np.ndarray  # uint32
    features: np.ndarray  # float32, shape (rows, features)
    group_start: np.ndarray  # int64, first row of each group, then the row count

    @property
    def rows(self) -> int:
        return len(self.label)

    @property
    def groups(self) -> int:
        return len(self.group_start) - 1

    @property
    def positives(self) -> int:
        return int(np.count_nonzero(self.label > 0.5))


def check_layout(names: list[str], features: list[str], path: str) -> None:
    """The four leading columns, then exactly the listed features in that order."""
    lead = tuple(names[: len(LEADING_COLUMNS)])
    if lead != LEADING_COLUMNS:
        raise InputError(f"{path}: the first columns must be {list(LEADING_COLUMNS)}, found {list(lead)}")
    got = names[len(LEADING_COLUMNS):]
    if got == features:
        return
    missing = [f for f in features if f not in got]
    extra = [c for c in got if c not in features]
    if missing or extra:
        raise InputError(
            f"{path}: feature columns do not match META.json's features: "
            f"missing {missing or 'none'}, not in META {extra or 'none'}"
        )
    at = next(i for i, (a, b) in enumerate(zip(got, features)) if a != b)
    raise InputError(
        f"{path}: feature columns are out of order: column {len(LEADING_COLUMNS) + at} is '{got[at]}', "
        f"META.json's features list '{features[at]}' there"
    )


def _column(table: pa.Table, name: str, path: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        raise InputError(f"{path}: column '{name}' has {col.null_count} null values")
    return col.to_numpy()


def read_ranking_set(path: str, features: list[str]) -> RankingSet:
    """Reads and validates one file; every problem is an InputError naming the file."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable parquet file: {e}") from e
    check_layout(schema.names, features, path)
    for name in ("group_id", "n_truth", "article"):
        if not pa.types.is_integer(schema.field(name).type):
            raise InputError(f"{path}: column '{name}' must be an integer type, found {schema.field(name).type}")
    if not (pa.types.is_floating(schema.field("label").type) or pa.types.is_integer(schema.field("label").type)):
        raise InputError(f"{path}: column 'label' must be numeric, found {schema.field('label').type}")
    wrong = [f"{f} ({schema.field(f).type})" for f in features if schema.field(f).type != pa.float32()]
    if wrong:
        raise InputError(f"{path}: feature columns must be float32: {', '.join(wrong[:5])}")

    table = pq.read_table(path)
    rows = table.num_rows
    if rows == 0:
        raise InputError(f"{path}: no rows")
    group_id = _column(table, "group_id", path).astype(np.uint64, copy=False)
    label = _column(table, "label", path).astype(np.float32, copy=False)
    n_truth = _column(table, "n_truth", path).astype(np.uint32, copy=False)
    article = _column(table, "article", path).astype(np.uint32, copy=False)
    x = np.empty((rows, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        x[:, j] = _column(table, name, path)

    bad = np.flatnonzero((label != 0.0) & (label != 1.0))
    if len(bad):
        raise InputError(f"{path}: label must be 0.0 or 1.0, row {bad[0]} has {label[bad[0]]}")
    change = np.flatnonzero(group_id[1:] != group_id[:-1]) + 1
    group_start = np.concatenate(([0], change, [rows])).astype(np.int64)
    starts = group_start[:-1]
    if len(np.unique(group_id[starts])) != len(starts):
        ids, counts = np.unique(group_id[starts], return_counts=True)
        raise InputError(f"{path}: rows of group {ids[counts > 1][0]} are not contiguous")
    sizes = np.diff(group_start)
    uneven = np.flatnonzero(n_truth != np.repeat(n_truth[starts], sizes))
    if len(uneven):
        raise InputError(f"{path}: n_truth differs within group {group_id[uneven[0]]} (row {uneven[0]})")
    hits = np.add.reduceat((label > 0.5).astype(np.int64), starts)
    over = np.flatnonzero(hits > n_truth[starts])
    if len(over):
        g = over[0]
        raise InputError(
            f"{path}: group {group_id[starts[g]]} has {hits[g]} positive rows but n_truth {n_truth[starts[g]]}"
        )
    return RankingSet(group_id, label, n_truth, article, x, group_start)


def map_at_k(scores: np.ndarray, data: RankingSet, k: int = MAP_K) -> tuple[float, int]:
    """Mean over groups of AP@k = sum of precision@i at each hit position i <= k, divided by min(n_truth, k).

    Candidates are ordered by score descending, ties by row order. Groups with n_truth = 0 have no defined AP and
    are left out; returns (MAP, groups scored).
    """
    n = data.rows
    starts = data.group_start[:-1]
    sizes = np.diff(data.group_start)
    group = np.repeat(np.arange(data.groups), sizes)
    # Groups are contiguous, so after sorting each group still occupies its own rows.
    order = np.lexsort((np.arange(n), -np.asarray(scores, dtype=np.float64), group))
    rank = np.arange(n) - np.repeat(starts, sizes)
    hit = (data.label[order] > 0.5) & (rank < k)
    cum = np.cumsum(hit)
    before = cum[starts] - hit[starts]
    hits_so_far = cum - np.repeat(before, sizes)
    precision = np.where(hit, hits_so_far / (rank + 1.0), 0.0)
    ap_sum = np.add.reduceat(precision, starts)
    denom = np.minimum(data.n_truth[starts], k).astype(np.float64)
    scored = denom > 0
    if not scored.any():
        return 0.0, 0
    return float(np.mean(ap_sum[scored] / denom[scored])), int(scored.sum())
