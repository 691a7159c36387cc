#!/usr/bin/env bash
# Shared apps, timed as a user feels them, on the process backend with vestibule's demo app:
#
# 1. Seat hand-out: `POST /api/proxy/<app>` for an app with free seats, then the app's first
#    byte through `/app_proxy/<id>/`; p50 and p99 over BENCH_HANDOUTS launches. Beside it, the
#    same for an app without seats (a cold start each time).
# 2. A burst from zero: BENCH_BURST requests at once to a pool with no instance running; the
#    median and the slowest answer (which waited for the first start), and failures (must be 0).
#
#   bench/seats.sh                        # release build
#   BENCH_BIN=target/debug/vestibule bench/seats.sh
#
# Settings: BENCH_HANDOUTS (200), BENCH_COLD (10), BENCH_BURST (200), BENCH_BIN, BENCH_PORT (38190).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HANDOUTS=${BENCH_HANDOUTS:-200}
COLD=${BENCH_COLD:-10}
BURST=${BENCH_BURST:-200}
PORT=${BENCH_PORT:-38190}
BASE=http://127.0.0.1:$PORT
MANAGEMENT=http://127.0.0.1:$((PORT + 1))
die() {
    echo "bench: error: $*" >&2
    exit 1
}
for tool in curl python3 xargs; do command -v $tool >/dev/null || die "$tool is missing"; done
if [[ -n ${BENCH_BIN:-} ]]; then
    BIN=$(realpath "$BENCH_BIN")
else
    (cd "$ROOT" && cargo build --release -q)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/vestibule
fi
TMP=$(mktemp -d)
V_PID=
cleanup() {
    [[ -n $V_PID ]] && kill "$V_PID" 2>/dev/null && wait "$V_PID" 2>/dev/null
    [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/v.yml" <<YML
proxy:
  port: $PORT
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: process
  heartbeat-timeout: -1
  default-max-instances: -1
  users:
  - name: bench
    password: bench-password
  specs:
  - id: seats
    container-cmd: ["$BIN", "demo-app", "--port", "{port}"]
    minimum-seats-available: 2
  - id: cold
    container-cmd: ["$BIN", "demo-app", "--port", "{port}"]
  - id: burst
    container-cmd: ["$BIN", "demo-app", "--port", "{port}"]
    public: true
    pool: {min-instances: 0, max-instances: 4, target-concurrency: 10}
management:
  server:
    port: $((PORT + 1))
YML
"$BIN" serve --config "$TMP/v.yml" >"$TMP/v.log" 2>&1 &
V_PID=$!
for _ in $(seq 100); do curl -fs -o /dev/null "$BASE/actuator/health" && break; sleep 0.1; done

# A browser session: HTTP Basic on every call would trip the login throttle.
jar=$TMP/jar
field() { grep -o 'name="_csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
csrf=$(curl -fsS -c "$jar" -b "$jar" "$BASE/login" | field)
curl -fsS -o /dev/null -c "$jar" -b "$jar" --data-urlencode "username=bench" \
    --data-urlencode "password=bench-password" --data-urlencode "_csrf=$csrf" \
    --data-urlencode "next=/" "$BASE/login"
csrf=$(curl -fsS -c "$jar" -b "$jar" "$BASE/" | field)

# Microseconds from the launch call to the app's first byte, once per line, for $2 launches of
# app $1; each instance is stopped afterwards. One kept-alive connection, as a browser holds
# one, so the figure is vestibule's and not the cost of starting a client per step.
launches() { # $1 = app, $2 = launches, $3 = wait for free seats between launches (1/0)
    python3 - "$BASE" "$MANAGEMENT" "$csrf" "$(grep -o 'vestibule_session[[:space:]]*[^[:space:]]*$' "$jar" | awk '{print $2}')" "$@" <<'PY'
import http.client, json, sys, time, urllib.parse
base, management, csrf, session, app, n, wait_seats = sys.argv[1:8]
host = urllib.parse.urlparse(base).netloc
conn = http.client.HTTPConnection(host)
headers = {"Cookie": f"vestibule_session={session}", "X-CSRF-Token": csrf, "Origin": base,
           "Sec-Fetch-Site": "same-origin", "Accept": "application/json"}
def call(method, path):
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    return r.status, body
def free_seats():
    m = http.client.HTTPConnection(urllib.parse.urlparse(management).netloc)
    for _ in range(300):
        m.request("GET", "/actuator/prometheus")
        text = m.getresponse().read().decode()
        for line in text.splitlines():
            if line.startswith('vestibule_seats{app="%s",state="free"}' % app) and float(line.split()[1]) >= 2:
                return
        time.sleep(0.05)
    sys.exit("the seat app never had 2 free seats")
for _ in range(int(n)):
    if wait_seats == "1":
        free_seats()
    t0 = time.perf_counter()
    status, body = call("POST", f"/api/proxy/{app}")
    # ShinyProxy's API: `{status, data}`; POST answers once the app is Up or failed.
    view = json.loads(body)["data"]
    if view["status"] != "Up":
        sys.exit(f"launch ended {view['status']}: {view}")
    conn.request("GET", f"/app_proxy/{view['id']}/", headers=headers)
    r = conn.getresponse()
    r.read(1)
    t1 = time.perf_counter()
    r.read()
    if r.status != 200:
        sys.exit(f"the app answered {r.status}")
    call("DELETE", f"/api/proxy/{view['id']}")
    print(int((t1 - t0) * 1e6))
PY
}

stats() { # microseconds on stdin -> "p50 ms | p99 ms | max ms"
    sort -n >"$TMP/s"
    local n
    n=$(wc -l <"$TMP/s")
    awk -v n="$n" '{ a[NR] = $1 } END {
        p50 = a[int((n + 1) * 0.50)]; p99 = a[int(n * 0.99) > 0 ? int(n * 0.99) : 1]; max = a[n];
        printf "%.1f | %.1f | %.1f", p50 / 1000, p99 / 1000, max / 1000 }' "$TMP/s"
}

launches seats "$HANDOUTS" 1 >"$TMP/handout"
launches cold "$COLD" 0 >"$TMP/cold"

echo "| launch to the app's first byte | launches | p50 ms | p99 ms | max ms |"
echo "|---|---|---|---|---|"
echo "| a free seat (minimum-seats-available: 2) | $HANDOUTS | $(stats <"$TMP/handout") |"
echo "| no seats (a start each time) | $COLD | $(stats <"$TMP/cold") |"

# --- a burst from zero --------------------------------------------------------------------------
t0=$(date +%s%N)
seq "$BURST" | xargs -P "$BURST" -I{} sh -c \
    "curl -s -o /dev/null -w '%{http_code} %{time_total}\n' '$BASE/app_direct/burst/'" >"$TMP/burst"
t1=$(date +%s%N)
ok=$(grep -c '^200 ' "$TMP/burst" || true)
failed=$((BURST - ok))
p50=$(awk '{print $2}' "$TMP/burst" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
slowest=$(awk '{print $2}' "$TMP/burst" | sort -n | tail -1)
echo
echo "| burst from zero (pool, max 4) | requests | failed | p50 answer s | slowest answer s (includes the cold start) | wall s |"
echo "|---|---|---|---|---|---|"
echo "| $BURST at once | $BURST | $failed | $p50 | $slowest | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }') |"
