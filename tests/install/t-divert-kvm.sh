#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch-divert and Proxmox VE's /usr/bin/kvm (root only; run under
# flock /tmp/kl-libvirt.lock).  Debian has no /usr/bin/kvm: a stand-in (a copy
# of the real QEMU) plays Proxmox's binary; where Debian's qemu-system-x86 links
# kvm to qemu-system-x86_64, the divert must leave that link alone, and the
# stand-in replaces it for the test (the link is put back).  Without --qemu the divert lists
# /usr/bin/kvm among its targets; install --qemu /usr/bin/kvm moves it to
# kvm.distrib and puts kvm-launch there; kvm-launch run as /usr/bin/kvm (or as
# a bare "kvm" from PATH) runs kvm.distrib, and a Proxmox-style -daemonize
# start through it leaves kvm.distrib's PID in the pidfile and the VM in
# --status; undo brings /usr/bin/kvm back byte for byte.
. "$(dirname "$0")/../functions.sh"
requires_root
PATH=$PATH:/usr/sbin:/sbin
requires dpkg-divert sha256sum "$KL" "$QEMU" fallocate
K=/usr/bin/kvm
DIVERT=$KL_TOP/contrib/kvm-launch-divert
kl_tmpdir
[ -z "$(dpkg-divert --listpackage "$K")" ] || fail "$K is already diverted: undo it first"
[ ! -e "$K.distrib" ] || fail "$K.distrib exists without a diversion"
standin=no
if [ -L "$K" ]; then
	# Debian's qemu-system-x86 links kvm to qemu-system-x86_64: the divert leaves
	# such a link alone (it reaches that binary's diversion).  Then a stand-in
	# takes its place for the test, and the link comes back at the end.
	link=$(readlink "$K")
	sh "$DIVERT" status --kvm-launch "$KL" --config /nonexistent 2>/dev/null | grep -q "^$K:" &&
		fail "the divert lists $K although it is a symbolic link"
	cleanup_fn "rm -f $K; ln -s '$link' $K"
	rm -f "$K"
fi
if [ ! -e "$K" ]; then
	cp -p "$QEMU" "$K"
	standin=yes
	cleanup_fn "rm -f $K"
fi
# Whatever happens: no diversion of ours left, the binary back.
cleanup_fn "[ -n \"\$(dpkg-divert --listpackage $K)\" ] && { rm -f $K; dpkg-divert --local --rename --divert $K.distrib --remove $K >/dev/null; }"
printf 'state-dir = %s/st\ncache-dir = %s/cache\n' "$TMP" "$TMP" > "$TMP/c.conf"
chmod 0644 "$TMP/c.conf"
dv() { sh "$DIVERT" "$@" --kvm-launch "$KL" --config "$TMP/c.conf"; }
sum_before=$(sha256sum < "$K")
stat_before=$(stat -c '%a %U %G %s %Y' "$K")
echo "$K ($([ $standin = yes ] && echo "stand-in: a copy of $QEMU" || echo "the host's own")): $stat_before sha256 ${sum_before%% *}"

dv status > "$TMP/status" || true
grep -q "^$K: diversion: none" "$TMP/status" || fail "status without --qemu does not list $K: $(cat "$TMP/status")"

dv install --qemu "$K" | sed 's/^/  | /'
[ "$(dpkg-divert --truename "$K")" = "$K.distrib" ] || fail "$K is not diverted to $K.distrib"
[ "$(readlink "$K")" = "$KL" ] || fail "$K is not kvm-launch: $(ls -l "$K")"
[ "$(sha256sum < "$K.distrib")" = "$sum_before" ] || fail "$K.distrib is not the original"
first=$("$K" --config "$TMP/c.conf" --dry-run -- -name x | head -n 1)
[ "$first" = "$K.distrib" ] || fail "kvm-launch as $K runs '$first'"
first=$(cd / && PATH=/usr/bin kvm --config "$TMP/c.conf" --dry-run -- -name x | head -n 1)
[ "$first" = "$K.distrib" ] || fail "kvm-launch as a bare kvm runs '$first'"
"$K" -version | grep -q '^QEMU emulator version' || fail "$K -version does not reach QEMU"
# Proxmox reads the version with "kvm --version" (and refuses to start VMs without one).
"$K" --version > "$TMP/version"
grep -Eq '^QEMU( PC)? emulator version [0-9]+\.[0-9]+' "$TMP/version" && grep -q '^kvm-launch ' "$TMP/version" ||
	fail "$K --version: $(cat "$TMP/version")"
echo "as $K and as kvm: runs $K.distrib"

# A Proxmox-style start through /usr/bin/kvm.
fallocate -l 16M "$TMP/d.raw"
"$K" --config "$TMP/c.conf" -- -name kvm-divert-test -chardev "socket,id=qmp,path=$TMP/100.qmp,server=on,wait=off" \
	-mon chardev=qmp,mode=control -pidfile "$TMP/100.pid" -daemonize -machine pc -accel tcg -nodefaults -display none -S \
	-drive "file=$TMP/d.raw,if=none,id=drive-virtio0,format=raw,cache=writeback,aio=threads" \
	-device virtio-blk-pci,drive=drive-virtio0,id=virtio0 2> "$TMP/launch.err" || fail "start through $K: $(cat "$TMP/launch.err")"
pid=$(cat "$TMP/100.pid")
cleanup_fn "kill -9 $pid 2>/dev/null"
[ "$(readlink "/proc/$pid/exe")" = "$K.distrib" ] || fail "the VM runs $(readlink "/proc/$pid/exe"), not $K.distrib"
"$KL" --config "$TMP/c.conf" --status kvm-divert-test | grep -q "pid $pid, running" || fail "--status does not list the VM"
echo "a -daemonize start through $K: QEMU $pid runs $K.distrib, listed by --status"
kill -9 "$pid"

# Proxmox's own layout (pve-qemu-kvm links kvm to qemu-system-x86_64, which the
# divert makes kvm-launch): kvm reaches the x86_64 target's real binary.
mkdir "$TMP/bin"
ln -s "$KL" "$TMP/bin/qemu-system-x86_64"
ln -s qemu-system-x86_64 "$TMP/bin/kvm"
printf 'qemu = %s.distrib\n' "$TMP/bin/qemu-system-x86_64" > "$TMP/l.conf"
chmod 0644 "$TMP/l.conf"
first=$("$TMP/bin/kvm" --config "$TMP/l.conf" --dry-run -- -name x | head -n 1)
[ "$first" = "$TMP/bin/qemu-system-x86_64.distrib" ] || fail "kvm -> qemu-system-x86_64 -> kvm-launch runs '$first'"
echo "kvm -> qemu-system-x86_64 (diverted): runs qemu-system-x86_64.distrib"

dv undo --qemu "$K" | sed 's/^/  | /'
[ -z "$(dpkg-divert --listpackage "$K")" ] || fail "the diversion is left"
[ ! -L "$K" ] && [ ! -e "$K.distrib" ] || fail "$K is not the real binary again"
[ "$(sha256sum < "$K")" = "$sum_before" ] || fail "$K differs after undo"
[ "$(stat -c '%a %U %G %s %Y' "$K")" = "$stat_before" ] || fail "$K: mode/owner/size/mtime differ: $(stat -c '%a %U %G %s %Y' "$K")"
echo "undo: $K back byte for byte (sha256 and mode, owner, size, mtime)"
