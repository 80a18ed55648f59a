"""Drives `inferno serve` with the official OpenAI Python SDK (the `openai` package on PyPI).

    python3 tests/python/openai_client.py BASE_URL

BASE_URL is the server's root (`http://127.0.0.1:PORT`); the SDK talks to BASE_URL/v1. The API key is read
from OPENAI_API_KEY, as the SDK does. The server must serve the tiny test model `tiny`
(tests/integration/server.rs). Exits 0 when every check passes; otherwise prints what failed and exits 1.
Run by tests/integration/openai_sdk.rs.
"""

import sys

import openai
from openai import OpenAI

MODEL = "tiny"


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what.split(':')[0]}")


def cache_header(raw):
    return raw.headers.get("x-inferno-cache")


def models(client):
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    check(MODEL in ids, f"models.list names the model: {ids}")
    check(all(m.object == "model" and m.owned_by == "inferno" for m in listed.data), "models are model objects")


def chat(client):
    messages = [{"role": "user", "content": "abc"}]
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=8
    )
    first = raw.parse()
    check(cache_header(raw) == "MISS", f"first chat is a MISS: {cache_header(raw)}")
    check(first.object == "chat.completion", f"chat object: {first.object}")
    choice = first.choices[0]
    check(choice.message.role == "assistant", f"assistant message: {choice.message.role}")
    check(isinstance(choice.message.content, str) and choice.message.content, "chat content is text")
    check(choice.finish_reason in ("stop", "length"), f"finish_reason: {choice.finish_reason}")
    usage = first.usage
    check(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.completion_tokens > 0,
        f"usage adds up: {usage}",
    )
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=8
    )
    again = raw.parse()
    check(cache_header(raw) == "HIT", f"repeated chat is a HIT: {cache_header(raw)}")
    check(again.choices[0].message.content == choice.message.content, "the hit has the same answer")
    return choice.message.content


def completions(client):
    raw = client.completions.with_raw_response.create(model=MODEL, prompt="abc", temperature=0, max_tokens=8)
    done = raw.parse()
    check(done.object == "text_completion", f"completion object: {done.object}")
    check(done.choices[0].text == "defghijk", f"generated text: {done.choices[0].text!r}")
    check(done.usage.prompt_tokens == 5 and done.usage.completion_tokens == 8, f"usage: {done.usage}")
    check(cache_header(raw) in ("MISS", "HIT"), f"cache header present: {cache_header(raw)}")
    return done.choices[0].text


def streaming(client, chat_answer, completion_answer):
    pieces = []
    last = None
    stream = client.completions.create(
        model=MODEL, prompt="abc", temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )
    objects = set()
    for chunk in stream:
        objects.add(chunk.object)
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
        last = chunk
    check(objects == {"text_completion"}, f"completion chunks are text_completion objects: {objects}")
    check("".join(pieces) == completion_answer, f"streamed completion text: {''.join(pieces)!r}")
    check(last is not None and last.usage is not None and last.usage.completion_tokens == 8,
          f"include_usage sends a usage chunk last: {last}")

    deltas = []
    finish = None
    # A prompt not asked before, so this stream is generated piece by piece rather than replayed.
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "stream me"}], temperature=0, max_tokens=6,
        stream=True,
    )
    objects = set()
    for chunk in stream:
        objects.add(chunk.object)
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    check(objects == {"chat.completion.chunk"}, f"chat chunks are chat.completion.chunk objects: {objects}")
    check(len(deltas) > 1, f"a generated stream comes in pieces: {deltas}")
    check(finish in ("stop", "length"), f"the stream ends with a finish_reason: {finish}")

    # The chat asked before, streamed: replayed from the cache with the same text.
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "abc"}], temperature=0, max_tokens=8, stream=True
    )
    replayed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    check(replayed == chat_answer, f"a cached chat replays as a stream: {replayed!r}")


def errors(client, base_url):
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        check(False, "an unknown model raises")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and "no-such-model" in str(e), f"unknown model: NotFoundError {e}")
    try:
        client.completions.create(model=MODEL, prompt="a", n=2)
        check(False, "n=2 raises")
    except openai.BadRequestError as e:
        check(e.status_code == 400, f"n=2: BadRequestError {e}")
    wrong = OpenAI(base_url=f"{base_url}/v1", api_key="wrong-key", max_retries=0, timeout=60)
    try:
        wrong.models.list()
        check(False, "a wrong key raises")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, f"wrong key: AuthenticationError {e}")


def main():
    if len(sys.argv) != 2:
        print("usage: openai_client.py BASE_URL", file=sys.stderr)
        return 2
    base_url = sys.argv[1].rstrip("/")
    print(f"openai {openai.__version__} against {base_url}")
    client = OpenAI(base_url=f"{base_url}/v1", max_retries=0, timeout=60)
    try:
        models(client)
        chat_answer = chat(client)
        completion_answer = completions(client)
        streaming(client, chat_answer, completion_answer)
        errors(client, base_url)
    except (AssertionError, openai.OpenAIError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
