#!/bin/sh
# Live demo: two veth ports in a network namespace, laggmond watching them
# as group "uplink" (driver none), the primary's carrier dropped and
# restored, then `laggmond status` and the event log. Run as root; cleans
# up after itself, also when interrupted.
set -eu

cd "$(dirname "$0")/.."
command -v ip >/dev/null 2>&1 || {
    echo "demo: installing iproute2" >&2
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it makes network namespaces)" >&2; exit 1; }

cargo build --quiet --release
bin=$PWD/target/release/laggmond

ns=lmdemo$$ peer=lmdemopeer$$
dir=$(mktemp -d "${TMPDIR:-/tmp}/laggmond-demo.XXXXXX")
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
for port in eth0 eth1; do
    ip link add "$port" netns "$ns" type veth peer name "$port" netns "$peer"
    ip -n "$ns" link set "$port" up
    ip -n "$peer" link set "$port" up
done

cat > "$dir/laggmond.yml" <<YML
socket: $dir/laggmond.sock
groups:
  uplink:
    driver: none
    ports: [eth0, eth1]
    preempt_delay: 2s
YML

ip netns exec "$ns" "$bin" run -f -c "$dir/laggmond.yml" --pidfile "$dir/laggmond.pid" 2>"$dir/log" &
pid=$!
lm() { "$bin" -s "$dir/laggmond.sock" "$@"; }
i=0
until lm status >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/log"; exit 1; }
    sleep 0.05
done

step() { printf '\n### %s\n' "$*"; }
step "both ports up"
lm status
# The kernel reports carrier changes of an interface at most about once a
# second (linkwatch), so the demo leaves each state in place that long.
sleep 1
step "eth0 loses carrier (its peer goes down)"
ip -n "$peer" link set eth0 down
sleep 1.2
lm status
step "eth0 comes back; traffic returns after the 2 s hold-down"
ip -n "$peer" link set eth0 up
sleep 2.5
lm status
step "the event log"
lm events
step "the daemon's own log (stderr in the foreground)"
cat "$dir/log"
