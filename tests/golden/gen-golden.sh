#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# gen-golden.sh — regenerate the golden QEMU command lines in tests/golden/ from the real libvirt on this machine.
#
#   tests/golden/gen-golden.sh [--no-start]
#
# For every domain shape below: NAME.xml (made by tests/libvirt/make-domain.sh) and NAME.args, the argv that
# `virsh domxml-to-native qemu-argv NAME.xml` prints, ONE ARGUMENT PER LINE, first line the emulator.  virsh prints
# environment assignments (LC_ALL=C PATH=... HOME=...) before the emulator: they are dropped (PATH is the caller's).
# Shapes libvirt refuses go to REFUSED.txt as `NAME<TAB>disk spec<TAB>libvirt's message`, without .xml/.args.
#
# Then, unless --no-start, a few domains are really started through an argv-recording emulator wrapper, because a
# real start differs from domxml-to-native (inherited fds, -incoming on restore):
#   start-NAME.args / .xml / .fds   `virsh create` (the .fds file lists the fds QEMU inherited from libvirt)
#   restore-NAME.args / .fds        `virsh save` then `virsh restore`: QEMU runs with -incoming defer
# In those files the wrapper's path is replaced by /usr/bin/qemu-system-x86_64, so all goldens look alike.
#
# Needs root, libvirt (started with tests/libvirt/libvirtd-up.sh, which this calls), qemu-img, python3 (only for
# un-quoting virsh's shell text).  Images live in /var/lib/kvm-launch-tests/images so paths are stable.
# Exit 0, 1 on failure, 77 when libvirt or qemu-img is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
mkdom=$top/tests/libvirt/make-domain.sh
img=/var/lib/kvm-launch-tests/images
work=/var/lib/kvm-launch-tests/golden-work
qemu=/usr/bin/qemu-system-x86_64
virsh=(virsh -q -c qemu:///system)
py=$(command -v /usr/bin/python3 || command -v python3 || true)
do_start=1
[[ ${1:-} = --no-start ]] && do_start=0

skip() { echo "gen-golden: SKIP: $*" >&2; exit 77; }
fail() { echo "gen-golden: FAIL: $*" >&2; exit 1; }
msg() { echo "gen-golden: $*" >&2; }

for t in qemu-img virsh; do command -v "$t" >/dev/null || skip "$t not found"; done
[[ -x $qemu ]] || skip "$qemu not found"
[[ -n $py ]] || skip "python3 not found"
rc=0
"$top/tests/libvirt/libvirtd-up.sh" || rc=$?
[[ $rc = 77 ]] && skip "libvirtd not available"
[[ $rc = 0 ]] || fail "libvirtd-up.sh failed"

# ---- stable images (created once; their paths are what matters, but real files let libvirt start domains) ----
mkdir -p "$img" "$work" /var/log/kvm-launch-tests
[[ -f $img/disk.raw ]] || qemu-img create -q -f raw "$img/disk.raw" 64M
[[ -f $img/disk2.raw ]] || qemu-img create -q -f raw "$img/disk2.raw" 64M
[[ -f $img/shared.raw ]] || qemu-img create -q -f raw "$img/shared.raw" 64M
[[ -f $img/base.raw ]] || qemu-img create -q -f raw "$img/base.raw" 64M
[[ -f $img/base.qcow2 ]] || qemu-img create -q -f qcow2 "$img/base.qcow2" 64M
[[ -f $img/plain.qcow2 ]] || qemu-img create -q -f qcow2 "$img/plain.qcow2" 64M
[[ -f $img/overlay.qcow2 ]] || qemu-img create -q -f qcow2 -b "$img/base.qcow2" -F qcow2 "$img/overlay.qcow2"
[[ -f $img/mid.qcow2 ]] || qemu-img create -q -f qcow2 -b "$img/base.raw" -F raw "$img/mid.qcow2"
[[ -f $img/top.qcow2 ]] || qemu-img create -q -f qcow2 -b "$img/mid.qcow2" -F qcow2 "$img/top.qcow2"
[[ -f $img/cd.iso ]] || truncate -s 1M "$img/cd.iso"
blockdev=/dev/loop0 # domxml-to-native does not open it; it only has to be a stable /dev path

# ---- un-quote virsh output into one argument per line ----
# virsh quotes like a shell (single quotes, backslash-newline continuations); drop the leading VAR=value words.
unquote() {
    "$py" -c '
import shlex, sys, re
text = sys.stdin.read().replace("\\\n", " ")
args = shlex.split(text)
while args and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[0]):
    args.pop(0)
if not args:
    sys.exit("no argv in virsh output")
for a in args:
    if "\n" in a:
        sys.exit("argument with a newline: %r" % a)
    print(a)
'
}

# Remove what a previous run generated (only our patterns; README.md and this script stay).
rm -f "$here"/*.args "$here"/*.xml "$here"/*.fds "$here/REFUSED.txt"
: >"$here/REFUSED.txt.new"
count=0

# shape NAME [make-domain options] DISK...
shape() {
    local name=$1
    shift
    local xml=$here/$name.xml out err
    "$mkdom" --name "$name" --emulator "$qemu" "$@" >"$xml.tmp"
    if out=$("${virsh[@]}" domxml-to-native qemu-argv "$xml.tmp" 2>"$work/err"); then
        printf '%s\n' "$out" | unquote >"$here/$name.args"
        mv "$xml.tmp" "$xml"
        count=$((count + 1))
    else
        err=$(tr '\n' ' ' <"$work/err" | sed 's/^error: //; s/ *$//')
        printf '%s\t%s\t%s\n' "$name" "${*: -1}" "$err" >>"$here/REFUSED.txt.new"
        rm -f "$xml.tmp"
        msg "refused: $name: $err"
    fi
}

f_raw="file:$img/disk.raw:raw"
b_raw="block:$blockdev:raw"

# -- storage kinds --
shape file-raw "$f_raw"
shape file-qcow2 "file:$img/plain.qcow2:qcow2"
shape qcow2-backing "file:$img/overlay.qcow2:qcow2:backing=$img/base.qcow2@qcow2"
shape qcow2-chain "file:$img/top.qcow2:qcow2:backing=$img/mid.qcow2@qcow2:backing=$img/base.raw@raw"
shape qcow2-backing-none-native "file:$img/overlay.qcow2:qcow2:cache=none:io=native:backing=$img/base.qcow2@qcow2"
shape block-raw "$b_raw"
shape nbd "network:nbd:localhost:10809:export0"
shape nbd-unix "network:nbd:/run/kvm-launch-tests/nbd.sock::export0"
shape nbd-none "network:nbd:localhost:10809:export0:cache=none"
shape rbd "network:rbd:mon1.example.org:6789:rbdpool/vm-disk-1"
shape rbd-writeback "network:rbd:mon1.example.org:6789:rbdpool/vm-disk-1:cache=writeback"
shape iscsi "network:iscsi:iscsi.example.org:3260:iqn.2013-07.org.example%3Atarget0/1"
shape gluster "network:gluster:gluster.example.org:24007:vol0/images/disk.raw"
shape http-cdrom "network:http:www.example.org:80:/images/cd.iso:device=cdrom"
shape https-cdrom "network:https:www.example.org:443:/images/cd.iso:device=cdrom"
shape cdrom "cdrom:$img/cd.iso"
shape cdrom-sata "cdrom:$img/cd.iso:bus=sata"
shape readonly "$f_raw:readonly"
shape shareable "file:$img/shared.raw:raw:cache=none:io=native:shareable"
shape block-shareable "$b_raw:cache=directsync:shareable"
shape discard-dz "$f_raw:cache=none:discard=unmap:detect_zeroes=unmap"
# -- buses --
shape bus-virtio "$f_raw:bus=virtio"
shape bus-sata "$f_raw:bus=sata:cache=none"
shape bus-ide "$f_raw:bus=ide:cache=writethrough"
shape bus-scsi "$f_raw:bus=scsi:cache=none:io=native"
shape bus-virtio-scsi --scsi-model virtio-scsi "$f_raw:bus=scsi:cache=none:io=io_uring"
shape block-lun --scsi-model virtio-scsi "$b_raw:bus=scsi:device=lun:cache=none"
shape q35-virtio --machine q35 "$f_raw:cache=none:io=io_uring"
# -- every cache x io combination, file and block --
for kind in file block; do
    base=$f_raw
    [[ $kind = block ]] && base=$b_raw
    for cache in default none writethrough writeback directsync unsafe; do
        for io in default threads native io_uring; do
            spec=$base
            [[ $cache != default ]] && spec+=":cache=$cache"
            [[ $io != default ]] && spec+=":io=$io"
            shape "$kind-$cache-$io" "$spec"
        done
    done
done
# -- several disks, iotune, iothreads --
shape multi-4 \
    "$f_raw:cache=none:io=native" \
    "file:$img/overlay.qcow2:qcow2:cache=writeback:backing=$img/base.qcow2@qcow2" \
    "$b_raw:cache=directsync:io=io_uring" \
    "cdrom:$img/cd.iso"
shape iotune "$f_raw:cache=none:iotune.total_iops_sec=500:iotune.read_bytes_sec=10485760:iotune.write_bytes_sec=5242880"
shape iotune-group "$f_raw:iotune.total_bytes_sec=1048576:iotune.group_name=grp0" \
    "file:$img/disk2.raw:raw:iotune.total_bytes_sec=1048576:iotune.group_name=grp0"
shape iothread --iothreads 1 "$f_raw:cache=none:io=native:iothread=1"
shape virtio-queues --vcpus 2 "$f_raw:cache=none:io=io_uring:queues=2"
# -incoming: domxml-to-native cannot express it; see the restore-* files below.

sort "$here/REFUSED.txt.new" >"$here/REFUSED.txt"
rm -f "$here/REFUSED.txt.new"
msg "$count domxml-to-native goldens, $(wc -l <"$here/REFUSED.txt") refused"

((do_start)) || exit 0

# ---- real starts through an argv-recording wrapper ----
# The wrapper records argv (NUL-separated) and the inherited fds, then execs the real QEMU in place (same PID, as
# libvirt requires).  libvirt's capability probe (-machine none) runs through it too and is not recorded.
eval "$("$top/tests/guest/build-guest.sh")" || fail "cannot build the test guest"
wrapper=$work/argv-dump-qemu
cat >"$wrapper" <<EOF
#!/bin/sh
case " \$* " in
*" -machine none"*) ;;
*)
    printf '%s\\0' "\$0" "\$@" >"$work/last.argv"
    # A subshell lists the wrapper's fds: its own redirection must not show up in the list.
    (for fd in /proc/\$\$/fd/*; do printf '%s -> %s\\n' "\${fd##*/}" "\$(readlink "\$fd")"; done) >"$work/last.fds"
    ;;
esac
exec $qemu "\$@"
EOF
chmod 755 "$wrapper"

argv_file() { # $1 output: the recorded argv, one per line, the wrapper replaced by the real emulator
    tr '\0' '\n' <"$work/last.argv" | sed "1s|.*|$qemu|" >"$1"
    # Leave out the fd the shell reads the wrapper script from; sort by fd number.
    grep -v -e "-> $wrapper\$" "$work/last.fds" | sed -E "s/(pipe|socket):\[[0-9]+\]/\1/" | sort -n >"${1%.args}.fds"
}

started() {
    local name=$1
    shift
    local dom=kl-golden-$name
    "${virsh[@]}" destroy "$dom" >/dev/null 2>&1 || true
    rm -f "$work/last.argv" "$work/last.fds" "$work/$name.state"
    "$mkdom" --name "$dom" --emulator "$wrapper" --guest-cmd sleep "$@" >"$work/$name.xml"
    "${virsh[@]}" create "$work/$name.xml" >/dev/null || fail "virsh create $dom"
    [[ -s $work/last.argv ]] || fail "the wrapper recorded nothing for $dom"
    argv_file "$here/start-$name.args"
    sed "s|$wrapper|$qemu|" "$work/$name.xml" >"$here/start-$name.xml"
    count=$((count + 1))
    # Restore = QEMU started with -incoming defer, fed the saved state over a pipe.
    "${virsh[@]}" save "$dom" "$work/$name.state" >/dev/null || fail "virsh save $dom"
    rm -f "$work/last.argv"
    "${virsh[@]}" restore "$work/$name.state" >/dev/null || fail "virsh restore $dom"
    [[ -s $work/last.argv ]] || fail "the wrapper recorded nothing for the restore of $dom"
    argv_file "$here/restore-$name.args"
    count=$((count + 1))
    "${virsh[@]}" destroy "$dom" >/dev/null
    rm -f "$work/$name.state"
}

started file-raw "$f_raw:cache=none:io=native"
started multi "$f_raw:cache=writethrough:io=io_uring" "file:$img/overlay.qcow2:qcow2:cache=none:io=threads:backing=$img/base.qcow2@qcow2"
msg "$count goldens in all"
