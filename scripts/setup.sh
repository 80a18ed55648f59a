#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for inferno, builds the release binary and runs it once.
#
#   scripts/setup.sh              install what is missing, build, run `inferno cache status`
#   scripts/setup.sh --deps-only  install what is missing and stop (what .ci/run uses)
#
# What it installs, and why:
#   cmake, libclang-dev, pkg-config  llama-cpp-2 builds llama.cpp from source with cmake and runs bindgen
#   libgomp1                         llama.cpp runs with OpenMP
#   redis-server                     the remote-tier tests (tests/integration/distributed.rs) start their own
#                                    servers and a cluster on ephemeral ports; the service itself is not used
#   libonnxruntime.so.1.31.1         ONNX Runtime for the `ort` crate (load-dynamic), taken from the PyPI
#                                    wheel onnxruntime==1.31.1 and placed at /usr/local/lib/inferno/;
#                                    for the ONNX backend (src/models/onnx.rs; ORT_DYLIB_PATH overrides).
set -euo pipefail

deps_only=0
case "${1:-}" in
  --deps-only) deps_only=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--deps-only]" >&2; exit 2 ;;
esac

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for pkg in cmake libclang-dev pkg-config libgomp1 redis-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

ort_version=1.31.1
ort_dir=/usr/local/lib/inferno
ort_lib="$ort_dir/libonnxruntime.so.$ort_version"
if [ ! -f "$ort_lib" ]; then
  echo "setup: fetching ONNX Runtime $ort_version from the onnxruntime wheel"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
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

if [ "$deps_only" -eq 1 ]; then exit 0; fi

cd "$(dirname "$0")/.."
cargo build --release --locked
echo "setup: built target/release/inferno; its effective configuration:"
target/release/inferno cache status
