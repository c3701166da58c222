#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# start-cost.sh — what kvm-launch adds to a VM's start.
#
#   sh tests/bench/start-cost.sh          (also run by `make bench`; `make bench-quick` runs a short one)
#
# 1. QEMU start, 4 disks (preallocated raw, sparse raw, qcow2, preallocated raw), TCG, -S, until QMP answers
#    query-status (tests/bench/qmp-ready.c), with the management monitor in two shapes: "libvirt" (a socket the
#    caller listens on and passes as fd 3, `-chardev socket,fd=3` + `-mon`, as libvirt does; kvm-launch relays it)
#    and "stdio" (`-qmp stdio`, a hand-run QEMU; QEMU then has no socket monitor of its own, so the first of
#    kvm-launch's starts QEMU's monitor I/O thread).  Three arms, START_PAIRS rounds (default 40, quick 10),
#    after one warm-up round that is not counted, the order rotating every round:
#      plain      QEMU with the original arguments
#      rewritten  QEMU with kvm-launch's arguments (kvm-launch --dry-run: the policy's cache= and aio=), no
#                 kvm-launch process: what the policy's choices cost QEMU itself
#      monitors   rewritten plus two QMP monitors on sockets QEMU listens on, as kvm-launch adds for its agent and
#                 --status/--set: what those monitors cost QEMU itself
#      kvm-launch the same start through kvm-launch (its state directory on tmpfs, as /run is in production)
#    Per round the ratios kvm-launch/plain and kvm-launch/rewritten; median, IQR, and the added milliseconds.
#    Target: kvm-launch/plain at most 1.03 at the median.
# 2. Where kvm-launch's own milliseconds go: its KVM_LAUNCH_TIMING=1 line (phases before QEMU's exec) in every
#    kvm-launch run, medians per phase; and kvm-launch --version against /bin/true (the exec of a second binary).
# 3. libvirt (root, libvirtd, START_LIBVIRT_PAIRS > 0, default 20, quick 0): `virsh create --paused` then
#    `virsh destroy` of one domain with a 64 MiB disk, <emulator> kvm-launch (the test installation of
#    tests/libvirt/lib.sh, relay on) against the real QEMU, alternating pairs, under flock /tmp/kl-libvirt.lock.
#    Target: at most 1.01 at the median.
# START_BEFORE=PATH adds a fourth arm, another kvm-launch binary (an older build: before/after in the same rounds).
# Both arms of every comparison run at the same priority: as root the measuring loop runs at nice -10 so that
# other work on the host (the noise, not the thing measured) gets the CPU after it.  START_NICE=0 turns it off.
# Output: BENCH_OUT/start.md (default tests/logs/bench/start-DATE-TIME) and the raw figures beside it;
# doc/bench/start.md holds committed runs.  Exit 1 only when the harness broke.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export KL_TOP=$top
QEMU=${QEMU:-${BENCH_QEMU:-/usr/bin/qemu-system-x86_64}}
[ -x "$QEMU.distrib" ] && QEMU=$QEMU.distrib # a diverted system QEMU: the real one
KL=${KL_LAUNCH:-$top/kvm-launch}
quick=${BENCH_QUICK:-0}
pairs=${START_PAIRS:-$([ "$quick" = 1 ] && echo 10 || echo 40)}
lv_pairs=${START_LIBVIRT_PAIRS:-$([ "$quick" = 1 ] && echo 0 || echo 20)}
out=${BENCH_OUT:-$top/tests/logs/bench/start-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || exit 1
die() { echo "start-cost: $*" >&2; exit 1; }

# stats FILE -> "median q1 q3 n" of the numbers in FILE (one per line)
stats() {
	sort -g "$1" | awk '{v[NR] = $1} END {if (NR) printf "%.4g %.4g %.4g %d\n", v[int((NR+1)/2)], v[int((NR+3)/4)], v[int((3*NR+1)/4)], NR; else print "- - - 0"}'
}

libvirt_part() { # runs under the lock, with the test framework
	. "$top/tests/functions.sh"
	. "$top/tests/libvirt/lib.sh"
	klt_setup
	local name=kl-bench-start i arm t0 t1 t2 pid
	truncate -s 64M "$KLT_DIR/s.img"
	klt_domain "$name" --guest-cmd sleep "file:$KLT_DIR/s.img:raw:target=vda"
	sed "s|<emulator>[^<]*</emulator>|<emulator>$QEMU</emulator>|" "$KLT_DIR/$name.xml" > "$KLT_DIR/$name-plain.xml"
	grep -q "<emulator>$KLT_BIN</emulator>" "$KLT_DIR/$name.xml" || fail "the domain does not use $KLT_BIN"
	cleanup_fn "'${VIRSH[0]}' -q -c qemu:///system destroy '$name' >/dev/null 2>&1"
	for i in $(seq 0 "$lv_pairs"); do
		for arm in kvm-launch plain; do
			[ $((i % 2)) = 1 ] && arm=$([ "$arm" = plain ] && echo kvm-launch || echo plain)
			xml=$KLT_DIR/$name.xml
			[ "$arm" = plain ] && xml=$KLT_DIR/$name-plain.xml
			t0=$(date +%s%N)
			"${VIRSH[@]}" create --paused "$xml" > /dev/null || fail "virsh create ($arm)"
			t1=$(date +%s%N)
			pid=$(klt_pid "$name")
			"${VIRSH[@]}" destroy "$name" > /dev/null || fail "virsh destroy ($arm)"
			t2=$(date +%s%N)
			kl_wait_gone "$pid" 20
			# round 0 is the warm-up (libvirt's capability cache, the page cache)
			[ "$i" -gt 0 ] && echo "$i $arm $(( (t1 - t0) / 1000 )) $(( (t2 - t0) / 1000 ))" >> "$out/libvirt.txt"
		done
	done
}
if [ "${1:-}" = --libvirt-part ]; then
	libvirt_part
	exit 0
fi

# Same priority for every arm; as root above the host's other work (see the top).
if [ "$(id -u)" = 0 ] && [ "${START_NICE:-1}" != 0 ] && [ -z "${START_NICED:-}" ]; then
	exec nice -n -10 env START_NICED=1 bash "$0" "$@"
fi
[ -x "$KL" ] || die "$KL not built (run make first)"
[ -x "$QEMU" ] || die "no QEMU at $QEMU"
command -v "${CC:-cc}" > /dev/null || die "no C compiler for tests/bench/qmp-ready.c"
tmp=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/kl-start.XXXXXX") || exit 1
# The state directory where production has it: on tmpfs.
run=$(mktemp -d "${XDG_RUNTIME_DIR:-/run}/kl-start.XXXXXX" 2>/dev/null || mktemp -d /dev/shm/kl-start.XXXXXX) || exit 1
cleanup() {
	pkill -KILL -f -- "-name kl-start-" 2>/dev/null
	rm -rf "$tmp" "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"${CC:-cc}" -std=gnu11 -O2 -o "$tmp/qmp-ready" "$here/qmp-ready.c" || die "cannot build qmp-ready.c"
cp "$KL" "$tmp/kvm-launch" || exit 1 # a rebuild of the work tree meanwhile changes nothing
KL=$tmp/kvm-launch
BEFORE=
if [ -n "${START_BEFORE:-}" ]; then
	cp "$START_BEFORE" "$tmp/kvm-launch-before" || die "no $START_BEFORE"
	BEFORE=$tmp/kvm-launch-before
fi
printf 'state-dir = %s/state\ncache-dir = %s/cache\n' "$run" "$run" > "$tmp/kl.conf"

disks=()
for i in 0 1 2 3; do
	case $i in
	1) f=$tmp/d$i.raw; fmt=raw; truncate -s 512M "$f" ;;
	2) f=$tmp/d$i.qcow2; fmt=qcow2; qemu-img create -q -f qcow2 "$f" 512M || die "qemu-img create failed" ;;
	*) f=$tmp/d$i.raw; fmt=raw; fallocate -l 512M "$f" || die "fallocate failed" ;;
	esac
	disks+=(-drive "file=$f,format=$fmt,if=none,id=d$i" -device "virtio-blk-pci,drive=d$i")
done
common=(-accel tcg -m 256 -smp 1 -display none -nodefaults -S "${disks[@]}")

one() { # ARM ROUND -> ms on stdout; kvm-launch's timing line to $tmp/timing.txt
	case $1 in
	plain) "$tmp/qmp-ready" "${ready[@]}" -- "$QEMU" -name "kl-start-$2" "${args[@]}" 2> /dev/null ;;
	rewritten) "$tmp/qmp-ready" "${ready[@]}" -- "$QEMU" "${rewritten[@]}" 2> /dev/null ;;
	monitors)
		rm -f "$run/m1.sock" "$run/m2.sock"
		"$tmp/qmp-ready" "${ready[@]}" -- "$QEMU" "${rewritten[@]}" \
			-chardev "socket,id=m1,path=$run/m1.sock,server=on,wait=off" -mon chardev=m1,mode=control \
			-chardev "socket,id=m2,path=$run/m2.sock,server=on,wait=off" -mon chardev=m2,mode=control 2> /dev/null ;;
	kvm-launch)
		KVM_LAUNCH_TIMING=1 "$tmp/qmp-ready" "${ready[@]}" -- "$KL" --config "$tmp/kl.conf" --qemu "$QEMU" -- \
			-name "kl-start-$2" "${args[@]}" 2> "$tmp/err"
		sed -n 's/.*start timing (ms)://p' "$tmp/err" >> "$tmp/timing.txt" ;;
	before)
		"$tmp/qmp-ready" "${ready[@]}" -- "$BEFORE" --config "$tmp/kl.conf" --qemu "$QEMU" -- -name "kl-start-$2" \
			"${args[@]}" 2> /dev/null ;;
	esac
}
measure() {
	local p j a arms=(plain rewritten monitors kvm-launch)
	[ -n "$BEFORE" ] && arms+=(before)
	declare -A t
	t[before]=-
	for ((p = 0; p <= pairs; p++)); do
		for ((j = 0; j < ${#arms[@]}; j++)); do
			a=${arms[$(((j + p) % ${#arms[@]}))]}
			t[$a]=$(one "$a" "$p")
			sleep 0.05 # let the last VM's agent see its QEMU go
		done
		[ -n "${t[plain]}" ] && [ -n "${t[rewritten]}" ] && [ -n "${t[monitors]}" ] && [ -n "${t[kvm-launch]}" ] &&
			[ -n "${t[before]}" ] ||
			{ echo "round $p failed" >&2; continue; }
		[ "$p" = 0 ] && { : > "$tmp/timing.txt"; continue; } # warm-up: QEMU's capability cache, the page cache
		echo "$p ${t[plain]} ${t[rewritten]} ${t[kvm-launch]} ${t[before]} ${t[monitors]}"
	done
}
shapes=${START_SHAPES:-libvirt stdio}
[ "$pairs" -gt 0 ] || shapes= # START_PAIRS=0: only the libvirt part
for shape in $shapes; do
	case $shape in
	libvirt)
		ready=(-t 60 -l "$run/mon.sock")
		args=(-chardev socket,id=charmonitor,fd=3,server=on,wait=off -mon chardev=charmonitor,id=monitor,mode=control
			"${common[@]}") ;;
	stdio) ready=(-t 60); args=(-qmp stdio "${common[@]}") ;;
	*) die "unknown shape $shape (libvirt, stdio)" ;;
	esac
	mapfile -t rewritten < <("$KL" --config "$tmp/kl.conf" --qemu "$QEMU" --dry-run -- -name kl-start-r "${args[@]}" 2>/dev/null | tail -n +2)
	[ "${#rewritten[@]}" -gt 10 ] || die "kvm-launch --dry-run gave no command line"
	printf '%s\n' "${rewritten[@]}" | grep -q 'cache=none\|cache.direct' || echo "start-cost: note: the policy left the cache modes alone"
	echo "start-cost: $shape monitor: $pairs rounds of plain / rewritten / monitors / kvm-launch${BEFORE:+ / before} ($("$QEMU" --version | head -n 1))" >&2
	measure > "$out/qemu-$shape.txt"
	[ -s "$out/qemu-$shape.txt" ] || die "no round completed ($shape)"
	cp "$tmp/timing.txt" "$out/timing-$shape.txt"
done

# The exec of a second binary: kvm-launch --version against /bin/true, in blocks of 20, interleaved (bash's own
# fork is in both and cancels out in the difference).
for ((i = 0; i < 10; i++)); do
	a=$(date +%s%N); for ((j = 0; j < 20; j++)); do /bin/true; done
	b=$(date +%s%N); for ((j = 0; j < 20; j++)); do "$KL" --version > /dev/null; done
	c=$(date +%s%N)
	echo "$(( (b - a) / 20000 )) $(( (c - b) / 20000 ))"
done > "$out/exec.txt"

if [ "$lv_pairs" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v virsh > /dev/null; then
	: > "$out/libvirt.txt"
	if [ -n "${KL_SYSTEM_LOCK_HELD:-}" ]; then
		QEMU=$QEMU START_LIBVIRT_PAIRS=$lv_pairs BENCH_OUT=$out bash "$0" --libvirt-part || echo "start-cost: the libvirt part failed"
	else
		flock /tmp/kl-libvirt.lock env QEMU="$QEMU" START_LIBVIRT_PAIRS="$lv_pairs" BENCH_OUT="$out" \
			bash "$0" --libvirt-part || echo "start-cost: the libvirt part failed"
	fi
fi

col() { awk -v c="$2" '{print $c}' "$1" > "$tmp/col"; stats "$tmp/col"; }
ratio() { awk -v a="$2" -v b="$3" '{print $a / $b}' "$1" > "$tmp/col"; stats "$tmp/col"; }
diffms() { awk -v a="$2" -v b="$3" '{print $a - $b}' "$1" > "$tmp/col"; stats "$tmp/col"; }
{
	echo "# Start cost"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "$("$QEMU" --version | head -n 1); kvm-launch $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'),"
	echo "$(ldd "$KL" 2>/dev/null | grep -c '=>') shared libraries. Niceness of the measuring loop: $(cut -d' ' -f19 /proc/self/stat)."
	echo
	for shape in $shapes; do
		q=$out/qemu-$shape.txt
		echo "## QEMU start, 4 disks, $shape monitor, until QMP answers query-status ($(wc -l < "$q") rounds)"
		echo
		echo "| arm | median ms | IQR ms |"
		echo "|---|---|---|"
		cols="2:plain 3:rewritten 6:monitors 4:kvm-launch"
		[ -n "$BEFORE" ] && cols+=" 5:before"
		for c in $cols; do
			read -r m q1 q3 _ <<< "$(col "$q" "${c%%:*}")"
			echo "| ${c#*:} | $m | $q1–$q3 |"
		done
		echo
		echo "| ratio per round | median | IQR | added ms (median) |"
		echo "|---|---|---|---|"
		read -r m q1 q3 _ <<< "$(ratio "$q" 4 2)"; read -r d _ <<< "$(diffms "$q" 4 2)"
		echo "| kvm-launch / plain | $m | $q1–$q3 | $d |"
		kp=$m
		read -r m q1 q3 _ <<< "$(ratio "$q" 4 3)"; read -r d _ <<< "$(diffms "$q" 4 3)"
		echo "| kvm-launch / rewritten (kvm-launch's own work) | $m | $q1–$q3 | $d |"
		read -r m q1 q3 _ <<< "$(ratio "$q" 3 2)"; read -r d _ <<< "$(diffms "$q" 3 2)"
		echo "| rewritten / plain (the policy's choices, in QEMU) | $m | $q1–$q3 | $d |"
		read -r m q1 q3 _ <<< "$(ratio "$q" 6 3)"; read -r d _ <<< "$(diffms "$q" 6 3)"
		echo "| monitors / rewritten (two more QMP monitors, in QEMU) | $m | $q1–$q3 | $d |"
		read -r m q1 q3 _ <<< "$(ratio "$q" 4 6)"; read -r d _ <<< "$(diffms "$q" 4 6)"
		echo "| kvm-launch / monitors (kvm-launch's process, agent and relay) | $m | $q1–$q3 | $d |"
		if [ -n "$BEFORE" ]; then
			read -r m q1 q3 _ <<< "$(ratio "$q" 5 2)"; read -r d _ <<< "$(diffms "$q" 5 2)"
			echo "| before / plain ($START_BEFORE) | $m | $q1–$q3 | $d |"
		fi
		echo
		awk -v r="$kp" -v s="$shape" 'BEGIN {printf "Target kvm-launch / plain <= 1.03 at the median, %s monitor: %s, %s.\n", s, r, r <= 1.03 ? "met" : "NOT met"}'
		echo
		echo "kvm-launch's phases before QEMU's exec (KVM_LAUNCH_TIMING=1), median ms:"
		echo
		if [ -s "$out/timing-$shape.txt" ]; then
			rm -f "$tmp"/ph.*
			awk -v d="$tmp" '{for (i = 1; i < NF; i += 2) {if (!(i in names)) names[i] = $i; print $i, $(i+1) > (d "/ph." $i)}} END {for (i = 1; i in names; i += 2) print names[i]}' \
				"$out/timing-$shape.txt" > "$tmp/phases"
			echo "| $(tr '\n' '|' < "$tmp/phases" | sed 's/|$//; s/|/ | /g') |"
			echo "|$(sed 's/.*/---|/' "$tmp/phases" | tr -d '\n')"
			line="|"
			while read -r ph; do
				awk '{print $2}' "$tmp/ph.$ph" > "$tmp/col"
				read -r m _ <<< "$(stats "$tmp/col")"
				line+=" $m |"
			done < "$tmp/phases"
			echo "$line"
		fi
		echo
	done
	read -r t _ <<< "$(col "$out/exec.txt" 1)"; read -r k _ <<< "$(col "$out/exec.txt" 2)"
	echo "Start and exit of a second binary (from bash, median of 10 blocks of 20): /bin/true $t µs, kvm-launch --version $k µs."
	if [ -s "${out}/libvirt.txt" ]; then
		echo
		echo "## libvirt: virsh create --paused, then destroy ($(awk '$2 == "plain"' "$out/libvirt.txt" | wc -l) pairs)"
		echo
		awk '{a[$1 " " $2] = $3 " " $4} END {for (k in a) {split(k, p, " "); if (p[2] == "plain" && (p[1] " kvm-launch") in a) {split(a[k], x, " "); split(a[p[1] " kvm-launch"], y, " "); print x[1], y[1], x[2], y[2]}}}' \
			"$out/libvirt.txt" > "$tmp/lv"
		echo "| measure | plain ms | kvm-launch ms | ratio per pair, median (IQR) |"
		echo "|---|---|---|---|"
		for c in 1:create 3:create+destroy; do
			read -r pm _ <<< "$(col "$tmp/lv" "${c%%:*}")"
			read -r km _ <<< "$(col "$tmp/lv" $(( ${c%%:*} + 1 )))"
			read -r m q1 q3 _ <<< "$(ratio "$tmp/lv" $(( ${c%%:*} + 1 )) "${c%%:*}")"
			echo "| ${c#*:} | $(awk -v v="$pm" 'BEGIN {print v / 1000}') | $(awk -v v="$km" 'BEGIN {print v / 1000}') | $m ($q1–$q3) |"
			[ "${c#*:}" = create+destroy ] && lr=$m
		done
		echo
		awk -v r="$lr" 'BEGIN {printf "Target create + destroy through kvm-launch / plain <= 1.01 at the median: %s, %s.\n", r, r <= 1.01 ? "met" : "NOT met"}'
	fi
} > "$out/start.md"
cat "$out/start.md"
