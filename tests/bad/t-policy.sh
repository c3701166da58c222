#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Bad policy files.  Every kind of syntax error is reported by
# --check-policy as FILE:LINE (exit 1, within a timeout), and at launch it
# fails open with one message (or refuses, when the file says
# on-error = refuse).  Warnings (a rule that can never match) pass.  Unsafe
# files (writable by others, owned by another user, in a directory others
# can write) are refused and not believed at all, not even their on-error.
# A missing --config file means the built-in rules, with a warning; an
# unreadable one or one that is not a regular file (a FIFO must not hang)
# fails open.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
IMG=$TMP/disk.img
truncate -s 1M "$IMG"
G="cache-dir = $TMP/cache
state-dir = $TMP/state"
VM=(-name p -drive "file=$IMG,format=raw,if=virtio")

# policy NAME TEXT: a policy file of ours (0644, root's)
policy() {
	printf '%s\n' "$2" > "$TMP/$1.conf"
	chmod 0644 "$TMP/$1.conf"
}

# check_error NAME LINE MESSAGE-PART: --check-policy reports FILE:LINE: ...
check_error() {
	timeout -k 5 20 "$KL" --check-policy "$TMP/$1.conf" < /dev/null > "$TMP/check.out" 2>&1
	rc=$?
	[ $rc = 1 ] || { cat "$TMP/check.out"; fail "$1: --check-policy exit $rc, expected 1"; }
	grep -aF "$TMP/$1.conf:$2: " "$TMP/check.out" | grep -aqF -- "$3" ||
		{ cat "$TMP/check.out"; fail "$1: no \"$1.conf:$2: ...$3...\""; }
	tail -n 1 "$TMP/check.out" | grep -aq "^$TMP/$1.conf: [0-9]* errors\?$" || fail "$1: no summary line"
}

# launch_fails_open NAME: QEMU gets the original arguments, one message naming the file
launch_fails_open() {
	PASS_SAVED=$PASS
	PASS=$TMP/$1.conf
	expect_passthrough "${VM[@]}"
	PASS=$PASS_SAVED
	grep -qF "$TMP/$1.conf" "$ERR" || { cat "$ERR"; fail "$1: the message does not name the file"; }
}

n=0
while IFS='|' read -r name line msg text <&3; do
	[ -n "$name" ] || continue
	policy "$name" "$G
$(printf '%b' "$text")"
	check_error "$name" $((line + 2)) "$msg"
	launch_fails_open "$name"
	# The same file saying on-error = refuse: refused.
	policy "$name-refuse" "on-error = refuse
$G
$(printf '%b' "$text")"
	REFUSE_SAVED=$REFUSE
	REFUSE=$TMP/$name-refuse.conf
	expect_refused "${VM[@]}"
	REFUSE=$REFUSE_SAVED
	n=$((n + 1))
done 3<<'EOT'
novalue|2|"aio": missing '= value'|[rule r]\naio
emptykey|1|||= value
unterminated|1||[rule r\ncache = none
noname|1||[rule]\ncache = none
badname|1|rule name "b c"|[rule b c]\ncache = none
section|1|unknown section [defaults]|[defaults]\ncache = none
global|1|unknown key "colour"|colour = blue
rulekey|2|unknown key "bogus" in rule "r"|[rule r]\nbogus = 1\ncache = none
typo|2|did you mean "block-kind"?|[rule r]\nblock_kind = lvm\ncache = none
enum|2|backend: unknown value "blok"|[rule r]\nbackend = blok\ncache = none
cachevalue|2|cache: unknown value "default"|[rule r]\ncache = default
number|2|iops: expected a whole number, not "10K"|[rule r]\niops = 10K
negative|2|iops|[rule r]\niops = -5
huge|2|iops|[rule r]\niops = 99999999999999999999999999
twice|3|"aio" given twice in rule "r" (first at line|[rule r]\naio = native\naio = threads
duprule|3|duplicate rule name "r"|[rule r]\ncache = none\n[rule r]\ncache = none
noaction|1|rule "r" has no actions|[rule r]\nbackend = file
relative|1|qemu: "qemu-system-x86_64" is not an absolute path|qemu = qemu-system-x86_64
onerror|1|on-error: expected passthrough or refuse, not "ignore"|on-error = ignore
globalinrule|2|"state-dir" is a global setting|[rule r]\nstate-dir = /x\ncache = none
ruleinglobal|1|"backend" belongs in a [rule NAME] section|backend = block
nova|1|disk_cachemodes|disk_cachemodes = file=bogus
novaempty|1|disk_cachemodes|disk_cachemodes =
notutf8|2||[rule r]\nbackend = \377\376\ncache = none
control|2||[rule r]\ncache = no\033[2Jne
EOT
# Patterns above that are empty only need FILE:LINE:.
echo "$n syntax errors: reported with their line, fail-open, refused on request"

# ---- whole-file problems ----
# A NUL byte; more than 1 MiB; a line of 200 kB; not a regular file.
printf '%s\n[rule r]\ncache = none\0\n' "$G" > "$TMP/nul.conf"
head -c 1100000 /dev/zero | tr '\0' '#' > "$TMP/big.conf"
{ printf '%s\n[rule r]\ncache = ' "$G"; head -c 200000 /dev/zero | tr '\0' 'n'; echo; } > "$TMP/longline.conf"
chmod 0644 "$TMP"/nul.conf "$TMP"/big.conf "$TMP"/longline.conf
for name in nul big longline; do
	timeout -k 5 20 "$KL" --check-policy "$TMP/$name.conf" > "$TMP/check.out" 2>&1
	rc=$?
	[ $rc = 1 ] || { cat "$TMP/check.out"; fail "$name: --check-policy exit $rc"; }
	grep -q "^$TMP/$name.conf" "$TMP/check.out" || fail "$name: no FILE: message"
	launch_fails_open "$name"
done
mkfifo -m 0644 "$TMP/fifo.conf"
mkdir -m 0755 "$TMP/dir.conf"
for name in fifo dir; do
	timeout -k 5 20 "$KL" --check-policy "$TMP/$name.conf" > "$TMP/check.out" 2>&1
	rc=$?
	[ $rc = 1 ] || { cat "$TMP/check.out"; fail "$name: --check-policy exit $rc (124: it hung)"; }
	grep -q "^$TMP/$name.conf: refused: not a regular file" "$TMP/check.out" || fail "$name: not refused"
	launch_fails_open "$name"
done
echo "whole-file problems: ok"

# ---- warnings only: valid, QEMU started with the rewrite ----
policy warn "$G
[rule a]
backend = file
cache = none
[rule b]
backend = file
fs = ext4
aio = threads"
timeout 20 "$KL" --check-policy "$TMP/warn.conf" > "$TMP/check.out" 2>&1 || { cat "$TMP/check.out"; fail "warn: exit $?"; }
grep -q "^$TMP/warn.conf:6: warning: rule \"b\" can never match" "$TMP/check.out" || { cat "$TMP/check.out"; fail "warn: no warning"; }
PASS_SAVED=$PASS; PASS=$TMP/warn.conf
expect_started "${VM[@]}"
PASS=$PASS_SAVED
grep -q 'rule "b" can never match' "$ERR" || fail "warn: the launch does not mention the warning"
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,cache=none" ] || fail "warn: got $(got_arg 4)"
echo "warnings: ok"

# ---- unsafe files: refused, and not believed (not even on-error = refuse) ----
policy unsafe "on-error = refuse
$G
[rule r]
cache = unsafe"
unsafe_case() { # DESCRIPTION EXPECTED-MESSAGE
	timeout 20 "$KL" --check-policy "$TMP/unsafe.conf" > "$TMP/check.out" 2>&1 && fail "$1: --check-policy passed"
	grep -qF "$2" "$TMP/check.out" || { cat "$TMP/check.out"; fail "$1: --check-policy: no \"$2\""; }
	launch_fails_open unsafe
	grep -qF "$2" "$ERR" || { cat "$ERR"; fail "$1: launch: no \"$2\""; }
}
if [ "$(id -u)" = 0 ]; then
	chmod 0666 "$TMP/unsafe.conf"
	unsafe_case "world-writable" "refused: the file is writable by every user (mode 0666)"
	chmod 0664 "$TMP/unsafe.conf"
	chgrp nogroup "$TMP/unsafe.conf" 2>/dev/null || chgrp 65534 "$TMP/unsafe.conf"
	unsafe_case "group-writable" "refused: the file is writable by group"
	chgrp 0 "$TMP/unsafe.conf"
	chmod 0644 "$TMP/unsafe.conf"
	chown 65534 "$TMP/unsafe.conf"
	unsafe_case "owned by another user" "refused: the file is owned by uid 65534"
	chown 0 "$TMP/unsafe.conf"
	# A directory above it that others can write (not sticky).
	mkdir -m 0755 "$TMP/open"
	chmod 0777 "$TMP/open"
	mv "$TMP/unsafe.conf" "$TMP/open/unsafe.conf"
	ln -s "$TMP/open/unsafe.conf" "$TMP/unsafe.conf"
	unsafe_case "world-writable directory (through a symlink)" "is writable by every user (mode 0777)"
	chmod 0755 "$TMP/open"
	echo "unsafe files: ok"
else
	echo "SKIP part: unsafe files need root (chown)"
fi

# ---- missing and unreadable --config files ----
rm -f "$TMP/missing.conf"
launch "$TMP/missing.conf" "${VM[@]}"
no_crash "${VM[@]}"
[ "$RC" = 0 ] && [ -f "$KL_RECORD" ] || fail "missing config: QEMU not started"
grep -q "^kvm-launch: warning: policy file $TMP/missing.conf does not exist: using the built-in rules" "$ERR" ||
	{ cat "$ERR"; fail "missing config: no warning"; }
[ "$(got_arg 4)" = "file=$IMG,format=raw,if=virtio,cache=none,aio=io_uring" ] || fail "missing config: built-in rules not applied: $(got_arg 4)"
stderr_ours 3 "${VM[@]}"
timeout 20 "$KL" --check-policy "$TMP/missing.conf" > "$TMP/check.out" 2>&1 && fail "--check-policy of a missing file passed"
grep -q "^$TMP/missing.conf: cannot open: No such file or directory" "$TMP/check.out" || { cat "$TMP/check.out"; fail "missing: --check-policy message"; }
# Unreadable by the user kvm-launch runs as.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
	policy secret "$G"
	chmod 0600 "$TMP/secret.conf"
	mkdir -m 0777 "$TMP/rec"
	chmod 0755 "$TMP/cache" 2>/dev/null
	RECORD=$TMP/rec/nobody
	setpriv --reuid 65534 --regid 65534 --clear-groups env KL_RECORD="$RECORD" XDG_RUNTIME_DIR= \
		timeout 30 "$KL" --config "$TMP/secret.conf" --qemu "$KL_FAKE" -- "${VM[@]}" > /dev/null 2> "$ERR"
	RC=$?
	no_crash "${VM[@]}"
	[ "$RC" = 0 ] || { cat "$ERR"; fail "unreadable config: exit $RC"; }
	printf '%s\0' "$KL_FAKE" "${VM[@]}" | cmp -s - "$RECORD" || fail "unreadable config: arguments changed"
	grep -q "^kvm-launch: error: $TMP/secret.conf: cannot open: Permission denied; starting QEMU with the original arguments" "$ERR" ||
		{ cat "$ERR"; fail "unreadable config: message"; }
	echo "missing and unreadable config: ok"
else
	echo "missing config: ok (unreadable: needs root and setpriv)"
fi
echo "policy files: ok ($CASES launches)"
