"""Trains the two-tower retrieval model with PyTorch and exports both towers as ONNX; the Rust binary runs this as a
subprocess on the export `streamrec train two-tower` writes (README.md, "Two-tower trainer", has the contract).

Item tower: one embedding per item column (the `article` column is the item's ID embedding), concatenated with a
linear projection of the item's image vector when --image-vectors is given, then an MLP to --dim, L2-normalised.
User tower: the user features (standardised with the training samples' mean and deviation, baked into the graph)
and a vector for the history, then an MLP to --dim, L2-normalised. The history's vector (--user-tower): `mean`, the
masked mean of the history's `article` embeddings (the same table as the item tower's ID embedding; code 0 is
padding); `sasrec`, a small causal transformer over the history's article, product type, position and days-ago
embeddings (two_tower_model.py), which takes a third input, the history's ages in days. Codes outside
0..cardinality-1 become 0 inside both graphs.

Loss: sampled softmax over in-batch negatives (plus --uniform-negatives drawn from the catalogue) with the log-Q
correction, logits = u.v / temperature - log q(item), q = the item's share of the training samples; other rows of
the batch with the same item as the positive are not negatives. Adam, with lazy (sparse) Adam for the article
embedding table on CPU. On CUDA: bf16 autocast (fp16 + GradScaler where bf16 is missing), dense fused Adam, and
optionally torch.compile (--compile). Samples with day >= meta.valid_from_day are held out: after each epoch, recall@100 and
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
import math
import os
import random
import shutil
import sys
import time

# cuBLAS is only deterministic with a fixed workspace, which must be set before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
# OpenMP threads that spin while waiting are ruinous when the cores are shared (a build running beside training on
# 2 cores: 2 threads went from ~45k to ~4k samples/s); passive waiting costs little on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import InputError, write_json_atomic
from two_tower_data import Export, log
from two_tower_model import AGE_BUCKETS, IMAGE_PROJECTION, SASREC_HEADS, SASREC_LAYERS, USER_TOWERS, TwoTower
from two_tower_onnx import OPSET, ParityError, export_model

RECALL_KS = (100, 12)
HIDDEN = 128
ID_DIM = 32
EVAL_CHUNK_BYTES = 256 << 20
LR_REFERENCE_BATCH = 1024  # --lr-scale scales --lr by batch-size / this (the default batch, which --lr was tuned at)


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
    p.add_argument("--user-tower", choices=USER_TOWERS, default="mean",
                   help="mean = the history's article embeddings averaged (ONNX inputs user_features, history); "
                        "sasrec = a 2-layer causal transformer over the history, which also needs samples.parquet's "
                        "history_days (ONNX inputs user_features, history, history_age) (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout inside the sasrec tower while training; 0.1 gave the same recall as 0 on the "
                        "synthetic data, for more CPU time (default: %(default)s)")
    p.add_argument("--uniform-negatives", type=int, default=0, metavar="N",
                   help="per step, N items drawn uniformly from the catalogue join the batch's items as negatives "
                        "for every row (log-Q corrected for the mixture); 0 = in-batch negatives only "
                        "(default: %(default)s)")
    p.add_argument("--lr-scale", choices=("none", "linear", "sqrt"), default="none",
                   help=f"scale --lr with --batch-size / {LR_REFERENCE_BATCH}: linearly or by its square root "
                        f"(default: %(default)s)")
    p.add_argument("--compile", nargs="?", choices=("off", "cuda", "always"), default="off", const="cuda",
                   help="run the loss step (forward and backward) through torch.compile: cuda (what --compile alone "
                        "means) only when training on CUDA, always on CPU too; if compiling fails, training goes on "
                        "without it (logged). A compiled run skips each epoch's last, smaller batch (default: "
                        "%(default)s)")
    p.add_argument("--id-grad", choices=("auto", "sparse", "dense"), default="auto",
                   help="updates of the article ID table: sparse = lazy Adam over the rows a step used, dense = "
                        "(fused) Adam over the whole table; auto = sparse (the path measured on CPU and a GPU; dense "
                        "avoids the sparse update's host synchronisation on CUDA but is unmeasured there: "
                        "bench_two_tower_gpu.py runs both) (default: %(default)s)")
    p.add_argument("--sync-debug", action="store_true",
                   help="CUDA only: warn at every host-device synchronisation inside the training steps (a check "
                        "that a step never waits for the GPU)")
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
    if args.uniform_negatives < 0:
        p.error("--uniform-negatives must be 0 or more")
    if not 0 <= args.dropout < 1:
        p.error("--dropout must be in [0, 1)")
    if args.user_tower == "sasrec" and args.id_dim % SASREC_HEADS:
        p.error(f"--user-tower sasrec: --id-dim must be a multiple of its {SASREC_HEADS} attention heads")
    return args


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
        self.n_items = data.n_items
        self.features = torch.from_numpy(data.features).to(device)
        self.history = torch.from_numpy(data.history).to(device)
        self.history_age = None if data.history_age is None else torch.from_numpy(data.history_age).to(device)
        self.items = torch.from_numpy(data.items).to(device)
        self.item_codes = torch.from_numpy(data.item_codes).to(device)
        self.image = None if data.image is None else torch.from_numpy(data.image).to(device)
        counts = np.bincount(data.items[data.train_idx], minlength=data.n_items).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / len(data.train_idx)).astype(np.float32)
        self.log_q = torch.from_numpy(log_q).to(device)

    def user_inputs(self, idx: torch.Tensor) -> tuple:
        """The user tower's inputs for samples `idx`, as its ONNX graph takes them."""
        inputs = (self.features[idx], self.history[idx].long())
        return inputs if self.history_age is None else (*inputs, self.history_age[idx])

    def item_inputs(self, items: torch.Tensor) -> tuple:
        codes = self.item_codes[items]
        return (codes,) if self.image is None else (codes, self.image[items])


def batch_loss(model: TwoTower, t: Tensors, idx: torch.Tensor, uniform: torch.Tensor | None, temperature: float,
               amp: torch.dtype | None) -> torch.Tensor:
    """The sampled softmax loss of samples `idx`: each row's positive against the batch's other items and, when
    `uniform` is given, those catalogue items too."""
    items = t.items[idx]
    cast = torch.autocast(device_type=idx.device.type, dtype=amp) if amp else contextlib.nullcontext()
    columns = items if uniform is None else torch.cat([items, uniform])
    with cast:
        u = model.user(*t.user_inputs(idx))
        v = model.item(*t.item_inputs(columns))
    if uniform is None:
        # In-batch only: a column is item j with an expected count of B q(j), and log B is the same for every column.
        correction = t.log_q[items]
    else:
        # The columns are one sample from a mixture: B draws by popularity (the batch) and N uniform draws, so item
        # j's expected count among them is B q(j) + N / n_items whichever part a column came from, and log-Q
        # subtracts log(B q(j) + N / n_items) from every column, the positive's included. Correcting each part on
        # its own (log B q(j) for the batch's columns, log(N / n_items) for the uniform ones) also estimates the
        # full softmax, but weighs a popular item drawn uniformly like a rare one: more variance for nothing.
        correction = torch.log(t.log_q[columns].exp() * len(idx) + len(uniform) / t.n_items)
    logits = (u.float() @ v.float().T) / temperature - correction.unsqueeze(0)
    # Another row that bought the same item is that item again, not a negative for it; a uniform draw of a row's
    # positive is too. The diagonal is each row's own positive.
    same = columns.unsqueeze(0) == items.unsqueeze(1)
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
            u = model.user(*t.user_inputs(idx))
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


def optimizers(model: TwoTower, lr: float, device: str) -> list[torch.optim.Optimizer]:
    """Adam for the dense weights (fused into one kernel on CUDA), SparseAdam for sparse embedding tables."""
    sparse = [p for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse for p in m.parameters()]
    dense = [p for p in model.parameters() if all(p is not q for q in sparse)]
    out = [torch.optim.Adam(dense, lr=lr, fused=True) if device == "cuda" else torch.optim.Adam(dense, lr=lr)]
    return out + ([torch.optim.SparseAdam(sparse, lr=lr)] if sparse else [])


def scaled_lr(args: argparse.Namespace) -> float:
    ratio = args.batch_size / LR_REFERENCE_BATCH
    return args.lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[args.lr_scale]


def train(model: TwoTower, data: Export, t: Tensors, args: argparse.Namespace, device: str) -> dict:
    amp = None
    if device == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    lr = scaled_lr(args)
    opts = optimizers(model, lr, device)
    compiled = args.compile == "always" or (args.compile == "cuda" and device == "cuda")
    if args.compile == "cuda" and device != "cuda":
        log("--compile: training on CPU, where it is not used (--compile always forces it)")
    loss_fn = torch.compile(batch_loss, dynamic=False) if compiled else batch_loss
    rng = np.random.default_rng(args.seed)
    n_train = len(data.train_idx)
    train_idx = torch.from_numpy(data.train_idx).to(device)
    epoch_valid = data.valid_idx
    if 0 < args.epoch_valid_samples < len(epoch_valid):
        epoch_valid = np.sort(np.random.default_rng(args.seed + 2).choice(epoch_valid, args.epoch_valid_samples,
                                                                          replace=False))
    log(f"training the {args.user_tower} user tower on {device}{f' ({amp})' if amp else ''}: {n_train} samples, "
        f"{len(data.valid_idx)} validation, {data.n_items} items, dim {args.dim}, batch {args.batch_size}"
        f"{f' + {args.uniform_negatives} uniform negatives' if args.uniform_negatives else ''}, lr {lr:g}, "
        f"temperature {args.temperature}, up to {args.epochs} epochs"
        f"{f' or {args.max_seconds:g} s' if args.max_seconds else ''}{', compiled' if compiled else ''}")
    if len(data.valid_idx) == 0:
        log(f"warning: no samples with day >= valid_from_day {data.meta['valid_from_day']}: recall is not measured")
    sync_debug = args.sync_debug and device == "cuda"
    seen = 0
    train_seconds = 0.0
    epoch_seconds: list[float] = []
    epoch_rates: list[float] = []
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
        if sync_debug:
            torch.cuda.set_sync_debug_mode("warn")
        started = time.perf_counter()
        # Nothing in a step reads a device value back to the host (no .item(), no float() of a tensor, no shapes
        # that depend on data), so on CUDA the host queues steps ahead of the GPU; --sync-debug checks it.
        for start in range(0, n_train, args.batch_size):
            idx = perm[start:start + args.batch_size]
            if len(idx) < 2 or (compiled and steps and len(idx) < args.batch_size):
                continue  # a compiled step has one shape: the last, smaller batch would compile again
            # Drawn only when asked for, so the default run's random stream is what it always was.
            uniform = (torch.randint(data.n_items, (args.uniform_negatives,), device=device)
                       if args.uniform_negatives else None)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            try:
                loss = loss_fn(model, t, idx, uniform, args.temperature, amp)
                scaler.scale(loss).backward()
            except Exception as e:  # noqa: BLE001 - any compiler failure: go on without it, as --compile promises
                if loss_fn is batch_loss:
                    raise
                log(f"--compile: torch.compile failed, training without it: {type(e).__name__}: "
                    f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}")
                loss_fn, compiled = batch_loss, False
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                loss = batch_loss(model, t, idx, uniform, args.temperature, amp)
                scaler.scale(loss).backward()
            for opt in opts:
                scaler.step(opt)
            scaler.update()
            loss_sum += loss.detach()
            steps += 1
            epoch_seen += len(idx)
            if args.max_seconds and train_seconds + time.perf_counter() - started >= args.max_seconds:
                stopped = True
                break
        if sync_debug:
            torch.cuda.set_sync_debug_mode("default")
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        train_seconds += elapsed
        epoch_seconds.append(round(elapsed, 3))
        epoch_rates.append(round(epoch_seen / elapsed, 1))
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
        "epoch_seconds": epoch_seconds,
        "epoch_samples_per_s": epoch_rates,
        "compiled": compiled,
    }


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    device = resolve_device(args.device)
    data = Export(args.data, history_days=args.user_tower == "sasrec")
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

    sparse_ids = args.id_grad != "dense"
    model = TwoTower(data, args.dim, args.hidden, args.id_dim, args.user_tower, sparse_ids, args.dropout).to(device)
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
        "user_tower": args.user_tower,
        "user_inputs": list(model.user.inputs),
        "metrics": metrics,
        "params": {
            "dim": args.dim,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lr_scale": args.lr_scale,
            "lr_effective": scaled_lr(args),
            "uniform_negatives": args.uniform_negatives,
            "id_grad": "sparse" if sparse_ids else "dense",
            "compile": args.compile,
            "user_tower": args.user_tower,
            "sasrec": {"layers": SASREC_LAYERS, "heads": SASREC_HEADS, "width": args.id_dim, "dropout": args.dropout,
                       "age_buckets": list(AGE_BUCKETS), "pooling": "newest entry"}
            if args.user_tower == "sasrec" else None,
            "temperature": args.temperature,
            "hidden": args.hidden,
            "id_dim": args.id_dim,
            "column_dims": [e.embedding_dim for e in model.item.embeddings],
            "image_projection": IMAGE_PROJECTION if data.image is not None else None,
            "image_vectors": os.path.abspath(args.image_vectors) if args.image_vectors else None,
            "optimizer": "adam",
            "loss": "sampled softmax over in-batch (and uniform) negatives, log-Q corrected, same-item rows masked",
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
