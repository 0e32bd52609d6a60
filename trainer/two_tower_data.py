"""The two-tower export (README.md, "Two-tower trainer": meta.json, items.parquet, samples.parquet,
item_vocab.json) read into numpy arrays and checked against meta.json; every problem is an InputError naming the file
and row, which train_two_tower.py turns into exit status 2."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common import InputError

FORMAT = 1


def log(msg: str) -> None:
    print(f"train_two_tower: {msg}", file=sys.stderr, flush=True)


def read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable JSON: {e}") from e


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_meta(path: str) -> dict:
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: must hold a JSON object")
    missing = [k for k in ("format", "trained_until", "fingerprint", "user_features", "history_len", "item_columns",
                           "item_cardinalities", "n_items", "valid_from_day") if k not in meta]
    if missing:
        raise InputError(f"{path}: missing keys {missing}")
    if meta["format"] != FORMAT:
        raise InputError(f"{path}: format {meta['format']!r}, this trainer reads format {FORMAT}")

    def names(key: str) -> list[str]:
        v = meta[key]
        if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
            raise InputError(f"{path}: {key!r} must be a non-empty list of names")
        if len(set(v)) != len(v):
            raise InputError(f"{path}: {key!r} lists a name twice")
        return v

    names("user_features")
    columns = names("item_columns")
    if "article" not in columns:
        raise InputError(f"{path}: 'item_columns' must include 'article' (the history's codes are article codes)")
    for key in ("trained_until", "fingerprint"):
        if not isinstance(meta[key], str):
            raise InputError(f"{path}: {key!r} must be a string")
    for key, least in (("history_len", 1), ("n_items", 1)):
        if not is_int(meta[key]) or meta[key] < least:
            raise InputError(f"{path}: {key!r} must be an integer >= {least}, found {meta[key]!r}")
    if not is_int(meta["valid_from_day"]):
        raise InputError(f"{path}: 'valid_from_day' must be an integer (days since 1970-01-01)")
    cards = meta["item_cardinalities"]
    if not isinstance(cards, list) or not all(is_int(c) and c >= 1 for c in cards):
        raise InputError(f"{path}: 'item_cardinalities' must be a list of integers >= 1")
    if len(cards) != len(columns):
        raise InputError(f"{path}: {len(cards)} item_cardinalities for {len(columns)} item_columns")
    article_card = cards[columns.index("article")]
    if article_card < meta["n_items"] + 1:
        raise InputError(f"{path}: the 'article' cardinality {article_card} is less than n_items + 1 "
                         f"({meta['n_items'] + 1}); article codes are item + 1")
    return meta


def read_parquet(path: str, columns: list[str], what: str, hints: dict[str, str] | None = None) -> pa.Table:
    """The named columns of a parquet file, with a message naming what is missing (and why it is needed, for the
    columns `hints` explains)."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file ({what})")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{path}: not a readable parquet file: {e}") from e
    missing = [c for c in columns if c not in schema.names]
    if missing:
        why = "".join(f"; {(hints or {})[c]}" for c in missing if c in (hints or {}))
        raise InputError(f"{path}: missing columns {missing} (has {schema.names}){why}")
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{path}: reading {columns}: {e}") from e


def int_column(table: pa.Table, name: str, path: str) -> np.ndarray:
    col = table.column(name)
    if not pa.types.is_integer(col.type):
        raise InputError(f"{path}: column {name!r} must be an integer column, found {col.type}")
    if col.null_count:
        raise InputError(f"{path}: column {name!r} has {col.null_count} nulls")
    return col.to_numpy().astype(np.int64, copy=False)


def list_matrix(table: pa.Table, name: str, width: int | None, dtype: type, path: str,
                width_source: str = "") -> np.ndarray:
    """A list (or fixed-size list) column of equal-length rows as a (rows, width) array. width None: whatever
    length the rows share."""
    col = table.column(name)
    t = col.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise InputError(f"{path}: column {name!r} must be a list column, found {t}")
    value_type = t.value_type
    ok = pa.types.is_floating(value_type) if dtype == np.float32 else pa.types.is_integer(value_type)
    if not ok:
        raise InputError(f"{path}: column {name!r} must hold {'floats' if dtype == np.float32 else 'integers'}, "
                         f"found {t}")
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    rows = len(col)
    if col.null_count:
        raise InputError(f"{path}: column {name!r} has {col.null_count} null rows")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if width is None:
        width = int(lengths[0]) if rows else 0
        width_source = f"the first row's {width}"
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        r = int(bad[0])
        raise InputError(f"{path}: row {r}: {name!r} has {lengths[r]} values, expected {width_source or width} "
                         f"({bad.size} of {rows} rows have another length)")
    values = col.flatten()
    if values.null_count:
        raise InputError(f"{path}: column {name!r} has {values.null_count} null values")
    out = values.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(rows, width)
    # Arrow's buffers are read-only; torch wants to own writable memory (copied only when needed).
    return np.require(out, requirements=["C", "W"])


class Export:
    """The export directory, read and checked against meta.json. `history_days`: also read samples.parquet's
    `history_days` column (the sequential user tower's history ages; older exports lack it)."""

    def __init__(self, data_dir: str, history_days: bool = False):
        if not os.path.isdir(data_dir):
            raise InputError(f"{data_dir}: no such directory (the two-tower export: meta.json, items.parquet, "
                             f"samples.parquet, item_vocab.json)")
        self.dir = data_dir
        meta_path = os.path.join(data_dir, "meta.json")
        self.meta = meta = read_meta(meta_path)
        self.vocab_path = os.path.join(data_dir, "item_vocab.json")
        if not os.path.isfile(self.vocab_path):
            raise InputError(f"{self.vocab_path}: no such file (copied into the model unchanged)")
        self.user_features: list[str] = meta["user_features"]
        self.history_len: int = meta["history_len"]
        self.item_columns: list[str] = meta["item_columns"]
        self.cards: list[int] = meta["item_cardinalities"]
        self.n_items: int = meta["n_items"]
        self.article_col = self.item_columns.index("article")
        self.article_card = self.cards[self.article_col]

        path = os.path.join(data_dir, "items.parquet")
        items = read_parquet(path, ["item", "article_id", *self.item_columns], "one row per item")
        if items.num_rows != self.n_items:
            raise InputError(f"{path}: {items.num_rows} rows, meta.json says n_items = {self.n_items}")
        if not np.array_equal(int_column(items, "item", path), np.arange(self.n_items)):
            raise InputError(f"{path}: column 'item' must be the row index 0..{self.n_items - 1}")
        self.article_ids = int_column(items, "article_id", path)
        codes = np.column_stack([int_column(items, c, path) for c in self.item_columns])
        for k, (c, card) in enumerate(zip(self.item_columns, self.cards)):
            bad = np.flatnonzero((codes[:, k] < 0) | (codes[:, k] >= card))
            if bad.size:
                r = int(bad[0])
                raise InputError(f"{path}: row {r}: {c} code {codes[r, k]} is outside 0..{card - 1} "
                                 f"(meta.json's cardinality; {bad.size} rows like that)")
        if not np.array_equal(codes[:, self.article_col], np.arange(1, self.n_items + 1)):
            log(f"warning: {path}: the 'article' codes are not item + 1 as the contract says; training uses them "
                f"as they are")
        self.item_codes = codes  # (n_items, C) int64

        path = os.path.join(data_dir, "samples.parquet")
        columns = ["user_features", "history", "item", "day"] + (["history_days"] if history_days else [])
        samples = read_parquet(path, columns, "one row per purchase", {
            "history_days": "--user-tower sasrec needs it (the days between each history purchase and the "
                            "sample's day); exports written before it was added lack it: export again, or train "
                            "with --user-tower mean"})
        u = len(self.user_features)
        self.features = list_matrix(samples, "user_features", u, np.float32, path,
                                    f"{u} (meta.json's user_features)")
        self.history = list_matrix(samples, "history", self.history_len, np.int32, path,
                                   f"{self.history_len} (meta.json's history_len)")
        # float32, as the user tower's history_age input takes it; None when not read.
        self.history_age: np.ndarray | None = None
        if history_days:
            self.history_age = history_ages(samples, path, self.history_len)
        self.items = int_column(samples, "item", path)
        self.day = int_column(samples, "day", path)
        self.n_samples = samples.num_rows
        del samples
        if self.n_samples == 0:
            raise InputError(f"{path}: no samples")
        bad = np.flatnonzero((self.items < 0) | (self.items >= self.n_items))
        if bad.size:
            r = int(bad[0])
            raise InputError(f"{path}: row {r}: item {self.items[r]} is not a row of items.parquet "
                             f"(0..{self.n_items - 1}; {bad.size} rows like that)")
        finite = np.isfinite(self.features).all(axis=1)
        if not finite.all():
            r = int(np.flatnonzero(~finite)[0])
            raise InputError(f"{path}: row {r}: user_features holds NaN or infinity "
                             f"({int((~finite).sum())} rows like that)")
        out_of_range = int(np.count_nonzero((self.history < 0) | (self.history >= self.article_card)))
        if out_of_range:
            log(f"warning: {path}: {out_of_range} history codes outside 0..{self.article_card - 1}; "
                f"the towers treat them as padding")
        self.items = self.items.astype(np.int32)
        valid = self.day >= meta["valid_from_day"]
        self.train_idx = np.flatnonzero(~valid)
        self.valid_idx = np.flatnonzero(valid)
        if self.train_idx.size < 2:
            raise InputError(f"{path}: {self.train_idx.size} samples before valid_from_day "
                             f"{meta['valid_from_day']}: nothing to train on")
        self.image: np.ndarray | None = None

    def article_types(self) -> np.ndarray:
        """The `product_type` code of every `article` code (0 for codes no item has): the sequential user tower
        looks a history entry's type up by its article code, so the engine feeds article codes only."""
        if "product_type" not in self.item_columns:
            raise InputError(f"{os.path.join(self.dir, 'meta.json')}: 'item_columns' has no 'product_type', which "
                             f"--user-tower sasrec embeds for every history entry")
        types = np.zeros(self.article_card, dtype=np.int64)
        types[self.item_codes[:, self.article_col]] = self.item_codes[:, self.item_columns.index("product_type")]
        return types

    def read_image_vectors(self, path: str) -> None:
        table = read_parquet(path, ["article_id", "vector"], "image vectors")
        if table.num_rows == 0:
            raise InputError(f"{path}: no rows")
        ids = int_column(table, "article_id", path)
        vec = list_matrix(table, "vector", None, np.float32, path)
        if vec.shape[1] == 0:
            raise InputError(f"{path}: the vectors are empty")
        if not np.isfinite(vec).all():
            raise InputError(f"{path}: vectors hold NaN or infinity")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise InputError(f"{path}: article_id {uniq[counts > 1][0]} has more than one row")
        order = np.argsort(self.article_ids, kind="stable")
        sorted_ids = self.article_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        known = sorted_ids[pos] == ids
        image = np.zeros((self.n_items, vec.shape[1]), dtype=np.float32)
        image[order[pos[known]]] = vec[known]
        self.image = image
        log(f"image vectors: {vec.shape[1]} dims for {int(known.sum())} of {self.n_items} items "
            f"({int((~known).sum())} rows for articles not in items.parquet ignored)")


def history_ages(samples: pa.Table, path: str, history_len: int) -> np.ndarray:
    """samples.parquet's `history_days` (days between each history purchase and the sample's day, 0 in padding) as
    a float32 (rows, history_len) array; negative days are an error."""
    days = list_matrix(samples, "history_days", history_len, np.int32, path,
                       f"{history_len} (meta.json's history_len)")
    negative = np.flatnonzero((days < 0).any(axis=1))
    if negative.size:
        r = int(negative[0])
        raise InputError(f"{path}: row {r}: 'history_days' holds {int(days[r].min())}; days before the sample "
                         f"cannot be negative ({negative.size} rows like that)")
    return days.astype(np.float32)
