#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The fail-open guard (README "Safety"): a crash or a hang anywhere in the preparation of a launch starts QEMU
# with the original arguments and one "kvm-launch:" line; with on-error = refuse it exits 1 and starts nothing.
# Faults are injected with strace into kvm-launch's own system calls at four points of the preparation:
#   policy   the open of the policy file            (-P POLICY  openat)
#   caps     the capability query of QEMU           (socketpair, with an empty cache directory)
#   probe    the statfs of the disk image            (-P IMAGE   statfs/fstatfs)
#   state    the lock of the state directory         (-P STATEDIR/.lock flock: the lock file, never the directory)
# A crash is `signal=SIGSEGV`; a hang is `delay_enter` longer than the guard's 20 s.  The QEMU is a recording
# stand-in (tests/helpers/fake-qemu-rec.sh): it must receive exactly the original argv.  strace's own log must
# show that the fault was injected at that point (otherwise the case proves nothing and fails).
# Before the policy is read its on-error is unknown, so a fault there fails open even under on-error = refuse
# (the QEMU known without the policy, --qemu here, is started).
# In a sanitizer build the guard leaves crash signals to the sanitizer on purpose (it must report them): there a
# crash must produce the sanitizer's report and start nothing; the hangs are guarded as usual.
. "$(dirname "$0")/../functions.sh"
requires "$KL" strace
kl_tmpdir
fake=$KL_TOP/tests/helpers/fake-qemu-rec.sh
SAN=
if ldd "$KL" 2>/dev/null | grep -q libasan || nm "$KL" 2>/dev/null | grep -q ' __asan_init'; then
	SAN=1
	echo "sanitizer build: crashes must reach the sanitizer"
fi
HANG_US=${KL_GUARD_HANG_US:-25000000} # the guard fires after 20 s
IMGF=$TMP/disk.img
truncate -s 16M "$IMGF"
# Processes started in the background (the hang cases), killed at exit if still there.
BG_PIDS=
cleanup_fn 'for p in $BG_PIDS; do kill_tree $p; done'

# The original QEMU arguments: one disk that kvm-launch would rewrite, so preparation goes all the way.
orig=(-name guardvm -m 64 -drive "file=$IMGF,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0)

# Sanity: without a fault the disk IS rewritten (so an unchanged argv below means the guard acted).
mkdir -p "$TMP/sane"
printf 'cache-dir = %s/sane/cache\nstate-dir = %s/sane/state\n' "$TMP" "$TMP" >"$TMP/sane/p.conf"
chmod 0644 "$TMP/sane/p.conf"
KL_RECORD=$TMP/sane/rec "$KL" --config "$TMP/sane/p.conf" --qemu "$fake" -- "${orig[@]}" 2>"$TMP/sane/err" ||
	fail "a plain launch failed: $(cat "$TMP/sane/err")"
printf '%s\0' "$fake" "${orig[@]}" | cmp -s - "$TMP/sane/rec" &&
	fail "without a fault kvm-launch did not rewrite the disk: this test could not tell the guard acted"
tr '\0' ' ' <"$TMP/sane/rec" | grep -q 'cache=' || fail "the plain launch gave no cache= to the disk"
# The state directory exists from now on in each case (the state point locks it).

# case NAME POINT KIND(crash|hang) ONERROR(open|refuse): runs one launch under strace in $TMP/NAME.
case_run() {
	local name=$1 point=$2 kind=$3 onerr=$4 d=$TMP/$1 fault
	mkdir -p "$d/state" "$d/cache"
	{
		[ "$onerr" = refuse ] && echo "on-error = refuse"
		printf 'cache-dir = %s\nstate-dir = %s\n' "$d/cache" "$d/state"
	} >"$d/p.conf"
	chmod 0644 "$d/p.conf"
	case $kind in
	crash) fault=signal=SIGSEGV:when=1 ;;
	hang) fault=delay_enter=$HANG_US:when=1 ;;
	esac
	local -a sel
	case $point in
	policy) sel=(-P "$d/p.conf" -e "inject=openat:$fault") ;;
	caps) sel=(-e "inject=socketpair:$fault") ;;
	probe) sel=(-P "$IMGF" -e "inject=statfs,fstatfs:$fault") ;;
	state) sel=(-P "$d/state/.lock" -e "inject=flock:$fault") ;;
	esac
	local rc=0 t0
	t0=$(date +%s)
	KL_RECORD=$d/rec strace -f -o "$d/strace.log" "${sel[@]}" \
		"$KL" --config "$d/p.conf" --qemu "$fake" -- "${orig[@]}" 2>"$d/err" || rc=$?
	echo "$rc $(($(date +%s) - t0))" >"$d/rc"
}

# check NAME POINT KIND EXPECT(open|refuse)
case_check() {
	local name=$1 point=$2 kind=$3 want=$4 d=$TMP/$1 rc secs msg
	read -r rc secs <"$d/rc"
	case $point in
	policy) grep -q "openat(.*\"$d/p.conf\"" "$d/strace.log" ;;
	caps) grep -q 'socketpair(' "$d/strace.log" ;;
	probe) grep -Eq "f?statfs\\(" "$d/strace.log" ;;
	state) grep -q 'flock(' "$d/strace.log" ;;
	esac || fail "$name: kvm-launch never reached the $point point (strace log: $(head -c 2000 "$d/strace.log"))"
	if [ "$kind" = crash ]; then
		grep -q -- '--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_KERNEL' "$d/strace.log" ||
			fail "$name: strace did not inject SIGSEGV"
		if [ -n "$SAN" ]; then
			grep -q 'AddressSanitizer' "$d/err" || fail "$name: no sanitizer report for the crash: $(cat "$d/err")"
			[ "$rc" != 0 ] && [ ! -e "$d/rec" ] || fail "$name: a crash in a sanitizer build started QEMU (exit $rc)"
			echo "ok: $point crash -> the sanitizer's report, nothing started (sanitizer build)"
			return 0
		fi
		msg="internal failure (signal) preparing the launch"
	else
		grep -q -- '--- SIGALRM' "$d/strace.log" || fail "$name: the guard's alarm never rang"
		msg="timed out preparing the launch"
	fi
	grep -q "^kvm-launch: error: $msg" "$d/err" || fail "$name: no '$msg' line: $(cat "$d/err")"
	if [ "$want" = open ]; then
		[ "$rc" = 0 ] || fail "$name: exit $rc (the stand-in QEMU exits 0): $(cat "$d/err")"
		[ -f "$d/rec" ] || fail "$name: QEMU was not started: $(cat "$d/err")"
		printf '%s\0' "$fake" "${orig[@]}" | cmp -s - "$d/rec" ||
			fail "$name: QEMU did not get the original arguments: $(tr '\0' ' ' <"$d/rec")"
		grep -q "starting QEMU with the original arguments" "$d/err" || fail "$name: no fail-open message"
	else
		[ "$rc" = 1 ] || fail "$name: on-error = refuse, exit $rc (want 1): $(cat "$d/err")"
		[ ! -e "$d/rec" ] || fail "$name: on-error = refuse, yet QEMU was started"
		grep -q "refusing to start (on-error = refuse)" "$d/err" || fail "$name: no refusal message"
	fi
	echo "ok: $point $kind -> $([ "$want" = open ] && echo "original argv reached QEMU" || echo "exit 1, nothing started") (${secs}s)"
}

points=(policy caps probe state)
# The hangs take the guard's 20 s each: run them all at once in the background.
for p in "${points[@]}"; do
	case_run "hang-$p-open" "$p" hang open &
	BG_PIDS="$BG_PIDS $!"
	case_run "hang-$p-refuse" "$p" hang refuse &
	BG_PIDS="$BG_PIDS $!"
done
for p in "${points[@]}"; do
	case_run "crash-$p-open" "$p" crash open
	case_check "crash-$p-open" "$p" crash open
	case_run "crash-$p-refuse" "$p" crash refuse
	case_check "crash-$p-refuse" "$p" crash "$([ "$p" = policy ] && echo open || echo refuse)"
done
for p in $BG_PIDS; do wait "$p"; done
for p in "${points[@]}"; do
	case_check "hang-$p-open" "$p" hang open
	case_check "hang-$p-refuse" "$p" hang "$([ "$p" = policy ] && echo open || echo refuse)"
done
echo PASS
