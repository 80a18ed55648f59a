# Builds inferno and runs it with the cache on a volume, configured by the guide's env vars.
# `inferno serve` does not exist yet; until it does the image's command prints the effective configuration.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libclang-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# llama.cpp is built with OpenMP, so the binary needs libgomp at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/inferno /usr/local/bin/inferno
VOLUME ["/cache"]
ENV INFERNO_CACHE_DIR=/cache
ENV INFERNO_CACHE_ENABLED=true
ENV INFERNO_CACHE_COMPRESS=zstd
CMD ["inferno", "cache", "status"]
