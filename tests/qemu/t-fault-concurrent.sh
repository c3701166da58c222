#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# 30 launches at once into one state directory (real QEMU, TCG, -S, each its
# own raw disk), plus 3 at once under one name: 33 correct entries (distinct
# files, each naming its own live QEMU with its start time, its agent
# watching, the disk decided), --status lists 33 running VMs; then every QEMU
# is killed at once: within a few seconds no agent is left and no entry.
. "$(dirname "$0")/../functions.sh"
requires "$QEMU" "$KL" truncate timeout
H=$KL_TOP/tests/helpers
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
N=30
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"

run() { # NAME DISK
	("$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults \
		-display none -S -m 32 -name "guest=$1" -drive "file=$2,format=raw,if=virtio,file.locking=off" \
		> "$TMP/log.$1.$RANDOM" 2>&1 &)
}
for i in $(seq 1 $N); do truncate -s 16M "$TMP/d$i.img"; done
truncate -s 16M "$TMP/same.img"
for i in $(seq 1 $N); do run "vm$i" "$TMP/d$i.img"; done
for i in 1 2 3; do run same "$TMP/same.img"; done
TOTAL=$((N + 3))

# At exit, every process of this test: QEMUs and agents name $TMP on their
# command lines (a lost entry must not leave its QEMU behind).
ours() { grep -l -F "$TMP/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | grep -vx "$$"; }
cleanup_fn 'for p in $(ours); do kill -9 $p; done 2>/dev/null'
watching_all() {
	[ "$(ls "$ST"/*.json 2>/dev/null | wc -l)" = $TOTAL ] || return 1
	for f in "$ST"/*.json; do
		[ "$("$H/state-json" "$f" agent.state)" = watching ] || return 1
	done
}
t0=$(date +%s)
wait_for 180 watching_all || { ls "$ST" | grep json; fail "not all $TOTAL VMs watched: $(ls "$ST"/*.json | wc -l) entries"; }
echo "$TOTAL VMs running and watched after $(( $(date +%s) - t0 )) s"

# Each entry: its own QEMU (alive, right start time), its own agent, the disk decided.
: > "$TMP/qpids"
: > "$TMP/apids"
for f in "$ST"/*.json; do
	q=$("$H/state-json" "$f" pid)
	a=$("$H/state-json" "$f" agent.pid)
	[ "$(readlink "/proc/$q/exe")" = "$(readlink -f "$QEMU")" ] || fail "$f: pid $q is not QEMU"
	ticks=$(sed 's/^.*) //' "/proc/$q/stat" | cut -d' ' -f20)
	[ "$("$H/state-json" "$f" start_ticks)" = "$ticks" ] || fail "$f: wrong start time"
	kill -0 "$a" || fail "$f: agent $a not running"
	name=$("$H/state-json" "$f" name)
	tr '\0' '\n' < "/proc/$q/cmdline" | grep -q "^guest=$name\$" || fail "$f: QEMU $q is not $name"
	[ "$("$H/state-json" "$f" disks.0.changed)" = true ] || fail "$f: disk not decided"
	echo "$q" >> "$TMP/qpids"
	echo "$a" >> "$TMP/apids"
done
[ "$(sort -u "$TMP/qpids" | wc -l)" = $TOTAL ] || fail "entries share a QEMU"
[ "$(sort -u "$TMP/apids" | wc -l)" = $TOTAL ] || fail "entries share an agent"
[ "$(ls "$ST" | grep -c '^same.*\.json$')" = 3 ] || fail "3 VMs named same: $(ls "$ST" | grep '^same')"
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --status --json > "$TMP/s.json" || fail "--status"
[ "$("$H/state-json" "$TMP/s.json" vms.length)" = $TOTAL ] || fail "--status lists $("$H/state-json" "$TMP/s.json" vms.length)"
for i in $(seq 0 $((TOTAL - 1))); do
	[ "$("$H/state-json" "$TMP/s.json" vms.$i.state)" = running ] || fail "--status: vms.$i not running"
done

# Kill every QEMU at once.
kill -9 $(cat "$TMP/qpids")
t0=$(date +%s%N)
agents_gone() { for a in $(cat "$TMP/apids"); do kill -0 "$a" 2>/dev/null && return 1; done; return 0; }
wait_for 10 agents_gone || fail "agents left: $(for a in $(cat "$TMP/apids"); do kill -0 $a 2>/dev/null && echo $a; done)"
echo "all agents gone $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill"
no_entries() { [ -z "$(find "$ST" -mindepth 1 ! -name '*.agent.log' ! -name .lock)" ]; }
wait_for 5 no_entries || fail "left in the state directory: $(find "$ST" -mindepth 1 ! -name '*.agent.log' ! -name .lock | head)"
echo "$TOTAL concurrent launches: ok"
