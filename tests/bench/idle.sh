#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# idle.sh — what kvm-launch's own processes cost while nothing happens: wakeups and resident memory.
#
#   sh tests/bench/idle.sh                  (also run by `make bench`, after relay-cost.sh)
#   IDLE_VMS=5 IDLE_SECS=20 sh tests/bench/idle.sh
#
# Starts IDLE_VMS (default 20) tiny VMs through kvm-launch (TCG, -m 32, -nodefaults, -S, two raw disks on
# virtio-blk, a management monitor as libvirt gives it: -chardev socket,server=on,wait=off + -mon mode=control,
# relayed with monitor-relay = on), so each VM has QEMU, an agent, an active relay and its standby.  With
# IDLE_CLIENT=1 (default) one client holds a QMP session open on every relayed monitor and says nothing, as
# libvirtd does.  IDLE_RUNNING=1 leaves out -S: the guests run (SeaBIOS, which finds nothing to boot and
# waits), so QEMU's own figures show a running VM's timers; kvm-launch's processes see no difference.
# After IDLE_SETTLE s (default 5) it counts, over IDLE_SECS s (default 60) of idleness:
#   - wakeups: context switches (voluntary + involuntary, /proc/PID/task/*/status), summed over the threads
#     of each process (a thread born in the window counts whole; one that died in it is lost: only QEMU has
#     such threads);
#   - syscalls: raw_syscalls:sys_enter per thread with `perf stat`, when perf is installed and allowed
#     (IDLE_PERF=0 skips it; nothing else needs perf);
# and at the end VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) of each process.
# Output: a markdown report on stdout and in BENCH_OUT/idle.md (default tests/logs/bench/idle-DATE-TIME), the
# per-process figures in BENCH_OUT/idle-procs.txt; doc/bench/idle.md holds a committed run.
# Everything it started is killed and removed at the end, on failure and on interruption.  Exit 1 only when the
# harness broke (a VM did not start).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
KL=${KL_LAUNCH:-$top/kvm-launch}
vms=${IDLE_VMS:-20}
secs=${IDLE_SECS:-60}
settle=${IDLE_SETTLE:-5}
client=${IDLE_CLIENT:-1}
running=${IDLE_RUNNING:-0}
out=${BENCH_OUT:-$top/tests/logs/bench/idle-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || exit 1

tmp=$(mktemp -d /tmp/kl-idle.XXXXXX) || exit 1
st=$tmp/st
qpids=()
holder=
perfs=()
# Every process we started or that kvm-launch started for us: QEMU by its job PID, the agents and relays by
# their command line, which names our private state directory.
ours() { pgrep -f -- "^kvm-launch --(agent|relay) .*$st/" 2> /dev/null; }
cleanup() {
	trap - EXIT INT TERM HUP
	local p i
	for p in "${perfs[@]}" $holder $nap; do kill "$p" 2> /dev/null; done
	for p in "${qpids[@]}"; do kill "$p" 2> /dev/null; done
	for i in $(seq 50); do # QEMU quits on SIGTERM; its agent and relays follow it
		[ -z "$(for p in "${qpids[@]}"; do kill -0 "$p" 2> /dev/null && echo "$p"; done)$(ours)" ] && break
		sleep 0.1
	done
	for p in "${qpids[@]}" $(ours); do kill -9 "$p" 2> /dev/null; done
	wait 2> /dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# A sleep the traps can interrupt (bash runs a trap only once a foreground child ended).
nap=
pause() {
	sleep "$1" &
	nap=$!
	wait "$nap"
	nap=
}

cc -O2 -o "$tmp/qmp-rtt" "$here/qmp-rtt.c" || exit 1
printf 'state-dir = %s\ncache-dir = %s/cache\nmonitor-relay = on\n' "$st" "$tmp" > "$tmp/p.conf"

# ---- start the VMs ----
paused=(-S)
[ "$running" = 1 ] && paused=()
for i in $(seq "$vms"); do
	truncate -s 16M "$tmp/a$i.img" "$tmp/b$i.img"
	# kvm-launch execs QEMU in place: the job's PID is QEMU's.
	"$KL" --config "$tmp/p.conf" --qemu "$QEMU" -- -name "idle$i" -machine pc -accel tcg -m 32 -nodefaults \
		-display none "${paused[@]}" \
		-drive "file=$tmp/a$i.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0 \
		-drive "file=$tmp/b$i.img,format=raw,if=none,id=d1" -device virtio-blk-pci,drive=d1 \
		-chardev "socket,id=charmonitor,path=$tmp/m$i.sock,server=on,wait=off" \
		-mon chardev=charmonitor,id=monitor,mode=control > "$tmp/out$i.txt" 2>&1 &
	qpids+=($!)
done
# Ready: both sockets there, the agent watching, an active relay and its standby.
: > "$tmp/procs"
for i in $(seq "$vms"); do
	ok=
	for _ in $(seq 300); do
		rel=$(pgrep -f -- "^kvm-launch --relay .* $st/idle$i.json " | tr '\n' ' ')
		if [ -S "$tmp/m$i.sock" ] && grep -qs '"watching"' "$st/idle$i.json" && [ "$(wc -w <<< "$rel")" = 2 ]; then
			ok=1
			break
		fi
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "idle: VM $i did not start: $(cat "$tmp/out$i.txt")"; ls -l "$st"; exit 1; }
	echo "qemu $i ${qpids[$((i - 1))]}" >> "$tmp/procs"
	echo "agent $i $(pgrep -f -x -- "kvm-launch --agent $st/idle$i.json")" >> "$tmp/procs"
	for p in $rel; do # the standby is the active's child (clone)
		pp=$(ps -o ppid= -p "$p" | tr -d ' ')
		case " $rel " in *" $pp "*) echo "standby $i $p" ;; *) echo "active $i $p" ;; esac
	done >> "$tmp/procs"
done
if [ "$client" = 1 ]; then
	socks=()
	for i in $(seq "$vms"); do socks+=("$tmp/m$i.sock"); done
	"$tmp/qmp-rtt" hold "${socks[@]}" > "$tmp/hold.out" 2>&1 &
	holder=$!
	for _ in $(seq 300); do grep -qs '^held' "$tmp/hold.out" && break; sleep 0.1; done
	grep -q '^held' "$tmp/hold.out" || { echo "idle: the client could not connect: $(cat "$tmp/hold.out")"; exit 1; }
fi
pause "$settle"

# ---- count ----
# threads PROCS-FILE -> "pid tid switches" for every thread of every process
threads() {
	local kind i p t
	while read -r kind i p; do
		for t in /proc/"$p"/task/*; do
			awk -v p="$p" -v t="${t##*/}" '/^(non)?voluntary_ctxt_switches/ {n += $2} END {if (NR) print p, t, n}' \
				"$t/status" 2> /dev/null
		done
	done < "$1"
}
use_perf=
if [ "${IDLE_PERF:-1}" != 0 ] && command -v perf > /dev/null &&
	perf stat -e raw_syscalls:sys_enter -p $$ --timeout 10 > /dev/null 2>&1; then
	use_perf=1
	for kind in qemu agent active standby; do
		list=$(awk -v k="$kind" '$1 == k {print $3}' "$tmp/procs" | paste -sd, -)
		perf stat -x, --per-thread -e raw_syscalls:sys_enter -p "$list" -o "$tmp/perf.$kind" --timeout $((secs * 1000)) &
		perfs+=($!)
	done
fi
threads "$tmp/procs" > "$tmp/before"
pause "$secs"
threads "$tmp/procs" > "$tmp/after"
for p in "${perfs[@]}"; do wait "$p"; done
perfs=()
load=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- per process: kind vm pid wakeups syscalls vmrss_kib pss_kib ----
while read -r kind i p; do
	w=$(awk -v p="$p" 'FNR == NR {if ($1 == p) b[$2] = $3; next} $1 == p {n += $3 - ($2 in b ? b[$2] : 0)} END {print n + 0}' \
		"$tmp/before" "$tmp/after")
	s=-
	if [ -n "$use_perf" ]; then # perf names threads COMM-TID
		s=$(awk -F, -v tids=" $(ls /proc/"$p"/task | tr '\n' ' ')" '
			{n = split($1, a, "-"); t = a[n]; if (index(tids, " " t " ") && $2 ~ /^[0-9]+$/) s += $2} END {print s + 0}' \
			"$tmp/perf.$kind" 2> /dev/null)
	fi
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2> /dev/null)
	pss=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2> /dev/null)
	echo "$kind $i $p $w $s ${rss:-0} ${pss:-0}"
done < "$tmp/procs" > "$out/idle-procs.txt"

# ---- report ----
# stat COLUMN KIND... -> "median max total n" of that column over the processes of those kinds
stat() {
	local col=$1
	shift
	awk -v c="$col" -v ks=" $* " 'index(ks, " " $1 " ") && $c != "-" {print $c}' "$out/idle-procs.txt" | sort -n |
		awk '{v[NR] = $1; t += $1} END {if (NR) print v[int((NR+1)/2)], v[NR], t, NR; else print "- - - 0"}'
}
ps_() { awk -v s="$secs" -v x="$1" 'BEGIN {if (x == "-") print "-"; else printf "%.3g", x / s}'; }
row() { # LABEL KIND...
	local label=$1 wm wx wt n sm sx rm rx pm pt
	shift
	read -r wm wx wt n <<< "$(stat 4 "$@")"
	read -r sm sx _ <<< "$(stat 5 "$@")"
	read -r rm rx _ <<< "$(stat 6 "$@")"
	read -r pm _ pt _ <<< "$(stat 7 "$@")"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$n" "$(ps_ "$wm")" "$(ps_ "$wx")" \
		"$(ps_ "$wt")" "$(ps_ "$sm")" "$(ps_ "$sx")" "$rm" "$rx" "$pm" "$pt"
}
# per VM: agent + active + standby
awk '$1 != "qemu" {w[$2] += $4; s[$2] += ($5 == "-" ? 0 : $5); r[$2] += $6; p[$2] += $7; if ($5 == "-") ns = 1}
	END {for (i in w) print "kl", i, 0, w[i], ns ? "-" : s[i], r[i], p[i]}' "$out/idle-procs.txt" >> "$out/idle-procs.txt"
{
	echo "# Idle cost"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, QEMU $("$QEMU" --version | head -n 1 | awk '{print $4}')," \
		"kvm-launch $("$KL" --version 2> /dev/null | head -n 1 | awk '{print $NF}'); load average at the end $load."
	echo "$vms VMs started through kvm-launch (TCG, -m 32, -nodefaults, $([ "$running" = 1 ] && echo "running (no -S; SeaBIOS finds no boot disk)" || echo -S), two raw virtio-blk disks, a libvirt-style"
	echo "relayed monitor), $([ "$client" = 1 ] && echo "a silent client connected to each relayed monitor (as libvirtd)" || echo "no client connected"),"
	echo "counted over $secs s after $settle s of settling.  Wakeups = context switches (voluntary + involuntary) of all"
	echo "threads; syscalls = raw_syscalls:sys_enter $([ -n "$use_perf" ] && echo "(perf stat)" || echo "(not counted: perf absent or not allowed)")."
	echo "Memory at the end: VmRSS, and Pss (shared pages divided among their users) from smaps_rollup, in KiB."
	echo
	echo "| process | n | wakeups/s median | max | total | syscalls/s median | max | VmRSS median | max | Pss median | Pss total |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	row "agent" agent
	row "relay, active" active
	row "relay, standby" standby
	row "**kvm-launch per VM** (agent + relays)" kl
	row "QEMU (not ours; for scale)" qemu
	echo
	read -r _ kx kt _ <<< "$(stat 4 kl)"
	read -r _ _ qt _ <<< "$(stat 4 qemu)"
	read -r _ _ pt _ <<< "$(stat 7 kl)"
	read -r _ _ qpt _ <<< "$(stat 7 qemu)"
	echo "Totals for $vms VMs: kvm-launch $kt wakeups in $secs s ($(ps_ "$kt")/s), Pss $((pt / 1024)) MiB;" \
		"QEMU $qt wakeups ($(ps_ "$qt")/s), Pss $((qpt / 1024)) MiB."
	echo
	echo "Target: no periodic wakeup of kvm-launch's processes while nothing happens (at most 6 wakeups of one VM's" \
		"agent and relays in $secs s, for stray events): the busiest VM's woke $kx times, $([ "$kx" -le 6 ] && echo met || echo "NOT met")."
} | tee "$out/idle.md"
