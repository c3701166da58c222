# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by tests/bad/t-*.sh (after tests/functions.sh): run kvm-launch on
# bad or odd input in front of a recording stand-in QEMU
# (tests/helpers/fake-qemu-rec.sh) and check what QEMU received.
#
#   bad_setup                  TMP, the policies $PASS and $REFUSE, KL_RECORD
#   launch CONF ARGS...        kvm-launch --config CONF --qemu FAKE -- ARGS under
#                              timeout; sets RC; stderr in $ERR
#   expect_passthrough ARGS..  fail-open: exit 0, QEMU got ARGS byte for byte,
#                              exactly one "kvm-launch:" line saying so
#   expect_refused ARGS...     on-error = refuse: exit 1, QEMU not started,
#                              exactly one "kvm-launch:" line saying so
#   expect_malformed ARGS...   both of the above
#   expect_started ARGS...     valid input: exit 0, QEMU started, no error
#   got_arg N                  the Nth argument QEMU got (1 = first after its path)
#   expect_same_except "N.." ARGS...  QEMU got ARGS but for the numbered ones
#   no_crash ARGS...           RC is no signal nor timeout; no sanitizer report,
#                              the crash guard did not fire
# (bash: the helpers keep their variables local.)
# Arguments may hold any byte but NUL; records are NUL-separated and read
# with GNU sed -z.
# Bytes, not characters: messages may quote bytes that are not UTF-8.
export LC_ALL=C
KL_FAKE=$KL_TOP/tests/helpers/fake-qemu-rec.sh
KL_BAD_TIMEOUT=${KL_BAD_TIMEOUT:-60}

bad_setup() {
	requires "$KL" timeout cmp sed
	[ -x "$KL_FAKE" ] || fail "$KL_FAKE is missing or not executable"
	kl_tmpdir
	chmod 0755 "$TMP"
	export KL_RECORD=$TMP/record
	PASS=$TMP/pass.conf
	REFUSE=$TMP/refuse.conf
	printf 'cache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$PASS"
	printf 'on-error = refuse\ncache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$REFUSE"
	chmod 0644 "$PASS" "$REFUSE"
	ERR=$TMP/stderr
	CASES=0
}

launch() {
	local conf=$1
	shift
	rm -f "$KL_RECORD"
	timeout -k 5 "$KL_BAD_TIMEOUT" "$KL" --config "$conf" --qemu "$KL_FAKE" -- "$@" < /dev/null > "$TMP/stdout" 2> "$ERR"
	RC=$?
	CASES=$((CASES + 1))
}

# A short printable description of arguments for messages (values can be huge).
args_desc() {
	printf '%s ' "$@" | head -c 120 | tr -c '[:print:]' '?'
}

no_crash() {
	case $RC in
	124 | 137) fail "hang (timeout) for: $(args_desc "$@")" ;;
	esac
	[ "$RC" -le 128 ] || fail "killed by signal $((RC - 128)) for: $(args_desc "$@")"
	if grep -aqE 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|LeakSanitizer' "$ERR"; then
		head -c 4000 "$ERR" >&2
		fail "sanitizer report for: $(args_desc "$@")"
	fi
	if grep -aq 'internal failure (signal)\|timed out preparing' "$ERR"; then
		cat "$ERR" >&2
		fail "the crash guard fired for: $(args_desc "$@")"
	fi
}

# Every stderr line is ours, and there are at most MAX of them.
stderr_ours() {
	local max=$1 n
	shift
	if grep -av '^kvm-launch: ' "$ERR" | grep -aq .; then
		head -c 2000 "$ERR" >&2
		fail "stderr lines without the kvm-launch: prefix for: $(args_desc "$@")"
	fi
	n=$(grep -ac '' "$ERR")
	if [ "$n" -gt "$max" ]; then
		head -c 2000 "$ERR" >&2
		fail "$n stderr lines (at most $max) for: $(args_desc "$@")"
	fi
}

expect_passthrough() {
	launch "$PASS" "$@"
	no_crash "$@"
	[ "$RC" = 0 ] || fail "exit $RC (expected 0, QEMU's) for: $(args_desc "$@")"
	[ -f "$KL_RECORD" ] || fail "QEMU was not started for: $(args_desc "$@")"
	printf '%s\0' "$KL_FAKE" "$@" > "$TMP/expected"
	cmp -s "$TMP/expected" "$KL_RECORD" || fail "arguments changed for: $(args_desc "$@")"
	stderr_ours 1 "$@"
	grep -aq '^kvm-launch: .*starting QEMU with the original arguments' "$ERR" ||
		{ cat "$ERR" >&2; fail "no fail-open message for: $(args_desc "$@")"; }
}

expect_refused() {
	launch "$REFUSE" "$@"
	no_crash "$@"
	[ "$RC" = 1 ] || fail "exit $RC (expected 1, refused) for: $(args_desc "$@")"
	[ ! -f "$KL_RECORD" ] || fail "QEMU started despite on-error = refuse for: $(args_desc "$@")"
	stderr_ours 1 "$@"
	grep -aq '^kvm-launch: .*refusing to start (on-error = refuse)' "$ERR" ||
		{ cat "$ERR" >&2; fail "no refusal message for: $(args_desc "$@")"; }
}

expect_malformed() {
	expect_passthrough "$@"
	expect_refused "$@"
}

expect_started() {
	launch "$PASS" "$@"
	no_crash "$@"
	[ "$RC" = 0 ] || { head -c 2000 "$ERR" >&2; fail "exit $RC for: $(args_desc "$@")"; }
	[ -f "$KL_RECORD" ] || fail "QEMU was not started for: $(args_desc "$@")"
	if grep -aq 'starting QEMU with the original arguments\|refusing\|error:' "$ERR"; then
		head -c 2000 "$ERR" >&2
		fail "failed open on valid input: $(args_desc "$@")"
	fi
	stderr_ours 1000000 "$@"
}

got_arg() {
	sed -z -n "$(($1 + 1))p" "$KL_RECORD" | tr -d '\0'
}

expect_same_except() {
	local changed=" $1 " i=0 a
	shift
	for a in "$@"; do
		i=$((i + 1))
		case $changed in *" $i "*) continue ;; esac
		printf '%s\0' "$a" > "$TMP/want-arg"
		sed -z -n "$((i + 1))p" "$KL_RECORD" > "$TMP/got-arg"
		cmp -s "$TMP/want-arg" "$TMP/got-arg" || fail "argument $i changed for: $(args_desc "$@")"
	done
}
