#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Power loss through kvm-launch: data the guest flushed survives a power cut in every cache mode kvm-launch can
# choose (none, writeback, directsync, writethrough), on a file and on a block device; cache=unsafe, the control,
# must lose it in the same run, or the test proves nothing and fails.
#
# The simulation (tests/helpers/kl-powercut-fs.c): a FUSE filesystem serves the disk image; what QEMU (or the loop
# driver) writes stays in the daemon's memory, which plays the volatile write cache of a disk, and reaches the
# backing file, which plays stable storage, only on fsync/fdatasync.  It is mounted without writeback_cache, so
# the host page cache holds no dirty page of the image; O_DIRECT opens are accepted (QEMU's cache.direct=on).
# The power cut is one SIGKILL to the daemon and to QEMU; then only the backing file is read.
#   file:  the image is MOUNT/disk.img; QEMU opens it (O_DIRECT or not, per mode).
#   block: a loop device over MOUNT/disk.img; QEMU opens /dev/loopN.  Dirty pages of the loop device (the host
#          page cache of a block device, cache=writeback/writethrough/unsafe) die with the daemon: once it is gone
#          their writeback fails.  A guest flush reaches the daemon as the loop driver's fsync of its backing file.
# Covered: every byte QEMU had not asked the host to make durable (fdatasync of the image or of the block device)
# is lost, whichever host layer held it (QEMU, the block device's page cache, the daemon).  So a mode that turns
# a guest flush into no host flush (unsafe), or forgets to flush, loses the flushed pattern.
# Not covered: the host kernel's own ordering and the real disk (the backing file lives in the host page cache of
# /var/tmp; the real device's write cache and torn sectors are out of scope), guest-side caches (the guest writes
# O_DIRECT), partial writes within one request (each FUSE write lands whole or not at all), and the timing of a
# cut in the middle of a flush (the cut comes after the guest has reported its flush).
#
# Per run: a policy forces the mode over a command line that asks for another one (unsafe for the safe modes,
# writethrough for the control), so the data only survives if the rewrite happened.  The guest (kl.cmd=powercut)
# writes pattern A over MiB 0..MIB with O_DIRECT, fsyncs, prints `KL flushed`, writes pattern B over the next MIB
# MiB without a flush, prints `KL unflushed`.  Before the cut: --dry-run says the forced mode; query-block on our
# own monitor has the mode's writeback/direct/no-flush; /proc/QEMU/fdinfo has O_DIRECT exactly when the mode is
# direct; an fsync made blocks durable unless the mode is unsafe (then none).  After: A intact for the safe modes (and B too for
# writethrough/directsync, where the guest's write cache is off so every completed write must be durable);
# A lost for unsafe.  Needs root (FUSE mount, loop devices) and kl-powercut-fs (libfuse3-dev).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires "$KL" "$QEMU" truncate losetup umount mountpoint
requires_root
FUSEFS=$KL_TOP/tests/helpers/kl-powercut-fs
if [ ! -x "$FUSEFS" ]; then
	echo "SKIP: $0: $FUSEFS is not built (libfuse3-dev missing: contrib/deps.sh --tests installs it)"
	exit 77
fi
[ -c /dev/fuse ] || { echo "SKIP: $0: no /dev/fuse"; exit 77; }
kl_need_helpers "$QMP_CLI"
kl_guest_build
kl_tmpdir
kl_imgdir

MIB=${KL_POWERLOSS_MIB:-8}
modes=(none writeback directsync writethrough unsafe)
backends=(file block)
[ -n "${KL_POWERLOSS_MODES:-}" ] && read -r -a modes <<<"$KL_POWERLOSS_MODES"
[ -n "${KL_POWERLOSS_BACKENDS:-}" ] && read -r -a backends <<<"$KL_POWERLOSS_BACKENDS"

# Everything this test starts, for the cleanup (registered before anything starts): QEMUs and agents first, then
# the loop devices, then the daemons, then the mounts.
ALL_QPIDS= ALL_APIDS= ALL_LOOPS= ALL_DPIDS= ALL_MNTS=
pl_cleanup() {
	local p l m
	for p in $ALL_QPIDS; do kl_kill_if "$p" "$QEMU"; kl_kill_if "$p" "$KL"; done
	for p in $ALL_APIDS; do kl_kill_if "$p" "$KL"; done
	for l in $ALL_LOOPS; do losetup -d "$l" 2>/dev/null; done
	for p in $ALL_DPIDS; do kl_kill_if "$p" "$FUSEFS"; done
	# (mountpoint(1) cannot stat a mount whose daemon died: ask /proc/mounts)
	for m in $ALL_MNTS; do grep -q " $m fuse" /proc/mounts && umount -l "$m"; done
	return 0
}
cleanup_fn pl_cleanup

# The open flags (octal) of every fd of PID that points at TARGET, one per line.
fd_flags() { # PID TARGET
	local fd
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$2" ] || continue
		awk '/^flags:/ {print $2}' "/proc/$1/fdinfo/${fd##*/}"
	done
}

is_direct() { # MODE
	case $1 in none | directsync) return 0 ;; *) return 1 ;; esac
}

# One run.  Sets lostA/lostB (yes/no) and why; returns 1 when something other than the data verdict went wrong.
run_one() { # BACKEND MODE
	local backend=$1 mode=$2 d mnt back dev given policy st log seed1 seed2 qpid dpid apid
	d=$TMP/$backend-$mode
	mnt=$d/mnt
	back=$IMG/$backend-$mode.img
	mkdir -p "$mnt"
	truncate -s $((MIB * 2 + 16))M "$back"
	lostA=? lostB=? why=

	ALL_MNTS="$ALL_MNTS $mnt"
	"$FUSEFS" "$back" "$mnt" "$d/fs.log" </dev/null 2>>"$d/fs.log" &
	dpid=$!
	ALL_DPIDS="$ALL_DPIDS $dpid"
	wait_for 20 grep -q '^mounted' "$d/fs.log" || { why="kl-powercut-fs did not mount: $(cat "$d/fs.log")"; return 1; }
	wait_for 10 test -f "$mnt/disk.img" || { why="no $mnt/disk.img"; return 1; }
	grep -q " $mnt fuse.kl-powercut " /proc/mounts || { why="$mnt is not a kl-powercut mount"; return 1; }
	case $backend in
	file) dev=$mnt/disk.img ;;
	block)
		dev=$(losetup -f --show "$mnt/disk.img") || { why="losetup over $mnt/disk.img failed"; return 1; }
		ALL_LOOPS="$ALL_LOOPS $dev"
		;;
	esac

	given=unsafe
	[ "$mode" = unsafe ] && given=writethrough
	st=$d/state
	log=$d/serial.log
	policy=$d/policy.conf
	seed1=$(((RANDOM << 15 | RANDOM) + 1))
	seed2=$(((RANDOM << 15 | RANDOM) + 1))
	printf 'qemu = %s\n[rule force]\ncache = %s\n' "$QEMU" "$mode" >"$policy"
	chmod 0644 "$policy"
	local -a args=(
		-name "pl-$backend-$mode" -accel tcg -m 256 -nographic -nodefaults -no-reboot -serial "file:$log"
		-kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD"
		-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=report,powercut:vda:$seed1:$MIB:$seed2"
		-qmp "unix:$d/qmp.sock,server=on,wait=off"
		-drive "file=$dev,format=raw,if=none,id=d0,cache=$given"
		-device virtio-blk-pci,drive=d0,id=vda
	)
	local dry dmode
	dry=$("$KL" --config "$policy" --state-dir "$st" --dry-run --json -- "${args[@]}") || { why="--dry-run failed"; return 1; }
	dmode=$(jq_s "$dry" disks.0.cache)
	[ "$dmode" = "$mode" ] || { why="--dry-run shows cache=$dmode, the policy forces $mode: $dry"; return 1; }

	"$KL" --config "$policy" --state-dir "$st" -- "${args[@]}" </dev/null >"$d/kl.err" 2>&1 &
	qpid=$!
	ALL_QPIDS="$ALL_QPIDS $qpid"
	kl_wait_serial "$log" '^KL unflushed' 180 "$qpid"
	grep -qx "KL flushed dev=vda seed=$seed1 mib=$MIB at=0" "$log" || { why="no flush line: $(grep '^KL' "$log")"; return 1; }
	[ "$(readlink -f "/proc/$qpid/exe")" = "$(readlink -f "$QEMU")" ] || { why="pid $qpid is not QEMU"; return 1; }

	# The mode under test is the one running: command line, QEMU's own view, the open flags of the image.
	local out f flags=
	out=$( (kl_args_load "$qpid" && kl_check_disk_cmdline vda "$mode" any) 2>&1) || { why=$out; return 1; }
	echo "  $out"
	"$QMP_CLI" -w -t 10000 "$d/qmp.sock" query-block >"$d/qb.json" || { why="query-block failed"; return 1; }
	out=$( (kl_check_query_block "$d/qb.json" vda "$mode") 2>&1) || { why=$out; return 1; }
	echo "  $out"
	f=$(fd_flags "$qpid" "$dev")
	[ -n "$f" ] || { why="QEMU has no fd open on $dev"; return 1; }
	for f in $f; do
		if is_direct "$mode"; then
			(((8#$f & 8#40000) != 0)) || { why="cache=$mode, but QEMU's fd on $dev has no O_DIRECT (flags $f)"; return 1; }
		else
			(((8#$f & 8#40000) == 0)) || { why="cache=$mode, but QEMU's fd on $dev has O_DIRECT (flags $f)"; return 1; }
		fi
		flags="$flags $f"
	done
	echo "  fdinfo: QEMU's fds on $dev have flags$flags (O_DIRECT $(is_direct "$mode" && echo set || echo clear))"
	# Blocks the storage made durable before the cut (losetup's own fsync of the fresh file persists none).
	local nsync nblk
	nsync=$(grep -c '^fsync ' "$d/fs.log")
	nblk=$(awk '/^fsync / { for (i = 2; i <= NF; i++) if ($i ~ /^blocks=/) n += substr($i, 8) } END { print n + 0 }' "$d/fs.log")
	if [ "$mode" = unsafe ]; then
		[ "$nblk" = 0 ] || { why="cache=unsafe, yet the storage made $nblk blocks durable: $(cat "$d/fs.log")"; return 1; }
	else
		[ "$nblk" -gt 0 ] || { why="cache=$mode: the guest flushed, but no fsync made anything durable: $(cat "$d/fs.log")"; return 1; }
	fi
	echo "  storage: $nsync fsync(s) before the cut made $nblk blocks of 4 KiB durable"
	out=$("$KL" --state-dir "$st" --status --json) || { why="--status failed"; return 1; }
	apid=$(jq_s "$out" "vms.[name=pl-$backend-$mode].agent.pid") || { why="--status lists no agent for the VM: $out"; return 1; }
	ALL_APIDS="$ALL_APIDS $apid"

	# The power cut.
	kill -KILL "$dpid" "$qpid"
	wait "$qpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	[ "$backend" = block ] && losetup -d "$dev"
	umount -l "$mnt"

	out=$("$KL_GUEST_HELPER" verify "$back" "$seed1" "$MIB" 0 2>&1)
	case $? in 0) lostA=no ;; 1) lostA=yes ;; *) why="verify A: $out"; return 1 ;; esac
	echo "  flushed pattern A: $out"
	out=$("$KL_GUEST_HELPER" verify "$back" "$seed2" "$MIB" "$MIB" 2>&1)
	case $? in 0) lostB=no ;; 1) lostB=yes ;; *) why="verify B: $out"; return 1 ;; esac
	echo "  unflushed pattern B: $out"
	kl_wait_gone "$apid" 30 || { why="the agent (pid $apid) outlived QEMU by 30 s"; return 1; }
	out=$( (kl_no_sanitizer_reports "$d/kl.err") 2>&1) || { why=$out; return 1; }
	rm -f "$back"
	return 0
}

declare -A result
bad=0
for backend in "${backends[@]}"; do
	for mode in "${modes[@]}"; do
		echo "=== $backend, cache=$mode"
		t0=$(date +%s)
		if ! run_one "$backend" "$mode"; then
			result[$backend,$mode]="ERROR"
			echo "  error: $why"
			bad=$((bad + 1))
		elif [ "$mode" = unsafe ]; then
			if [ "$lostA" = yes ]; then
				result[$backend,$mode]="lost(ok)"
			else
				result[$backend,$mode]="KEPT(bad)"
				echo "  the control kept the flushed data: the simulation does not cut power"
				bad=$((bad + 1))
			fi
		elif [ "$lostA" = yes ]; then
			result[$backend,$mode]="LOST"
			bad=$((bad + 1))
		elif [ "$lostB" = yes ] && ! kl_mode_flags "$mode" | grep -q ' on$'; then
			result[$backend,$mode]="LOST-WT"
			echo "  cache=$mode has the guest's write cache off, so its completed writes must be durable"
			bad=$((bad + 1))
		else
			result[$backend,$mode]="kept"
		fi
		echo "    -> ${result[$backend,$mode]} (unflushed B lost: $lostB) ($(($(date +%s) - t0)) s)"
	done
done

echo
echo "Flushed data after a power cut (kl-powercut-fs; $MIB MiB flushed, $MIB MiB unflushed; through kvm-launch):"
printf '%-8s' backend
for mode in "${modes[@]}"; do printf ' %-13s' "$mode"; done
echo
for backend in "${backends[@]}"; do
	printf '%-8s' "$backend"
	for mode in "${modes[@]}"; do printf ' %-13s' "${result[$backend,$mode]}"; done
	echo
done
[ "$bad" = 0 ] || fail "$bad of $((${#backends[@]} * ${#modes[@]})) runs are wrong"
echo PASS
