#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# "Prove the policy pays": the calibration's engine ranking against QEMU's
# own I/O paths, measured with `qemu-img bench` on the same storage.
#
# Targets: a directory on the root filesystem (the calibration uses a
# temporary file in it; qemu-img bench a written raw file next to it) and,
# as root, a loop device (direct-io=on) over a written file there (both
# tools write to it: it is ours).
#
# qemu-img bench (QEMU 7.2 and 10.0) has no random offsets: it advances by a fixed
# step (-S) and wraps modulo the image size.  A step of 4 KiB times an odd
# number near 0.618 of the image's blocks visits every block in a scattered
# order, which defeats read-ahead like random offsets do.  Counts (-c) are
# sized from the calibration's own IOPS so each bench run lasts about
# KL_BENCH_RUN_SECONDS.  Page cache: dropped for the image before each
# buffered (writeback) run, as the calibration does.
#
# Asserts behaviour only: the calibration produced numbers for every run of
# each available engine, was stored under the right name, lookup returns it
# for the storage as the probes see it; qemu-img bench produced a number for
# each engine the calibration found available, and refused aio=native
# without O_DIRECT.  Which engine wins, and whether the two rankings agree,
# goes to the log.
#   KL_CALIBRATE_SECONDS   calibration budget per target (default 15)
#   KL_BENCH_RUN_SECONDS   target length of one qemu-img bench run (default 0.5)
. "$(dirname "$0")/../functions.sh"
CLI=$KL_TOP/tests/helpers/calibrate-cli
requires "$CLI" qemu-img awk stat dd
# Does this qemu-img bench take -S?  Asked by running it, not by reading the help: qemu-img 7.2 lists each
# command's synopsis in `qemu-img --help`, qemu-img 10.0 only a one-line summary there ("bench - Run simple image
# benchmark") and the options under `qemu-img bench --help`; both take -S.
probe_img=$(mktemp "${TMPDIR:-/tmp}/kl-bench-probe.XXXXXX")
cleanup_fn "rm -f '$probe_img' '$probe_img.out'"
truncate -s 1M "$probe_img"
if ! qemu-img bench -f raw -c 4 -s 4096 -S 8192 "$probe_img" > "$probe_img.out" 2>&1 ||
	! grep -q 'step size 8192' "$probe_img.out"; then
	echo "SKIP: $0: this qemu-img bench has no -S (step size): $(cat "$probe_img.out")"
	rm -f "$probe_img.out"
	exit 77
fi
rm -f "$probe_img.out"
echo "qemu-img $(qemu-img --version | sed -n '1s/^qemu-img version \([^ ]*\).*/\1/p'): bench takes -S"
SECS=${KL_CALIBRATE_SECONDS:-15}
RUN_SECS=${KL_BENCH_RUN_SECONDS:-0.5}
IMG_MIB=256

base=/var/tmp
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$base/kl-calibrate.XXXXXX")
cleanup_fn "rm -rf '$WORK'"
CACHE=$WORK/cache
mkdir -p "$WORK/dir"
skipped=
if [ "$(stat -c %d "$WORK")" = "$(stat -c %d /)" ]; then
	echo "work directory $WORK: on the root filesystem ($(stat -f -c %T /))"
else
	echo "work directory $WORK: NOT on the root filesystem ($(stat -f -c %T "$WORK")); measuring it anyway"
fi

# Written data, not fallocate: unwritten extents read back as zeros without I/O.
make_image() {   # FILE
	dd if=/dev/urandom of="$1" bs=1M count=$IMG_MIB conv=fsync status=none || fail "writing $1"
}
# fdatasync and drop the page cache of one file or device (GNU dd: count=0 with nocache covers all of it)
drop_cache() {
	dd of="$1" oflag=nocache conv=notrunc,fdatasync count=0 status=none 2>/dev/null ||
		dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
}
kv() { sed -n "s/^$1=//p" "$2" | head -n 1; }

# calibrate NAME TARGET EXPECTED_ID [--write]: runs the calibration, checks it, leaves $WORK/NAME.kv
calibrate() {
	local name=$1 target=$2 id=$3
	shift 3
	echo
	echo "=== calibration of $target ($name), $SECS s"
	"$CLI" --seconds "$SECS" --cache-dir "$CACHE" --kv-out "$WORK/$name.kv" "$@" "$target" ||
		fail "calibrate-cli $target: exit $?"
	local f=$WORK/$name.kv
	[ "$(kv storage_id "$f")" = "$id" ] || fail "$name: storage_id $(kv storage_id "$f"), expected $id"
	grep '^engine threads available=1' "$f" >/dev/null || fail "$name: threads unavailable: $(grep '^engine threads' "$f")"
	local e n bad
	for e in $(sed -n 's/^engine \([a-z_]*\) available=1.*/\1/p' "$f"); do
		n=$(grep -c "^run engine=$e " "$f")
		[ "$n" -ge 6 ] || fail "$name: only $n runs of $e"
		bad=$(grep "^run engine=$e " "$f" | awk '$6 != "ok=1" || !(substr($7, 6) + 0 > 0)')
		[ -z "$bad" ] || fail "$name: $e runs without numbers: $bad"
	done
	grep '^engine .* available=0' "$f" | sed 's/^/unavailable: /'
	local stored=$CACHE/calibration/$(echo "$id" | tr : -).json
	[ -s "$stored" ] || fail "$name: no stored calibration at $stored"
	echo "stored: $stored"
}

# lookup NAME PATH: the launcher's view of PATH (probed) gets the stored ranking
lookup() {
	local name=$1 path=$2 f=$WORK/$1.kv
	"$CLI" --lookup-path --cache-dir "$CACHE" "$path" > "$WORK/$name.lookup" || fail "lookup $path"
	local want
	want=$(kv rank_direct "$f")
	[ -n "$want" ] || want=$(kv rank_buffered "$f")
	[ "$(kv storage_id "$WORK/$name.lookup")" = "$(kv storage_id "$f")" ] ||
		fail "$name: the probe of $path says $(kv storage_id "$WORK/$name.lookup"), the calibration $(kv storage_id "$f")"
	[ "$(kv ranking "$WORK/$name.lookup")" = "$want" ] ||
		fail "$name: lookup of $path gives ranking '$(kv ranking "$WORK/$name.lookup")', expected '$want'"
	kv calibration "$WORK/$name.lookup" | grep -q "^$(kv storage_id "$f" | tr : -) [0-9T:-]*Z\$" ||
		fail "$name: lookup calibration name '$(kv calibration "$WORK/$name.lookup")'"
	echo "lookup of $path: ranking=$(kv ranking "$WORK/$name.lookup") calibration=$(kv calibration "$WORK/$name.lookup")"
}

# bench NAME IMAGE: qemu-img bench for each engine x cache x pattern x depth into $WORK/NAME.qemu
bench() {
	local name=$1 img=$2 f=$WORK/$1.kv out=$WORK/$1.qemu
	local size blocks step
	size=$(blockdev --getsize64 "$img" 2>/dev/null || stat -c %s "$img")
	blocks=$((size / 4096))
	step=$(( (blocks * 618 / 1000) | 1 ))
	step=$((step * 4096))
	local pats=randread
	[ "$(kv write "$f")" = 1 ] && pats="randread randwrite"
	: > "$out"
	echo
	echo "=== qemu-img bench on $img ($name): -s 4096 -S $step (stride of $((step / 4096)) blocks over $blocks)"
	local cache mode e pat qd calib count wflag secs iops off=0
	for e in io_uring native threads; do
		grep -q "^engine $e available=1" "$f" || echo "$e: unavailable in the calibration, not benched"
	done
	if grep -q '^engine native available=1' "$f"; then
		if qemu-img bench -f raw -t writeback -i native -c 1 "$img" > "$WORK/err" 2>&1; then
			fail "qemu-img accepted aio=native with cache=writeback"
		fi
		grep -q "requires cache.direct=on" "$WORK/err" || fail "qemu-img: $(cat "$WORK/err")"
		echo "native with cache=writeback: refused by QEMU, as expected ($(tail -n 1 "$WORK/err" | sed 's/^qemu-img: //'))"
	fi
	# Engines interleaved for each configuration, as the calibration runs
	# them; each run starts where the previous one's stride stopped, so
	# runs do not re-read the same blocks in the same order.
	for cache in none writeback; do
		mode=direct
		[ $cache = writeback ] && mode=buffered
		for pat in $pats; do
			for qd in 1 32; do
				for e in io_uring native threads; do
					[ $e = native ] && [ $cache = writeback ] && continue
					grep -q "^engine $e available=1" "$f" || continue
					calib=$(grep "^run engine=$e cache=$mode qd=$qd pattern=$pat " "$f" | sed -n 's/.* iops=\([0-9]*\).*/\1/p')
					[ -n "$calib" ] || continue
					count=$(awk -v i="$calib" -v s="$RUN_SECS" 'BEGIN { c = int(i * s); if (c < 500) c = 500; if (c > 400000) c = 400000; print c }')
					wflag=
					[ $pat = randwrite ] && wflag=-w
					drop_cache "$img"
					if ! qemu-img bench -f raw -t $cache -i $e -c "$count" -d $qd -s 4096 -S "$step" -o "$off" $wflag "$img" > "$WORK/bench" 2>&1; then
						fail "qemu-img bench -t $cache -i $e -d $qd $pat: $(cat "$WORK/bench")"
					fi
					off=$(( (off + count * step) % size ))
					secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$WORK/bench")
					[ -n "$secs" ] || fail "qemu-img bench said: $(cat "$WORK/bench")"
					iops=$(awk -v c="$count" -v s="$secs" 'BEGIN { if (s <= 0) s = 0.0005; printf "%.0f", c / s }')
					[ "$iops" -gt 0 ] || fail "qemu-img bench $e $cache $pat qd$qd: no IOPS"
					echo "$mode $e $pat $qd $calib $iops" >> "$out"
				done
			done
		done
	done
	# each available engine has a number for each of its configurations
	for e in io_uring native threads; do
		grep -q "^engine $e available=1" "$f" || continue
		[ "$(awk -v e=$e '$2 == e' "$out" | grep -c .)" -ge 4 ] || fail "$name: qemu-img bench: too few runs of $e"
	done
	[ "$(grep -c . "$out")" -gt 0 ] || fail "$name: qemu-img bench measured nothing"
}

# compare NAME: both tables and both rankings
compare() {
	local name=$1 out=$WORK/$1.qemu f=$WORK/$1.kv
	echo
	echo "=== $name: calibration vs qemu-img bench (4 KiB, IOPS)"
	sort -k1,1r -k2,2 -k3,3 -k4,4n "$out" |
		awk '{ printf "%-9s %-9s %-10s qd%-3s calibration %8d   qemu-img %8d   qemu/cal %5.2f\n", $1, $2, $3, $4, $5, $6, $6 / $5 }'
	local mode ours theirs
	for mode in direct buffered; do
		ours=$(kv rank_$mode "$f")
		theirs=$(awk -v m=$mode '
			$1 == m { n[$2]++; l[$2] += log($6) }
			END { for (e in n) if (n[e] == want) printf "%s %.0f\n", e, exp(l[e] / n[e]) }' want=$(( $(kv write "$f") == 1 ? 4 : 2 )) "$out" |
			sort -k2,2nr | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $1 }')
		local scores
		scores=$(awk -v m=$mode '$1 == m { n[$2]++; l[$2] += log($6) } END { for (e in n) printf "%s=%.0f ", e, exp(l[e] / n[e]) }' "$out")
		echo "ranking $mode: calibration $ours | qemu-img $theirs   (qemu-img geometric means: $scores)"
		if [ "$ours" = "$theirs" ]; then
			echo "RANKING $name $mode: AGREE ($ours)"
		elif [ "${ours%%,*}" = "${theirs%%,*}" ]; then
			echo "RANKING $name $mode: SAME WINNER (${ours%%,*}), order differs: calibration $ours, qemu-img $theirs"
		else
			echo "RANKING $name $mode: DISAGREE: calibration $ours, qemu-img $theirs"
		fi | tee -a "$WORK/summary"
	done
}

# --- a directory on the root filesystem
make_image "$WORK/dir/bench.raw"
calibrate dir "$WORK/dir" "dev:$(stat -c '%Hd:%Ld' "$WORK/dir")"
lookup dir "$WORK/dir/bench.raw"
bench dir "$WORK/dir/bench.raw"
compare dir
ls -A "$WORK/dir" | grep -v '^bench.raw$' | grep . && fail "the calibration left files in $WORK/dir"

# --- a loop device (direct-io=on) over a written file
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
	make_image "$WORK/loop.raw"
	if loop=$(losetup --find --show --direct-io=on "$WORK/loop.raw" 2>/dev/null) ||
	   loop=$(losetup --find --show "$WORK/loop.raw" 2>/dev/null); then
		cleanup_fn "losetup -d '$loop'"
		echo
		echo "loop device $loop over $WORK/loop.raw, direct-io=$(cat /sys/block/${loop#/dev/}/loop/dio 2>/dev/null || echo ?)"
		calibrate loop "$loop" "dev:$(stat -c '%Hr:%Lr' "$loop")" --write
		lookup loop "$loop"
		bench loop "$loop"
		compare loop
	else
		echo "losetup failed: loop part skipped"
		skipped="$skipped loop"
	fi
else
	skipped="$skipped loop"
fi

echo
echo "=== summary"
cat "$WORK/summary"
if [ -n "$skipped" ]; then
	echo "SKIP: parts needing root were skipped:$skipped"
	exit 77
fi
echo "calibration and qemu-img bench both measured every available engine"
