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

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || exit 1
if [ "$skipped" -gt 0 ] && [ "${CI:-}" = true ]; then
	echo "error: tests were skipped under CI, where everything they need must be installed" >&2
	exit 1
fi
exit 0
