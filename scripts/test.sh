#!/bin/sh
# The whole test suite: unit tests, property tests and the integration
# tests that run the real daemon in network namespaces. Run as root on
# Debian; installs the system tools the tests use.
set -eu

cd "$(dirname "$0")/.."
need=
command -v ip >/dev/null 2>&1 || need="$need iproute2"
if [ -n "$need" ]; then
    echo "test: installing$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086  # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

cargo test --all-targets
