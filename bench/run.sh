#!/usr/bin/env bash
# Compares, in one run on loopback, the same upstream reached (a) directly, (b) through nginx,
# (c) through vestibule's /app_proxy/<id>/ path with the default in-memory store, (c2) through a
# one-member pool's /app_direct/<app>/ path, and (d) /app_proxy/<id>/ again
# with `proxy.store-mode: Redis` against a redis-server this script starts: requests/s, p50/p99
# latency, proxy CPU time per request, proxy RSS, for small and 100 KiB responses, plus WebSocket
# echo round trips.
# Writes a Markdown report to stdout and to bench/results/latest.md. See docs/benchmarks.md.
#
#   bench/run.sh                       # defaults: 10 s per case, 32 connections, 1 wrk thread
#   BENCH_DURATION=5 bench/run.sh      # shorter
#
# Settings (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 2),
# BENCH_CONNECTIONS (32), BENCH_THREADS (wrk threads, 1), BENCH_WS_MESSAGES (20000),
# BENCH_PROXY_CPU / BENCH_LOAD_CPU (CPU numbers for the proxy and for wrk + upstream; default 1
# and 0 on a machine with two or more CPUs, no pinning on one CPU), BENCH_PORT_BASE (38080:
# vestibule on it, the upstream on +1, nginx on +2, vestibule in Redis mode on +3; Redis gets
# any free port), BENCH_NO_BUILD=1 to skip cargo build,
# BENCH_NGINX_EXTRA (directives added to nginx's proxy location, e.g. "proxy_buffering off;"),
# BENCH_PROFILE=1 and BENCH_HOLD=1 (see below).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
WS_MESSAGES=${BENCH_WS_MESSAGES:-20000}
PORT_BASE=${BENCH_PORT_BASE:-38080}
V_PORT=$PORT_BASE
UP_PORT=$((PORT_BASE + 1))
NGX_PORT=$((PORT_BASE + 2))
VR_PORT=$((PORT_BASE + 3))
USER_NAME=bench
USER_PASSWORD=bench-password
RESULTS=$ROOT/bench/results/latest.md

log() { echo "bench: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- tools -----------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v taskset >/dev/null || need+=(util-linux)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${need[*]}; install them (apt-get install ${need[*]})"
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# The Debian packages may start a system nginx on :80 and a system Redis on :6379; they are not
# used here and are left alone.

if [[ ${BENCH_NO_BUILD:-} != 1 ]]; then
    log "building (release)"
    cargo build --release --bins --examples >&2
fi
for f in "$BIN/vestibule" "$BIN/examples/bench_upstream" "$BIN/examples/bench_ws"; do
    [[ -x $f ]] || die "$f is missing; build with cargo build --release --bins --examples"
done

# --- CPU budget ------------------------------------------------------------------------------
# The proxy under test (nginx with one worker, or vestibule with one tokio worker thread) gets
# one CPU; wrk, the WebSocket client and the upstream share the other. Both proxies thus have
# the same budget of one core, and the load generator does not steal from them.
NCPU=$(nproc)
# BENCH_UNPINNED=1: as users run it, no pinning and tokio's default worker threads.
if [[ ${BENCH_UNPINNED:-} == 1 ]]; then
    PROXY_CPU=
    LOAD_CPU=
    pin_proxy=()
    pin_load=()
    PINNING="no pinning, default worker threads (BENCH_UNPINNED=1: as users run it)"
elif ((NCPU >= 2)); then
    PROXY_CPU=${BENCH_PROXY_CPU:-1}
    LOAD_CPU=${BENCH_LOAD_CPU:-0}
    pin_proxy=(taskset -c "$PROXY_CPU")
    pin_load=(taskset -c "$LOAD_CPU")
    PINNING="proxy on CPU $PROXY_CPU; wrk, WebSocket client, upstream and redis-server on CPU $LOAD_CPU"
else
    PROXY_CPU=
    LOAD_CPU=
    pin_proxy=()
    pin_load=()
    PINNING="no pinning (one CPU)"
fi

for p in "$V_PORT" "$UP_PORT" "$NGX_PORT" "$VR_PORT"; do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is in use (set BENCH_PORT_BASE)"; fi
done

# --- process bookkeeping ---------------------------------------------------------------------
TMP=$(mktemp -d /tmp/vestibule-bench.XXXXXX)
STARTED=()
# Stops what was started in reverse order, each before the next: vestibule in Redis mode needs
# its redis-server while it shuts down (it asks whether other replicas are alive).
cleanup() {
    local i pid
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        pid=${STARTED[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

descendants() {
    local p
    for p in $(pgrep -P "$1" || true); do
        echo "$p"
        descendants "$p"
    done
}

# utime+stime (clock ticks) summed over the given pids, all their threads included.
cpu_ticks() {
    local total=0 pid f
    for pid in "$@"; do
        f=$(sed 's/.*) //' "/proc/$pid/stat") || die "process $pid is gone"
        total=$((total + $(awk '{print $12 + $13}' <<<"$f")))
    done
    echo "$total"
}

# VmRSS in KiB summed over the given pids.
rss_kib() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

wait_http() { # url, what
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "$2 did not answer at $1"
}

CLK_TCK=$(getconf CLK_TCK)

# --- upstream --------------------------------------------------------------------------------
PORT=$UP_PORT "${pin_load[@]}" "$BIN/examples/bench_upstream" >"$TMP/upstream.log" 2>&1 &
UP_PID=$!
STARTED+=("$UP_PID")
wait_http "http://127.0.0.1:$UP_PORT/" "the upstream"

# --- nginx -----------------------------------------------------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    # WebSockets get Upgrade/Connection passed on; everything else an empty Connection header,
    # which keeps the upstream connection alive.
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      '';
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_read_timeout 1h;
            # 128 KiB of buffers so a 100 KiB response fits in memory. With the default 8 x 4 KiB
            # nginx reads and writes a 100 KiB body in page-sized pieces and spends about twice
            # the CPU per response (measured: ~150 vs ~78 us), which would flatter vestibule.
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
            ${BENCH_NGINX_EXTRA:-}
        }
    }
}
EOF
"${pin_proxy[@]}" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
    >"$TMP/nginx/stdout.log" 2>&1 &
NGX_PID=$!
STARTED+=("$NGX_PID")
wait_http "http://127.0.0.1:$NGX_PORT/" "nginx"
mapfile -t NGX_PIDS < <(echo "$NGX_PID"; pgrep -P "$NGX_PID")
((${#NGX_PIDS[@]} == 2)) || die "expected an nginx master and one worker, got ${NGX_PIDS[*]}"

# --- redis-server, for vestibule's Redis mode -------------------------------------------------
# A port nobody listens on, below the kernel's ephemeral range.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 10000))
        ss -Hltn "sport = :$p" | grep -q . || {
            echo "$p"
            return 0
        }
    done
    die "no free port for redis-server"
}
REDIS_PORT=$(free_port)
mkdir -p "$TMP/redis"
# Off the proxy's CPU, like the upstream: in production Redis runs on another host. Its CPU per
# request is reported separately (it should be about zero: the data path never asks Redis).
"${pin_load[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" \
    --save '' --appendonly no --logfile "$TMP/redis/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
STARTED+=("$REDIS_PID")
for _ in $(seq 100); do
    [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start: $(cat "$TMP/redis/redis.log")"
    sleep 0.1
done
[[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || die "redis-server does not answer on $REDIS_PORT"

# --- vestibule, in memory mode and in Redis mode ---------------------------------------------
# Per mode (memory, redis): the server's pid, the app's pid, the instance id, the session cookie
# and the RSS at start and idle.
declare -A V_PID V_APP_PID V_POOL_PID V_ID V_COOKIE V_RSS_START V_RSS_IDLE V_RSS_AFTER V_PORTS
V_PORTS[memory]=$V_PORT
V_PORTS[redis]=$VR_PORT
# One tokio worker thread: the same one-core budget as nginx's single worker.
[[ ${BENCH_UNPINNED:-} == 1 ]] || export TOKIO_WORKER_THREADS=1

# start_vestibule <mode>: starts `vestibule serve` with that store, logs in through the form,
# launches the app and waits until it runs. The config is the same in both modes but for the
# store keys, which are what a user writes to select Redis (the defaults otherwise).
start_vestibule() {
    local mode=$1 port=${V_PORTS[$1]} yml=$TMP/vestibule-$1.yml pid store=
    [[ $mode == redis ]] && store="
  store-mode: Redis"
    cat >"$yml" <<EOF
proxy:
  port: $port
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: process$store
  heartbeat-timeout: -1
  users:
  - name: $USER_NAME
    password: $USER_PASSWORD
    groups: bench
  specs:
  - id: upstream
    container-cmd: ["$BIN/examples/bench_upstream"]
  - id: pooled
    container-cmd: ["$BIN/examples/bench_upstream"]
    pool: {min-instances: 1, max-instances: 1}
EOF
    if [[ $mode == redis ]]; then
        cat >>"$yml" <<EOF
spring:
  data:
    redis:
      host: 127.0.0.1
      port: $REDIS_PORT
EOF
    fi
    "$BIN/vestibule" check --config "$yml" >"$TMP/check-$mode.log" 2>&1 ||
        die "vestibule rejects the generated config ($mode): $(cat "$TMP/check-$mode.log")"
    "${pin_proxy[@]}" "$BIN/vestibule" serve --config "$yml" >"$TMP/vestibule-$mode.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    V_PID[$mode]=$pid
    wait_http "http://127.0.0.1:$port/actuator/health" "vestibule ($mode mode)"
    V_RSS_START[$mode]=$(rss_kib "$pid")

    local base=http://127.0.0.1:$port jar=$TMP/cookies-$mode.txt
    local login_page login_csrf code session view id status
    login_page=$(curl -fsS -c "$jar" -b "$jar" "$base/login")
    login_csrf=$(grep -o 'name="_csrf" value="[^"]*"' <<<"$login_page" | head -1 | sed 's/.*value="//; s/"$//')
    [[ -n $login_csrf ]] || die "no _csrf field on the login page ($mode mode)"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
        --data-urlencode "username=$USER_NAME" --data-urlencode "password=$USER_PASSWORD" \
        --data-urlencode "_csrf=$login_csrf" --data-urlencode "next=/" "$base/login")
    [[ $code == 303 ]] || die "login answered $code, expected 303 ($mode mode)"
    session=$(awk '$6 == "vestibule_session" {print $7}' "$jar")
    [[ -n $session ]] || die "login set no vestibule_session cookie ($mode mode)"
    V_COOKIE[$mode]="vestibule_session=$session"

    # ShinyProxy's API: `{status, data}`, and POST answers once the app is Up (or failed).
    view=$(curl -fsS -u "$USER_NAME:$USER_PASSWORD" -X POST "$base/api/proxy/upstream")
    id=$(jq -r .data.id <<<"$view")
    status=$(jq -r .data.status <<<"$view")
    [[ $status == Up ]] || die "instance $id is $status ($mode mode): $view"
    V_ID[$mode]=$id
    # The supervisor and the app inherited the proxy's CPU; move them to the load side, like the
    # upstream that direct and nginx use.
    local p
    if [[ -n $LOAD_CPU ]]; then
        for p in $(descendants "$pid"); do taskset -a -p -c "$LOAD_CPU" "$p" >/dev/null; done
    fi
    # The user's instance runs in its own folder, named by its id; the other upstream under this
    # server is the pool's one member.
    V_APP_PID[$mode]=$(for p in $(descendants "$pid"); do
        [[ $(readlink "/proc/$p/exe") == */bench_upstream && $(readlink "/proc/$p/cwd") == *"$id"* ]] && echo "$p"
    done | head -1)
    [[ -n ${V_APP_PID[$mode]} ]] || die "cannot find the app process under vestibule ($mode mode)"
    for _ in $(seq 100); do
        V_POOL_PID[$mode]=$(for p in $(descendants "$pid"); do
            [[ $(readlink "/proc/$p/exe") == */bench_upstream && $p != "${V_APP_PID[$mode]}" ]] && echo "$p"
        done | head -1 || true)
        [[ -n ${V_POOL_PID[$mode]} ]] && break
        sleep 0.1
    done
    [[ -n ${V_POOL_PID[$mode]} ]] || die "the pool's member did not start ($mode mode)"
    # The pool's member started after the move above: move it to the load side too.
    if [[ -n $LOAD_CPU ]]; then
        for p in $(descendants "$pid"); do taskset -a -p -c "$LOAD_CPU" "$p" >/dev/null; done
    fi
    curl -fsS -o /dev/null -H "Cookie: ${V_COOKIE[$mode]}" "$base/app_proxy/$id/small" ||
        die "the app does not answer through /app_proxy/$id/ ($mode mode)"
    curl -fsS -o /dev/null -H "Cookie: ${V_COOKIE[$mode]}" "$base/app_direct/pooled/small" ||
        die "the pool does not answer through /app_direct/pooled/ ($mode mode)"
}
start_vestibule memory
start_vestibule redis
# direct and nginx get the memory-mode cookie: every path sends a Cookie header of the same size.
COOKIE=${V_COOKIE[memory]}
BASE=http://127.0.0.1:$V_PORT
RBASE=http://127.0.0.1:$VR_PORT

sleep 1
NGX_RSS_IDLE=$(rss_kib "${NGX_PIDS[@]}")
for mode in memory redis; do V_RSS_IDLE[$mode]=$(rss_kib "${V_PID[$mode]}"); done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# BENCH_HOLD=1: set everything up, say how to reach it, and wait (for profiling by hand).
if [[ ${BENCH_HOLD:-} == 1 ]]; then
    log "holding; Ctrl-C to stop"
    log "direct http://127.0.0.1:$UP_PORT/ (pid $UP_PID)"
    log "nginx http://127.0.0.1:$NGX_PORT/ (pids ${NGX_PIDS[*]})"
    log "redis-server 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
    for mode in memory redis; do
        log "vestibule ($mode mode) http://127.0.0.1:${V_PORTS[$mode]}/app_proxy/${V_ID[$mode]}/ (pid ${V_PID[$mode]}, app pid ${V_APP_PID[$mode]})"
        log "cookie ($mode mode): ${V_COOKIE[$mode]}"
    done
    while :; do
        sleep 3600 &
        wait $! # a signal interrupts wait (not a foreground sleep), so cleanup runs at once
    done
fi

# --- measurements ----------------------------------------------------------------------------
# wrk prints latencies as 512.00us, 1.23ms or 1.02s; this gives microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
        else if (v ~ /m$/) print n * 60e6; else if (v ~ /s$/) print n * 1e6; else print n }'
}
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A R # results, keyed "<case>.<path>.<metric>"

# run_http <case> <path> <url> <proxy pids…>; the upstream pid is $UPSTREAM for this path, the
# session cookie $PATH_COOKIE, and $STORE_PID (if set) the redis-server whose CPU is counted too.
run_http() {
    local case=$1 path=$2 url=$3
    shift 3
    local pids=("$@") out c0 c1 u0 u1 s0 s1 reqs errs
    log "$case via $path: warm-up ${WARMUP}s, then ${DURATION}s"
    "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -H "Cookie: $PATH_COOKIE" "$url" >/dev/null
    c0=$(cpu_ticks "${pids[@]}")
    u0=$(cpu_ticks "$UPSTREAM")
    s0=$(cpu_ticks ${STORE_PID:+"$STORE_PID"})
    out=$("${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Cookie: $PATH_COOKIE" "$url")
    c1=$(cpu_ticks "${pids[@]}")
    u1=$(cpu_ticks "$UPSTREAM")
    s1=$(cpu_ticks ${STORE_PID:+"$STORE_PID"})
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    errs=$(awk '/Non-2xx or 3xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
    R[$case.$path.rps]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    R[$case.$path.p50]=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    R[$case.$path.p99]=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    R[$case.$path.errors]=$errs
    R[$case.$path.requests]=$reqs
    R[$case.$path.up_cpu]=$(awk -v t=$((u1 - u0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
    if [[ -n $STORE_PID ]]; then
        R[$case.$path.store_ticks]=$((s1 - s0))
        R[$case.$path.store_cpu]=$(awk -v t=$((s1 - s0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }')
    fi
    if ((${#pids[@]})); then
        R[$case.$path.cpu]=$(awk -v t=$((c1 - c0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
        R[$case.$path.rss]=$(rss_kib "${pids[@]}")
    fi
    echo "$out" >"$TMP/wrk.$case.$path.txt"
    ((errs == 0)) || log "warning: $errs errors for $case via $path"
}

# run_ws <path> <url> <proxy pids…>
run_ws() {
    local path=$1 url=$2
    shift 2
    local pids=("$@") out c0 c1 msgs
    log "WebSocket echo via $path: $WS_MESSAGES messages"
    c0=$(cpu_ticks "${pids[@]}")
    out=$("${pin_load[@]}" "$BIN/examples/bench_ws" "$url" --cookie "$PATH_COOKIE" -n "$WS_MESSAGES")
    c1=$(cpu_ticks "${pids[@]}")
    msgs=$(grep -o 'messages=[0-9]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.p50]=$(grep -o 'p50_us=[0-9.]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.p99]=$(grep -o 'p99_us=[0-9.]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.msgs]=$msgs
    if ((${#pids[@]})); then
        R[ws.$path.cpu]=$(awk -v t=$((c1 - c0)) -v n="$msgs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
    fi
}

# The vestibule paths: "vestibule" is memory mode (the default), "vestibule-redis" Redis mode.
VURL=$BASE/app_proxy/${V_ID[memory]}
RURL=$RBASE/app_proxy/${V_ID[redis]}
for case in small 100k; do
    UPSTREAM=$UP_PID PATH_COOKIE=$COOKIE STORE_PID=
    run_http "$case" direct "http://127.0.0.1:$UP_PORT/$case"
    run_http "$case" nginx "http://127.0.0.1:$NGX_PORT/$case" "${NGX_PIDS[@]}"
    UPSTREAM=${V_APP_PID[memory]}
    run_http "$case" vestibule "$VURL/$case" "${V_PID[memory]}"
    UPSTREAM=${V_POOL_PID[memory]}
    run_http "$case" vestibule-pool "$BASE/app_direct/pooled/$case" "${V_PID[memory]}"
    UPSTREAM=${V_APP_PID[redis]} PATH_COOKIE=${V_COOKIE[redis]} STORE_PID=$REDIS_PID
    run_http "$case" vestibule-redis "$RURL/$case" "${V_PID[redis]}"
done
PATH_COOKIE=$COOKIE
run_ws direct "ws://127.0.0.1:$UP_PORT/ws"
run_ws nginx "ws://127.0.0.1:$NGX_PORT/ws" "${NGX_PIDS[@]}"
run_ws vestibule "ws://127.0.0.1:$V_PORT/app_proxy/${V_ID[memory]}/ws" "${V_PID[memory]}"
PATH_COOKIE=${V_COOKIE[redis]}
run_ws vestibule-redis "ws://127.0.0.1:$VR_PORT/app_proxy/${V_ID[redis]}/ws" "${V_PID[redis]}"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
NGX_RSS_AFTER=$(rss_kib "${NGX_PIDS[@]}")
for mode in memory redis; do V_RSS_AFTER[$mode]=$(rss_kib "${V_PID[$mode]}"); done
REDIS_RSS_AFTER=$(rss_kib "$REDIS_PID")

# --- optional profile (after the measurements, so it cannot skew them) ------------------------
# BENCH_PROFILE=1 samples the vestibule server in both modes (and, for comparison, the nginx
# worker) under the small- and 100 KiB-response loads with perf (software clock: VMs often lack hardware counters) and writes
# the samples (perf.*.data, with DWARF call graphs) and a flat report next to the results.
if [[ ${BENCH_PROFILE:-} == 1 ]]; then
    command -v perf >/dev/null || die "BENCH_PROFILE=1 needs perf (apt-get install linux-perf)"
    PROF_DIR=$(dirname "$RESULTS")
    profile() { # name url pid [cookie]
        log "profiling $1 for ${DURATION}s"
        "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$((DURATION + 2))s" -H "Cookie: ${4:-$COOKIE}" "$2" >/dev/null &
        local wrk_pid=$!
        sleep 1
        perf record -q -e cpu-clock -F 999 --call-graph dwarf,8192 -p "$3" \
            -o "$PROF_DIR/perf.$1.data" -- sleep "$DURATION" >/dev/null 2>&1
        wait "$wrk_pid"
        perf report -i "$PROF_DIR/perf.$1.data" --no-children --no-inline -g none \
            --sort dso,symbol --stdio --percent-limit 0.3 2>/dev/null |
            grep -v '^$' >"$PROF_DIR/profile-$1-flat.txt" || true
        log "flat profile in $PROF_DIR/profile-$1-flat.txt; call graphs: perf report -i $PROF_DIR/perf.$1.data"
    }
    profile vestibule-small "$VURL/small" "${V_PID[memory]}"
    profile vestibule-redis-small "$RURL/small" "${V_PID[redis]}" "${V_COOKIE[redis]}"
    profile nginx-small "http://127.0.0.1:$NGX_PORT/small" "${NGX_PIDS[1]}"
    profile vestibule-100k "$VURL/100k" "${V_PID[memory]}"
    profile nginx-100k "http://127.0.0.1:$NGX_PORT/100k" "${NGX_PIDS[1]}"
fi

# --- report ----------------------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
val() { echo "${R[$1]:-—}"; }
verdict() { awk -v r="$1" -v lim="$2" 'BEGIN { if (r == "n/a") print "?"; else print (r <= lim ? "met" : "NOT met") }'; }

report() {
    echo "# vestibule proxy benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- machine: $NCPU CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), Linux $(uname -r); load average at start $LOAD_START, at end $LOAD_END"
    echo "- wrk: $THREADS thread(s), $CONNS connections, ${WARMUP}s warm-up + ${DURATION}s per case; the same Cookie header on every path"
    echo "- CPU: $PINNING; nginx $(nginx -v 2>&1 | sed 's|.*/||') with 1 worker; vestibule with TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-default}"
    echo "- vestibule: \`vestibule serve --config\` on a generated application.yml (process backend); path \"vestibule\" is the default memory mode, \"vestibule-redis\" the same config with \`proxy.store-mode: Redis\` against redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) (\`--save '' --appendonly no\`, on the load CPU)"
    echo "- proxy CPU = utime+stime of the proxy processes (nginx master+worker; the vestibule server only) over the measured run / requests; CLK_TCK=$CLK_TCK"
    echo
    echo "## HTTP"
    echo
    echo "| response | path | req/s | p50 ms | p99 ms | proxy CPU µs/req | upstream CPU µs/req | proxy RSS after MiB | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    local case path
    for case in small 100k; do
        for path in direct nginx vestibule vestibule-pool vestibule-redis; do
            local rss=—
            [[ -n ${R[$case.$path.rss]:-} ]] && rss=$(mib "${R[$case.$path.rss]}")
            echo "| $case | $path | $(fmt "${R[$case.$path.rps]}" 0) | $(ms "${R[$case.$path.p50]}") | $(ms "${R[$case.$path.p99]}") | $(val "$case.$path.cpu") | $(val "$case.$path.up_cpu") | $rss | ${R[$case.$path.errors]} |"
        done
    done
    echo
    echo "## WebSocket echo (one connection, $WS_MESSAGES sequential 128-byte messages)"
    echo
    echo "| path | RTT p50 µs | RTT p99 µs | proxy CPU µs/msg |"
    echo "|---|---:|---:|---:|"
    for path in direct nginx vestibule vestibule-redis; do
        echo "| $path | $(val "ws.$path.p50") | $(val "ws.$path.p99") | $(val "ws.$path.cpu") |"
    done
    echo
    echo "## Memory (VmRSS)"
    echo
    echo "| proxy | at start MiB | idle (logged in, instance running) MiB | after all load MiB |"
    echo "|---|---:|---:|---:|"
    echo "| nginx (master+worker) | — | $(mib "$NGX_RSS_IDLE") | $(mib "$NGX_RSS_AFTER") |"
    echo "| vestibule, memory mode (server process) | $(mib "${V_RSS_START[memory]}") | $(mib "${V_RSS_IDLE[memory]}") | $(mib "${V_RSS_AFTER[memory]}") |"
    echo "| vestibule, Redis mode (server process) | $(mib "${V_RSS_START[redis]}") | $(mib "${V_RSS_IDLE[redis]}") | $(mib "${V_RSS_AFTER[redis]}") |"
    echo "| redis-server | — | — | $(mib "$REDIS_RSS_AFTER") |"
    echo
    echo "## Ratios"
    echo
    echo "| measure | vestibule / nginx | vestibule / direct |"
    echo "|---|---:|---:|"
    for case in small 100k; do
        echo "| $case req/s | $(ratio "${R[$case.vestibule.rps]}" "${R[$case.nginx.rps]}") | $(ratio "${R[$case.vestibule.rps]}" "${R[$case.direct.rps]}") |"
        echo "| $case p50 | $(ratio "${R[$case.vestibule.p50]}" "${R[$case.nginx.p50]}") | $(ratio "${R[$case.vestibule.p50]}" "${R[$case.direct.p50]}") |"
        echo "| $case p99 | $(ratio "${R[$case.vestibule.p99]}" "${R[$case.nginx.p99]}") | $(ratio "${R[$case.vestibule.p99]}" "${R[$case.direct.p99]}") |"
        echo "| $case proxy CPU/req | $(ratio "${R[$case.vestibule.cpu]}" "${R[$case.nginx.cpu]}") | — |"
    done
    echo "| WebSocket RTT p50 | $(ratio "${R[ws.vestibule.p50]}" "${R[ws.nginx.p50]}") | $(ratio "${R[ws.vestibule.p50]}" "${R[ws.direct.p50]}") |"
    echo "| WebSocket RTT p99 | $(ratio "${R[ws.vestibule.p99]}" "${R[ws.nginx.p99]}") | $(ratio "${R[ws.vestibule.p99]}" "${R[ws.direct.p99]}") |"
    echo "| WebSocket proxy CPU/msg | $(ratio "${R[ws.vestibule.cpu]}" "${R[ws.nginx.cpu]}") | — |"
    echo "| RSS idle | $(ratio "${V_RSS_IDLE[memory]}" "$NGX_RSS_IDLE") | — |"
    echo
    echo "## Through a pool"
    echo
    echo "Path \"vestibule-pool\" is \`/app_direct/pooled/\` of a spec with \`pool: {min-instances: 1, max-instances: 1}\` (one member: the least-loaded pick, in-flight counting and the hold-queue check, with the same upstream) against \"vestibule\", a user's own instance at \`/app_proxy/<id>/\`."
    echo
    echo "| measure | own instance | pool | pool / own |"
    echo "|---|---:|---:|---:|"
    local m r
    for case in small 100k; do
        m=vestibule r=vestibule-pool
        echo "| $case req/s | $(fmt "${R[$case.$m.rps]}" 0) | $(fmt "${R[$case.$r.rps]}" 0) | $(ratio "${R[$case.$r.rps]}" "${R[$case.$m.rps]}") |"
        echo "| $case p50 ms | $(ms "${R[$case.$m.p50]}") | $(ms "${R[$case.$r.p50]}") | $(ratio "${R[$case.$r.p50]}" "${R[$case.$m.p50]}") |"
        echo "| $case proxy CPU µs/req | $(val "$case.$m.cpu") | $(val "$case.$r.cpu") | **$(ratio "${R[$case.$r.cpu]}" "${R[$case.$m.cpu]}")** |"
    done
    echo
    echo "## Memory mode and Redis mode"
    echo
    echo "| measure | memory mode | Redis mode | Redis / memory |"
    echo "|---|---:|---:|---:|"
    for case in small 100k; do
        m=vestibule r=vestibule-redis
        echo "| $case req/s | $(fmt "${R[$case.$m.rps]}" 0) | $(fmt "${R[$case.$r.rps]}" 0) | $(ratio "${R[$case.$r.rps]}" "${R[$case.$m.rps]}") |"
        echo "| $case p50 ms | $(ms "${R[$case.$m.p50]}") | $(ms "${R[$case.$r.p50]}") | $(ratio "${R[$case.$r.p50]}" "${R[$case.$m.p50]}") |"
        echo "| $case p99 ms | $(ms "${R[$case.$m.p99]}") | $(ms "${R[$case.$r.p99]}") | $(ratio "${R[$case.$r.p99]}" "${R[$case.$m.p99]}") |"
        echo "| $case proxy CPU µs/req | $(val "$case.$m.cpu") | $(val "$case.$r.cpu") | **$(ratio "${R[$case.$r.cpu]}" "${R[$case.$m.cpu]}")** |"
    done
    echo "| WebSocket RTT p50 µs | $(val ws.vestibule.p50) | $(val ws.vestibule-redis.p50) | $(ratio "${R[ws.vestibule-redis.p50]}" "${R[ws.vestibule.p50]}") |"
    echo "| WebSocket RTT p99 µs | $(val ws.vestibule.p99) | $(val ws.vestibule-redis.p99) | $(ratio "${R[ws.vestibule-redis.p99]}" "${R[ws.vestibule.p99]}") |"
    echo "| WebSocket proxy CPU µs/msg | $(val ws.vestibule.cpu) | $(val ws.vestibule-redis.cpu) | **$(ratio "${R[ws.vestibule-redis.cpu]}" "${R[ws.vestibule.cpu]}")** |"
    echo "| RSS at start MiB | $(mib "${V_RSS_START[memory]}") | $(mib "${V_RSS_START[redis]}") | $(ratio "${V_RSS_START[redis]}" "${V_RSS_START[memory]}") |"
    echo "| RSS idle MiB | $(mib "${V_RSS_IDLE[memory]}") | $(mib "${V_RSS_IDLE[redis]}") | $(ratio "${V_RSS_IDLE[redis]}" "${V_RSS_IDLE[memory]}") |"
    echo "| RSS after all load MiB | $(mib "${V_RSS_AFTER[memory]}") | $(mib "${V_RSS_AFTER[redis]}") | $(ratio "${V_RSS_AFTER[redis]}" "${V_RSS_AFTER[memory]}") |"
    echo
    echo "redis-server's own CPU while Redis mode was measured: $(val small.vestibule-redis.store_ticks) clock ticks ($(val small.vestibule-redis.store_cpu) µs per request) over the small-response run, $(val 100k.vestibule-redis.store_ticks) ($(val 100k.vestibule-redis.store_cpu) µs per request) over the 100 KiB run; a tick is $((1000 / CLK_TCK)) ms. The data path does not ask Redis; what Redis does is the leader lease, heartbeat flushes and the like."
    echo
    echo "## Targets"
    echo
    local rs r1 rw
    rs=$(ratio "${R[small.vestibule.cpu]}" "${R[small.nginx.cpu]}")
    r1=$(ratio "${R[100k.vestibule.cpu]}" "${R[100k.nginx.cpu]}")
    rw=$(ratio "${R[ws.vestibule.cpu]}" "${R[ws.nginx.cpu]}")
    echo "- CPU per proxied request ≤ 1.5× nginx: small ${rs}× ($(verdict "$rs" 1.5)), 100 KiB ${r1}× ($(verdict "$r1" 1.5)), WebSocket message ${rw}× ($(verdict "$rw" 1.5))"
    local idle
    idle=$(mib "${V_RSS_IDLE[memory]}")
    echo "- vestibule RSS idle < 30 MiB: $idle MiB ($(awk -v m="$idle" 'BEGIN { print (m < 30 ? "met" : "NOT met") }'))"
    local qs q1 qw
    qs=$(ratio "${R[small.vestibule-redis.cpu]}" "${R[small.vestibule.cpu]}")
    q1=$(ratio "${R[100k.vestibule-redis.cpu]}" "${R[100k.vestibule.cpu]}")
    qw=$(ratio "${R[ws.vestibule-redis.cpu]}" "${R[ws.vestibule.cpu]}")
    echo "- Redis-mode proxy CPU per request within 5 % of memory mode (≤ 1.05×): small ${qs}× ($(verdict "$qs" 1.05)), 100 KiB ${q1}× ($(verdict "$q1" 1.05)), WebSocket message ${qw}× ($(verdict "$qw" 1.05))"
}

mkdir -p "$(dirname "$RESULTS")"
report | tee "$RESULTS"
