#!/bin/sh
# The tests that need the Linux bonding driver (tests/bond_vm.rs), in a
# throw-away VM: build them and the daemon here, boot one VM that has the
# driver with the run-in-vm tool of the vmtest kit (checked out beside this
# repository, as shared/vmtest) and run them there as root. Exits with the
# tests' status. Arguments go to the test binary (a name filter, --exact).
# The first run installs QEMU and fetches a kernel; later runs boot in a
# few seconds.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
run_in_vm=$here/../../shared/vmtest/run-in-vm
cd "$here/.."
[ -x "$run_in_vm" ] || {
    echo "vmtest: $run_in_vm not found: the vmtest kit is expected beside this repository" >&2
    exit 1
}

# QEMU for the VM. The plain install fails on images that carry a newer
# qemu-utils from backports (the release's qemu then conflicts with it), so
# then qemu comes from backports too, whole, with its libraries; the extra
# source is removed again afterwards.
ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 && return 0
    echo "vmtest: installing qemu-system-x86" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1 && return 0
    # shellcheck disable=SC1091  # the system's own file
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || { echo "vmtest: no Debian mirror in the apt sources" >&2; exit 1; }
    list=/etc/apt/sources.list.d/laggmond-vmtest-backports.list
    echo "deb $mirror $codename-backports main" > "$list"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -t "$codename-backports" qemu-system-x86 >/dev/null ||
        { rm -f "$list"; echo "vmtest: could not install qemu-system-x86" >&2; exit 1; }
    rm -f "$list"
    apt-get update -qq
}
ensure_qemu

# The executable cargo built for target $2 of kind $1, from its JSON report.
executable() {
    printf '%s\n' "$build" |
        grep '"reason":"compiler-artifact"' |
        grep "\"kind\":\[\"$1\"\]" |
        grep "\"name\":\"$2\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
        tail -n 1
}

# Building an integration test also builds the daemon it may run.
build=$(cargo test --test bond_vm --no-run --message-format=json)
tests=$(executable test bond_vm)
daemon=$(executable bin laggmond)
if [ -z "$tests" ] || [ -z "$daemon" ]; then
    echo "vmtest: cargo did not report the bond_vm test or the laggmond binary" >&2
    exit 1
fi

# --add keeps absolute paths, so the daemon is where the build says it is.
started=$(date +%s)
status=0
"$run_in_vm" --timeout 240 \
    --add "$tests" --add "$daemon" \
    --env LAGGMOND_VM_TEST=1 --env LAGGMOND_BIN="$daemon" \
    --env RUST_TEST_THREADS=1 --env RUST_BACKTRACE=1 \
    -- "$tests" --nocapture "$@" || status=$?
echo "vmtest: exit status $status after $(($(date +%s) - started)) s in the VM" >&2
exit "$status"
