#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs unit-test binaries and shell tests, and ends with one line
# "N passed, N failed, N skipped".  A unit binary counts each "ok"/"not ok"
# line it prints; a shell test counts once (exit 0 pass, 77 skip, else fail).
# A unit binary must print its TAP plan "1..N" with N equal to the number of
# ok/not ok lines and, when its source tests/unit/NAME.c is there, to the
# number of RUN( calls in it (so one that stops early, or skips a RUN, fails
# even when it exits 0); a "# ... skipped" line inside a case counts as a skip.
# Under CI (CI=true) a skip also fails the run: CI must have everything.
set -u
top=${KL_TOP:-$(pwd)}
logdir=$top/tests/logs
mkdir -p "$logdir"
timeout_s=${KL_TEST_TIMEOUT:-900}
passed=0 failed=0 skipped=0
failed_names=

# Leftover check (the epilogue below): every process the suite starts inherits KL_SUITE_ID (libvirt domains get it
# through make-domain.sh's <qemu:env>), so what is still running at the end is told from what other users of the
# machine run, and nothing that existed before is counted.  Loop devices carry no such mark: those attached during
# the run, backed by a test's file, and still attached at the end are counted (on a machine shared with another
# run of the suite at the same time, that run's loop devices can be counted too).
KL_SUITE_ID=kl-suite-$$-$(date +%s%N)
export KL_SUITE_ID
loops() { # NAME<TAB>BACKING of every attached loop device
	for b in /sys/block/loop*/loop/backing_file; do
		[ -r "$b" ] || continue
		printf '%s\t%s\n' "/dev/$(basename "$(dirname "$(dirname "$b")")")" "$(cat "$b" 2>/dev/null)"
	done | sort
}
loops_before=$(loops)

for t in "$@"; do
	name=$(echo "$t" | sed 's|^tests/||; s|/|-|g')
	log=$logdir/$name.log
	start=$(date +%s)
	case $t in
	*.sh) timeout -k 10 "$timeout_s" bash "$t" > "$log" 2>&1; rc=$? ;;
	*) timeout -k 10 "$timeout_s" "./$t" > "$log" 2>&1; rc=$? ;;
	esac
	secs=$(( $(date +%s) - start ))
	case $t in
	*.sh)
		case $rc in
		0) passed=$((passed + 1)); echo "PASS: $t (${secs}s)" ;;
		77) skipped=$((skipped + 1)); echo "SKIP: $t: $(grep -i 'skip' "$log" | tail -n 1)" ;;
		*) failed=$((failed + 1)); failed_names="$failed_names $t"; echo "FAIL: $t (exit $rc, ${secs}s; log $log)"; tail -n 15 "$log" | sed 's/^/    /' ;;
		esac ;;
	*)
		ok=$(grep -c '^ok ' "$log")
		notok=$(grep -c '^not ok ' "$log")
		passed=$((passed + ok))
		failed=$((failed + notok))
		plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
		want=$plan
		[ -f "$t.c" ] && want=$(grep -c '^[[:space:]]*RUN(' "$t.c")
		why=
		if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
			why="exit $rc"	# crashed or exited early
		elif [ -z "$plan" ]; then
			why="no TAP plan (1..N)"
		elif [ "$plan" -ne $((ok + notok)) ]; then
			why="plan 1..$plan but $((ok + notok)) results"
		elif [ "$plan" -ne "$want" ]; then
			why="plan 1..$plan but $t.c has $want RUN( calls"
		fi
		if [ -n "$why" ]; then
			echo "    $t: $why" >> "$log"
			failed=$((failed + 1))
			notok=$((notok + 1))
		fi
		nskip=$(grep -c '^#.*skipped' "$log")
		if [ "$nskip" -gt 0 ]; then
			skipped=$((skipped + nskip))
			echo "SKIP: $t: $(grep '^#.*skipped' "$log" | tr '\n' ' ')"
		fi
		if [ "$notok" -gt 0 ]; then
			failed_names="$failed_names $t"
			echo "FAIL: $t ($ok ok, $notok failed, exit $rc${why:+, $why}; log $log)"
			grep -B3 '^not ok ' "$log" | sed 's/^/    /' | tail -n 30
			[ "$rc" -ne 0 ] && tail -n 5 "$log" | sed 's/^/    /'
		else
			echo "PASS: $t ($ok cases, ${secs}s)"
		fi ;;
	esac
done

# Epilogue: QEMUs, agents, daemons and loop devices the suite left behind (given a few seconds to go).
suite_procs() { # PIDs of live processes carrying this run's KL_SUITE_ID, but for this shell and its subshells
	env -u KL_SUITE_ID sh -c '
		for e in /proc/[0-9]*/environ; do
			p=${e#/proc/}; p=${p%/environ}
			[ "$p" = "$2" ] && continue
			[ "$(awk "/^PPid:/ {print \$2}" /proc/$p/status 2>/dev/null)" = "$2" ] && continue
			grep -qs "^State:[[:space:]]*Z" /proc/$p/status && continue
			{ tr "\0" "\n" < "$e"; } 2>/dev/null | grep -qx "KL_SUITE_ID=$1" && echo "$p"
		done' sh "$KL_SUITE_ID" "$$"
}
suite_loops() {
	loops | while IFS='	' read -r dev backing; do
		printf '%s\n' "$loops_before" | grep -qxF "$dev	$backing" && continue
		# A file of ours is there (or was deleted with its test directory); a path that does not resolve here
		# belongs to another root (run in a chroot, the host's loop devices show with the host's paths).
		case $backing in *" (deleted)") ;; *) [ -e "$backing" ] || continue ;; esac
		case $backing in */kl-* | */kvm-launch-tests/*) printf '%s\t%s\n' "$dev" "$backing" ;; esac
	done
}
n=0
while :; do
	left_procs=$(suite_procs)
	left_loops=$(suite_loops)
	[ -z "$left_procs$left_loops" ] && break
	[ "$n" -ge 50 ] && break
	sleep 0.2
	n=$((n + 1))
done
if [ -n "$left_procs$left_loops" ]; then
	failed=$((failed + 1))
	failed_names="$failed_names leftovers"
	echo "FAIL: leftovers: the suite left these behind (now killed/detached):"
	for p in $left_procs; do
		echo "    pid $p ($(cat "/proc/$p/comm" 2>/dev/null)): $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
		kill -9 "$p" 2>/dev/null
	done
	printf '%s\n' "$left_loops" | while IFS='	' read -r dev backing; do
		[ -n "$dev" ] || continue
		echo "    loop device $dev ($backing)"
		losetup -d "$dev" 2>/dev/null
	done
else
	echo "PASS: no QEMU, agent or loop device left by the suite"
fi

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || exit 1
if [ "$skipped" -gt 0 ] && [ "${CI:-}" = true ]; then
	echo "error: tests were skipped under CI, where everything they need must be installed" >&2
	exit 1
fi
exit 0
