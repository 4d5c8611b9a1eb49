#!/bin/sh
# The FreeBSD header check. FreeBSD cannot run here, so the kernel
# interface in src/platform/freebsd/abi.rs is checked against FreeBSD's
# own headers instead: every size, alignment, field offset and constant
# listed in tests/freebsd-abi/items is read from the headers by compiling
# a C file for FreeBSD amd64 (values taken from the assembly), and
# asserted equal to the Rust value by compiling abi.rs for
# x86_64-unknown-freebsd with generated assertions. Both the libc items
# abi.rs re-exports on FreeBSD and the mirrors it uses elsewhere are
# compared. A difference fails the build with an error naming the item.
#
# The headers are FreeBSD's installed headers (FreeBSD 15 era; if_lagg.h
# as in stable/14) shipped in the ziglang wheel, downloaded once and kept
# in $LAGGMOND_ABI_CACHE (by default ~/.cache/laggmond-abi). Run as root
# on Debian: installs clang if missing.
set -eu

cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.17.1
TARGET=x86_64-unknown-freebsd
cache=${LAGGMOND_ABI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/laggmond-abi}
headers=$cache/ziglang-$ZIGLANG_VERSION
items=tests/freebsd-abi/items
work=target/freebsd-abi

need=
command -v clang >/dev/null 2>&1 || need="$need clang"
command -v python3 >/dev/null 2>&1 || need="$need python3"
if ! python3 -m pip --version >/dev/null 2>&1; then
    need="$need python3-pip"
fi
if [ -n "$need" ]; then
    echo "freebsd-abi: installing$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086  # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" >/dev/null
fi

# The headers: the wheel is a zip; only the two trees an amd64 FreeBSD
# compiler searches are kept.
if [ ! -f "$headers/complete" ]; then
    mkdir -p "$cache"
    set -- "$cache"/ziglang-"$ZIGLANG_VERSION"-*.whl
    if [ ! -f "$1" ]; then
        echo "freebsd-abi: downloading ziglang $ZIGLANG_VERSION" >&2
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --dest "$cache" "ziglang==$ZIGLANG_VERSION"
        set -- "$cache"/ziglang-"$ZIGLANG_VERSION"-*.whl
    fi
    rm -rf "$headers"
    python3 - "$1" "$headers" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "ziglang/lib/libc/include/"
trees = ("x86_64-freebsd-none/", "generic-freebsd/")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        rel = name[len(prefix):]
        if name.startswith(prefix) and rel.startswith(trees) and not name.endswith("/"):
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(z.read(name))
EOF
    touch "$headers/complete"
    # The headers are all that is used: the rest of the wheel goes.
    rm -f "$1"
fi

mkdir -p "$work"

# From the table: the C file, whose constant laggmond_N is the header's
# value of item N, and the plan, one Rust assertion a line as
# "N<TAB>label<TAB>Rust expression" (two for a libc item: libc's value
# and the mirror's).
awk -v c="$work/headers.c" -v plan="$work/plan" '
function item(label, cexpr, rexpr, mexpr) {
    n++
    printf "const long long laggmond_%d = %s;\n", n, cexpr > c
    if (origin == "libc") {
        printf "%d\t%s (libc)\t%s\n", n, label, rexpr > plan
        printf "%d\t%s (mirror)\t%s\n", n, label, mexpr > plan
    } else {
        printf "%d\t%s\t%s\n", n, label, rexpr > plan
    }
}
function rust(name) { return (origin == "libc" ? "mirror::" : "") name }
BEGIN { printf "#include \"headers.h\"\n" > c }
/^[ \t]*(#|$)/ { next }
/^[ \t]/ {
    if (kind != "struct") { print "freebsd-abi: " FILENAME ":" FNR ": field outside a struct" > "/dev/stderr"; exit 1 }
    for (i = 1; i <= NF; i++)
        item(cname "." $i " offset", "offsetof(struct " cname ", " $i ")",
             "offset_of!(" rname ", " $i ")", "offset_of!(" rust(rname) ", " $i ")")
    next
}
{
    kind = $1; origin = $2; cname = $3; rname = (NF > 3 ? $4 : $3)
    if ((kind != "struct" && kind != "const") || (origin != "libc" && origin != "own") || NF < 3) {
        print "freebsd-abi: " FILENAME ":" FNR ": not an item: " $0 > "/dev/stderr"; exit 1
    }
    if (kind == "struct") {
        item(cname " size", "sizeof(struct " cname ")",
             "size_of::<" rname ">()", "size_of::<" rust(rname) ">()")
        item(cname " alignment", "_Alignof(struct " cname ")",
             "align_of::<" rname ">()", "align_of::<" rust(rname) ">()")
    } else {
        item(cname, cname, rname, rust(rname))
    }
}
' "$items"

clang --target=x86_64-unknown-freebsd14 -nostdinc \
    -isystem "$headers/x86_64-freebsd-none" -isystem "$headers/generic-freebsd" \
    -I tests/freebsd-abi -Werror -S -o "$work/headers.s" "$work/headers.c"

# The header's values, "N value" a line, from the assembly.
awk '
/^laggmond_[0-9]+:$/ { n = substr($0, 10, length($0) - 10); next }
n != "" && $1 == ".quad" { print n, $2; n = ""; next }
n != "" && $1 == ".zero" { print n, 0; n = ""; next }
' "$work/headers.s" >"$work/values"

awk -v out="$work/asserts.rs" '
NR == FNR { value[$1] = $2; next }
{
    split($0, f, "\t")
    if (!(f[1] in value)) { print "freebsd-abi: no header value for " f[2] > "/dev/stderr"; exit 1 }
    printf "const _: () = check(\"%s\", %s, (%s) as i128);\n", f[2], value[f[1]], f[3] > out
    count++
}
END { print count }
' "$work/values" "$work/plan" >"$work/count"

asserts=$(pwd)/$work/asserts.rs
if ! LAGGMOND_ABI_ASSERTS=$asserts cargo rustc --quiet --lib --profile check \
    --target "$TARGET" -- --cfg laggmond_abi_check 2>"$work/cargo.log"; then
    if grep -q 'evaluation panicked: ' "$work/cargo.log"; then
        echo "freebsd-abi: abi.rs disagrees with FreeBSD's headers:" >&2
        sed -n 's/.*evaluation panicked: /  /p' "$work/cargo.log" >&2
    else
        cat "$work/cargo.log" >&2
    fi
    exit 1
fi
echo "freebsd-abi: $(cat "$work/count") values agree with FreeBSD's headers (ziglang $ZIGLANG_VERSION)"
