#!/usr/bin/env bash
# Throughput of a cached chat completion over HTTP, with `/health` as the same-run baseline.
#
# Builds the release binary and the `tiny_model` example, starts `inferno serve --port 0` in a scratch
# directory with the tiny llama model, sends one chat completion with temperature 0 (a MISS: the model loads
# and generates) and checks the second is a HIT, then runs wrk (`apt-get install wrk`) for DURATION seconds
# per connection count, `/health` first and the cached POST second, and prints requests/s and wrk's latency
# percentiles, and the CPU time per request (user + system) of the server (from /proc/PID/stat) and of wrk,
# which other load on the machine disturbs less than requests/s: 2 cores divided by their sum is the rate
# the two could reach with the cores to themselves. After the runs it checks on `/metrics` that every completion
# was answered from the cache. After each connection count it prints the cached chat against `/health`:
# requests/s as a share of `/health`'s (issue 11's target: >= 60% at 32 connections) and p50 as a multiple
# of `/health`'s (target: <= 1.15x at one connection).
#
# Usage: scripts/bench-http.sh            (CONNECTIONS="1 32" DURATION=10 THREADS=1 by default)
#        CONNECTIONS="1 64" DURATION=5 scripts/bench-http.sh
# wrk runs on the same machine as the server, so its THREADS compete with the server's workers for the
# cores; say so when quoting the numbers. CARGO_TARGET_DIR is honoured; INFERNO_BIN=PATH serves with that
# binary instead of the one built here (to compare builds back to back).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
connections=${CONNECTIONS:-1 32}
duration=${DURATION:-10}
threads=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release --quiet --bin inferno --example tiny_model)
bin=${INFERNO_BIN:-$target/release/inferno}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" && wait "$pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# A copy, so that another build into the same target directory cannot swap the binary mid-run.
cp "$bin" "$work/inferno"
mkdir -p "$work/models"
"$target/release/examples/tiny_model" "$work/models/tiny.gguf" >/dev/null

env -i PATH="$PATH" HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" \
  INFERNO_SYSTEM_CONFIG="$work/none.toml" INFERNO_CACHE__METRICS__PROMETHEUS_ENABLED=true \
  "$work/inferno" serve --port 0 --models-dir "$work/models" >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/stdout" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
  sleep 0.1
done
addr=$(grep -o 'listening on http://[^ ]*' "$work/stdout" | sed 's#listening on ##')
[ -n "$addr" ] || { echo "the server printed no address" >&2; cat "$work/stderr" >&2; exit 1; }

body='{"model":"tiny","messages":[{"role":"user","content":"abc"}],"temperature":0,"max_tokens":8}'
post() { curl -s -o /dev/null -D - -H 'Content-Type: application/json' -d "$body" "$addr/v1/chat/completions"; }
post | grep -qi '^x-inferno-cache: MISS' || { echo "the first request was not a MISS" >&2; exit 1; }
post | grep -qi '^x-inferno-cache: HIT' || { echo "the second request was not a HIT" >&2; exit 1; }
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
EOF

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "server: $addr (pid $pid); wrk $threads thread(s), ${duration}s per run; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-6s %12s %10s %10s %10s %10s %14s %11s %8s\n' route conns 'requests/s' p50 p75 p90 p99 \
  'server CPU/req' 'wrk CPU/req' errors
ticks_per_s=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
run() { # route connections wrk-args...
  local route=$1 conns=$2
  shift 2
  local out before after
  before=$(cpu_ticks)
  out=$({ TIMEFORMAT='%U %S' && time wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$@"; } 2>"$work/wrk-time")
  after=$(cpu_ticks)
  local rps requests cpu wrk_cpu p50 p75 p90 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$requests" 'BEGIN {printf "%.1fus", t / hz / n * 1e6}')
  wrk_cpu=$(awk -v n="$requests" '{printf "%.1fus", ($1 + $2) / n * 1e6}' "$work/wrk-time")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p75=$(awk '$1 == "75%" {print $2}' <<<"$out")
  p90=$(awk '$1 == "90%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {n++} END {print n + 0}' <<<"$out")
  [ "$errors" = 0 ] || echo "$out" >&2
  printf '%-6s %-6s %12s %10s %10s %10s %10s %14s %11s %8s\n' "$route" "$conns" "$rps" "$p50" "$p75" "$p90" "$p99" \
    "$cpu" "$wrk_cpu" "$errors"
  last_rps=$rps
  last_p50=$p50
}
us() { # wrk's latency (e.g. 75.00us, 1.33ms, 2.01s) in microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else m = 1000000; print n * m }'
}
for c in $connections; do
  run health "$c" "$addr/health"
  health_rps=$last_rps health_p50=$last_p50
  run chat "$c" -s "$work/post.lua" "$addr/v1/chat/completions"
  awk -v c="$c" -v cr="$last_rps" -v hr="$health_rps" -v cp="$(us "$last_p50")" -v hp="$(us "$health_p50")" \
    'BEGIN { printf "  %s connection(s): cached chat at %.1f%% of /health requests/s, p50 %.2fx /health'"'"'s\n", c, 100 * cr / hr, cp / hp }'
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
metrics=$(curl -s "$addr/metrics")
hits=$(awk '/^inferno_response_cache_requests_total\{result="HIT"\}/ {print $2}' <<<"$metrics")
others=$(awk '/^inferno_response_cache_requests_total\{result="(MISS|BYPASS)"\}/ {n += $2} END {print n + 0}' <<<"$metrics")
echo "completions answered: ${hits:-0} HIT, $others MISS or BYPASS (the warm-up's MISS included)"
[ "$others" = 1 ] || { echo "some completions were not cache hits" >&2; exit 1; }
