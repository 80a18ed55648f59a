# inferno in a container: `inferno serve --cache-persist` with the cache on a volume (docs/serve-ops.md).
#
#   docker build -t inferno .
#   openssl rand -hex 32 > api.key && chmod 600 api.key
#   docker run -p 8080:8080 -v inferno-cache:/cache -v "$PWD/models:/models:ro" \
#     -v "$PWD/api.key:/run/secrets/inferno-api-key:ro" inferno
#
# Closed by default (docs/security.md): the server listens on every interface, so it needs an API key and
# reads it from the file below (a Docker or Compose secret, or a Kubernetes Secret); without the file it
# refuses to start. The admin routes are not served over TCP unless INFERNO_SERVER__ADMIN_KEY_FILE names a
# second key; `docker exec CONTAINER inferno cache stats` reaches them through the admin socket.
#
# tests/integration/deploy.rs checks this file against scripts/setup.sh and the real configuration loader.

# Build stage: the same scripts/setup.sh that sets up a developer's machine and CI installs the build tools
# (cmake, libclang-dev, pkg-config, libgomp1) and ONNX Runtime, so the image builds the way the tests do.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh --deps-only --no-test-tools && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked

# Runtime stage: the binary, ONNX Runtime at the path the binary looks in, and a non-root user.
FROM debian:bookworm-slim
# libgomp1: llama.cpp runs with OpenMP. curl: the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/lib/inferno/libonnxruntime.so.1.31.1 /usr/local/lib/inferno/libonnxruntime.so.1.31.1
COPY --from=build /src/target/release/inferno /usr/local/bin/inferno
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it (examples/kubernetes/deployment.yaml).
RUN groupadd --system --gid 10001 inferno \
    && useradd --system --uid 10001 --gid inferno --home-dir /home/inferno --create-home inferno \
    && mkdir -p /cache /models \
    && chown inferno:inferno /cache /models
USER 10001:10001
VOLUME ["/cache"]
ENV INFERNO_CACHE_DIR=/cache
ENV INFERNO_MODELS_DIR=/models
ENV INFERNO_CACHE_ENABLED=true
ENV INFERNO_CACHE_COMPRESS=zstd
# Listen on every interface of the container's own network namespace, so a published port reaches it; the
# default, 127.0.0.1, would accept only connections from inside the container.
ENV INFERNO_SERVER__BIND=0.0.0.0
# The API key, from a secret mounted here; every route but /health needs `Authorization: Bearer <key>`.
ENV INFERNO_SERVER__API_KEY_FILE=/run/secrets/inferno-api-key
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
CMD ["inferno", "serve", "--cache-persist"]
