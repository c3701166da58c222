#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `kvm-launch --status --prometheus` of live VMs (real QEMU, started through
# kvm-launch with -S and a disk) against the text exposition format: HELP and
# TYPE once per metric and before its samples, samples of a metric together,
# counters named *_total, valid names, label values escaped and UTF-8, no
# repeated series.  The VMs have awkward names: one with a quote and a
# backslash, twice (two QEMUs given one -name), and a stale state file whose
# name is not UTF-8.  promtool checks the output too when it is installed.
# Then contrib/prometheus/prometheus-textfile writes it atomically into a
# textfile directory.
. "$(dirname "$0")/../functions.sh"
requires "$KL" "$QEMU" awk iconv
kl_tmpdir
st=$TMP/state
mkdir -m 0700 "$st"
: > "$TMP/policy"
chmod 0644 "$TMP/policy"
truncate -s 32M "$TMP/a.raw" "$TMP/b.raw"

name='pr"om\vm'
start_vm() { # $1 disk; prints the pid
	"$KL" --state-dir "$st" --config "$TMP/policy" -- -name "$name" -S -nodefaults -display none \
		-machine pc,accel=tcg -m 64 -drive "file=$1,format=raw,if=virtio,id=vd0" > "$TMP/vm-$$-$RANDOM.log" 2>&1 &
	echo $!
}
pid1=$(start_vm "$TMP/a.raw")
cleanup_fn "kill $pid1 2>/dev/null"
# The second QEMU of the same name after the first has its state.
for _ in $(seq 100); do ls "$st"/*.qmp.sock >/dev/null 2>&1 && break; sleep 0.1; done
pid2=$(start_vm "$TMP/b.raw")
cleanup_fn "kill $pid2 2>/dev/null"
for _ in $(seq 100); do [ "$(ls "$st"/*.qmp.sock 2>/dev/null | wc -l)" = 2 ] && break; sleep 0.1; done
[ "$(ls "$st"/*.json | wc -l)" = 2 ] || { ls -la "$st"; cat "$TMP"/vm-*.log; fail "two state files expected"; }

# A stale entry (its process is gone) named with bytes that are not UTF-8.
printf '{"version":1,"name":"old\377vm","stem":"oldvm","pid":2147483646,"start_ticks":1,"started":1,"running":true,"disks":[{"id":"vd0","node":"vd0","path":"/img/\376.raw","backend":"file","fs":"ext4","format":"raw","aio":"threads","cache":"none","rule":"default:file"}],"agent":{},"changes":[]}\n' > "$st/oldvm.json"

"$KL" --status --state-dir "$st" --prometheus > "$TMP/metrics" || fail "--status --prometheus failed"
echo "---- output ----"
cat "$TMP/metrics"
echo "----------------"

# ---- the format, checked with awk ----
iconv -f UTF-8 -t UTF-8 "$TMP/metrics" > /dev/null || fail "output is not valid UTF-8"
awk '
function bad(msg) { printf "line %d: %s: %s\n", NR, msg, $0 > "/dev/stderr"; errors++ }
function valid_name(n) { return n ~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/ }
# Parses the label set at the start of s ("{...}"): sets rest to what follows; 0 if malformed.
function labels(s,    i, c, state, lname, seen) {
	if (substr(s, 1, 1) != "{") { rest = s; lbl = ""; return 1 }
	state = "name"; lname = ""; split("", seen)
	for (i = 2; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (state == "name") {
			if (c == "}" && lname == "") { rest = substr(s, i + 1); lbl = substr(s, 1, i); return 1 }
			if (c == "=") {
				if (!valid_name(lname) || lname ~ /^__/) return 0
				if (lname in seen) return 0
				seen[lname] = 1
				if (substr(s, i + 1, 1) != "\"") return 0
				i++; state = "value"; continue
			}
			lname = lname c
		} else if (state == "value") {
			if (c == "\\") {
				c = substr(s, i + 1, 1)
				if (c != "\\" && c != "\"" && c != "n") return 0
				i++; continue
			}
			if (c == "\"") { state = "after"; continue }
		} else if (state == "after") {
			if (c == ",") { state = "name"; lname = ""; continue }
			if (c == "}") { rest = substr(s, i + 1); lbl = substr(s, 1, i); return 1 }
			return 0
		}
	}
	return 0
}
/^# HELP / {
	if ($3 in help) bad("second HELP for " $3)
	help[$3] = 1
	if (!valid_name($3)) bad("bad metric name")
	next
}
/^# TYPE / {
	if ($3 in type) bad("second TYPE for " $3)
	if ($3 in sampled) bad("TYPE after samples of " $3)
	if ($4 !~ /^(counter|gauge|histogram|summary|untyped)$/) bad("unknown type " $4)
	if ($4 == "counter" && $3 !~ /_total$/) bad("counter not named *_total")
	type[$3] = $4
	next
}
/^#/ { next }
/^$/ { bad("empty line"); next }
{
	line = $0
	match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)
	if (RSTART != 1) { bad("no metric name"); next }
	name = substr(line, 1, RLENGTH)
	if (!labels(substr(line, RLENGTH + 1))) { bad("malformed labels"); next }
	if (rest !~ /^ [-+]?([0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|NaN|Inf)( -?[0-9]+)?$/) { bad("bad value"); next }
	if (!(name in type)) bad("sample before (or without) TYPE")
	if (name != last && (name in sampled)) bad("samples of " name " are not together")
	sampled[name] = 1
	last = name
	if ((name lbl) in series) bad("repeated series")
	series[name lbl] = 1
	samples++
}
END {
	for (n in type) if (!(n in help)) { print "no HELP for " n > "/dev/stderr"; errors++ }
	printf "awk checker: %d samples, %d metric families, %d errors\n", samples, length(type), errors
	exit errors > 0
}' "$TMP/metrics" || fail "the output breaks the text format (see above)"

if command -v "${PROMTOOL:-promtool}" >/dev/null; then
	"${PROMTOOL:-promtool}" check metrics < "$TMP/metrics" || fail "promtool check metrics"
	echo "promtool check metrics: ok"
fi

# ---- the content ----
m() { grep -F -x -- "$1" "$TMP/metrics" >/dev/null || fail "missing: $1"; }
m 'kvm_launch_vm_up{vm="pr\"om\\vm"} 1'
m "kvm_launch_vm_up{vm=\"pr\\\"om\\\\vm@$pid2\"} 1"
m 'kvm_launch_vm_responsive{vm="pr\"om\\vm"} 1'
m "kvm_launch_vm_up{vm=\"old$(printf '\357\277\275')vm\"} 0"
grep -q "^kvm_launch_disk_info{vm=\"pr\\\\\"om\\\\\\\\vm\",disk=\"vd0\",.*path=\"$TMP/a.raw\",.*cache=\"none\".*} 1\$" "$TMP/metrics" ||
	fail "kvm_launch_disk_info of the first VM"
grep -q '^kvm_launch_disk_read_ops_total{vm="pr\\"om\\\\vm",disk="vd0",.*} [0-9][0-9]*$' "$TMP/metrics" ||
	fail "kvm_launch_disk_read_ops_total of the first VM"
grep -q '^# TYPE kvm_launch_disk_write_bytes_total counter$' "$TMP/metrics" || fail "TYPE of a counter"

# ---- the textfile helper ----
tf=$TMP/textfile
mkdir "$tf"
helper=$KL_TOP/contrib/prometheus/prometheus-textfile
PATH=$(dirname "$KL"):$PATH sh "$helper" --dir "$tf" --kvm-launch "$KL" > "$TMP/helper.log" 2>&1 &&
	echo "first textfile written" || { cat "$TMP/helper.log"; fail "prometheus-textfile failed"; }
# It uses kvm-launch's default state directory: compare families, not samples.
[ -s "$tf/kvm-launch.prom" ] || fail "no $tf/kvm-launch.prom"
[ "$(stat -c %a "$tf/kvm-launch.prom")" = 644 ] || fail "textfile mode $(stat -c %a "$tf/kvm-launch.prom")"
ino1=$(stat -c %i "$tf/kvm-launch.prom")
sh "$helper" --dir "$tf" --kvm-launch "$KL" || fail "prometheus-textfile failed the second time"
ino2=$(stat -c %i "$tf/kvm-launch.prom")
[ "$ino1" != "$ino2" ] || fail "the textfile was rewritten in place, not replaced"
[ "$(ls -A "$tf")" = kvm-launch.prom ] || fail "temporary files left: $(ls -A "$tf")"
grep -q '^# TYPE kvm_launch_vm_up gauge$' "$tf/kvm-launch.prom" || fail "textfile content"
! sh "$helper" --dir "$TMP/nonexistent" --kvm-launch "$KL" 2>/dev/null || fail "a missing directory must fail"
echo "prometheus-textfile: replaced atomically (inode $ino1 -> $ino2), mode 0644, no leftovers"
echo "PASS: --status --prometheus follows the text format"
