"""Load through modelfleet's gateway with OpenAI's own Python client, while
the caller kills a replica.

Run by tests/e2e_openai_client.rs against a `modelfleet serve` whose
deployment has two Ready replicas:

    python openai_load.py BASE_URL API_KEY DEPLOYMENT SECONDS

Sixteen threads call the deployment, plain and streamed in turn. After the
first 50 answers it prints `loading` (the caller kills a replica then) and
goes on for SECONDS more. It prints one JSON line of outcomes:
`answered`, `streamed` (a stream read to its end), `cut` (a stream that
broke after its first chunk reached the client: the gateway may not retry
those), `lost` (a request that failed before anything reached the client:
what the gateway must never let happen), and the first errors seen.
"""

import json
import sys
import threading
import time

import openai
from openai import OpenAI

base, key, deployment, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
messages = [{"role": "user", "content": "Count the waves of the sea, slowly."}]
lock = threading.Lock()
outcomes = {"answered": 0, "streamed": 0, "cut": 0, "lost": 0, "errors": []}
done = {"n": 0, "announced": False, "until": None}


def note(outcome, error=None):
    with lock:
        outcomes[outcome] += 1
        if error is not None and len(outcomes["errors"]) < 5:
            outcomes["errors"].append(f"{outcome}: {type(error).__name__}: {error}")
        done["n"] += 1
        if done["n"] >= 50 and not done["announced"]:
            done["announced"] = True
            done["until"] = time.monotonic() + seconds
            print("loading", flush=True)


def running():
    with lock:
        return done["until"] is None or time.monotonic() < done["until"]


def plain():
    try:
        reply = client.chat.completions.create(model=deployment, messages=messages, max_tokens=24)
        if reply.choices[0].message.content:
            note("answered")
        else:
            note("lost", ValueError("an empty answer"))
    except Exception as e:  # noqa: BLE001 - every failure is an outcome here
        note("lost", e)


def streamed():
    started = False
    try:
        for chunk in client.chat.completions.create(
                model=deployment, messages=messages, max_tokens=24, stream=True):
            started = started or bool(chunk.choices)
        note("streamed")
    except Exception as e:  # noqa: BLE001
        note("cut" if started else "lost", e)


def worker(n):
    turn = n
    deadline = time.monotonic() + 120
    while running() and time.monotonic() < deadline:
        (plain if turn % 2 == 0 else streamed)()
        turn += 1


threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(outcomes), flush=True)
