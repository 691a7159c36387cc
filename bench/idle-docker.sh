#!/usr/bin/env bash
# What N idle app containers cost the Docker engine while vestibule watches them: dockerd's CPU
# use over a quiet interval, read from /proc. vestibule learns of a container's exit from the
# end of its log stream, so an idle container should cost dockerd nothing per second.
#
#   bench/idle-docker.sh                 # 50 containers, 30 s
#   BENCH_IDLE_N=20 BENCH_IDLE_SECS=10 bench/idle-docker.sh
#
# Uses target/release/vestibule if built, else target/debug/vestibule (`cargo build` first);
# the image is busybox-static imported into a scratch image (no registry needed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_IDLE_N:-50}
SECS=${BENCH_IDLE_SECS:-30}
PORT=${BENCH_IDLE_PORT:-38180}
BIN=$ROOT/target/release/vestibule
[[ -x $BIN ]] || BIN=$ROOT/target/debug/vestibule
[[ -x $BIN ]] || { echo "build vestibule first (cargo build)" >&2; exit 1; }
IMAGE=vestibule-bench-busybox:1
WORK=$(mktemp -d)
trap 'kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null; rm -rf "$WORK"' EXIT

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    mkdir -p "$WORK/root/bin"
    cp /bin/busybox "$WORK/root/bin/busybox"
    tar -C "$WORK/root" -c . | docker import - "$IMAGE" >/dev/null
fi

cat >"$WORK/application.yml" <<YAML
proxy:
  port: $PORT
  bind-address: 127.0.0.1
  authentication: simple
  container-backend: docker
  realm-id: bench-idle-$$
  heartbeat-timeout: -1
  max-total-instances: -1
  users:
  - name: bench
    password: bench-password
  docker:
    port-range-start: 39200
  specs:
  - id: idle
    max-instances: -1
    container-image: $IMAGE
    container-cmd: ["/bin/busybox", "sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 3838 -h /www"]
    port: 3838
YAML

"$BIN" serve --config "$WORK/application.yml" >"$WORK/vestibule.log" 2>&1 &
VPID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/actuator/health" >/dev/null && break
    sleep 0.1
done
echo "launching $N containers..." >&2
for _ in $(seq "$N"); do
    code=$(curl -s -o "$WORK/launch.json" -w "%{http_code}" -u bench:bench-password -X POST "http://127.0.0.1:$PORT/api/proxy/idle")
    [[ $code == 201 ]] || { echo "launch refused ($code): $(cat "$WORK/launch.json")" >&2; tail -5 "$WORK/vestibule.log" >&2; exit 1; }
done
for _ in $(seq 300); do
    running=$(curl -sf -u bench:bench-password "http://127.0.0.1:$PORT/api/proxy" | grep -o '"status":"Up"' | wc -l || true)
    [[ $running -ge $N ]] && break
    sleep 0.2
done
[[ $running -ge $N ]] || { echo "only $running of $N running:" >&2; curl -s -u bench:bench-password "http://127.0.0.1:$PORT/api/proxy" | head -c 600 >&2; exit 1; }
echo "$running containers running; letting them settle for 5 s" >&2
sleep 5

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
DPID=$(pgrep -xo dockerd)
HZ=$(getconf CLK_TCK)
d0=$(ticks "$DPID"); v0=$(ticks "$VPID")
sleep "$SECS"
d1=$(ticks "$DPID"); v1=$(ticks "$VPID")
pct() { awk -v t="$1" -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.2f", 100 * t / hz / s }'; }
echo "| idle containers | seconds | dockerd CPU | vestibule CPU |"
echo "|---|---|---|---|"
echo "| $running | $SECS | $(pct $((d1 - d0))) % | $(pct $((v1 - v0))) % |"
