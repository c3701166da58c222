#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every fuzz seed (tests/fuzz/corpus/NAME/) and every kept crash
# (tests/fuzz/crashes/NAME-*) replays through its target's
# LLVMFuzzerTestOneInput, built by the ordinary compiler with
# tests/fuzz/replay.c (tests/fuzz/out/replay-NAME, part of test-programs;
# under make check-asan, with the sanitizers).  No crash, no broken
# invariant, no hang.
. "$(dirname "$0")/../functions.sh"
requires timeout
cd "$KL_TOP" || fail "cd $KL_TOP"
TARGETS="drive blockdev policy qmp image frame relayhook"
missing=
for t in $TARGETS; do
	[ -x "tests/fuzz/out/replay-$t" ] || missing="$missing tests/fuzz/out/replay-$t"
done
if [ -n "$missing" ]; then
	# Makefile.in without the fuzz snippet merged yet: build them from it.
	echo "building$missing with tests/fuzz/Makefile.snippet"
	make -s -f Makefile -f tests/fuzz/Makefile.snippet fuzz-replay-programs || fail "cannot build the replay programs"
fi
total=0
for t in $TARGETS; do
	[ -d "tests/fuzz/corpus/$t" ] || fail "no seed corpus tests/fuzz/corpus/$t"
	seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
	[ "$seeds" -gt 0 ] || fail "empty seed corpus tests/fuzz/corpus/$t"
	crashes=$(ls tests/fuzz/crashes/$t-* 2>/dev/null)
	log=$(mktemp)
	timeout -k 5 300 "tests/fuzz/out/replay-$t" "tests/fuzz/corpus/$t" $crashes > "$log" 2>&1
	rc=$?
	if [ $rc != 0 ]; then
		tail -n 30 "$log"
		rm -f "$log"
		[ $rc = 124 ] && fail "replay-$t hung"
		fail "replay-$t: exit $rc (the input it names last above crashed)"
	fi
	echo "replay-$t: $(tail -n 1 "$log") ($seeds seeds, $(echo $crashes | wc -w) kept crashes)"
	rm -f "$log"
	total=$((total + seeds))
done
echo "fuzz corpus: $total inputs replayed"
