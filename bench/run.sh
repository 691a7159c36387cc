#!/usr/bin/env bash
# Compares, in one run on loopback, the same upstream reached (a) directly, (b) through nginx and
# (c) through vestibule's /app_proxy/<id>/ path: requests/s, p50/p99 latency, proxy CPU time per
# request, proxy RSS, for small and 100 KiB responses, plus WebSocket echo round trips.
# Writes a Markdown report to stdout and to bench/results/latest.md. See docs/benchmarks.md.
#
#   bench/run.sh                       # defaults: 10 s per case, 32 connections, 1 wrk thread
#   BENCH_DURATION=5 bench/run.sh      # shorter
#
# Settings (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, 2),
# BENCH_CONNECTIONS (32), BENCH_THREADS (wrk threads, 1), BENCH_WS_MESSAGES (20000),
# BENCH_PROXY_CPU / BENCH_LOAD_CPU (CPU numbers for the proxy and for wrk + upstream; default 1
# and 0 on a machine with two or more CPUs, no pinning on one CPU), BENCH_PORT_BASE (38080:
# vestibule on it, the upstream on +1, nginx on +2), BENCH_NO_BUILD=1 to skip cargo build,
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
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${need[*]}; install them (apt-get install ${need[*]})"
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# The Debian package may start a system nginx on :80; it is not used here and is left alone.

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
if ((NCPU >= 2)); then
    PROXY_CPU=${BENCH_PROXY_CPU:-1}
    LOAD_CPU=${BENCH_LOAD_CPU:-0}
    pin_proxy=(taskset -c "$PROXY_CPU")
    pin_load=(taskset -c "$LOAD_CPU")
    PINNING="proxy on CPU $PROXY_CPU; wrk, WebSocket client and upstream on CPU $LOAD_CPU"
else
    PROXY_CPU=
    LOAD_CPU=
    pin_proxy=()
    pin_load=()
    PINNING="no pinning (one CPU)"
fi

for p in "$V_PORT" "$UP_PORT" "$NGX_PORT"; do
    if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is in use (set BENCH_PORT_BASE)"; fi
done

# --- process bookkeeping ---------------------------------------------------------------------
TMP=$(mktemp -d /tmp/vestibule-bench.XXXXXX)
STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do
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

# --- vestibule -------------------------------------------------------------------------------
cat >"$TMP/vestibule.yml" <<EOF
proxy:
  port: $V_PORT
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: process
  heartbeat-timeout: -1
  users:
  - name: $USER_NAME
    password: $USER_PASSWORD
    groups: bench
  specs:
  - id: upstream
    container-cmd: ["$BIN/examples/bench_upstream"]
EOF
# One tokio worker thread: the same one-core budget as nginx's single worker.
export TOKIO_WORKER_THREADS=1
"$BIN/vestibule" check --config "$TMP/vestibule.yml" >"$TMP/check.log" 2>&1 ||
    die "vestibule rejects the generated config: $(cat "$TMP/check.log")"
"${pin_proxy[@]}" "$BIN/vestibule" serve --config "$TMP/vestibule.yml" >"$TMP/vestibule.log" 2>&1 &
V_PID=$!
STARTED+=("$V_PID")
wait_http "http://127.0.0.1:$V_PORT/actuator/health" "vestibule"
V_RSS_START=$(rss_kib "$V_PID")

BASE=http://127.0.0.1:$V_PORT
JAR=$TMP/cookies.txt
login_page=$(curl -fsS -c "$JAR" -b "$JAR" "$BASE/login")
login_csrf=$(grep -o 'name="_csrf" value="[^"]*"' <<<"$login_page" | head -1 | sed 's/.*value="//; s/"$//')
[[ -n $login_csrf ]] || die "no _csrf field on the login page"
code=$(curl -sS -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" \
    --data-urlencode "username=$USER_NAME" --data-urlencode "password=$USER_PASSWORD" \
    --data-urlencode "_csrf=$login_csrf" --data-urlencode "next=/" "$BASE/login")
[[ $code == 303 ]] || die "login answered $code, expected 303"
SESSION=$(awk '$6 == "vestibule_session" {print $7}' "$JAR")
[[ -n $SESSION ]] || die "login set no vestibule_session cookie"
COOKIE="vestibule_session=$SESSION"

view=$(curl -fsS -u "$USER_NAME:$USER_PASSWORD" -X POST "$BASE/api/proxy/upstream")
ID=$(jq -r .id <<<"$view")
status=$(jq -r .status <<<"$view")
for _ in $(seq 12); do
    [[ $status == starting ]] || break
    view=$(curl -fsS -u "$USER_NAME:$USER_PASSWORD" "$BASE/api/proxy/$ID/status?watch=true&timeout=5")
    status=$(jq -r .status <<<"$view")
done
[[ $status == running ]] || die "instance $ID is $status: $view"
# The supervisor and the app inherited the proxy's CPU; move them to the load side, like the
# upstream that direct and nginx use.
if [[ -n $LOAD_CPU ]]; then
    for p in $(descendants "$V_PID"); do taskset -a -p -c "$LOAD_CPU" "$p" >/dev/null; done
fi
V_APP_PID=$(for p in $(descendants "$V_PID"); do
    [[ $(readlink "/proc/$p/exe") == */bench_upstream ]] && echo "$p"
done | head -1)
[[ -n $V_APP_PID ]] || die "cannot find the app process under vestibule"
curl -fsS -o /dev/null -H "Cookie: $COOKIE" "$BASE/app_proxy/$ID/small" ||
    die "the app does not answer through /app_proxy/$ID/"

sleep 1
NGX_RSS_IDLE=$(rss_kib "${NGX_PIDS[@]}")
V_RSS_IDLE=$(rss_kib "$V_PID")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# BENCH_HOLD=1: set everything up, say how to reach it, and wait (for profiling by hand).
if [[ ${BENCH_HOLD:-} == 1 ]]; then
    log "holding; Ctrl-C to stop"
    log "direct http://127.0.0.1:$UP_PORT/ (pid $UP_PID)"
    log "nginx http://127.0.0.1:$NGX_PORT/ (pids ${NGX_PIDS[*]})"
    log "vestibule $BASE/app_proxy/$ID/ (pid $V_PID, app pid $V_APP_PID)"
    log "cookie: $COOKIE"
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

# run_http <case> <path> <url> <proxy pids…>; the upstream pid is $UPSTREAM for this path.
run_http() {
    local case=$1 path=$2 url=$3
    shift 3
    local pids=("$@") out c0 c1 u0 u1 reqs errs
    log "$case via $path: warm-up ${WARMUP}s, then ${DURATION}s"
    "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -H "Cookie: $COOKIE" "$url" >/dev/null
    c0=$(cpu_ticks "${pids[@]}")
    u0=$(cpu_ticks "$UPSTREAM")
    out=$("${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Cookie: $COOKIE" "$url")
    c1=$(cpu_ticks "${pids[@]}")
    u1=$(cpu_ticks "$UPSTREAM")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    errs=$(awk '/Non-2xx or 3xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
    R[$case.$path.rps]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    R[$case.$path.p50]=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    R[$case.$path.p99]=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    R[$case.$path.errors]=$errs
    R[$case.$path.requests]=$reqs
    R[$case.$path.up_cpu]=$(awk -v t=$((u1 - u0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
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
    out=$("${pin_load[@]}" "$BIN/examples/bench_ws" "$url" --cookie "$COOKIE" -n "$WS_MESSAGES")
    c1=$(cpu_ticks "${pids[@]}")
    msgs=$(grep -o 'messages=[0-9]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.p50]=$(grep -o 'p50_us=[0-9.]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.p99]=$(grep -o 'p99_us=[0-9.]*' <<<"$out" | cut -d= -f2)
    R[ws.$path.msgs]=$msgs
    if ((${#pids[@]})); then
        R[ws.$path.cpu]=$(awk -v t=$((c1 - c0)) -v n="$msgs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
    fi
}

VURL=$BASE/app_proxy/$ID
for case in small 100k; do
    UPSTREAM=$UP_PID
    run_http "$case" direct "http://127.0.0.1:$UP_PORT/$case"
    run_http "$case" nginx "http://127.0.0.1:$NGX_PORT/$case" "${NGX_PIDS[@]}"
    UPSTREAM=$V_APP_PID
    run_http "$case" vestibule "$VURL/$case" "$V_PID"
done
run_ws direct "ws://127.0.0.1:$UP_PORT/ws"
run_ws nginx "ws://127.0.0.1:$NGX_PORT/ws" "${NGX_PIDS[@]}"
run_ws vestibule "ws://127.0.0.1:$V_PORT/app_proxy/$ID/ws" "$V_PID"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
NGX_RSS_AFTER=$(rss_kib "${NGX_PIDS[@]}")
V_RSS_AFTER=$(rss_kib "$V_PID")

# --- optional profile (after the measurements, so it cannot skew them) ------------------------
# BENCH_PROFILE=1 samples the vestibule server (and, for comparison, the nginx worker) under the
# small- and 100 KiB-response loads with perf (software clock: VMs often lack hardware counters) and writes
# the samples (perf.*.data, with DWARF call graphs) and a flat report next to the results.
if [[ ${BENCH_PROFILE:-} == 1 ]]; then
    command -v perf >/dev/null || die "BENCH_PROFILE=1 needs perf (apt-get install linux-perf)"
    PROF_DIR=$(dirname "$RESULTS")
    profile() { # name url pid
        log "profiling $1 for ${DURATION}s"
        "${pin_load[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$((DURATION + 2))s" -H "Cookie: $COOKIE" "$2" >/dev/null &
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
    profile vestibule-small "$VURL/small" "$V_PID"
    profile nginx-small "http://127.0.0.1:$NGX_PORT/small" "${NGX_PIDS[1]}"
    profile vestibule-100k "$VURL/100k" "$V_PID"
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
    echo "- CPU: $PINNING; nginx $(nginx -v 2>&1 | sed 's|.*/||') with 1 worker; vestibule with TOKIO_WORKER_THREADS=1"
    echo "- vestibule: \`vestibule serve --config\` on a generated application.yml (process backend)"
    echo "- proxy CPU = utime+stime of the proxy processes (nginx master+worker; the vestibule server only) over the measured run / requests; CLK_TCK=$CLK_TCK"
    echo
    echo "## HTTP"
    echo
    echo "| response | path | req/s | p50 ms | p99 ms | proxy CPU µs/req | upstream CPU µs/req | proxy RSS after MiB | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    local case path
    for case in small 100k; do
        for path in direct nginx vestibule; do
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
    for path in direct nginx vestibule; do
        echo "| $path | $(val "ws.$path.p50") | $(val "ws.$path.p99") | $(val "ws.$path.cpu") |"
    done
    echo
    echo "## Memory (VmRSS)"
    echo
    echo "| proxy | at start MiB | idle (logged in, instance running) MiB | after all load MiB |"
    echo "|---|---:|---:|---:|"
    echo "| nginx (master+worker) | — | $(mib "$NGX_RSS_IDLE") | $(mib "$NGX_RSS_AFTER") |"
    echo "| vestibule (server process) | $(mib "$V_RSS_START") | $(mib "$V_RSS_IDLE") | $(mib "$V_RSS_AFTER") |"
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
    echo "| RSS idle | $(ratio "$V_RSS_IDLE" "$NGX_RSS_IDLE") | — |"
    echo
    echo "## Targets"
    echo
    local rs r1 rw
    rs=$(ratio "${R[small.vestibule.cpu]}" "${R[small.nginx.cpu]}")
    r1=$(ratio "${R[100k.vestibule.cpu]}" "${R[100k.nginx.cpu]}")
    rw=$(ratio "${R[ws.vestibule.cpu]}" "${R[ws.nginx.cpu]}")
    echo "- CPU per proxied request ≤ 1.5× nginx: small ${rs}× ($(verdict "$rs" 1.5)), 100 KiB ${r1}× ($(verdict "$r1" 1.5)), WebSocket message ${rw}× ($(verdict "$rw" 1.5))"
    local idle
    idle=$(mib "$V_RSS_IDLE")
    echo "- vestibule RSS idle < 30 MiB: $idle MiB ($(awk -v m="$idle" 'BEGIN { print (m < 30 ? "met" : "NOT met") }'))"
}

mkdir -p "$(dirname "$RESULTS")"
report | tee "$RESULTS"
