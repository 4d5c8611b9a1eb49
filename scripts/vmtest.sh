#!/bin/sh
# The tests that need the Linux bonding driver (tests/bond_vm.rs), in a
# throw-away VM: build them and the daemon here, boot Debian's own kernel
# with virtme-ng and run them there as root. The guest sees this machine's
# file system read-only (writes land in memory), so the binaries run where
# cargo built them. Exits with the tests' status; arguments go to the test
# binary (a name filter, --exact).
#
# Everything it needs comes from package registries and is cached under
# $LAGGMOND_VMTEST_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/laggmond-vmtest):
# Debian's QEMU, udev, kmod and busybox-static (installed with apt-get),
# virtme-ng (pinned, in a virtual environment) and the kernel package
# (fetched with apt-get download and unpacked there, never installed).
#
# LAGGMOND_VMTEST_ACCEL=kvm|tcg overrides the choice of accelerator.
set -eu

VIRTME_NG_VERSION=1.42
# Debian's generic kernel: the cloud flavour has no 9p, and Debian 12 has
# no virtiofsd that virtme-ng accepts, so 9p is how the guest sees files.
KERNEL_PACKAGE=linux-image-amd64

began=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cache=${LAGGMOND_VMTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/laggmond-vmtest}
mkdir -p "$cache"

say() { echo "vmtest: $*" >&2; }
die() { say "$*"; exit 1; }

# Whatever this run leaves must go, however it ends: the VM, the extra apt
# source, temporary files.
backports_list=/etc/apt/sources.list.d/laggmond-vmtest-backports.list
vm=
scratch=
# shellcheck disable=SC2317  # run by the trap
cleanup() {
    [ -z "$vm" ] || kill -TERM -- "-$vm" 2>/dev/null || kill -TERM "$vm" 2>/dev/null || true
    [ ! -e "$backports_list" ] || { rm -f "$backports_list"; apt-get update -qq || true; }
    [ -z "$scratch" ] || rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# One run at a time per cache: a second waits instead of unpacking over
# the kernel the first is booting.
exec 9>"$cache/lock"
if ! flock -n 9; then
    say "waiting for another run using $cache"
    flock 9
fi
scratch=$(mktemp -d "$cache/run.XXXXXX")

apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return 0
    apt-get update -qq
    apt_updated=1
}

apt_install() {
    say "installing $*"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# QEMU for the VM. The plain install fails on images that carry a newer
# qemu-utils from backports (the release's qemu then conflicts with it), so
# then qemu comes from backports too, whole, with its libraries; the extra
# source is removed again afterwards.
ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 && return 0
    apt_install qemu-system-x86 && return 0
    say "the release's QEMU cannot be installed here; trying backports"
    # shellcheck disable=SC1091  # the system's own file
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mirror=$(release_mirror "$codename")
    [ -n "$mirror" ] || die "no Debian mirror for $codename in the apt sources"
    echo "deb $mirror $codename-backports main" > "$backports_list"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t "$codename-backports" qemu-system-x86 >/dev/null ||
        die "could not install qemu-system-x86"
    rm -f "$backports_list"
    apt-get update -qq
}

# The mirror that serves the release $1 itself (not another source's).
release_mirror() {
    for sources in /etc/apt/sources.list.d/*.sources; do
        [ -f "$sources" ] || continue
        # Stanzas are separated by blank lines; take one whose Suites has $1.
        awk -v suite="$1" '
            /^[[:space:]]*$/ { if (uri != "" && found) { print uri; exit } uri = ""; found = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
            END { if (uri != "" && found) print uri }
        ' "$sources"
    done | head -n 1
    [ ! -f /etc/apt/sources.list ] ||
        awk -v suite="$1" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list
}

# What virtme-ng needs on the host, and what the guest runs from it: udev
# names the serial ports the command's output and exit status come back
# on, kmod loads the bonding driver, busybox builds the initramfs.
ensure_tools() {
    need=
    command -v udevadm >/dev/null 2>&1 || need="$need udev"
    command -v modprobe >/dev/null 2>&1 || need="$need kmod"
    [ -x /bin/busybox ] || need="$need busybox-static"
    command -v file >/dev/null 2>&1 || need="$need file"
    command -v ip >/dev/null 2>&1 || need="$need iproute2"
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
    # shellcheck disable=SC2086  # a list of package names
    [ -z "$need" ] || apt_install $need
}

# virtme-ng, pinned, in its own virtual environment.
ensure_virtme_ng() {
    venv=$cache/venv
    stamp=$venv/laggmond-virtme-ng
    if [ "$(cat "$stamp" 2>/dev/null)" != "$VIRTME_NG_VERSION" ]; then
        say "installing virtme-ng $VIRTME_NG_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION"
        echo "$VIRTME_NG_VERSION" > "$stamp"
    fi
    # vng runs its siblings (virtme-run) by name.
    PATH=$venv/bin:$PATH
    export PATH
}

# The kernel image the meta package points at today, unpacked into the
# cache once per version; the newest cached one when the archive cannot be
# asked. Sets $kernel.
kernel_image_package() {
    apt-cache depends "$KERNEL_PACKAGE" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

ensure_kernel() {
    image=$(kernel_image_package)
    if [ -z "$image" ]; then
        apt_update || true
        image=$(kernel_image_package)
    fi
    if [ -n "$image" ]; then
        root=$cache/kernel/$image
        if [ ! -d "$root/boot" ]; then
            say "fetching $image"
            # A stale package list may name a version the archive dropped.
            download "$image" || { apt_update && download "$image"; } ||
                die "could not download $image"
            rm -rf "$root.new"
            mkdir -p "$cache/kernel"
            dpkg -x "$scratch"/*.deb "$root.new" || die "could not unpack $image"
            mv "$root.new" "$root"
            # Only the kernel in use is kept: each takes half a gigabyte.
            for old in "$cache"/kernel/*; do
                [ "$old" = "$root" ] || rm -rf "$old"
            done
        fi
    fi
    kernel=
    for candidate in "$cache"/kernel/"${image:-*}"/boot/vmlinuz-*; do
        [ -f "$candidate" ] && kernel=$candidate
    done
    [ -n "$kernel" ] || die "could not resolve $KERNEL_PACKAGE, and no kernel is cached"
    [ -n "$image" ] || say "could not resolve $KERNEL_PACKAGE; using the cached $(basename "$kernel")"
}

# Downloads package $1 into the scratch directory.
download() {
    rm -f "$scratch"/*.deb
    # -o APT::Sandbox::User=root: the cache may be in a private home.
    (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User=root "$1")
}

# KVM when the host really offers it (a nested /dev/kvm without the vendor
# module crashes QEMU), otherwise software emulation. Sets $accel.
choose_accel() {
    accel=${LAGGMOND_VMTEST_ACCEL:-}
    if [ -z "$accel" ]; then
        accel=tcg
        if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
            { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
            accel=kvm
        fi
    fi
    case $accel in
        kvm) accel_flag= ;;
        tcg) accel_flag=--disable-kvm ;;
        *) die "LAGGMOND_VMTEST_ACCEL must be kvm or tcg, not $accel" ;;
    esac
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

ensure_qemu
ensure_tools
ensure_virtme_ng
ensure_kernel
choose_accel

# Building an integration test also builds the daemon it may run.
build=$(cargo test --test bond_vm --no-run --message-format=json)
tests=$(executable test bond_vm)
daemon=$(executable bin laggmond)
if [ -z "$tests" ] || [ -z "$daemon" ]; then
    die "cargo did not report the bond_vm test or the laggmond binary"
fi

# The guest command: the bonding driver without its automatic bond0, then
# the tests, each of their arguments quoted for the guest's shell.
guest="modprobe bonding max_bonds=0 && exec env LAGGMOND_VM_TEST=1 RUST_TEST_THREADS=1 RUST_BACKTRACE=1 '$tests' --nocapture"
for argument in "$@"; do
    quoted=$(printf '%s' "$argument" | sed "s/'/'\\\\''/g")
    guest="$guest '$quoted'"
done

# Drivers that udev would load for the emulated machine's devices (KVM,
# SATA, CD-ROM, watchdogs, input, crypto): none is used, and loading them
# on an emulated CPU takes most of the boot.
unused=kvm,kvm_amd,kvm_intel,powernow_k8,ahci,sr_mod,cdrom,sg,i6300esb,iTCO_wdt,lpc_ich
unused=$unused,i2c_i801,pcspkr,psmouse,serio_raw,joydev,evdev,button
unused=$unused,aesni_intel,ghash_clmulni_intel,crc32_pclmul

say "booting $(basename "$kernel") ($accel)"
started=$(date +%s)
# QEMU reopens this process's stdout and stderr by their /proc paths: on
# a regular file that starts a second write offset over the first, so its
# output goes through a FIFO that cat copies out. Its stdin may be closed
# under CI. The VM runs in its own session, in the background, so that an
# interrupted run can end it (see cleanup).
mkfifo "$scratch/output"
cat "$scratch/output" &
reader=$!
status=0
setsid timeout --kill-after=10 600 vng --run "$kernel" --force-9p ${accel_flag:+"$accel_flag"} \
    --cpus 2 --memory 1G --append "modprobe.blacklist=$unused" \
    -- sh -c "$guest" </dev/null >"$scratch/output" 2>&1 &
vm=$!
wait "$vm" || status=$?
vm=
wait "$reader" || true
now=$(date +%s)
say "exit status $status after $((now - started)) s in the VM, $((now - began)) s in all"
exit "$status"
