#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Hostile VM names (-name) never write outside the state directory: slashes,
# "..", newlines, control characters, shell syntax, 5000 characters,
# guest=../../etc/x, bytes that are not UTF-8, and names that collide once
# sanitised.  Each VM "runs" (a stand-in QEMU that records its argv and
# sleeps) so that its entry and agent stay while we look: every entry is a
# distinct file with a safe name directly in the state directory, holding the
# original name; nothing appeared anywhere else under the test directory (the
# state directory's parent included; relative names resolve against a work
# directory inside it); no file is accessible by others; nothing ran through
# a shell.  Then every QEMU is killed: agents and entries go.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
H=$KL_TOP/tests/helpers
[ -x "$H/state-json" ] || fail "$H/state-json is missing: run make test-programs"
ROOT=$TMP/root
ST=$ROOT/state
WORK=$ROOT/work/a/b
mkdir -p "$WORK" "$TMP/rec"
printf 'cache-dir = %s/cache\nstate-dir = %s\n' "$TMP" "$ST" > "$PASS"
IMG=$TMP/disk.img
truncate -s 1M "$IMG"

long=$(head -c 5000 /dev/zero | tr '\0' 'A')
dots=$(for i in $(seq 1666); do printf '../'; done)
names=(
	'../../etc/x' '../../../../../../../../tmp/kl-escape' '/etc/x' 'a/b/c' '..' '.' '/' '.hidden' '-rf' '*' '~root'
	$'x\ny' $'\001\002\033[2J\177' "$long" "$dots" "$(printf 'n\377\376')" 'évil' ' ' 'a b'
	"\$(touch $TMP/pwned1)" "\`touch $TMP/pwned2\`" "x;touch $TMP/pwned3" "x|touch $TMP/pwned4"
	'a/b' 'a_b' 'a?b' 'a\b' 'dup' 'dup' 'pid-1' 'x.json' 'x.agent.log' 'x.qmp.sock'
)
# -name values: plain names, then forms that need QemuOpts syntax.
values=("${names[@]}")
values+=('guest=../../etc/x' 'guest=../../etc/y,debug-threads=on' 'guest=a,,b/c' 'guest=' 'process=p' 'debug-threads=on')
# The names QEMU (and kvm-launch) see in those.
names+=('../../etc/x' '../../etc/y' 'a,b/c' '' '' '')

: > "$TMP/pids"
export KL_RECORD_PIDS=$TMP/pids
: > "$TMP/after"
: > "$TMP/before"
find "$TMP" -path "$ST" -prune -o -print | sort > "$TMP/before"
cd "$WORK" || fail "cd"
n=0
for v in "${values[@]}"; do
	n=$((n + 1))
	# In a subshell: not a job of this shell (no "Killed" notices at the end).
	(KL_RECORD=$TMP/rec/$n KL_FAKE_STAY=120 timeout -k 5 60 "$KL" --config "$PASS" --qemu "$KL_FAKE" -- \
		-name "$v" -drive "file=$IMG,format=raw,if=virtio,file.locking=off" 2> "$TMP/rec/$n.err" &)
done
cd "$TMP" || fail "cd"
pids() { cat "$TMP/pids"; }
killall_fakes() { for p in $(pids); do kill -9 "$p" 2>/dev/null; done; }
cleanup_fn killall_fakes
# Wait for every VM to run (the stand-in records its argv and PID).
for i in $(seq 100); do
	[ "$(pids | wc -l)" -ge $n ] && break
	sleep 0.1
done
[ "$(pids | wc -l)" = $n ] || fail "$(pids | wc -l) of $n VMs started"
for i in $(seq 1 $n); do
	[ -s "$TMP/rec/$i" ] || fail "VM $i: QEMU not started"
	if grep -v '^kvm-launch: ' "$TMP/rec/$i.err" | grep -q . || grep -q 'error\|warning' "$TMP/rec/$i.err"; then
		cat "$TMP/rec/$i.err"
		fail "VM $i: unexpected messages"
	fi
	sed -z -n 2p "$TMP/rec/$i" | tr -d '\0' | cmp -s - <(printf '%s' -name) || fail "VM $i: arguments moved"
	printf '%s' "${values[$((i - 1))]}" | cmp -s - <(sed -z -n 3p "$TMP/rec/$i" | tr -d '\0') ||
		fail "VM $i: -name value changed"
done

# Nothing outside the state directory.
find "$TMP" -path "$ST" -prune -o -print | sort > "$TMP/after"
diff "$TMP/before" "$TMP/after" | grep '^>' | grep -v "^> $TMP/rec/\|^> $TMP/cache\(/\|$\)" > "$TMP/new" &&
	{ cat "$TMP/new"; fail "files appeared outside the state directory"; }
for f in /etc/x /etc/y /tmp/kl-escape "$TMP/pwned1" "$TMP/pwned2" "$TMP/pwned3" "$TMP/pwned4"; do
	[ ! -e "$f" ] || fail "$f exists"
done
# Directly in the state directory, with safe names, one entry per VM.
[ -z "$(find "$ST" -mindepth 1 -type d)" ] || fail "subdirectories in the state directory: $(find "$ST" -mindepth 1 -type d)"
# (.lock is kvm-launch's lock file, the one dot file it makes.)
find "$ST" -mindepth 1 ! -name .lock -printf '%f\n' > "$TMP/files"
if grep -v '^[A-Za-z0-9_@-][A-Za-z0-9._@-]*$' "$TMP/files"; then fail "unsafe file names in the state directory"; fi
awk 'length($0) > 100' "$TMP/files" | grep . && fail "file names longer than 100 bytes"
for i in $(seq 30); do
	[ "$(grep -c '\.json$' "$TMP/files")" -ge $n ] && break
	sleep 0.1; find "$ST" -mindepth 1 ! -name .lock -printf '%f\n' > "$TMP/files"
done
[ "$(grep -c '\.json$' "$TMP/files")" = $n ] || { cat "$TMP/files"; fail "$(grep -c '\.json$' "$TMP/files") entries for $n VMs"; }
# Each entry holds its VM's real name (or none) and its QEMU's PID.
for f in "$ST"/*.json; do
	nm=$("$H/state-json" "$f" name)
	pid=$("$H/state-json" "$f" pid)
	pids | grep -qx "$pid" || fail "$f: pid $pid is none of ours"
	# The VM that QEMU (pid) belongs to: its stand-in wrote rec/I.pid.
	vm=
	for i in $(seq 1 $n); do
		[ "$(cat "$TMP/rec/$i.pid" 2>/dev/null)" = "$pid" ] && vm=$i
	done
	[ -n "$vm" ] || fail "$f: pid $pid belongs to no VM started here"
	want=${names[$((vm - 1))]}
	[ -n "$want" ] || want=null
	[ "$nm" = "$want" ] ||
		fail "$f: VM $vm (pid $pid) is named '$(printf '%s' "$want" | head -c 60)', its entry says '$(printf '%s' "$nm" | head -c 60)'"
	seen="${seen:-} $vm "
done
for i in $(seq 1 $n); do
	case $seen in *" $i "*) ;; *) fail "VM $i has no entry of its own" ;; esac
done
# Not accessible by others: the directory 0750 at most, files 0640 at most.
[ -z "$(find "$ST" -perm /o=rwx)" ] || { ls -la "$ST"; fail "world-accessible files: $(find "$ST" -perm /o=rwx)"; }
[ -z "$(find "$ST" -type f -perm /u=x,g=wx)" ] || fail "state files with modes above 0640"
[ "$(stat -c %a "$ST")" = 750 ] || fail "state directory mode $(stat -c %a "$ST")"
echo "$n hostile names: entries safe and distinct"

# --status lists them all, one line per VM, whatever the names hold.
"$KL" --config "$PASS" --status --json > "$TMP/status.json" || fail "--status --json"
[ "$("$H/state-json" "$TMP/status.json" vms.length)" = $n ] || fail "--status --json does not list $n VMs"
# The table: one header line per VM, no control character but the newlines
# (a name cannot forge lines nor drive the operator's terminal).
"$KL" --config "$PASS" --status > "$TMP/status.txt" 2> "$TMP/status.err" || fail "--status"
[ "$(grep -c '^VM ' "$TMP/status.txt")" = $n ] ||
	{ cat "$TMP/status.txt" "$TMP/status.err" >&2; fail "--status: $(grep -c '^VM ' "$TMP/status.txt") VM lines for $n VMs"; }
tr -d '\n' < "$TMP/status.txt" | grep -q '[[:cntrl:]]' && fail "--status prints control characters"
grep -q '^VM x?y: ' "$TMP/status.txt" || fail "--status: the name x<newline>y not shown as x?y"

# Kill every QEMU: agents and entries go (a named VM's agent log is kept
# for afterwards, by design).
agents=
for f in "$ST"/*.json; do
	a=$("$H/state-json" "$f" agent.pid) && [ "$a" != null ] && agents="$agents $a"
done
[ "$(echo $agents | wc -w)" = $n ] || fail "$(echo $agents | wc -w) agents for $n VMs"
killall_fakes
left() { find "$ST" -mindepth 1 ! -name .lock ! -name '*.agent.log'; }
for i in $(seq 100); do
	[ -z "$(left)" ] && break
	sleep 0.1
done
[ -z "$(left)" ] || fail "left in the state directory: $(left | head)"
for a in $agents; do
	for i in $(seq 30); do kill -0 "$a" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$a" 2>/dev/null || fail "agent $a outlived its QEMU"
done
echo "cleaned up after QEMU exits: ok"
