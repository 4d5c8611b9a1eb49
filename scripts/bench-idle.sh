#!/bin/sh
# Idle footprint of laggmond: the real daemon on two veth ports
# (driver none) in a network namespace; after it settles, a window with no
# link change. Prints, per thread and in total, the context switches
# (voluntary + nonvoluntary, from /proc/PID/task/*/status), the CPU time
# used (schedstat, ns), and the RSS (VmRSS, VmHWM). Run as root.
#
# Environment: IDLE_SECONDS (window, default 60), SETTLE_SECONDS (default
# 5), RESYNC (resync_interval, default 60s), LAGGMOND_BIN (default: build
# the release binary and use it).
set -eu

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-idle: run as root (it makes network namespaces)" >&2; exit 1; }
idle=${IDLE_SECONDS:-60}
settle=${SETTLE_SECONDS:-5}
resync=${RESYNC:-60s}
if [ -z "${LAGGMOND_BIN:-}" ]; then
    cargo build --quiet --release --bin laggmond
    LAGGMOND_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/laggmond
fi

ns=lmidle$$ peer=lmidlepeer$$
dir=$(mktemp -d "${TMPDIR:-/tmp}/laggmond-idle.XXXXXX")
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    ip netns del "$peer" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip netns add "$peer"
index=7101
for port in idle0 idle1; do
    # An index different from the far end's, as in the latency bench.
    ip link add name "$port" index "$index" netns "$ns" type veth \
        peer name "$port" index $((index + 1)) netns "$peer"
    ip -n "$ns" link set "$port" up
    ip -n "$peer" link set "$port" up
    index=$((index + 2))
done

cat > "$dir/laggmond.yml" <<YML
socket: $dir/laggmond.sock
resync_interval: $resync
groups:
  idle:
    driver: none
    ports: [idle0, idle1]
YML

ip netns exec "$ns" "$LAGGMOND_BIN" run -f -c "$dir/laggmond.yml" 2>"$dir/log" &
pid=$!
started=$(date +%s.%N)
sleep "$settle"
kill -0 "$pid" || { echo "bench-idle: laggmond exited:" >&2; cat "$dir/log" >&2; exit 1; }

# One line per thread: tid name switches cpu_ns.
threads() {
    for task in /proc/"$pid"/task/*; do
        tid=${task##*/}
        name=$(cat "$task/comm")
        switches=$(awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n }' "$task/status")
        cpu=$(awk '{ print $1 }' "$task/schedstat")
        echo "$tid $name $switches $cpu"
    done
}

threads > "$dir/before"
window_start=$(date +%s.%N)
sleep "$idle"
threads > "$dir/after"
window_end=$(date +%s.%N)

echo "laggmond $("$LAGGMOND_BIN" --version 2>/dev/null || true), pid $pid, resync_interval $resync"
awk -v s="$started" -v a="$window_start" -v b="$window_end" -v r="${resync%s}" 'BEGIN {
    printf "window: %.1f s to %.1f s after start; ", a - s, b - s
    if (r ~ /^[0-9]+$/) printf "resyncs due in it (every %d s): %d\n", r, int((b - s) / r) - int((a - s) / r)
    else print "resync_interval not in plain seconds: count its resyncs by hand" }'
printf '%-8s %-16s %10s %14s\n' tid thread switches cpu_us
join "$dir/before" "$dir/after" | awk '
    { sw = $6 - $3; cpu = ($7 - $4) / 1000; tsw += sw; tcpu += cpu
      printf "%-8s %-16s %10d %14.1f\n", $1, $2, sw, cpu }
    END { printf "%-8s %-16s %10d %14.1f\n", "all", "", tsw, tcpu }'
grep -E '^(VmRSS|VmHWM|Threads)' /proc/"$pid"/status
