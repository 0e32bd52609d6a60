# streamrec images, one file, three stages used by docker-compose.yml:
#   engine  (default): the release binary and ONNX Runtime (the two-tower and text sources run in it);
#   trainer: the engine image plus the trainers' Python venv (CatBoost, torch, onnx, onnxruntime): periodic
#            retraining that publishes `model-updates` (scripts/trainer-loop.sh). PyPI's torch wheel carries its
#            CUDA libraries, so the same image trains on a GPU when the container is given one.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Explicit, so a CARGO_TARGET_DIR from elsewhere cannot move the output.
ENV CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked

# ONNX Runtime: the shared library PyPI's onnxruntime wheel ships (the version trainer/requirements-two-tower.txt
# pins, the one the trainer checks its exports against), loaded by `ort` through ORT_DYLIB_PATH.
FROM python:3.11-slim-bookworm AS onnxruntime
COPY trainer/requirements-two-tower.txt /tmp/
RUN set -eux; \
    pin="$(grep -E '^onnxruntime==' /tmp/requirements-two-tower.txt)"; \
    pip download --no-deps --only-binary=:all: --dest /wheel "$pin"; \
    python -m zipfile -e /wheel/onnxruntime-*.whl /wheel/x; \
    lib="$(ls /wheel/x/onnxruntime/capi/libonnxruntime.so* | awk '{ print length, $0 }' | sort -n | tail -1 | cut -d' ' -f2)"; \
    cp "$lib" /libonnxruntime.so

FROM debian:bookworm-slim AS engine
# ca-certificates for TLS brokers; fonts-dejavu-core for the backtest plot; libgomp1 for ONNX Runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates fonts-dejavu-core libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=onnxruntime /libonnxruntime.so /usr/local/lib/libonnxruntime.so
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so
COPY --from=builder /src/target/release/streamrec /usr/local/bin/streamrec
WORKDIR /work
CMD ["streamrec", "--help"]

FROM engine AS trainer
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY trainer /opt/streamrec/trainer
COPY scripts/trainer-env.sh scripts/trainer-loop.sh /opt/streamrec/scripts/
# The venv the Rust side runs the trainers in; its own onnxruntime library is the one the trainer's exports
# are checked against (the engine image's copy is the same version).
ENV STREAMREC_VENV=/opt/venv STREAMREC_TRAINER_DIR=/opt/streamrec/trainer STREAMREC_PYTHON=/opt/venv/bin/python
RUN bash /opt/streamrec/scripts/trainer-env.sh
CMD ["bash", "/opt/streamrec/scripts/trainer-loop.sh"]

# The last stage is what a plain `docker build .` gives: the engine.
FROM engine
