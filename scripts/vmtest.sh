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
