#!/bin/bash
# Data safety through kvm-launch: for each cache mode none, writeback, writethrough, directsync and each backend
# (raw file; loop block device when root), a policy forces the mode (`[rule force] cache = MODE`) over a command
# line that asks for cache=unsafe; --dry-run must show the forced mode.  The guest writes a pattern over the disk,
# flushes (fsync) and prints `KL flushed`; the host SIGKILLs QEMU right then and checks the pattern in the image
# (kl-guest-io verify).  Nothing may be missing.  Also checked per run: QEMU runs with the forced mode on its
# command line, and the guest sees that mode's write cache.  Ends with a table backend x cache -> OK/BAD.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires "$KL" "$QEMU" truncate
kl_need_helpers
kl_guest_build
kl_tmpdir
kl_imgdir

MIB=${KL_SAFETY_MIB:-32}
modes=(none writeback writethrough directsync)
backends=(file)
truncate -s 64M "$IMG/ds-file.img"
if [ "$(id -u)" = 0 ]; then
	truncate -s 64M "$IMG/ds-loop.img"
	kl_loop_setup "$IMG/ds-loop.img"
	backends+=(loop)
else
	echo "note: not root, so no loop block device backend"
fi

declare -A result
bad=0
QPID=

# One run; prints why on stdout and returns 1 when something is wrong; the data verdict goes into $verdict.
run_one() { # BACKEND MODE
	local backend=$1 mode=$2 dev st log policy seed
	verdict=BAD
	case $backend in
	file) dev=$IMG/ds-file.img ;;
	loop) dev=$KL_LOOP ;;
	esac
	st=$TMP/state-$backend-$mode
	log=$TMP/serial-$backend-$mode.log
	policy=$TMP/policy-$mode.conf
	seed=$(((RANDOM << 15 | RANDOM) + 1))
	printf 'qemu = %s\n[rule force]\ncache = %s\n' "$QEMU" "$mode" >"$policy"
	chmod 0644 "$policy"

	local -a args=(
		-name "ds-$backend-$mode" -accel tcg -m 256 -nographic -nodefaults -no-reboot -serial "file:$log"
		-kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD"
		-append "console=ttyS0 quiet panic=-1 no_timer_check kl.cmd=report,pattern:vda:$seed:$MIB"
		-drive "file=$dev,format=raw,if=none,id=d0,cache=unsafe"
		-device virtio-blk-pci,drive=d0,id=vda
	)
	local dry
	dry=$("$KL" --config "$policy" --state-dir "$st" --dry-run --json -- "${args[@]}") || {
		echo "--dry-run failed"
		return 1
	}
	local dmode
	dmode=$(jq_s "$dry" disks.0.cache)
	if [ "$dmode" != "$mode" ]; then
		echo "--dry-run shows cache=$dmode, the policy forces $mode"
		return 1
	fi

	"$KL" --config "$policy" --state-dir "$st" -- "${args[@]}" </dev/null >"$TMP/kl-$backend-$mode.err" 2>&1 &
	QPID=$!
	ALL_QPIDS="$ALL_QPIDS $QPID"
	# As soon as the launcher has become QEMU, keep its command line (it is read after the kill).
	local n=100 exe=
	while [ $n -gt 0 ]; do
		exe=$(readlink -f "/proc/$QPID/exe" 2>/dev/null) || exe=
		[ "$exe" = "$(readlink -f "$QEMU")" ] && break
		sleep 0.05
		n=$((n - 1))
	done
	[ "$exe" = "$(readlink -f "$QEMU")" ] || {
		echo "pid $QPID never became $(readlink -f "$QEMU") (it runs ${exe:-nothing}): $(cat "$TMP/kl-$backend-$mode.err")"
		kill -KILL "$QPID" 2>/dev/null
		wait "$QPID" 2>/dev/null
		QPID=
		return 1
	}
	sleep 0.2 # the exec is done; let QEMU finish parsing before we read the cmdline (it does not change anyway)
	kl_args_load "$QPID"

	# Poll for the flush acknowledgement, then kill at once: nothing may reach the image after this point.
	local deadline=$(($(date +%s) + 120))
	while :; do
		if grep -q '^KL flushed' "$log" 2>/dev/null; then
			kill -KILL "$QPID"
			break
		fi
		if grep -Eq '^KL (error|done)' "$log" 2>/dev/null || ! kill -0 "$QPID" 2>/dev/null ||
			[ "$(date +%s)" -ge "$deadline" ]; then
			kill -KILL "$QPID" 2>/dev/null
			wait "$QPID" 2>/dev/null
			echo "the guest did not report 'KL flushed':"
			sed 's/^/    serial: /' "$log"
			sed 's/^/    stderr: /' "$TMP/kl-$backend-$mode.err"
			return 1
		fi
		sleep 0.02
	done
	wait "$QPID" 2>/dev/null
	QPID=

	# The data, from what QEMU wrote to (the image file or the loop device).
	local out
	out=$("$KL_GUEST_HELPER" verify "$dev" "$seed" "$MIB" 2>&1) && verdict=OK
	[ "$verdict" = OK ] || echo "pattern check of $dev (seed $seed, $MIB MiB): $out"
	grep -qx "KL flushed dev=vda seed=$seed mib=$MIB" "$log" || {
		echo "unexpected flushed line: $(grep '^KL flushed' "$log")"
		return 1
	}

	# The mode really was the forced one.
	local why
	why=$( (kl_check_disk_cmdline vda "$mode" any) 2>&1) || {
		echo "$why"
		return 1
	}
	echo "  $why"
	why=$( (kl_check_guest_wc "$log" vda "$mode") 2>&1) || {
		echo "$why"
		return 1
	}
	grep -q "^KL disk vda write_cache=" "$log" && echo "  $(grep '^KL disk vda' "$log")"

	# The agent noticed QEMU's death and cleaned up.
	n=100
	while [ $n -gt 0 ] && [ -e "$st/ds-$backend-$mode.json" ]; do
		sleep 0.1
		n=$((n - 1))
	done
	[ ! -e "$st/ds-$backend-$mode.json" ] || {
		echo "state file left after QEMU was killed"
		return 1
	}
	why=$( (kl_no_sanitizer_reports "$TMP/kl-$backend-$mode.err") 2>&1) || {
		echo "$why"
		return 1
	}
	[ "$verdict" = OK ]
}
# Every QEMU this test starts (a failing run may leave one behind in $QPID).
cleanup_fn 'for p in $ALL_QPIDS; do kl_kill_if $p "$QEMU"; kl_kill_if $p "$KL"; done'
ALL_QPIDS=

for backend in "${backends[@]}"; do
	for mode in "${modes[@]}"; do
		echo "=== $backend, cache=$mode"
		t0=$(date +%s)
		if run_one "$backend" "$mode"; then
			result[$backend,$mode]=OK
		else
			result[$backend,$mode]=BAD
			[ "$verdict" = OK ] && result[$backend,$mode]="BAD(mode)"
			bad=$((bad + 1))
		fi
		echo "    -> ${result[$backend,$mode]} ($(($(date +%s) - t0)) s)"
	done
done

echo
echo "Data safety after SIGKILL right after the guest's flush ($MIB MiB pattern, through kvm-launch):"
printf '%-8s' backend
for mode in "${modes[@]}"; do printf ' %-13s' "$mode"; done
echo
for backend in "${backends[@]}"; do
	printf '%-8s' "$backend"
	for mode in "${modes[@]}"; do printf ' %-13s' "${result[$backend,$mode]}"; done
	echo
done
[ "$bad" = 0 ] || fail "$bad of $((${#backends[@]} * ${#modes[@]})) runs are BAD"
echo PASS
