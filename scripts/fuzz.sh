#!/bin/sh
# Runs every fuzz target for a while: the control request parser, the
# config loader, the routing-message parser and the ARP reply parser.
#
#   scripts/fuzz.sh [SECONDS]    (default 60 per target)
#
# Needs a nightly toolchain and cargo-fuzz. Corpora live in fuzz/corpus
# and grow across runs; crashing inputs land in fuzz/artifacts/TARGET.
# Exits non-zero if any target crashed, after running all of them.
set -eu

seconds=${1:-60}
case $seconds in
    '' | *[!0-9]*)
        echo "usage: $0 [SECONDS]" >&2
        exit 2
        ;;
esac

cd "$(dirname "$0")/.."

# Starts each corpus from real inputs so the fuzzer begins inside the
# grammar instead of having to discover it.
seed_corpora() {
    mkdir -p fuzz/corpus/config fuzz/corpus/control_request fuzz/corpus/routing_message \
        fuzz/corpus/arp_reply
    cp etc/laggmond.yml.sample tests/configs/bad/*.yml fuzz/corpus/config/
    seed_request status '{"cmd":"status"}'
    seed_request status_group '{"cmd":"status","group":"lagg0"}'
    seed_request events '{"cmd":"events","n":10,"follow":true}'
    seed_request metrics '{"cmd":"metrics"}'
    seed_request reload '{"cmd":"reload"}'
    seed_request set_active '{"cmd":"set-active","group":"lagg0","port":"em0"}'
    seed_request set_active_clear '{"cmd":"set-active","group":"lagg0","port":null}'
    seed_request clear_damping '{"cmd":"clear-damping","group":"lagg0","port":"em1"}'
    seed_arp_replies
}

# The ARP target reads its first 6 bytes as our MAC, then a frame. The
# seeds: a reply to us, the same padded to 60 bytes, our own request,
# and a reply with an 802.1Q tag (which the parser refuses).
seed_arp_replies() {
    ours='02 00 5e 10 20 30'
    router='00 1b 21 aa bb cc'
    arp_reply="08 06 00 01 08 00 06 04 00 02 $router c0 00 02 01 $ours 00 00 00 00"
    seed_bytes reply "$ours $ours $router $arp_reply"
    seed_bytes reply_padded "$ours $ours $router $arp_reply $(repeat 00 18)"
    seed_bytes request "$ours ff ff ff ff ff ff $ours 08 06 00 01 08 00 06 04 00 01 $ours 00 00 00 00 00 00 00 00 00 00 c0 00 02 01"
    seed_bytes reply_tagged "$ours $ours $router 81 00 00 0a $arp_reply"
}

# Writes bytes given in hex, separated by spaces, to an arp_reply seed.
seed_bytes() {
    for byte in $2; do
        # shellcheck disable=SC2059 # the format is the byte, in octal
        printf "\\$(printf %03o "0x$byte")"
    done >"fuzz/corpus/arp_reply/$1"
}

# COUNT copies of BYTE, separated by spaces.
repeat() {
    i=0
    while [ "$i" -lt "$2" ]; do
        printf '%s ' "$1"
        i=$((i + 1))
    done
}

# The control target reads its first byte as a framing control, so seeds
# start with one (chunks of 16 bytes) followed by a request line.
seed_request() {
    printf '\017%s\n' "$2" >"fuzz/corpus/control_request/$1"
}

# Largest input libFuzzer may try: control requests are capped at 64 KiB
# per line, and configs that large are already far past any real one.
max_len() {
    case $1 in
        routing_message) echo 4096 ;;
        # Our MAC and a frame: the parser reads 42 bytes and must skip
        # the rest, which a little padding shows as well as a jumbo frame.
        arp_reply) echo 128 ;;
        *) echo 65536 ;;
    esac
}

seed_corpora
cargo +nightly fuzz build

failed=""
for target in control_request config routing_message arp_reply; do
    echo "== $target: ${seconds}s" >&2
    if ! cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" \
        -max_len="$(max_len "$target")" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -print_final_stats=1; then
        failed="$failed $target"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz targets failed:$failed (inputs in fuzz/artifacts)" >&2
    exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash" >&2
