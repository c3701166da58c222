#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The state directory when things go wrong; the VM must start every time,
# with its disks decided, and at most one warning:
#  - missing (nested): created, mode 0750, entry and monitors as usual;
#  - read-only (a read-only bind mount, and a read-only tmpfs: chmod is not
#    enough for root): no state, no monitors, one warning;
#  - full (a 64 KiB tmpfs filled up): the same;
#  - a symbolic link, a regular file, writable by everyone: refused, one warning;
#  - a path so long the monitor sockets do not fit sun_path (108 bytes):
#    kvm-launch binds them through its directory fd (/proc/self/fd/N/NAME)
#    and hands QEMU the fds, so they still live in that directory, --status
#    still reaches the VM, and they are removed when it exits; a path longer
#    than PATH_MAX: no state, one warning.
# Mounts need root.
. "$(dirname "$0")/../functions.sh"
requires "$QEMU" "$KL" truncate timeout mount umount dd df
requires_root
H=$KL_TOP/tests/helpers
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
chmod 0755 "$TMP"
truncate -s 64M "$TMP/disk.img"
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"

# Every QEMU started here, killed at exit (registered before the first start).
ALL=
cleanup_fn 'for p in $ALL; do kill -9 $p 2>/dev/null; done'
qemu_up() { [ -S "$TMP/$1.sock" ] && "$H/state-qmp" "$TMP/$1.sock" query-status > /dev/null 2>&1; }

# start NAME STATE-DIR: QEMU through kvm-launch; waits until it answers on
# our own QMP socket; sets QPID and CMDLINE (QEMU's argv, one per line).
start() {
	local name=$1 dir=$2
	rm -f "$TMP/$name.sock"
	"$KL" --config "$TMP/policy.conf" --state-dir "$dir" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults \
		-display none -S -name "guest=$name" -qmp "unix:$TMP/$name.sock,server=on,wait=off" \
		-drive "file=$TMP/disk.img,format=raw,if=virtio,file.locking=off" > "$TMP/$name.log" 2>&1 &
	QPID=$! # the launcher's PID is QEMU's (exec in place)
	ALL="$ALL $QPID"
	wait_for 60 qemu_up "$name" || { cat "$TMP/$name.log"; fail "$name: QEMU did not start"; }
	[ "$(readlink "/proc/$QPID/exe")" = "$(readlink -f "$QEMU")" ] || fail "$name: pid $QPID is not QEMU"
	CMDLINE=$(tr '\0' '\n' < "/proc/$QPID/cmdline")
	printf '%s\n' "$CMDLINE" | grep -q "^file=$TMP/disk.img,format=raw,if=virtio,file.locking=off,cache=" ||
		fail "$name: the disk was not decided: $(printf '%s\n' "$CMDLINE" | grep disk.img)"
	grep -v '^kvm-launch: ' "$TMP/$name.log" | grep -v '^$' > "$TMP/$name.other"
}
stop() {
	kill -9 "$QPID"
	wait_for 5 gone "$QPID" || fail "QEMU $QPID did not die"
}
# The VM started without state: no monitors, one warning naming the problem.
no_state() { # NAME PATTERN
	if printf '%s\n' "$CMDLINE" | grep -q kvmlaunch; then fail "$1: monitors added without a state file"; fi
	[ "$(grep -c '^kvm-launch: warning:' "$TMP/$1.log")" = 1 ] || { cat "$TMP/$1.log"; fail "$1: not exactly one warning"; }
	grep -q "^kvm-launch: warning: no state for this VM (--status will not list it): .*$2" "$TMP/$1.log" ||
		{ cat "$TMP/$1.log"; fail "$1: the warning does not say \"$2\""; }
	echo "$1: started without state: $(grep '^kvm-launch: warning:' "$TMP/$1.log")"
}

# ---- missing: created ----
ST=$TMP/a/b/c/state
start missing "$ST"
[ -f "$ST/missing.json" ] || fail "missing: no entry"
[ "$(stat -c %a "$ST")" = 750 ] || fail "missing: state directory mode $(stat -c %a "$ST")"
printf '%s\n' "$CMDLINE" | grep -q "^socket,id=kvmlaunch-query,fd=[0-9]*,server=on,wait=off$" ||
	fail "missing: no query monitor"
# Not world-accessible: the directory, the files, the sockets kvm-launch bound.
test -S "$ST/missing.qmp.sock" || fail "missing: no socket"
ls -la "$ST"
[ -z "$(find "$ST" -perm /o=rwx)" ] || fail "missing: world-accessible: $(find "$ST" -perm /o=rwx)"
[ "$(stat -c %a "$ST/missing.qmp.sock")" = 600 ] && [ "$(stat -c %a "$ST/missing.agent.sock")" = 600 ] ||
	fail "missing: QEMU's monitor sockets are not 0600"
[ $(( 0$(stat -c %a "$ST/missing.json") & 07137 )) = 0 ] || fail "missing.json: mode $(stat -c %a "$ST/missing.json")"
stop
echo "missing: created 0750, entry and monitors"

# ---- read-only bind mount ----
mkdir -m 0750 "$TMP/rosrc" "$TMP/ro"
mount --bind "$TMP/rosrc" "$TMP/ro" || fail "bind mount"
cleanup_fn "umount -l '$TMP/ro' 2>/dev/null"
mount -o remount,bind,ro "$TMP/ro" || fail "remount read-only"
touch "$TMP/ro/x" 2>/dev/null && fail "the bind mount is writable"
start robind "$TMP/ro"
no_state robind "not writable"
stop

# ---- read-only tmpfs ----
mkdir -m 0750 "$TMP/rotmp"
mount -t tmpfs -o ro,size=64k,mode=0750 tmpfs "$TMP/rotmp" || fail "tmpfs"
cleanup_fn "umount -l '$TMP/rotmp' 2>/dev/null"
start rotmpfs "$TMP/rotmp"
no_state rotmpfs "not writable"
stop
# A missing directory below a read-only one cannot be created.
start rosub "$TMP/rotmp/sub"
no_state rosub "cannot create"
stop

# ---- full tmpfs ----
mkdir -m 0750 "$TMP/full"
mount -t tmpfs -o size=64k,mode=0750 tmpfs "$TMP/full" || fail "tmpfs"
cleanup_fn "umount -l '$TMP/full' 2>/dev/null"
dd if=/dev/zero of="$TMP/full/filler" bs=4k 2>/dev/null
[ "$(df --output=avail "$TMP/full" | tail -n 1 | tr -d ' ')" = 0 ] || fail "the tmpfs is not full"
start full "$TMP/full"
no_state full "No space left on device"
ls -la "$TMP/full"
[ -z "$(ls -A "$TMP/full" | grep -v -x -e filler -e .lock)" ] || fail "full: temporary files left: $(ls -A "$TMP/full")"
stop

# ---- refused directories ----
mkdir -m 0750 "$TMP/real"
ln -s "$TMP/real" "$TMP/link"
start symlink "$TMP/link"
no_state symlink "symbolic link"
stop
: > "$TMP/afile"
start file "$TMP/afile"
no_state file "not a directory"
stop
mkdir -m 0777 "$TMP/open"
chmod 0777 "$TMP/open"
start open "$TMP/open"
no_state open "writable by everyone"
stop
[ -z "$(ls -A "$TMP/open")" ] || fail "open: files written into a world-writable directory"

# ---- sockets that do not fit sun_path ----
LONG=$TMP/$(head -c 150 /dev/zero | tr '\0' 'L')/state
start long "$LONG"
[ "$(printf '%s\n' "$CMDLINE" | grep -c '^socket,id=kvmlaunch-[a-z]*,fd=[0-9]*,server=on,wait=off$')" = 2 ] ||
	{ cat "$TMP/long.log"; fail "long: no monitors"; }
for s in agent qmp view; do
	test -S "$LONG/long.$s.sock" || fail "long: no $s socket in the long directory"
done
[ -f "$LONG/long.json" ] || fail "long: no entry in the long directory"
wait_for 30 sh -c "[ \"\$('$H/state-json' '$LONG/long.json' agent.state)\" = watching ]" || fail "long: agent not watching"
"$KL" --config "$TMP/policy.conf" --state-dir "$LONG" --status > "$TMP/long.status" || fail "long: --status"
grep -q "^VM long: pid $QPID, running" "$TMP/long.status" || { cat "$TMP/long.status"; fail "long: --status cannot reach the VM"; }
echo "long: sockets in $LONG (${#LONG} bytes)"
stop
wait_for 5 sh -c "! test -e '$LONG/long.json'" || fail "long: entry left"
for s in agent qmp view; do
	[ ! -e "$LONG/long.$s.sock" ] || fail "long: socket long.$s.sock left after exit"
done
# Longer than PATH_MAX: no state.
HUGE=$TMP
for i in $(seq 20); do HUGE=$HUGE/$(head -c 250 /dev/zero | tr '\0' 'H'); done
start huge "$HUGE"
no_state huge "cannot create"   # (the message is cut at 1 KiB, before strerror)
stop
echo "state directory faults: ok"
