#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# relay-cost.sh — what the monitor relay (monitor-relay = on) costs a management client.
#
#   sh tests/bench/relay-cost.sh            (also run by `make bench`)
#
# 1. QMP round trip: QEMU (TCG, -S) started through kvm-launch with `-qmp unix:P` and the relay on; the C client
#    tests/bench/qmp-rtt.c sends query-status RELAY_CALLS times (default 2000) on the relayed socket P and as many
#    on the VM's own query socket (STATE/NAME.qmp.sock, straight to QEMU), interleaved call by call.
#    Median and IQR of each, and the relay's added median (target: at most 100 us).
# 2. A large reply: query-qmp-schema (~150 KB) RELAY_SCHEMA_CALLS times (default 50) each way.
# 3. Event latency: RELAY_EVENTS (default 400) cont/stop pairs; per event, arrival minus QEMU's timestamp on
#    the relayed and on the direct connection.
# 4. A libvirt domain start (virsh create until QMP answers query-status through libvirt), through kvm-launch
#    with monitor-relay on and off, RELAY_LIBVIRT_PAIRS (default 10) alternating pairs.  Only as root with
#    libvirtd, under flock /tmp/kl-libvirt.lock, with the test installation of tests/libvirt/lib.sh;
#    RELAY_LIBVIRT=0 skips it.
# Output: a markdown report on stdout and in BENCH_OUT/relay.md (default tests/logs/bench/relay-DATE-TIME);
# doc/bench/relay.md holds a committed run.  Exit 1 only when the harness broke.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export KL_TOP=$top
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
KL=${KL_LAUNCH:-$top/kvm-launch}
out=${BENCH_OUT:-$top/tests/logs/bench/relay-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
calls=${RELAY_CALLS:-2000}

# stats FILE LABEL -> "median q1 q3 n" of the LABEL lines
stats() {
	awk -v l="$2" '$1 == l {print $2}' "$1" | sort -n |
		awk '{v[NR] = $1} END {if (NR) printf "%.1f %.1f %.1f %d\n", v[int((NR+1)/2)], v[int((NR+3)/4)], v[int((3*NR+1)/4)], NR; else print "- - - 0"}'
}

libvirt_part() { # runs under the lock, with the test framework
	. "$top/tests/functions.sh"
	. "$top/tests/libvirt/lib.sh"
	klt_setup
	local name=kl-bench-relay i mode t0 t1 pid
	truncate -s 64M "$KLT_DIR/b.img"
	klt_domain "$name" --guest-cmd sleep "file:$KLT_DIR/b.img:raw:target=vda"
	cleanup_fn klt_policy
	for i in $(seq 1 "${RELAY_LIBVIRT_PAIRS:-10}"); do
		for mode in on off; do
			[ $((i % 2)) = 0 ] && mode=$([ "$mode" = on ] && echo off || echo on)
			{ echo "monitor-relay = $mode"; sed "/^monitor-relay/d" "$KLT_POLICY"; } > "$KLT_POLICY.new"
			chmod 0644 "$KLT_POLICY.new"
			mv -f "$KLT_POLICY.new" "$KLT_POLICY"
			t0=$(date +%s%N)
			"${VIRSH[@]}" create "$KLT_DIR/$name.xml" > /dev/null || fail "virsh create (relay $mode)"
			"${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-status"}' > /dev/null || fail "query-status (relay $mode)"
			t1=$(date +%s%N)
			pid=$(klt_pid "$name")
			echo "$mode $(( (t1 - t0) / 1000 ))" >> "$out/libvirt.txt"
			"${VIRSH[@]}" destroy "$name" > /dev/null
			kl_wait_gone "$pid" 20
		done
	done
}
if [ "${1:-}" = --libvirt-part ]; then
	libvirt_part
	exit 0
fi

tmp=$(mktemp -d /tmp/kl-relay-cost.XXXXXX)
qpid=
cleanup() {
	[ -n "$qpid" ] && kill -9 "$qpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -o "$tmp/qmp-rtt" "$here/qmp-rtt.c" || exit 1
st=$tmp/state
printf 'state-dir = %s\ncache-dir = %s/cache\nmonitor-relay = on\n' "$st" "$tmp" > "$tmp/p.conf"
"$KL" --config "$tmp/p.conf" --qemu "$QEMU" -- -name rc -machine pc -accel tcg -nodefaults -display none -S \
	-qmp "unix:$tmp/rc.sock,server=on,wait=off" > "$tmp/rc.out" 2>&1 &
for _ in $(seq 100); do [ -S "$st/rc.qmp.sock" ] && [ -S "$tmp/rc.sock" ] && break; sleep 0.1; done
qpid=$(pgrep -f -- "-name rc -machine pc" | head -n 1)
[ -n "$qpid" ] && [ -S "$st/rc.qmp.sock" ] || { echo "relay-cost: QEMU did not start: $(cat "$tmp/rc.out")"; exit 1; }

"$tmp/qmp-rtt" rtt 100 "$tmp/rc.sock" "$st/rc.qmp.sock" > /dev/null || exit 1 # warm-up
"$tmp/qmp-rtt" rtt "$calls" "$tmp/rc.sock" "$st/rc.qmp.sock" > "$out/rtt.txt" || exit 1
"$tmp/qmp-rtt" rtt "${RELAY_SCHEMA_CALLS:-50}" "$tmp/rc.sock" "$st/rc.qmp.sock" query-qmp-schema > "$out/schema.txt" || exit 1
"$tmp/qmp-rtt" events "${RELAY_EVENTS:-400}" "$tmp/rc.sock" "$st/rc.qmp.sock" > "$out/events.txt" || exit 1
kill "$qpid" 2>/dev/null
qpid=

if [ "${RELAY_LIBVIRT:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v virsh > /dev/null; then
	: > "$out/libvirt.txt"
	if [ -n "${KL_SYSTEM_LOCK_HELD:-}" ]; then
		QEMU=$QEMU bash "$0" --libvirt-part || echo "relay-cost: the libvirt part failed"
	else
		flock /tmp/kl-libvirt.lock env QEMU="$QEMU" bash "$0" --libvirt-part || echo "relay-cost: the libvirt part failed"
	fi
fi

row() { # TITLE FILE
	local rm rq1 rq3 rn dm dq1 dq3 dn
	read -r rm rq1 rq3 rn <<< "$(stats "$2" relay)"
	read -r dm dq1 dq3 dn <<< "$(stats "$2" direct)"
	printf '| %s | %s (%s–%s) | %s (%s–%s) | %s | %s |\n' "$1" "$rm" "$rq1" "$rq3" "$dm" "$dq1" "$dq3" \
		"$(awk -v a="$rm" -v b="$dm" 'BEGIN {printf "%+.1f", a - b}')" "$rn/$dn"
}
lrow() {
	local om oq1 oq3 on fm fq1 fq3 fn
	read -r om oq1 oq3 on <<< "$(awk '$1 == "on" {print "relay", $2}' "$out/libvirt.txt" | stats /dev/stdin relay)"
	read -r fm fq1 fq3 fn <<< "$(awk '$1 == "off" {print "relay", $2}' "$out/libvirt.txt" | stats /dev/stdin relay)"
	[ "$on" -gt 0 ] && [ "$fn" -gt 0 ] || return 0
	printf '| libvirt domain start (virsh create until query-status answers), µs | %s (%s–%s) | %s (%s–%s) | %s | %s |\n' \
		"$om" "$oq1" "$oq3" "$fm" "$fq1" "$fq3" "$(awk -v a="$om" -v b="$fm" 'BEGIN {printf "%+.1f", a - b}')" "$on/$fn"
}
{
	echo "# Monitor relay cost"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, QEMU $("$QEMU" --version | head -n 1 | awk '{print $4}'), TCG, -S."
	echo "Median (IQR) in µs; relay = through kvm-launch's relay, direct = QEMU's own socket; calls interleaved."
	echo
	echo "| measure | relay | direct | relay − direct (median) | calls |"
	echo "|---|---|---|---|---|"
	row "query-status round trip" "$out/rtt.txt"
	row "query-qmp-schema round trip" "$out/schema.txt"
	row "event latency (arrival − QEMU's timestamp)" "$out/events.txt"
	[ -s "$out/libvirt.txt" ] && { lrow; echo; echo "(libvirt row: relay = monitor-relay on, direct = off.)"; }
	echo
	read -r rm _ <<< "$(stats "$out/rtt.txt" relay)"
	read -r dm _ <<< "$(stats "$out/rtt.txt" direct)"
	awk -v a="$rm" -v b="$dm" 'BEGIN {d = a - b; printf "Target: the relay adds at most 100 µs to a query-status round trip at the median: %+.1f µs, %s.\n", d, d <= 100 ? "met" : "NOT met"}'
} | tee "$out/relay.md"
