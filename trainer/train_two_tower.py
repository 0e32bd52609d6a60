"""Trains the two-tower retrieval model with PyTorch and exports both towers as ONNX; the Rust binary runs this as a
subprocess on the export `streamrec train two-tower` writes (README.md, "Two-tower trainer", has the contract).

Item tower: one embedding per item column (the `article` column is the item's ID embedding), concatenated with a
linear projection of the item's image vector when --image-vectors is given, then an MLP to --dim, L2-normalised.
User tower: the user features (standardised with the training samples' mean and deviation, baked into the graph)
and the masked mean of the history's `article` embeddings (the same table as the item tower's ID embedding; code 0 is
padding), then an MLP to --dim, L2-normalised. Codes outside 0..cardinality-1 become 0 inside both graphs.

Loss: sampled softmax over in-batch negatives with the log-Q correction, logits = u.v / temperature - log q(item),
q = the item's share of the training samples; other rows of the batch with the same item as the positive are not
negatives. Adam, with lazy (sparse) Adam for the article embedding table. On CUDA: bf16 autocast (fp16 + GradScaler
where bf16 is missing). Samples with day >= meta.valid_from_day are held out: after each epoch, recall@100 and
recall@12 by brute force over every item (a validation sample counts when fewer than K items score strictly above its
target); epochs before the last on a fixed subset (--epoch-valid-samples), the last, which the manifest reports, on all.

Writes into --out: user_tower.onnx, item_tower.onnx (self-contained, dynamic batch), item_vocab.json (copied),
parity.json (64 rows per tower and PyTorch's float32 outputs; onnxruntime must reproduce them within 1e-4 or the run
fails; the item rows also carry their `article_id`, for image models), then manifest.json last and atomically: a
directory with a manifest is a finished run.

Deterministic: the same seed, data, device and thread count give the same weights (checked on CPU by the smoke test).
Logs go to stderr; stdout stays empty. Exit status: 0 done, 2 bad input, 1 anything else (a parity failure too).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import random
import shutil
import sys
import time
import warnings

# cuBLAS is only deterministic with a fixed workspace, which must be set before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# OpenMP threads that spin while waiting are ruinous when the cores are shared (a build running beside training on
# 2 cores: 2 threads went from ~45k to ~4k samples/s); passive waiting costs little on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

from common import InputError, write_json_atomic

FORMAT = 1
OPSET = 18
PARITY_ROWS = 64
PARITY_TOLERANCE = 1e-4
RECALL_KS = (100, 12)
HIDDEN = 128
ID_DIM = 32
IMAGE_PROJECTION = 32
EVAL_CHUNK_BYTES = 256 << 20


class ParityError(Exception):
    """The exported ONNX graphs do not reproduce PyTorch: printed, exit status 1."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train the streamrec two-tower retrieval model on an export directory and write the ONNX towers, "
                    "parity.json, item_vocab.json and manifest.json into --out.",
    )
    p.add_argument("--data", required=True, metavar="DIR",
                   help="export directory: meta.json, items.parquet, samples.parquet, item_vocab.json")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory (created if missing)")
    p.add_argument("--version", required=True, help="model version, copied into the manifest (as a string)")
    p.add_argument("--dim", type=int, default=32, help="output vector dimension D (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training samples (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1024,
                   help="samples per step; the other samples of a batch are the negatives (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.05, help="softmax temperature (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=HIDDEN, help="hidden width of both MLPs (default: %(default)s)")
    p.add_argument("--id-dim", type=int, default=ID_DIM,
                   help="dimension of the article ID embedding, shared with the history (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = CUDA when torch sees a GPU, else CPU (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads torch uses (default: all cores, %(default)s here)")
    p.add_argument("--image-vectors", metavar="FILE.parquet",
                   help="article_id int64 + vector list<float32> (fixed length I); the item tower then takes "
                        "image_vector [batch, I] too; items without a vector get zeros")
    p.add_argument("--epoch-valid-samples", type=int, default=20000,
                   help="the recall printed after each epoch but the last uses this many validation samples (a fixed "
                        "random subset); the last epoch's, which goes into the manifest, uses all; 0 = all every "
                        "epoch (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop training after this many seconds (checked every step; validation and export follow); "
                        "0 = no limit (default: %(default)s)")
    args = p.parse_args(argv)
    for name in ("dim", "epochs", "batch_size", "threads", "hidden", "id_dim"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.batch_size < 2:
        p.error("--batch-size must be at least 2 (in-batch negatives)")
    if not args.lr > 0 or not math.isfinite(args.lr):
        p.error("--lr must be positive")
    if not args.temperature > 0 or not math.isfinite(args.temperature):
        p.error("--temperature must be positive")
    if args.max_seconds < 0:
        p.error("--max-seconds must be 0 or more")
    if args.epoch_valid_samples < 0:
        p.error("--epoch-valid-samples must be 0 or more")
    return args


def log(msg: str) -> None:
    print(f"train_two_tower: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------------
# Reading and checking the export


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


def read_parquet(path: str, columns: list[str], what: str) -> pa.Table:
    """The named columns of a parquet file, with a message naming what is missing."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file ({what})")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{path}: not a readable parquet file: {e}") from e
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InputError(f"{path}: missing columns {missing} (has {schema.names})")
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
    """The export directory, read and checked against meta.json."""

    def __init__(self, data_dir: str):
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
        samples = read_parquet(path, ["user_features", "history", "item", "day"], "one row per purchase")
        u = len(self.user_features)
        self.features = list_matrix(samples, "user_features", u, np.float32, path,
                                    f"{u} (meta.json's user_features)")
        self.history = list_matrix(samples, "history", self.history_len, np.int32, path,
                                   f"{self.history_len} (meta.json's history_len)")
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


# ------------------------------------------------------------------------------------------------------------------
# The model


def column_dim(card: int) -> int:
    """Embedding width of a non-ID item column: 1.6 * card^0.56 (fastai's rule of thumb) kept within 8..16."""
    return int(max(8, min(16, round(1.6 * card ** 0.56))))


def in_range(codes: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Codes outside 0..card-1 become 0 (unknown), inside the graph so ONNX does it too."""
    return torch.where((codes >= 0) & (codes < cards), codes, torch.zeros_like(codes))


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class ItemTower(nn.Module):
    def __init__(self, cards: list[int], article_col: int, article_embedding: nn.Embedding, image_dim: int,
                 dim: int, hidden: int):
        super().__init__()
        self.register_buffer("cards", torch.tensor(cards, dtype=torch.int64))
        self.embeddings = nn.ModuleList(
            article_embedding if k == article_col else nn.Embedding(card, column_dim(card))
            for k, card in enumerate(cards))
        width = sum(e.embedding_dim for e in self.embeddings)
        self.image = nn.Linear(image_dim, IMAGE_PROJECTION) if image_dim else None
        self.mlp = mlp(width + (IMAGE_PROJECTION if image_dim else 0), hidden, dim)

    def forward(self, item_codes: torch.Tensor, image_vector: torch.Tensor | None = None) -> torch.Tensor:
        codes = in_range(item_codes, self.cards)
        parts = [emb(codes[:, k]) for k, emb in enumerate(self.embeddings)]
        if self.image is not None:
            parts.append(self.image(image_vector))
        return F.normalize(self.mlp(torch.cat(parts, dim=1)).float(), dim=1)


class UserTower(nn.Module):
    def __init__(self, feature_mean: np.ndarray, feature_std: np.ndarray, article_embedding: nn.Embedding,
                 article_card: int, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("feature_mean", torch.from_numpy(feature_mean.astype(np.float32)))
        self.register_buffer("feature_scale", torch.from_numpy((1.0 / feature_std).astype(np.float32)))
        self.register_buffer("article_card", torch.tensor(article_card, dtype=torch.int64))
        self.history_embedding = article_embedding
        self.mlp = mlp(len(feature_mean) + article_embedding.embedding_dim, hidden, dim)

    def forward(self, user_features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        codes = in_range(history, self.article_card)
        mask = (codes > 0).to(self.history_embedding.weight.dtype).unsqueeze(-1)
        pooled = (self.history_embedding(codes) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        x = (user_features - self.feature_mean) * self.feature_scale
        return F.normalize(self.mlp(torch.cat([x, pooled], dim=1)).float(), dim=1)


class TwoTower(nn.Module):
    def __init__(self, data: Export, dim: int, hidden: int, id_dim: int):
        super().__init__()
        train_features = data.features[data.train_idx]
        mean = train_features.mean(axis=0, dtype=np.float64)
        std = train_features.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        # Sparse gradients: a step touches ~2k of ~100k rows, and dense Adam over the whole table was most of a CPU
        # step (SparseAdam, i.e. lazy Adam, updates only the rows a batch used).
        article = nn.Embedding(data.article_card, id_dim, sparse=True)
        nn.init.normal_(article.weight, std=0.05)
        image_dim = 0 if data.image is None else data.image.shape[1]
        self.item = ItemTower(data.cards, data.article_col, article, image_dim, dim, hidden)
        self.user = UserTower(mean, std, article, data.article_card, dim, hidden)


class UserExport(nn.Module):
    def __init__(self, tower: UserTower):
        super().__init__()
        self.tower = tower

    def forward(self, user_features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.tower(user_features, history)


class ItemExport(nn.Module):
    def __init__(self, tower: ItemTower):
        super().__init__()
        self.tower = tower

    def forward(self, item_codes: torch.Tensor) -> torch.Tensor:
        return self.tower(item_codes)


class ItemImageExport(nn.Module):
    def __init__(self, tower: ItemTower):
        super().__init__()
        self.tower = tower

    def forward(self, item_codes: torch.Tensor, image_vector: torch.Tensor) -> torch.Tensor:
        return self.tower(item_codes, image_vector)


# ------------------------------------------------------------------------------------------------------------------
# Training and validation


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # warn_only: an op without a deterministic kernel (some CUDA backward passes) warns instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA device")
    return device


class Tensors:
    """The data as tensors on the training device (item codes and image vectors are looked up by item)."""

    def __init__(self, data: Export, device: str):
        self.features = torch.from_numpy(data.features).to(device)
        self.history = torch.from_numpy(data.history).to(device)
        self.items = torch.from_numpy(data.items).to(device)
        self.item_codes = torch.from_numpy(data.item_codes).to(device)
        self.image = None if data.image is None else torch.from_numpy(data.image).to(device)
        counts = np.bincount(data.items[data.train_idx], minlength=data.n_items).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / len(data.train_idx)).astype(np.float32)
        self.log_q = torch.from_numpy(log_q).to(device)

    def item_inputs(self, items: torch.Tensor) -> tuple:
        codes = self.item_codes[items]
        return (codes,) if self.image is None else (codes, self.image[items])


def batch_loss(model: TwoTower, t: Tensors, idx: torch.Tensor, temperature: float, amp: torch.dtype | None):
    items = t.items[idx]
    cast = torch.autocast(device_type=idx.device.type, dtype=amp) if amp else contextlib.nullcontext()
    with cast:
        u = model.user(t.features[idx], t.history[idx].long())
        v = model.item(*t.item_inputs(items))
    logits = (u.float() @ v.float().T) / temperature - t.log_q[items].unsqueeze(0)
    # Another row that bought the same item is that item again, not a negative for it.
    same = items.unsqueeze(0) == items.unsqueeze(1)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(idx), device=idx.device))


@torch.no_grad()
def item_vectors(model: TwoTower, t: Tensors, n_items: int, chunk: int = 65536) -> torch.Tensor:
    out = []
    for start in range(0, n_items, chunk):
        items = torch.arange(start, min(n_items, start + chunk), device=t.items.device)
        out.append(model.item(*t.item_inputs(items)))
    return torch.cat(out)


@torch.no_grad()
def recall(model: TwoTower, t: Tensors, valid_idx: np.ndarray, n_items: int) -> dict[int, float]:
    """Fraction of validation samples whose target is among the top K of all items (brute force): fewer than K items
    score strictly higher than it, i.e. the K-th highest score is <= the target's (ties go to the target)."""
    model.eval()
    try:
        if len(valid_idx) == 0:
            return {k: float("nan") for k in RECALL_KS}
        vectors_t = item_vectors(model, t, n_items).T.contiguous()
        idx_all = torch.from_numpy(valid_idx).to(t.items.device)
        rows = max(1, min(len(valid_idx), EVAL_CHUNK_BYTES // (4 * n_items)))
        # One score buffer for all chunks: a fresh ~256 MB tensor per chunk costs more in page faults than the
        # matrix product itself.
        scores = torch.empty(rows, n_items, device=vectors_t.device)
        kmax = min(max(RECALL_KS), n_items)
        hits = {k: 0 for k in RECALL_KS}
        for start in range(0, len(idx_all), rows):
            idx = idx_all[start:start + rows]
            u = model.user(t.features[idx], t.history[idx].long())
            s = scores[: len(idx)]
            torch.mm(u, vectors_t, out=s)
            target = s.gather(1, t.items[idx].long().unsqueeze(1)).squeeze(1)
            top = torch.topk(s, kmax, dim=1).values  # descending
            for k in RECALL_KS:
                hits[k] += int((top[:, min(k, n_items) - 1] <= target).sum())
        return {k: hits[k] / len(valid_idx) for k in RECALL_KS}
    finally:
        model.train()


def fmt_recall(r: dict[int, float]) -> str:
    return ", ".join(f"recall@{k} {r[k]:.4f}" for k in RECALL_KS)


def train(model: TwoTower, data: Export, t: Tensors, args: argparse.Namespace, device: str) -> dict:
    amp = None
    if device == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    sparse = [p for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse for p in m.parameters()]
    dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
    optimizers = [torch.optim.Adam(dense, lr=args.lr), torch.optim.SparseAdam(sparse, lr=args.lr)]
    rng = np.random.default_rng(args.seed)
    n_train = len(data.train_idx)
    train_idx = torch.from_numpy(data.train_idx).to(device)
    epoch_valid = data.valid_idx
    if 0 < args.epoch_valid_samples < len(epoch_valid):
        epoch_valid = np.sort(np.random.default_rng(args.seed + 2).choice(epoch_valid, args.epoch_valid_samples,
                                                                          replace=False))
    log(f"training on {device}{f' ({amp})' if amp else ''}: {n_train} samples, {len(data.valid_idx)} validation, "
        f"{data.n_items} items, dim {args.dim}, batch {args.batch_size}, lr {args.lr}, "
        f"temperature {args.temperature}, up to {args.epochs} epochs"
        f"{f' or {args.max_seconds:g} s' if args.max_seconds else ''}")
    if len(data.valid_idx) == 0:
        log(f"warning: no samples with day >= valid_from_day {data.meta['valid_from_day']}: recall is not measured")
    seen = 0
    train_seconds = 0.0
    final_loss = float("nan")
    epochs_run = 0
    stopped = False
    valid: dict[int, float] = {}
    for epoch in range(1, args.epochs + 1):
        perm = train_idx[torch.from_numpy(rng.permutation(n_train)).to(device)]
        loss_sum = torch.zeros((), device=device)
        steps = 0
        epoch_seen = 0
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for start in range(0, n_train, args.batch_size):
            idx = perm[start:start + args.batch_size]
            if len(idx) < 2:
                continue
            loss = batch_loss(model, t, idx, args.temperature, amp)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            for opt in optimizers:
                scaler.step(opt)
            scaler.update()
            loss_sum += loss.detach()
            steps += 1
            epoch_seen += len(idx)
            if args.max_seconds and train_seconds + time.perf_counter() - started >= args.max_seconds:
                stopped = True
                break
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        train_seconds += elapsed
        seen += epoch_seen
        epochs_run = epoch
        final_loss = float(loss_sum) / max(steps, 1)
        if not math.isfinite(final_loss):
            raise RuntimeError(f"epoch {epoch}: the loss is {final_loss}; try a lower --lr")
        last = stopped or epoch == args.epochs
        on = data.valid_idx if last else epoch_valid
        started = time.perf_counter()
        valid = recall(model, t, on, data.n_items)
        of = "" if len(on) == len(data.valid_idx) else f" of {len(on)} samples"
        log(f"epoch {epoch}/{args.epochs}: loss {final_loss:.4f}, {epoch_seen / elapsed:,.0f} samples/s "
            f"({elapsed:.1f} s), valid {fmt_recall(valid)}{of} ({time.perf_counter() - started:.1f} s)"
            f"{'; stopped by --max-seconds' if stopped else ''}")
        if stopped:
            break
    return {
        "valid_recall_at_100": valid[100] if math.isfinite(valid[100]) else None,
        "valid_recall_at_12": valid[12] if math.isfinite(valid[12]) else None,
        "valid_samples": int(len(data.valid_idx)),
        "train_samples": int(n_train),
        "epochs": epochs_run,
        "samples_per_s": round(seen / train_seconds, 1) if train_seconds > 0 else None,
        "train_seconds": round(train_seconds, 3),
        "device": device,
        "final_loss": final_loss,
        "stopped_early": stopped,
    }


# ------------------------------------------------------------------------------------------------------------------
# ONNX export and parity


def parity_inputs(data: Export, seed: int) -> tuple[dict, dict]:
    """PARITY_ROWS rows per tower from the data (validation samples first), with padded histories, an empty one,
    codes at and far beyond the cardinality, and an all-unknown item."""
    rng = np.random.default_rng(seed + 1)
    pool = data.valid_idx if len(data.valid_idx) >= PARITY_ROWS else np.arange(data.n_samples)
    rows = rng.choice(pool, PARITY_ROWS, replace=len(pool) < PARITY_ROWS)
    features = data.features[rows].copy()
    history = data.history[rows].astype(np.int64)
    h, card = data.history_len, data.article_card
    history[0] = 0  # no history at all
    for r, keep in ((1, 1), (2, 3), (3, h // 2)):
        history[r, : h - keep] = 0  # left-padded
    history[4, -1] = card  # first code past the end
    history[5, h // 2:] = card + 12345
    history[6, 0] = 2**31 - 1
    history[7, -1] = -1
    user = {"user_features": features, "history": history}

    items = rng.choice(data.n_items, PARITY_ROWS, replace=data.n_items < PARITY_ROWS)
    codes = data.item_codes[items].copy()
    cards = np.array(data.cards, dtype=np.int64)
    codes[0] = 0
    codes[1] = cards + 100
    codes[2, 1 % len(cards)] = cards[1 % len(cards)]
    codes[3, -1] = cards[-1]
    codes[4, data.article_col] = 2**31 - 1
    item = {"item_codes": codes, "article_id": data.article_ids[items]}
    if data.image is not None:
        image = data.image[items].copy()
        image[0] = 0.0
        item["image_vector"] = image
    return user, item


def export_onnx(module: nn.Module, inputs: dict[str, np.ndarray], output: str, path: str) -> None:
    names = list(inputs)
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    batch = torch.export.Dim("batch", min=1)
    tmp = f"{path}.tmp.{os.getpid()}"
    module.eval()
    # The exporter reports its steps with print(); stdout stays ours. Its warnings about optional torchvision ops
    # and about the axis name (both inputs' batch axes are one symbol, named "batch") are noise here.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*")
        torch.onnx.export(
            module, args, tmp, input_names=names, output_names=[output], opset_version=OPSET, dynamo=True,
            external_data=False, dynamic_shapes={n: {0: batch} for n in names}, verbose=False,
        )
    os.replace(tmp, path)


def check_onnx(path: str, inputs: dict[str, np.ndarray], output: str, expected: np.ndarray, dim: int) -> float:
    """Checks the graph's interface against the contract and runs it in onnxruntime; returns the largest
    difference to PyTorch's outputs (also run with a batch of 1 and of 3, to prove the batch axis is dynamic)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 17:
        raise ParityError(f"{path}: opset {opset}, the contract needs >= 17")
    if [i.name for i in model.graph.input] != list(inputs) or [o.name for o in model.graph.output] != [output]:
        raise ParityError(f"{path}: inputs {[i.name for i in model.graph.input]} and outputs "
                          f"{[o.name for o in model.graph.output]}, expected {list(inputs)} and [{output!r}]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for i in session.get_inputs():
        want = "tensor(float)" if inputs[i.name].dtype == np.float32 else "tensor(int64)"
        if i.type != want or len(i.shape) != 2 or isinstance(i.shape[0], int) or i.shape[1] != inputs[i.name].shape[1]:
            raise ParityError(f"{path}: input {i.name} is {i.type} {i.shape}, expected {want} [batch, "
                              f"{inputs[i.name].shape[1]}]")
    o = session.get_outputs()[0]
    if o.type != "tensor(float)" or len(o.shape) != 2 or o.shape[1] != dim:
        raise ParityError(f"{path}: output {o.name} is {o.type} {o.shape}, expected tensor(float) [batch, {dim}]")
    got = session.run([output], inputs)[0]
    diff = float(np.abs(got - expected).max())
    for n in (1, 3):
        small = session.run([output], {k: v[:n] for k, v in inputs.items()})[0]
        diff = max(diff, float(np.abs(small - expected[:n]).max()))
    return diff


def export_model(model: TwoTower, data: Export, args: argparse.Namespace) -> dict:
    """Writes both towers, checks them in onnxruntime, writes parity.json; returns the parity differences."""
    cpu = copy.deepcopy(model).to("cpu", torch.float32).eval()
    user_in, item_in = parity_inputs(data, args.seed)
    item_graph_in = {k: v for k, v in item_in.items() if k != "article_id"}
    with torch.no_grad():
        user_out = cpu.user(*(torch.from_numpy(v) for v in user_in.values())).numpy()
        item_out = cpu.item(*(torch.from_numpy(v) for v in item_graph_in.values())).numpy()
    user_path = os.path.join(args.out, "user_tower.onnx")
    item_path = os.path.join(args.out, "item_tower.onnx")
    started = time.perf_counter()
    export_onnx(UserExport(cpu.user), user_in, "user_vector", user_path)
    item_module = ItemExport(cpu.item) if data.image is None else ItemImageExport(cpu.item)
    export_onnx(item_module, item_graph_in, "item_vector", item_path)
    diff = {
        "user": check_onnx(user_path, user_in, "user_vector", user_out, args.dim),
        "item": check_onnx(item_path, item_graph_in, "item_vector", item_out, args.dim),
    }
    log(f"exported {user_path} and {item_path} (opset {OPSET}) in {time.perf_counter() - started:.1f} s; "
        f"onnxruntime vs PyTorch max abs diff: user {diff['user']:.2e}, item {diff['item']:.2e}")
    for tower, d in diff.items():
        if not d <= PARITY_TOLERANCE:
            raise ParityError(f"the {tower} tower's ONNX graph differs from PyTorch by {d:.3g} "
                              f"(> {PARITY_TOLERANCE}); the model directory is left without a manifest")
    parity = {
        "user": {**{k: v.tolist() for k, v in user_in.items()}, "user_vector": user_out.tolist()},
        "item": {**{k: v.tolist() for k, v in item_in.items()}, "item_vector": item_out.tolist()},
    }
    write_json_atomic(os.path.join(args.out, "parity.json"), parity, allow_nan=False)
    return diff


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    device = resolve_device(args.device)
    data = Export(args.data)
    log(f"read {args.data}: {data.n_samples} samples, {data.n_items} items, {len(data.user_features)} user "
        f"features, history {data.history_len}, {len(data.item_columns)} item columns "
        f"({time.perf_counter() - started:.1f} s)")
    if args.image_vectors:
        data.read_image_vectors(args.image_vectors)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    # From here on the directory is unfinished: a manifest from an earlier run must not vouch for it.
    if os.path.exists(manifest_path):
        os.remove(manifest_path)

    model = TwoTower(data, args.dim, args.hidden, args.id_dim).to(device)
    t = Tensors(data, device)
    metrics = train(model, data, t, args, device)
    diff = export_model(model, data, args)
    shutil.copyfile(data.vocab_path, os.path.join(args.out, "item_vocab.json"))

    import onnxruntime

    meta = data.meta
    manifest = {
        "kind": "two_tower",
        "version": str(args.version),
        "trained_until": meta["trained_until"],
        "fingerprint": meta["fingerprint"],
        "dim": args.dim,
        "user_features": data.user_features,
        "history_len": data.history_len,
        "item_columns": data.item_columns,
        "item_cardinalities": data.cards,
        "image_dim": None if data.image is None else int(data.image.shape[1]),
        "metrics": metrics,
        "params": {
            "dim": args.dim,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "temperature": args.temperature,
            "hidden": args.hidden,
            "id_dim": args.id_dim,
            "column_dims": [e.embedding_dim for e in model.item.embeddings],
            "image_projection": IMAGE_PROJECTION if data.image is not None else None,
            "image_vectors": os.path.abspath(args.image_vectors) if args.image_vectors else None,
            "optimizer": "adam",
            "loss": "in-batch sampled softmax, log-Q corrected, same-item rows masked",
            "device": args.device,
            "threads": args.threads,
            "max_seconds": args.max_seconds or None,
            "epoch_valid_samples": args.epoch_valid_samples,
            "opset": OPSET,
            "parity_max_abs_diff": diff,
            "torch_version": torch.__version__,
            "onnxruntime_version": onnxruntime.__version__,
            "valid_from_day": meta["valid_from_day"],
        },
        "seed": args.seed,
    }
    write_json_atomic(manifest_path, manifest, allow_nan=False)
    final = {k: metrics[f"valid_recall_at_{k}"] for k in RECALL_KS}
    log(f"wrote {args.out} in {time.perf_counter() - started:.1f} s: valid "
        f"{fmt_recall({k: float('nan') if v is None else v for k, v in final.items()})}")
    return manifest


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except InputError as e:
        log(f"error: {e}")
        return 2
    except ParityError as e:
        log(f"parity check failed: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
