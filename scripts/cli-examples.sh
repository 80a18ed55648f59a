#!/usr/bin/env bash
# Regenerates the example outputs in docs/cli.md: runs each `inferno cache` command against a scratch cache
# populated by `cache import` and prints Markdown. Usage: scripts/cli-examples.sh > /tmp/examples.md
set -uo pipefail
bin="$(cd "$(dirname "$0")/.." && pwd)/target/debug/inferno"
[ -x "$bin" ] || { echo "build first: cargo build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" INFERNO_SYSTEM_CONFIG="$work/none.toml"
mkdir -p "$work/project" && cd "$work/project"
python3 - > prompts.jsonl <<'PY'
import json
for i in range(60):
    model = "llama-7b" if i % 3 else "mistral-7b"
    answer = ("The answer to question %d is in the manual, section %d. " % (i % 12, i % 12)) * 20
    print(json.dumps({"model": model,
        "request": {"messages": [{"role": "user", "content": "question %d" % i}], "temperature": 0},
        "response": {"id": "chatcmpl-%d" % i, "object": "chat.completion", "created": 1732500000, "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 40, "total_tokens": 43}}}))
PY
show() {
  echo '```console'
  echo "\$ inferno $*" | sed "s#$work#/tmp/demo#g"
  "$bin" "$@" 2>&1 | sed "s#$work#/tmp/demo#g"
  echo '```'
  echo
}
show cache import prompts.jsonl
show cache persist --compress zstd
show cache status
show cache stats
show cache stats --detailed
show cache stats --deduplication
show cache metrics
show cache disk-usage
show cache verify
show cache clear --pattern "mistral*"
show cache compact
show cache backup --destination "$work/backups/b1" --compress --verify
show cache audit --since 1h
show cache backup list
show cache cleanup --older-than 7d
show cache report --period 24h
show cache analyze --period 24h
show cache export --format prometheus
show cache restore --source "$work/backups/b1" --verify
show cache enable --type model,response
show cache disable --type metadata
