#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# contrib/demo.sh — the Quick start demo (`make demo`).
#
# Boots a tiny Linux guest (TCG, no KVM needed) through kvm-launch with two or three demo disks — a sparse raw
# file, a qcow2 image and, as root, a loop block device — and shows, in order: what kvm-launch decides
# (--explain), that the running QEMU is the process kvm-launch became, `kvm-launch --status` while the guest
# works, and what the guest itself saw: each disk's write cache and its random-I/O rate.  The guest powers
# itself off; everything the demo created is removed at the end.
#
# Environment: KL (the kvm-launch binary, default ./kvm-launch), KL_DEMO_DIR (parent of the demo directory,
# default /var/tmp), KL_DEMO_KEEP=1 (keep the demo directory), KL_GUEST_CACHE (where the guest is built and cached).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
KL=${KL:-$top/kvm-launch}
name=kvm-launch-demo
secs=3 # random I/O per disk, in seconds

bold=
plain=
if [ -t 1 ]; then
	bold=$(printf '\033[1m')
	plain=$(printf '\033[0m')
fi
heading() { printf '\n%s== %s ==%s\n\n' "$bold" "$*" "$plain"; }
say() { printf '%s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

[ -x "$KL" ] || die "$KL not found: build it first (./configure && make)"
command -v qemu-img >/dev/null 2>&1 || die "qemu-img not found (sh contrib/deps.sh installs qemu-utils)"
command -v bash >/dev/null 2>&1 || die "bash not found"
root=no
[ "$(id -u)" = 0 ] && root=yes

heading "kvm-launch demo"
say "kvm-launch stands where QEMU is expected, decides aio= and cache= for every disk, rewrites only"
say "those settings and execs the real QEMU in place. This demo boots a tiny Linux guest (TCG, about"
say "30 seconds in all) through it and shows what it decided and what the guest saw."

# ---- the guest ----
heading "1. The tiny guest"
# Not root: use the shared cache when it holds a build we can read, else one in the home directory.
shared=/var/cache/kvm-launch-tests/guest
if [ -z "${KL_GUEST_CACHE:-}" ] && [ $root = no ] && ! [ -w "$shared" ] && ! [ -r "$shared/initrd.gz" ]; then
	KL_GUEST_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kvm-launch-demo/guest
fi
say "Building it, or reusing the cached build (a Debian cloud kernel, busybox and a small I/O helper)..."
rc=0
paths=$(bash "$top/tests/guest/build-guest.sh" ${KL_GUEST_CACHE:+"$KL_GUEST_CACHE"}) || rc=$?
[ $rc = 0 ] || die "could not build the guest (build-guest.sh exit $rc, see above); sh contrib/deps.sh installs what it needs"
eval "$paths"
say "kernel: $KL_GUEST_KERNEL"
say "initrd: $KL_GUEST_INITRD"

# ---- the demo directory and disks ----
heading "2. Demo disks"
dir=$(mktemp -d "${KL_DEMO_DIR:-/var/tmp}/kvm-launch-demo.XXXXXX")
loop=
qpid=
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		sleep 1
		kill -KILL "$qpid" 2>/dev/null || true
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
	if [ "${KL_DEMO_KEEP:-0}" = 1 ]; then
		say "(kept $dir)"
	else
		rm -rf "$dir"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

truncate -s 256M "$dir/disk.raw"
qemu-img create -q -f qcow2 "$dir/disk.qcow2" 256M
disk_line() { printf '  %-46s %s\n' "$1" "$2"; }
disk_line "$dir/disk.raw" "raw file, 256 MiB, sparse"
disk_line "$dir/disk.qcow2" "qcow2 image, 256 MiB"
drives="raw:vda qcow2:vdb"
if [ $root = yes ] && command -v losetup >/dev/null 2>&1; then
	truncate -s 256M "$dir/loop.img"
	if loop=$(losetup -f --show "$dir/loop.img" 2>/dev/null); then
		disk_line "$loop" "loop block device over $dir/loop.img"
		drives="$drives loop:vdc"
	else
		loop=
		say "(no loop device available here: the demo runs with two disks)"
	fi
else
	say "(not root: no loop block device; run as root to see a block device too)"
fi

state_opt=
if [ $root = no ]; then
	state_opt="--state-dir=$dir/state"
fi

guestcmd=report
n=0
for d in $drives; do
	guestcmd="$guestcmd,randio:${d#*:}:8:$secs:rw"
	n=$((n + 1))
done

set -- -name "$name" -accel tcg -m 256 -nographic -nodefaults -no-reboot -serial "file:$dir/serial.log" \
	-kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD" \
	-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=$guestcmd" \
	-drive "file=$dir/disk.raw,format=raw,if=virtio,id=raw" \
	-drive "file=$dir/disk.qcow2,format=qcow2,if=virtio,id=qcow2"
[ -n "$loop" ] && set -- "$@" -drive "file=$loop,format=raw,if=virtio,id=loop"

# ---- explain ----
heading "3. What kvm-launch decides: kvm-launch --explain"
say "\$ kvm-launch --explain -- -name $name ... -drive file=$dir/disk.raw,format=raw,if=virtio,id=raw ..."
say
"$KL" --explain -- "$@" || die "kvm-launch --explain failed"

# ---- launch ----
heading "4. Starting the guest through kvm-launch"
say "\$ kvm-launch ${state_opt:+$state_opt }-- -name $name -accel tcg -m 256 ... (the same command line)"
: >"$dir/serial.log"
# shellcheck disable=SC2086 # state_opt is one word or nothing
"$KL" $state_opt -- "$@" </dev/null >"$dir/qemu.log" 2>&1 &
qpid=$!
started=$(date +%s)
sleep 1
if [ -r "/proc/$qpid/exe" ]; then
	say "kvm-launch (pid $qpid) exec'd the real QEMU in place: pid $qpid now runs $(readlink "/proc/$qpid/exe")"
fi

# Wait for a pattern in the serial log (the guest's lines start with "KL ").
wait_serial() { # REGEX SECONDS
	end=$(($(date +%s) + $2))
	while ! grep -Eq "$1" "$dir/serial.log" 2>/dev/null; do
		if grep -q '^KL error' "$dir/serial.log" 2>/dev/null; then
			sed 's/^/  guest: /' "$dir/serial.log"
			die "the guest reported an error"
		fi
		if ! kill -0 "$qpid" 2>/dev/null; then
			sed 's/^/  /' "$dir/qemu.log" >&2
			die "QEMU exited early (its messages are above)"
		fi
		[ "$(date +%s)" -lt "$end" ] || die "the guest did not print /$1/ within $2 s"
		sleep 0.2
	done
}
say "Booting (TCG is slow: about 5 to 20 seconds)..."
wait_serial '^KL disk ' 180
sleep 0.5
say "The guest is up after $(($(date +%s) - started)) s and is now doing random I/O on each disk."

# ---- status ----
heading "5. kvm-launch --status (while the guest works)"
say "\$ kvm-launch ${state_opt:+$state_opt }--status $name"
say
# shellcheck disable=SC2086
"$KL" $state_opt --status "$name" || say "(kvm-launch --status failed: exit $?)"

# ---- the guest's report ----
say
say "Waiting for the guest to finish ($secs s of random I/O per disk) and power itself off..."
wait_serial '^KL done' $((n * secs + 120))
end=$(($(date +%s) + 30))
while kill -0 "$qpid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
if kill -0 "$qpid" 2>/dev/null; then
	say "(QEMU did not exit after the guest's poweroff: stopping it)"
	kill -TERM "$qpid" 2>/dev/null || true
fi
wait "$qpid" 2>/dev/null || true
qpid=

heading "6. What the guest saw"
say "Write cache per disk (the guest-visible half of the cache mode: 'write back' for none/writeback,"
say "'write through' for writethrough/directsync), and 4 KiB random I/O, queue depth 8, 50% writes:"
say
for d in $drives; do
	dev=${d#*:}
	d=${d%%:*}
	wc=$(sed -n "s/^KL disk $dev write_cache=\\(.*\\) size=.*/\\1/p" "$dir/serial.log" | head -n1)
	iops=$(sed -n "s/^KL randio dev=$dev qd=8 mode=rw iops=\\([0-9]*\\).*/\\1/p" "$dir/serial.log" | head -n1)
	printf '  %-4s %-8s write cache: %-14s random 4k read/write: %s IOPS\n' "$dev" "($d)" "${wc:-?}" "${iops:-?}"
done
say
say "The guest's own lines:"
grep '^KL ' "$dir/serial.log" | sed 's/^/  /'

heading "7. kvm-launch's messages (QEMU's stderr; libvirt puts them in the domain log)"
if grep -q '^kvm-launch:' "$dir/qemu.log"; then
	grep '^kvm-launch:' "$dir/qemu.log" | sed 's/^/  /'
else
	say "  (none)"
fi

heading "Done"
say "The guest powered off; kvm-launch's agent removed the VM's state with it. Demo files are being removed."
say "Next: 'kvm-launch --help', the policy in kvm-launch.conf(5), and the README's libvirt section."
