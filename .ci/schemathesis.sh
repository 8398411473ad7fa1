#!/usr/bin/env bash
# Fuzzes the hub's REST API against its own OpenAPI document with
# Schemathesis: a fresh `modelfleet serve` on a free port, called with the
# demo tenant's API key and as the platform admin, and checks that no
# request makes the hub fail (5xx) and that every status, content type and
# body it answers is one the document declares.
# Fails when Schemathesis finds anything.
#
#   .ci/schemathesis.sh [schemathesis run options…]
#
# e.g. `.ci/schemathesis.sh --continue-on-failure` to see every failing case,
# not only the first of each operation.
#
# Environment:
#   MODELFLEET_PYTHON        a Python 3.13 (default: pyenv's 3.13.0; 3.11.7 and
#                            3.12.1 crash Hypothesis, CPython bug 106905)
#   SCHEMATHESIS_EXAMPLES    test cases per operation and phase (default 50;
#                            100 finds more and takes about twice as long)
#   SCHEMATHESIS_SEED        a seed, to repeat a run exactly
#   CARGO_TARGET_DIR         as for .ci/run; only the `modelfleet` binary is
#                            built, in the dev profile
#
# Everything it writes (the virtualenv, the hub's data directory, its log,
# Schemathesis' own files) is under ${TMPDIR:-/tmp}/modelfleet-schemathesis,
# never in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
extra=("$@")

SCHEMATHESIS_VERSION=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-50}"
python="${MODELFLEET_PYTHON:-/root/.pyenv/versions/3.13.0/bin/python3.13}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/modelfleet-target}"
export CARGO_TERM_COLOR=never

if ! [ -x "$python" ] || ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
    echo "schemathesis.sh: needs Python 3.13 at $python (set MODELFLEET_PYTHON);" \
        "3.11.7 and 3.12.1 crash Hypothesis (CPython bug 106905)" >&2
    exit 1
fi

scratch="${TMPDIR:-/tmp}/modelfleet-schemathesis"
venv="$scratch/venv-$SCHEMATHESIS_VERSION"
mkdir -p "$scratch"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "== virtualenv with schemathesis $SCHEMATHESIS_VERSION in $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "== cargo build --bin modelfleet"
cargo build --quiet --bin modelfleet
modelfleet="$CARGO_TARGET_DIR/debug/modelfleet"

run=$(mktemp -d "$scratch/run.XXXXXX")
serve_pid=""
finish() {
    status=$?
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$run/serve.log" ]; then
        echo "== the hub's log, last lines ($run/serve.log)" >&2
        tail -n 40 "$run/serve.log" >&2
    else
        rm -rf "$run"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
echo "== modelfleet serve on $base (data in $run/data)"
(cd "$run" && exec "$modelfleet" serve --data-dir "$run/data" --listen "127.0.0.1:$port") \
    >"$run/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { echo "modelfleet serve exited" >&2; exit 1; }
    sleep 0.5
done
curl -fsS -o /dev/null "$base/healthz" || { echo "modelfleet serve did not come up in 60 s" >&2; exit 1; }
credential() { sed -n "s/^$1=//p" "$run/data/initial-credentials"; }
key=$(credential api_key)
[ -n "$key" ] || { echo "no api_key= in $run/data/initial-credentials" >&2; exit 1; }
# The platform admin, through a session: the operations only platform staff
# may call (clusters, tenants, prices, the whole audit trail) are fuzzed
# past their 403 too. The first-start admin must choose their own password
# and then enrol a second factor before the session can do anything else:
# it does, as an authenticator app would (RFC 6238, computed here with
# Python's standard library).
admin=$(curl -fsS "$base/api/v1/sessions" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$(credential admin_user)\", \"password\": \"$(credential admin_password)\"}" |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["token"])')
[ -n "$admin" ] || { echo "the platform admin cannot sign in" >&2; exit 1; }
curl -fsS -o /dev/null "$base/api/v1/users/me/password" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d "{\"currentPassword\": \"$(credential admin_password)\", \"newPassword\": \"Schemathesis-run-$(date +%s)!\"}" ||
    { echo "the platform admin cannot choose a password" >&2; exit 1; }
secret=$(curl -fsS -X POST "$base/api/v1/users/me/totp" -H "Authorization: Bearer $admin" |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
code=$("$python" - "$secret" <<'PY'
import base64, hmac, struct, sys, time
secret = sys.argv[1].upper()
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
offset = digest[-1] & 0x0F
print("%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000))
PY
)
curl -fsS -o /dev/null -X POST "$base/api/v1/users/me/totp/confirm" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d "{\"code\": \"$code\"}" ||
    { echo "the platform admin cannot enrol a second factor" >&2; exit 1; }

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
seed=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")
# Ending the caller's session and revoking an API key are left to passes of
# their own, last: Schemathesis finds the demo key's id through
# `GET /api-keys` and revokes it, or signs the admin out, and every later
# request would be refused. So are what ends or locks the admin's own
# account: ending their sessions (Schemathesis finds their id through
# `GET /users`), and wrong current passwords or second-factor codes, which
# count toward their lockout.
revoke="DELETE /api/v1/api-keys/{id}"
sign_out="DELETE /api/v1/sessions/current"
own_account=(--exclude-name "$sign_out"
    --exclude-name "DELETE /api/v1/users/{id}/sessions"
    --exclude-name "POST /api/v1/users/me/password"
    --exclude-name "POST /api/v1/users/{id}/totp/reset")
fuzz() {
    local token=$1
    shift
    (cd "$run" && "$venv/bin/schemathesis" run "$base/api/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks "$checks" \
        --max-examples "$examples" \
        --workers 2 \
        --request-timeout 30 \
        --no-color \
        "${seed[@]}" "${extra[@]}" "$@")
}
started=$(date +%s)
failed=0
echo "== schemathesis as the demo tenant's admin (API key): every operation but \"$revoke\" and \"$sign_out\""
fuzz "$key" --exclude-name "$revoke" --exclude-name "$sign_out" || failed=1
echo "== schemathesis as the platform admin (session): every operation but \"$revoke\" and those on the admin's own account"
fuzz "$admin" --exclude-name "$revoke" "${own_account[@]}" || failed=1
echo "== schemathesis: \"$revoke\" as the tenant's admin, the admin's own account as the platform admin"
fuzz "$key" --include-name "$revoke" || failed=1
fuzz "$admin" "${own_account[@]/--exclude-name/--include-name}" || failed=1
echo "== schemathesis took $(($(date +%s) - started)) s"
if [ "$failed" -ne 0 ]; then
    echo "schemathesis.sh: Schemathesis found problems (above)" >&2
    exit 1
fi
cd "$checkout"
