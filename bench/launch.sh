#!/usr/bin/env bash
# Times launches, from `POST /api/proxy/<app>` to status `running` (the app answers HTTP), on each
# backend vestibule has here: process, Docker and (in an active swarm) Docker Swarm. The app is vestibule's
# own demo app; for Docker it runs from a local FROM-scratch image (the binary, its shared
# libraries and busybox), built when missing. Prints a Markdown table.
#
#   bench/launch.sh                      # release build, 10 launches per backend
#   BENCH_LAUNCHES=5 BENCH_BIN=$CARGO_TARGET_DIR/debug/vestibule bench/launch.sh
#
# Settings: BENCH_LAUNCHES (10), BENCH_BIN (a vestibule binary; default: cargo build --release
# and use it), BENCH_PORT (38180).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_LAUNCHES:-10}
PORT=${BENCH_PORT:-38180}
BASE=http://127.0.0.1:$PORT
USER_NAME=bench
USER_PASSWORD=bench-password
die() {
    echo "bench: error: $*" >&2
    exit 1
}
for tool in curl jq docker ldd; do command -v $tool >/dev/null || die "$tool is missing"; done
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"

if [[ -n ${BENCH_BIN:-} ]]; then
    BIN=$BENCH_BIN
else
    (cd "$ROOT" && cargo build --release -q)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/vestibule
fi
TMP=$(mktemp -d)
V_PID=
cleanup() {
    [[ -n $V_PID ]] && kill "$V_PID" 2>/dev/null && wait "$V_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- the image ---------------------------------------------------------------------------------
TAG=vestibule-bench-app:$(stat -c '%s-%Y' "$BIN" | md5sum | cut -c1-16)
if ! docker image inspect "$TAG" >/dev/null 2>&1; then
    mkdir -p "$TMP/ctx/root/tmp" "$TMP/ctx/root/bin"
    cp "$BIN" "$TMP/ctx/root/vestibule"
    cp /bin/busybox "$TMP/ctx/root/bin/busybox"
    for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
        mkdir -p "$TMP/ctx/root$(dirname "$lib")"
        cp -L "$lib" "$TMP/ctx/root$lib"
    done
    printf 'FROM scratch\nCOPY root/ /\n' >"$TMP/ctx/Dockerfile"
    docker build -q -t "$TAG" "$TMP/ctx" >/dev/null 2>&1
fi

# --- one server, one app per backend ---------------------------------------------------------
run_backend() { # $1 = backend, $2 = spec lines
    cat >"$TMP/v.yml" <<YML
proxy:
  port: $PORT
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: $1
  heartbeat-timeout: -1
  default-max-instances: -1
  realm-id: bench-launch
  users:
  - name: $USER_NAME
    password: $USER_PASSWORD
  specs:
  - id: demo
$2
YML
    "$BIN" serve --config "$TMP/v.yml" >"$TMP/$1.log" 2>&1 &
    V_PID=$!
    for _ in $(seq 100); do curl -fs -o /dev/null "$BASE/actuator/health" && break; sleep 0.1; done
    # A browser session: HTTP Basic on every call would trip the login throttle.
    local jar=$TMP/$1.jar page csrf
    page=$(curl -fsS -c "$jar" -b "$jar" "$BASE/login")
    csrf=$(grep -o 'name="_csrf" value="[^"]*"' <<<"$page" | head -1 | sed 's/.*value="//; s/"$//')
    curl -fsS -o /dev/null -c "$jar" -b "$jar" --data-urlencode "username=$USER_NAME" \
        --data-urlencode "password=$USER_PASSWORD" --data-urlencode "_csrf=$csrf" \
        --data-urlencode "next=/" "$BASE/login"
    page=$(curl -fsS -c "$jar" -b "$jar" "$BASE/my-apps")
    csrf=$(grep -o 'name="csrf-token" content="[^"]*"' <<<"$page" | head -1 | sed 's/.*content="//; s/"$//')
    # As the portal's own page calls the API: cookie-authenticated calls must come from it.
    local api=(curl -sS -b "$jar" -H "X-CSRF-Token: $csrf" -H "Origin: $BASE" -H "Sec-Fetch-Site: same-origin")
    local times=()
    for _ in $(seq "$N"); do
        local t0 t1 view id status
        t0=$(date +%s%N)
        # ShinyProxy's API: POST answers once the app is Up (201) or failed (500).
        view=$("${api[@]}" -X POST "$BASE/api/proxy/demo")
        id=$(jq -r .data.id <<<"$view")
        status=$(jq -r .data.status <<<"$view")
        t1=$(date +%s%N)
        [[ $status == Up ]] || die "$1 launch ended $status: $view"
        times+=($(((t1 - t0) / 1000000)))
        "${api[@]}" -o /dev/null -X DELETE "$BASE/api/proxy/$id"
    done
    kill "$V_PID"
    wait "$V_PID" 2>/dev/null || true
    V_PID=
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    echo "| $1 | $N | $(sed -n "$(((N + 1) / 2))p" <<<"$sorted") | $(head -1 <<<"$sorted") | $(tail -1 <<<"$sorted") |"
}

echo "| backend | launches | median ms | min ms | max ms |"
echo "|---|---|---|---|---|"
run_backend process "    container-cmd: [\"$BIN\", \"demo-app\", \"--port\", \"{port}\"]"
run_backend docker "    container-image: $TAG
    port: 3838
    container-cmd: [\"/vestibule\", \"demo-app\", \"--port\", \"3838\", \"--bind\", \"0.0.0.0\"]"
if [[ $(docker info -f '{{.Swarm.LocalNodeState}}') == active ]]; then
    run_backend docker-swarm "    container-image: $TAG
    port: 3838
    container-cmd: [\"/vestibule\", \"demo-app\", \"--port\", \"3838\", \"--bind\", \"0.0.0.0\"]"
else
    echo "| docker-swarm | - | not measured: this engine is in no swarm (docker swarm init) | | |"
fi
