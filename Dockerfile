# streamrec image: build the release binary, then copy it into a slim runtime.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Explicit, so a CARGO_TARGET_DIR from elsewhere cannot move the output.
ENV CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked

FROM debian:bookworm-slim
# ca-certificates for TLS brokers; fonts-dejavu-core for the backtest plot.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/streamrec /usr/local/bin/streamrec
WORKDIR /work
CMD ["streamrec", "--help"]
