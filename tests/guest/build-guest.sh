#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# build-guest.sh [OUTDIR] — build the tiny Linux test guest for kvm-launch (cached, idempotent).
#
# Output (OUTDIR defaults to $KL_GUEST_CACHE, then /var/cache/kvm-launch-tests/guest):
#   OUTDIR/vmlinuz       Debian's linux-image-6.1.0-*-cloud-amd64 kernel (newest apt knows of)
#   OUTDIR/initrd.gz     busybox-static + kl-guest-io + the virtio modules + tests/guest/init
#   OUTDIR/kl-guest-io   the static helper; it also runs on the host: `kl-guest-io verify FILE SEED MIB`
# On success stdout holds only shell assignments, so callers can `eval "$(build-guest.sh DIR)"`:
#   KL_GUEST_KERNEL=...  KL_GUEST_INITRD=...  KL_GUEST_HELPER=...
# Progress goes to stderr.  Exit 0 ok, 1 build failure, 77 when a needed tool or package is unavailable.
#
# Nothing is rebuilt while vmlinuz and initrd.gz are newer than this script, init and kl-guest-io.c.  The downloaded
# kernel is kept in OUTDIR/kernel/ and reused for later initrd rebuilds; KL_GUEST_REFRESH_KERNEL=1 fetches it again.
#
# Boot it (TCG; -no-reboot turns a guest panic or reboot into a QEMU exit):
#   qemu-system-x86_64 -accel tcg -m 512 -nographic -nodefaults -no-reboot -serial stdio \
#     -kernel OUTDIR/vmlinuz -initrd OUTDIR/initrd.gz \
#     -append "console=ttyS0 quiet panic=-1 kl.cmd=report,randio:vda:8:3,pattern:vdb:42:16" \
#     -drive file=disk.raw,format=raw,if=none,id=d0,cache=none,aio=threads -device virtio-blk-pci,drive=d0
# Commands understood by kl.cmd= are listed at the top of tests/guest/init; tests grep the serial output for `KL `.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-${KL_GUEST_CACHE:-/var/cache/kvm-launch-tests/guest}}
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
    scsi_common scsi_mod sd_mod virtio_scsi) # the last four only for virtio-scsi disks; init loads them on demand

msg() { echo "build-guest: $*" >&2; }
skip() { echo "build-guest: SKIP: $*" >&2; exit 77; }
fail() { echo "build-guest: FAIL: $*" >&2; exit 1; }

print_paths() {
    echo "KL_GUEST_KERNEL=$out/vmlinuz"
    echo "KL_GUEST_INITRD=$out/initrd.gz"
    echo "KL_GUEST_HELPER=$out/kl-guest-io"
}

up_to_date() {
    local f s
    for f in "$out/vmlinuz" "$out/initrd.gz" "$out/kl-guest-io"; do
        [[ -s $f ]] || return 1
        for s in "${BASH_SOURCE[0]}" "$here/init" "$here/kl-guest-io.c"; do
            [[ $f -nt $s ]] || return 1
        done
    done
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
if up_to_date; then
    print_paths
    exit 0
fi

# Serialise concurrent builds into the same OUTDIR (parallel test runs).
exec 9>"$out/.lock"
flock 9
if up_to_date; then
    print_paths
    exit 0
fi

for t in apt-get apt-cache dpkg-deb cpio gzip gcc; do
    command -v "$t" >/dev/null || skip "$t not found"
done

tmp=$(mktemp -d /tmp/kl-guest-build.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Newest linux-image-6.1.0-N-cloud-amd64 that apt knows of; refresh the lists once if it knows none.
newest_kernel_pkg() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n1
}

fetch_deb() {
    # $1: package name; downloads into $tmp and prints the .deb path
    # Sandbox user root: the default user _apt cannot write into our private temp dir.
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$1" >&2) || return 1
    ls "$tmp"/"$1"_*.deb
}

# ---- kernel and modules ----
if [[ ${KL_GUEST_REFRESH_KERNEL:-0} = 1 || ! -s $out/kernel/vmlinuz || ! -s $out/kernel/modules/virtio_blk.ko ]]; then
    pkg=$(newest_kernel_pkg)
    if [[ -z $pkg ]]; then
        msg "apt knows no cloud kernel; running apt-get update"
        apt-get update -q >&2 || skip "apt-get update failed"
        pkg=$(newest_kernel_pkg)
    fi
    [[ -n $pkg ]] || skip "no linux-image-6.1.0-*-cloud-amd64 package in apt"
    msg "downloading $pkg"
    deb=$(fetch_deb "$pkg") || skip "apt-get download $pkg failed"
    dpkg-deb -x "$deb" "$tmp/k"
    vmlinuz=$(find "$tmp/k/boot" -name 'vmlinuz-*' | head -n1)
    [[ -s $vmlinuz ]] || fail "$pkg has no boot/vmlinuz-*"
    kver=${vmlinuz##*/vmlinuz-}
    rm -rf "$out/kernel.new"
    mkdir -p "$out/kernel.new/modules"
    cp "$vmlinuz" "$out/kernel.new/vmlinuz"
    for m in "${modules[@]}"; do
        # Debian 12 ships plain .ko; later kernels may compress them.  Built-in ones appear in modules.builtin.
        f=$(find "$tmp/k/lib/modules/$kver" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" |
            head -n1)
        if [[ -z $f ]]; then
            if grep -q "/$m.ko\$" "$tmp/k/lib/modules/$kver/modules.builtin" 2>/dev/null; then
                msg "$m is built into $kver"
                continue
            fi
            fail "module $m not found in $pkg"
        fi
        case $f in
            *.xz) xz -dc "$f" ;;
            *.zst) zstd -dcq "$f" ;;
            *.gz) gzip -dc "$f" ;;
            *) cat "$f" ;;
        esac >"$out/kernel.new/modules/$m.ko"
    done
    echo "$pkg $kver" >"$out/kernel.new/version"
    rm -rf "$out/kernel"
    mv "$out/kernel.new" "$out/kernel"
    rm -f "$deb"
fi
msg "kernel: $(cat "$out/kernel/version")"

# ---- busybox (must be the static build: the initramfs has no libc) ----
if dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    busybox=/bin/busybox
else
    msg "busybox-static not installed; downloading it"
    deb=$(fetch_deb busybox-static) || skip "apt-get download busybox-static failed"
    dpkg-deb -x "$deb" "$tmp/bb"
    busybox=$tmp/bb/bin/busybox
fi
[[ -x $busybox ]] || fail "no busybox binary at $busybox"

# ---- static helper ----
msg "compiling kl-guest-io"
gcc -std=c11 -static -O2 -pthread -Wall -Wextra -Werror -o "$tmp/kl-guest-io" "$here/kl-guest-io.c" ||
    fail "gcc -static failed (is libc6-dev installed?)"
strip "$tmp/kl-guest-io" 2>/dev/null || true

# ---- initramfs ----
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$tmp/kl-guest-io" "$root/bin/kl-guest-io"
cp "$here/init" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox" "$root/bin/kl-guest-io"
cp "$out"/kernel/modules/*.ko "$root/lib/modules/" 2>/dev/null || true
ln -s busybox "$root/bin/sh"
# The kernel opens /dev/console for init before init can mount devtmpfs; init reopens it anyway if this is missing.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || msg "cannot mknod /dev/console (not root?); init copes"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0) |
    gzip -9 -n >"$tmp/initrd.gz"

# Install atomically: a parallel reader never sees a half-written file.
for f in "$out/kernel/vmlinuz" "$tmp/initrd.gz" "$tmp/kl-guest-io"; do
    cp -p "$f" "$out/${f##*/}.new"
    mv -f "$out/${f##*/}.new" "$out/${f##*/}"
done
touch "$out/vmlinuz" "$out/initrd.gz" "$out/kl-guest-io"
msg "initrd.gz: $(stat -c %s "$out/initrd.gz") bytes"
print_paths
