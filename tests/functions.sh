# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by every shell test (nbdkit style).
#   requires CMD...     skip (exit 77) unless each command exists
#   cleanup_fn CMD...   run CMD at exit, last registered first
#   fail MSG            print and exit 1
set -u
KL_TOP=${KL_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
KL=${KL:-$KL_TOP/kvm-launch}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
export KL_TOP KL QEMU

_kl_cleanups=
cleanup_fn() {
	_kl_cleanups="$*
$_kl_cleanups"
}
_kl_run_cleanups() {
	rc=$?
	set +e
	printf '%s\n' "$_kl_cleanups" | while IFS= read -r c; do
		[ -n "$c" ] && eval "$c"
	done
	exit $rc
}
trap _kl_run_cleanups EXIT
trap 'exit 130' INT TERM

requires() {
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1 && [ ! -x "$c" ]; then
			echo "SKIP: $0: requires $c"
			exit 77
		fi
	done
}

requires_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: $0: requires root"
		exit 77
	fi
}

fail() {
	echo "FAIL: $0: $*" >&2
	exit 1
}

# Sets TMP to a fresh temporary directory removed at exit (not in a subshell:
# the cleanup must be registered in the test's own shell).
kl_tmpdir() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/kl-test.XXXXXX")
	cleanup_fn "rm -rf '$TMP'"
}

# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds (0) or
# SECONDS pass (1).  Its output is discarded.
wait_for() {
	local n=$(( $1 * 10 ))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" > /dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# kill_tree PID: SIGKILL PID and every process below it (found through /proc/PID/task/*/children), for
# cleanups of background jobs whose children (strace's tracees, a QEMU) would otherwise outlive the test.
kill_tree() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do kill_tree "$c"; done
	kill -KILL "$1" 2>/dev/null
	return 0
}

# gone PID: the process has exited (or is a zombie waiting to be reaped).
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# direct_bit PID FILE: 1 if the process's fd on FILE has O_DIRECT (octal 040000, from /proc/PID/fdinfo), "missing"
# when it has no fd on FILE.
direct_bit() {
	local fd flags
	for fd in /proc/$1/fd/*; do
		[ "$(readlink "$fd")" = "$2" ] || continue
		flags=$(awk '/^flags:/ {print $2}' "/proc/$1/fdinfo/${fd##*/}")
		echo $(( (8#$flags & 8#40000) != 0 ))
		return
	done
	echo missing
}
