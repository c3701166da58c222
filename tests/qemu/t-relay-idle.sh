#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# An idle VM's kvm-launch processes sleep: while nothing happens, its agent,
# active relay and standby together switch context (all threads, counted in
# /proc) at most 4 times in 8 s: with no client on the relayed monitor, with
# one holding a silent session (as libvirtd), and after a killed standby and
# a killed agent were replaced.  A process that polled once a second would
# wake 8 times alone.  Counts, not timings: a loaded host delays a wakeup but
# does not add one to a sleeping process.  The replacements themselves show
# the sleepers still wake for the events they watch.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
WINDOW=8
MAX=4

# switches PID...: context switches of all their threads so far
switches() {
	local p t n=0
	for p in "$@"; do
		for t in /proc/"$p"/task/*/status; do
			n=$((n + $(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}' "$t" 2> /dev/null)))
		done
	done
	echo "$n"
}
agent_pid() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "$ST/ri.json" 2> /dev/null; }
agent_watching() {
	python3 -c 'import json,sys; a = json.load(open(sys.argv[1]))["agent"]; sys.exit(a["state"] != "watching")' \
		"$ST/ri.json" && kill -0 "$(agent_pid)"
}
two_relays() { [ "$(relay_pids ri | wc -l)" = 2 ]; }
standby_pid() { # the relay whose parent is the other relay
	local r rs
	rs=" $(relay_pids ri | tr '\n' ' ') "
	for r in $rs; do
		case "$rs" in *" $(ps -o ppid= -p "$r" | tr -d ' ') "*) echo "$r" ;; esac
	done
}
# idle WHAT: the agent and both relays wake at most MAX times in WINDOW s
idle() {
	local ps a b
	ps="$(agent_pid) $(relay_pids ri | tr '\n' ' ')"
	[ "$(echo $ps | wc -w)" = 3 ] || fail "$1: expected an agent and two relays, found: $ps"
	a=$(switches $ps)
	sleep "$WINDOW"
	b=$(switches $ps)
	echo "idle, $1: $((b - a)) context switches of pids $ps in $WINDOW s"
	[ $((b - a)) -le "$MAX" ] || fail "$1: $((b - a)) context switches in $WINDOW s (at most $MAX): something polls"
}
# settled: the agent watching, the state naming a live agent, two relays; then
# 2 s for the active's last look at the state file (it looks once a second
# only while the agent is not yet known to it).
settled() {
	wait_for 20 agent_watching || fail "$1: the agent is not watching: $(cat "$ST/ri.json")"
	wait_for 20 two_relays || fail "$1: not two relays: $(relay_pids ri)"
	sleep 2
}

start ri -qmp "unix:$TMP/m.sock,server=on,wait=off"
wait_for 20 test -S "$TMP/m.sock" || fail "no manager socket"
settled "start"
idle "no client"

# A client that holds a session and says nothing.
printf '{"execute":"qmp_capabilities"}\n@sleep 300\n' > "$TMP/hold.in"
python3 "$SESSION" "$TMP/m.sock" < "$TMP/hold.in" > "$TMP/hold.out" 2>&1 &
cleanup_fn "kill $! 2>/dev/null"
wait_for 20 grep -q '^reply' "$TMP/hold.out" || fail "no session: $(cat "$TMP/hold.out")"
sleep 1
idle "a silent client"

# Events still wake them: the standby and then the agent are replaced.
sb=$(standby_pid)
[ -n "$sb" ] || fail "no standby among $(relay_pids ri)"
kill -9 "$sb"
new_standby() { s=$(standby_pid); [ -n "$s" ] && [ "$s" != "$sb" ]; }
wait_for 10 new_standby || fail "the standby $sb was not replaced: $(relay_pids ri); $(cat "$ST/ri.relay.log")"
for p in $(relay_pids ri); do cleanup_fn "kill -9 $p 2>/dev/null"; done
ag=$(agent_pid)
kill -9 "$ag"
new_agent() { a=$(agent_pid); [ -n "$a" ] && [ "$a" != "$ag" ] && kill -0 "$a"; }
wait_for 15 new_agent || fail "the agent $ag was not started again: $(cat "$ST/ri.relay.log")"
cleanup_fn "kill -9 $(agent_pid) 2>/dev/null"
settled "replaced"
idle "after the replacements"
kill -0 "$QPID" || fail "QEMU is gone"
