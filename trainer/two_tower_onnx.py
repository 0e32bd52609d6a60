"""The towers as ONNX graphs: export with torch.onnx (dynamo), check the interface against the contract, run the parity
rows through onnxruntime and write parity.json."""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

from common import write_json_atomic
from two_tower_data import Export, log
from two_tower_model import ItemExport, ItemImageExport, TwoTower

OPSET = 18
PARITY_ROWS = 64
PARITY_TOLERANCE = 1e-4


class ParityError(Exception):
    """The exported ONNX graphs do not reproduce PyTorch: printed, exit status 1."""



def parity_inputs(data: Export, seed: int) -> tuple[dict, dict]:
    """PARITY_ROWS rows per tower from the data (validation samples first), with padded histories, an empty one,
    codes at and far beyond the cardinality, and an all-unknown item; with history ages (the sasrec tower), rows of
    zero ages under real purchases and of huge ages too."""
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
    if data.history_age is not None:
        age = data.history_age[rows].copy()
        age[history <= 0] = 0.0  # padding (and -1, read as padding) carries no age, as the contract says
        age[8] = 0.0  # every purchase on the as-of day
        # Huge ages, in padding slots too (outside the contract, which says 0 there): the graph must not care.
        age[9] = 1e9
        age[10, : h // 2] = 2**31 - 1
        age[10, h // 2:] = 700.0
        age[11] = np.linspace(0.0, 4000.0, h, dtype=np.float32)[::-1]  # oldest first, like the history
        user["history_age"] = age

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
    export_onnx(cpu.user, user_in, "user_vector", user_path)
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
