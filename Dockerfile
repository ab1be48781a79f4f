# The aurora binary on a slim Debian runtime. Build from the repository root:
#   docker build -t aurorapress .
# compose/docker-compose.yml builds it for every AuroraPress service.

# Rust 1.95, like the development machines; rdkafka compiles librdkafka from source here.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin aurora

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin aurora
COPY --from=builder /src/target/release/aurora /usr/local/bin/aurora
USER aurora
ENTRYPOINT ["aurora"]
