#!/bin/sh
# The whole test suite: shell and manual-page lint, unit tests, property
# tests, the integration tests that run the real daemon in network
# namespaces, and the bonding tests in a VM. Run as root on Debian;
# installs the system tools the tests use.
set -eu

cd "$(dirname "$0")/.."
need=
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
command -v mandoc >/dev/null 2>&1 || need="$need mandoc"
if [ -n "$need" ]; then
    echo "test: installing$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086  # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

# The rc.d script and every shell script, as the POSIX sh that runs them.
shellcheck -s sh rc.d/laggmond scripts/*.sh tests/rc.subr/*
# The manual pages: any mandoc warning fails the run.
mandoc -Tlint -W warning man/*

# The FreeBSD code, which cannot run here: its kernel interface against
# FreeBSD's headers, and the lints as the FreeBSD build sees them.
sh scripts/freebsd-abi.sh
cargo clippy --all-targets --target x86_64-unknown-freebsd -- -D warnings

cargo test --all-targets

# The bonding tests, in a VM whose kernel has the bonding driver.
sh scripts/vmtest.sh
