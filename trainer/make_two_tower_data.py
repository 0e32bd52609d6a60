"""Writes a synthetic two-tower export (the layout README.md's "Two-tower trainer" section describes) for tests and
benchmarks of train_two_tower.py. Deterministic for a given --seed.

The data has structure a model can learn, so recall is a meaningful check:
  - items have a product type (and attributes that follow from it: product group, department, garment group, a
    price level near the type's own) and a popularity (Zipf-like, so the log-Q correction matters);
  - every customer has a hidden favourite product type and a second one; the favourite comes, most of the time,
    from the part of the catalogue that belongs to the customer's age band, which the user features show
    (band_0..band_4, band_unknown), and log_mean_price hints at the favourite type's price level;
  - purchases are: an item of the favourite type (55%), of the second type (20%), a repeat of one of the customer's
    recent purchases (10%), anything by popularity (15%); the history (newest last, left-padded with 0) is the
    customer's previous purchases as `article` codes, so it shows the favourite types too, and history_days the
    days between each of them and the purchase (0 in padding).
  - the last 7 days (day >= meta.valid_from_day) are the validation week.

User feature and item column names are the Rust engine's (src/two_tower/encode.rs), so a model trained on this
data has the inputs the engine computes.

    python make_two_tower_data.py --out DIR [--items 2000] [--samples 20000] [--image-dim 0] [--seed 1]

Writes DIR/meta.json, items.parquet, samples.parquet, item_vocab.json and, with --image-dim I > 0,
DIR/image_vectors.parquet (article_id int64, vector list<float32> of length I; ~10% of the items have none, and a
few rows name articles that are not in the catalogue).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

USER_FEATURES = [
    "band_0", "band_1", "band_2", "band_3", "band_4", "band_unknown", "activity", "log_mean_price", "online_share",
    "log_days_since_last", "has_history", "log_distinct",
]
ITEM_COLUMNS = [
    "article", "product_type", "product_group", "graphical_appearance", "colour_group", "perceived_colour_master",
    "department", "index_code", "index_group", "section", "garment_group", "price_level",
]
BANDS = 5
PRICE_LEVELS = 10
VALID_FROM_DAY = 18500  # 2020-08-26; the validation week runs to trained_until (exclusive)
VALID_DAYS = 7


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Write a synthetic two-tower export (meta.json, items.parquet, "
                                            "samples.parquet, item_vocab.json) for tests.")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--items", type=int, default=2000, help="catalogue size (default: %(default)s)")
    p.add_argument("--samples", type=int, default=20000, help="purchases = samples.parquet rows (default: %(default)s)")
    p.add_argument("--users", type=int, default=0, help="customers (default: samples / 8)")
    p.add_argument("--days", type=int, default=63, help="days the purchases span, the last 7 are validation "
                                                        "(default: %(default)s)")
    p.add_argument("--history-len", type=int, default=16, help="history length H (default: %(default)s)")
    p.add_argument("--image-dim", type=int, default=0,
                   help="also write image_vectors.parquet with vectors of this length (default: none)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    args = p.parse_args(argv)
    if args.items < 10 or args.samples < 10 or args.users < 0 or args.history_len < 1 or args.image_dim < 0:
        p.error("--items and --samples must be at least 10, --history-len at least 1, --users and --image-dim >= 0")
    if args.days <= VALID_DAYS:
        p.error(f"--days must be more than {VALID_DAYS} (the validation week)")
    return args


def draw_in_ranges(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For each (lo, hi), an index in [lo, hi) drawn with weights whose running sum is `cum` (cum[i] = sum of the
    weights before i; len = n + 1)."""
    r = cum[lo] + rng.random(len(lo)) * (cum[hi] - cum[lo])
    return np.clip(np.searchsorted(cum, r, side="right") - 1, lo, hi - 1)


def make(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    n_items, n_samples, hlen = args.items, args.samples, args.history_len
    n_users = args.users or max(1, n_samples // 8)
    n_types = int(np.clip(n_items // 100, 8, 130))
    n_groups = max(2, n_types // 6)

    # --- items: a product type per item (type sizes vary), attributes that follow from it, a popularity
    type_weight = rng.dirichlet(np.full(n_types, 2.0))
    # 0-based here (code = type + 1); every type has at least one item.
    ptype = np.concatenate([np.arange(n_types), rng.choice(n_types, n_items - n_types, p=type_weight)])
    order = np.argsort(ptype, kind="stable")  # items grouped by type: item index = position in this order
    ptype = ptype[order]
    type_start = np.searchsorted(ptype, np.arange(n_types + 1))
    type_price = rng.integers(0, PRICE_LEVELS, n_types)
    pop = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.9
    cum = np.concatenate([[0.0], np.cumsum(pop)])

    codes = {
        "article": np.arange(1, n_items + 1),
        "product_type": ptype + 1,
        "product_group": ptype % n_groups + 1,
        "graphical_appearance": rng.integers(1, 31, n_items),
        "colour_group": rng.integers(1, 51, n_items),
        "department": ptype * 3 + rng.integers(0, 3, n_items) + 1,
        "index_code": rng.integers(1, 11, n_items),
        "section": rng.integers(1, 51, n_items),
        "garment_group": ptype % 20 + 1,
        "price_level": np.clip(type_price[ptype] + rng.integers(-1, 2, n_items), 0, PRICE_LEVELS - 1) + 1,
    }
    codes["perceived_colour_master"] = (codes["colour_group"] - 1) // 5 + 1
    codes["index_group"] = (codes["index_code"] - 1) // 3 + 1
    cards = {"article": n_items + 1, "product_type": n_types + 1, "product_group": n_groups + 1,
             "graphical_appearance": 31, "colour_group": 51, "perceived_colour_master": 11,
             "department": 3 * n_types + 1, "index_code": 11, "index_group": 5, "section": 51,
             "garment_group": min(n_types, 20) + 1, "price_level": PRICE_LEVELS + 1}
    # A few unknown values (code 0), as a real catalogue has.
    for col in ("graphical_appearance", "colour_group", "section"):
        codes[col][rng.random(n_items) < 0.02] = 0
    article_id = 108775000 + np.arange(n_items, dtype=np.int64) * 37 + rng.integers(0, 37, n_items)

    # --- customers: an age band, favourite types drawn mostly from the band's share of the types
    band = rng.integers(0, BANDS, n_users)
    band_known = rng.random(n_users) >= 0.05
    band_types = rng.permutation(n_types) % BANDS  # type t belongs to band band_types[t]
    fav = np.empty(n_users, dtype=np.int64)
    for b in range(BANDS):
        own = np.flatnonzero(band_types == b)
        users = np.flatnonzero(band == b)
        from_band = rng.random(len(users)) < 0.85
        fav[users] = np.where(from_band, own[rng.integers(0, len(own), len(users))],
                              rng.integers(0, n_types, len(users)))
    second = np.where(rng.random(n_users) < 0.5, (fav + 1 + rng.integers(0, 3, n_users)) % n_types,
                      rng.integers(0, n_types, n_users))
    online = rng.random(n_users).astype(np.float32)

    # --- purchases: who (by activity), when (sorted per customer), what
    activity = rng.lognormal(0.0, 1.0, n_users)
    user = np.sort(rng.choice(n_users, n_samples, p=activity / activity.sum()))
    first_day = VALID_FROM_DAY + VALID_DAYS - args.days
    day = first_day + rng.integers(0, args.days, n_samples)
    order = np.lexsort((day, user))
    user, day = user[order], day[order]
    mode = rng.choice(4, n_samples, p=[0.55, 0.20, 0.10, 0.15])  # favourite, second, repeat, popular
    t = np.where(mode == 1, second[user], fav[user])
    item = draw_in_ranges(rng, cum, type_start[t], type_start[t + 1])
    popular = draw_in_ranges(rng, cum, np.zeros(n_samples, np.int64), np.full(n_samples, n_items))
    item = np.where(mode == 3, popular, item)
    idx = np.arange(n_samples)
    start = np.searchsorted(user, user, side="left")  # first purchase of this sample's customer
    position = idx - start
    # A repeat buys one of the last few purchases again; resolved in order of position so chains follow through.
    back = np.minimum(rng.integers(1, 4, n_samples), np.maximum(position, 1))
    repeat = (mode == 2) & (position > 0)
    for _ in range(64):
        new = np.where(repeat, item[np.maximum(idx - back, 0)], item)
        if np.array_equal(new, item):
            break
        item = new

    history = np.zeros((n_samples, hlen), dtype=np.int32)
    history_days = np.zeros((n_samples, hlen), dtype=np.int32)  # days from each history purchase to this one
    for j in range(1, hlen + 1):
        prev = idx - j
        ok = position >= j
        history[:, hlen - j] = np.where(ok, item[np.maximum(prev, 0)] + 1, 0)
        history_days[:, hlen - j] = np.where(ok, day - day[np.maximum(prev, 0)], 0)

    # User features: the customer's state just before the purchase.
    feats = np.zeros((n_samples, len(USER_FEATURES)), dtype=np.float32)
    known = band_known[user]
    feats[np.flatnonzero(known), band[user][known]] = 1.0
    feats[~known, 5] = 1.0
    feats[:, 6] = np.log1p(activity[user]).astype(np.float32)
    feats[:, 7] = (np.log1p(type_price[fav[user]] + 1.0) + rng.normal(0.0, 0.3, n_samples)).astype(np.float32)
    feats[:, 8] = online[user]
    gap = np.where(position > 0, day - day[np.maximum(idx - 1, 0)], 0)
    feats[:, 9] = np.log1p(gap).astype(np.float32)
    feats[:, 10] = (position > 0).astype(np.float32)
    feats[:, 11] = np.log1p(np.minimum(position, hlen * 4)).astype(np.float32)

    os.makedirs(args.out, exist_ok=True)
    fingerprint = hashlib.sha256(json.dumps(vars(args), sort_keys=True).encode()).hexdigest()[:16]
    meta = {
        "format": 1,
        "trained_until": (dt.date(1970, 1, 1) + dt.timedelta(days=VALID_FROM_DAY + VALID_DAYS)).isoformat(),
        "fingerprint": fingerprint,
        "user_features": USER_FEATURES,
        "history_len": hlen,
        "item_columns": ITEM_COLUMNS,
        "item_cardinalities": [int(cards[c]) for c in ITEM_COLUMNS],
        "n_items": n_items,
        "valid_from_day": VALID_FROM_DAY,
    }
    items = {"item": pa.array(np.arange(n_items, dtype=np.int32)), "article_id": pa.array(article_id)}
    items.update({c: pa.array(codes[c].astype(np.int32)) for c in ITEM_COLUMNS})
    pq.write_table(pa.table(items), os.path.join(args.out, "items.parquet"))
    # user_features as a fixed-size list (as the Rust side writes it), history and history_days as plain lists.
    offsets = pa.array(np.arange(0, (n_samples + 1) * hlen, hlen, dtype=np.int32))
    samples = pa.table({
        "user_features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), len(USER_FEATURES)),
        "history": pa.ListArray.from_arrays(offsets, pa.array(history.ravel())),
        "history_days": pa.ListArray.from_arrays(offsets, pa.array(history_days.ravel())),
        "item": pa.array(item.astype(np.int32)),
        "day": pa.array(day.astype(np.int32)),
    })
    pq.write_table(samples, os.path.join(args.out, "samples.parquet"))
    vocab = {"synthetic": True, "seed": args.seed,
             "columns": {c: [f"{c}_{k}" for k in range(1, cards[c])] for c in ITEM_COLUMNS if c != "article"}}
    with open(os.path.join(args.out, "item_vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    if args.image_dim:
        centre = rng.normal(size=(n_types, args.image_dim)).astype(np.float32)
        vec = centre[ptype] + 0.5 * rng.normal(size=(n_items, args.image_dim)).astype(np.float32)
        has = np.flatnonzero(rng.random(n_items) >= 0.1)
        ids = np.concatenate([article_id[has], np.array([1, 2, 3], dtype=np.int64)])  # 3 not in the catalogue
        rows = np.concatenate([vec[has], rng.normal(size=(3, args.image_dim)).astype(np.float32)])
        perm = rng.permutation(len(ids))
        pq.write_table(pa.table({
            "article_id": pa.array(ids[perm]),
            "vector": pa.ListArray.from_arrays(
                pa.array(np.arange(0, (len(ids) + 1) * args.image_dim, args.image_dim, dtype=np.int32)),
                pa.array(rows[perm].ravel())),
        }), os.path.join(args.out, "image_vectors.parquet"))
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    valid = int(np.count_nonzero(day >= VALID_FROM_DAY))
    print(f"make_two_tower_data: {n_samples} samples ({valid} validation) of {n_users} customers, {n_items} items "
          f"in {n_types} types -> {args.out}", file=sys.stderr)
    return meta


if __name__ == "__main__":
    make(parse_args(sys.argv[1:]))
