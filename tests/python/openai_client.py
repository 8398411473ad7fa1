"""OpenAI's own Python client against modelfleet's gateway.

Run by tests/e2e_openai_client.rs against a fresh `modelfleet serve`:

    python openai_client.py BASE_URL API_KEY DEPLOYMENT

Calls the deployment every way the client can (models, chat plain and
streamed with and without usage, completions, embeddings), checks what a
client would check, and prints one JSON line: the prompt and completion
tokens the answers reported, so the caller can compare them with what the
gateway counted. Exits non-zero with the reason on the first surprise.
"""

import json
import sys
import time

import openai
from openai import OpenAI

base, key, deployment = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
seen = {"prompt": 0, "completion": 0}


def count(usage):
    seen["prompt"] += usage.prompt_tokens
    seen["completion"] += usage.completion_tokens or 0


def check(condition, what):
    if not condition:
        sys.exit(f"openai_client.py: {what}")


messages = [{"role": "user", "content": "Tell me about the sea in three sentences."}]

# Until a replica is Ready the gateway answers 503 with Retry-After; the
# client raises it as an InternalServerError.
deadline = time.monotonic() + 120
while True:
    try:
        plain = client.chat.completions.create(model=deployment, messages=messages)
        break
    except openai.InternalServerError as e:
        check(e.status_code == 503, f"while loading: {e}")
        check(time.monotonic() < deadline, "no replica Ready within 120 s")
        time.sleep(0.5)
count(plain.usage)
text = plain.choices[0].message.content
check(plain.object == "chat.completion" and text, f"a chat answer: {plain}")
check(plain.choices[0].finish_reason in ("stop", "length"), "a finish reason")

models = [m.id for m in client.models.list()]
check(deployment in models, f"{deployment} in models.list(): {models}")

# Streamed, asking for usage: the text equals the plain answer's, and the
# last chunk carries the usage.
chunks = list(client.chat.completions.create(
    model=deployment, messages=messages, stream=True,
    stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check(streamed == text, f"streamed {streamed!r} != plain {text!r}")
check(chunks[-1].usage is not None and not chunks[-1].choices, "a usage chunk last")
check(chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens, "the same usage")
count(chunks[-1].usage)

# Streamed without asking: no chunk carries usage. The gateway still
# meters it — the same tokens as the plain answer, which stand in for it.
chunks = list(client.chat.completions.create(
    model=deployment, messages=messages, stream=True))
check(all(c.usage is None for c in chunks), "no usage the client did not ask for")
check(all(c.choices for c in chunks), "no usage-only chunk")
count(plain.usage)

completion = client.completions.create(model=deployment, prompt="Once upon a time", max_tokens=5)
check(completion.usage.completion_tokens == 5, f"max_tokens=5: {completion.usage}")
check(completion.choices[0].finish_reason == "length", "cut at max_tokens")
count(completion.usage)

embedded = client.embeddings.create(model=deployment, input=["one", "two"])
check(len(embedded.data) == 2 and len(embedded.data[0].embedding) > 0, "two embeddings")
count(embedded.usage)

try:
    client.chat.completions.create(model="not-a-deployment", messages=messages)
    check(False, "an unknown model was answered")
except openai.NotFoundError as e:
    check(e.code == "model_not_found", f"model_not_found: {e}")

try:
    OpenAI(base_url=base + "/v1", api_key="mf_not-a-key", max_retries=0).models.list()
    check(False, "a made-up key was accepted")
except openai.AuthenticationError:
    pass

print(json.dumps(seen))
