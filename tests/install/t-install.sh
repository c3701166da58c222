#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `make install DESTDIR=...` puts exactly the files of `make print-installed-files`
# (binary, kvm-launch-divert, man pages, docs and examples, tmpfiles entry,
# bash completion, the Prometheus helper and units) and nothing under
# SYSCONFDIR; `make uninstall` removes all of them.  Then: the tmpfiles entry
# makes a state directory that kvm-launch run as another user of group kvm
# (as libvirt's QEMU user is) can use; the bash completion offers options,
# VM names and disks.
. "$(dirname "$0")/../functions.sh"
requires make sed find
kl_tmpdir
root=$TMP/root
# --no-print-directory: under `make check-asan` this make is nested, and its "Entering directory" lines would
# end up in the file lists compared below.
mk() { make -s --no-print-directory -C "$KL_TOP" "$@"; }

[ -f "$KL_TOP/Makefile" ] || fail "run ./configure first"
sysconfdir=$(sed -n 's/^SYSCONFDIR = //p' "$KL_TOP/Makefile")
runstatedir=$(sed -n 's/^RUNSTATEDIR = //p' "$KL_TOP/Makefile")
localstatedir=$(sed -n 's/^LOCALSTATEDIR = //p' "$KL_TOP/Makefile")

mk install DESTDIR="$root" > "$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "make install failed"; }
mk print-installed-files | sort > "$TMP/expected"
(cd "$root" && find . -type f -o -type l | sed 's|^\.||' | sort) > "$TMP/got"
echo "installed tree:"
(cd "$root" && find . -type f -printf '  %m %p\n' | sed 's| \./| /|' | sort -k2)
diff -u "$TMP/expected" "$TMP/got" || fail "installed files differ from print-installed-files"
[ "$(wc -l < "$TMP/expected")" -ge 20 ] || fail "suspiciously few files: $(wc -l < "$TMP/expected")"
[ ! -e "$root$sysconfdir" ] || fail "make install wrote under $sysconfdir"

f() { grep -x -- "$1" "$TMP/expected" >/dev/null || fail "not installed: $1"; echo "$root$1"; }
bin=$(f "$(grep '/bin/kvm-launch$' "$TMP/expected")")
[ -x "$bin" ] && "$bin" --version | grep -q '^kvm-launch ' || fail "installed binary does not run"
[ -x "$(f "$(grep '/sbin/kvm-launch-divert$' "$TMP/expected")")" ] || fail "kvm-launch-divert not executable"
divert=$(f "$(grep '/sbin/kvm-launch-divert$' "$TMP/expected")")
! grep -n '@[a-z]*dir@' "$divert" || fail "kvm-launch-divert: unsubstituted path"
sh -n "$divert" || fail "kvm-launch-divert: syntax"
cmp -s "$(f "$(grep 'man8/kvm-launch.8$' "$TMP/expected")")" "$KL_TOP/doc/kvm-launch.8" || fail "man page differs"
cmp -s "$(f "$(grep 'man5/kvm-launch.conf.5$' "$TMP/expected")")" "$KL_TOP/doc/kvm-launch.conf.5" || fail "man page differs"
ex=$(f "$(grep 'examples/kvm-launch.conf$' "$TMP/expected")")
cmp -s "$ex" "$KL_TOP/contrib/kvm-launch.conf.example" || fail "example policy differs"
"$bin" --check-policy "$ex" >/dev/null || fail "the example policy is not valid"
for x in apparmor/libvirt-qemu.kvm-launch apparmor/usr.sbin.libvirtd.kvm-launch selinux/kvm-launch.te selinux/kvm-launch.fc; do
	f "$(grep "examples/$x\$" "$TMP/expected")" >/dev/null
done
tmpf=$(f "$(grep 'tmpfiles.d/kvm-launch.conf$' "$TMP/expected")")
grep -qx "d $runstatedir/kvm-launch 0755 root root -" "$tmpf" || fail "tmpfiles: state directory line"
grep -qx "d $runstatedir/kvm-launch/root 2750 root kvm -" "$tmpf" || fail "tmpfiles: root's state directory line"
grep -qx "d $runstatedir/kvm-launch/users 3770 root kvm -" "$tmpf" || fail "tmpfiles: users' state directory line"
grep -qx "d $localstatedir/cache/kvm-launch 0755 root root -" "$tmpf" || fail "tmpfiles: cache directory line"
grep -qx "d $localstatedir/cache/kvm-launch/users 3770 root kvm -" "$tmpf" || fail "tmpfiles: users' cache directory line"
comp=$(f "$(grep 'completions/kvm-launch$' "$TMP/expected")")
bash -n "$comp" || fail "bash completion: syntax"
grep -q "\"$runstatedir/kvm-launch\"" "$comp" || fail "bash completion: state directory not substituted"
for u in service timer; do
	unit=$(f "$(grep "kvm-launch-prometheus.$u\$" "$TMP/expected")")
	! grep -n '@[a-z]*@' "$unit" || fail "$unit: unsubstituted path"
done
helper=$(f "$(grep '/prometheus-textfile$' "$TMP/expected")")
grep -q "^ExecStart=${helper#$root} " "$root$(grep 'kvm-launch-prometheus.service$' "$TMP/expected")" ||
	fail "the service does not run the installed helper"
if command -v systemd-analyze >/dev/null; then
	# Units must parse; an ExecStart outside the real root is expected to be reported.
	systemd-analyze verify --man=no "$root$(grep 'kvm-launch-prometheus.timer$' "$TMP/expected")" 2>&1 |
		grep -v -e 'not found' -e 'is not executable' -e 'Failed to prepare' -e 'No such file' \
			-e 'Command .* is not executable' -e 'Unit .* not found' > "$TMP/verify" || true
	[ ! -s "$TMP/verify" ] || { cat "$TMP/verify"; fail "systemd-analyze verify complained"; }
fi

for o in $("$KL" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	grep -q -- " ${o}[ \"]" "$comp" || grep -q -- "=\"$o " "$comp" || fail "bash completion lacks $o (kvm-launch --help has it)"
done
cp "$tmpf" "$TMP/tmpfiles.conf"
cp "$comp" "$TMP/completion.bash"
tmpf=$TMP/tmpfiles.conf
comp=$TMP/completion.bash

# ---- uninstall ----
mk uninstall DESTDIR="$root" > "$TMP/uninstall.log" 2>&1 || { cat "$TMP/uninstall.log"; fail "make uninstall failed"; }
left=$(cd "$root" && find . -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"
for d in doc/kvm-launch lib/kvm-launch; do
	[ -z "$(find "$root" -path "*/$d" -print)" ] || fail "directory left after uninstall: $d"
done
echo "uninstall: no file left; remaining (shared) directories: $(cd "$root" && find . -mindepth 1 -type d | wc -l)"

# ---- the tmpfiles entry, applied; kvm-launch as a QEMU user of group kvm ----
if [ "$(id -u)" = 0 ] && command -v systemd-tmpfiles >/dev/null && getent group kvm >/dev/null &&
	command -v setpriv >/dev/null && [ -x "$QEMU" ]; then
	base=$TMP/sys
	mkdir -p "$base/run" "$base/cache"
	chmod 0755 "$TMP" "$base" "$base/run" "$base/cache"
	sed -e "s|^d $runstatedir/|d $base/run/|" -e "s|^d $localstatedir/cache/|d $base/cache/|" "$tmpf" > "$TMP/t.conf"
	systemd-tmpfiles --create "$TMP/t.conf" || fail "systemd-tmpfiles --create failed"
	top=$base/run/kvm-launch
	[ "$(stat -c '%a %U %G' "$top")" = "755 root root" ] || fail "state dir: $(stat -c '%a %U %G' "$top")"
	[ "$(stat -c '%a %U %G' "$top/root")" = "2750 root kvm" ] || fail "root's state dir: $(stat -c '%a %U %G' "$top/root")"
	[ "$(stat -c '%a %U %G' "$top/users")" = "3770 root kvm" ] || fail "users' state dir: $(stat -c '%a %U %G' "$top/users")"
	[ "$(stat -c '%a %U %G' "$base/cache/kvm-launch")" = "755 root root" ] || fail "cache dir: $(stat -c '%a %U %G' "$base/cache/kvm-launch")"
	[ "$(stat -c '%a %U %G' "$base/cache/kvm-launch/users")" = "3770 root kvm" ] ||
		fail "users' cache dir: $(stat -c '%a %U %G' "$base/cache/kvm-launch/users")"
	# As nobody with supplementary group kvm, like libvirt-qemu: its own users/UID.
	st=$top/users/$(id -u nobody)
	kvmgid=$(getent group kvm | cut -d: -f3)
	setpriv --reuid=nobody --regid=nogroup --groups="$kvmgid" --inh-caps=-all \
		"$KL" --state-dir "$st" --config /nonexistent-policy -- -name kl-install-test -S -nodefaults -display none \
		-machine pc,accel=tcg -m 64 > "$TMP/vm.log" 2>&1 &
	vmpid=$!
	cleanup_fn "kill $vmpid 2>/dev/null; wait $vmpid 2>/dev/null"
	vm_listed() { "$KL" --status --state-dir "$st" kl-install-test --json | grep -Eq '"state": ?"running"'; }
	wait_for 30 vm_listed || { cat "$TMP/vm.log"; fail "the VM started as nobody:kvm is not listed as running"; }
	[ -f "$st/kl-install-test.json" ] || { cat "$TMP/vm.log"; fail "no state file written by the kvm user"; }
	[ "$(stat -c '%a %U %G' "$st")" = "2750 nobody kvm" ] || fail "users/UID: $(stat -c '%a %U %G' "$st") (want 2750 nobody kvm)"
	[ "$(stat -c '%a %U %G' "$st/kl-install-test.json")" = "640 nobody kvm" ] ||
		fail "state file: $(stat -c '%a %U %G' "$st/kl-install-test.json") (want 640 nobody kvm)"
	[ "$(stat -c '%a' "$st/kl-install-test.qmp.sock")" = 600 ] || fail "query socket: $(stat -c '%a' "$st/kl-install-test.qmp.sock")"
	"$KL" --status --state-dir "$st" kl-install-test --json > "$TMP/status.json" || fail "--status as root"
	grep -q '"state":"running"' "$TMP/status.json" || grep -q '"state": "running"' "$TMP/status.json" ||
		{ cat "$TMP/status.json"; fail "root does not see the VM running"; }
	# Root's directory is root's alone.
	! setpriv --reuid=nobody --regid=nogroup --groups="$kvmgid" touch "$top/root/x.json" 2>/dev/null ||
		fail "a kvm user could write root's state directory"
	echo "tmpfiles: $top/root is $(stat -c '%a %U:%G' "$top/root"); a QEMU as nobody:kvm wrote $(stat -c '%a %U:%G' "$st/kl-install-test.json") state in $st ($(stat -c '%a %U:%G' "$st")), root reads it"
	kill "$vmpid"; wait "$vmpid" 2>/dev/null
else
	# Not a silent pass: the whole test reports a skip (77) at the end.
	tmpfiles_skipped="the tmpfiles check needs root, systemd-tmpfiles (systemd), group kvm, setpriv and QEMU"
	echo "SKIP part: $tmpfiles_skipped"
fi

# ---- bash completion ----
if command -v bash >/dev/null; then
	sd=$TMP/comp-state
	mkdir -p "$sd"
	printf '{\n  "name":"vm-a",\n  "disks":[\n    {\n      "id":"virtio-disk0",\n      "node":"libvirt-1-format",\n      "path":"/img/a.qcow2",\n      "throttle":{\n        "id":"not-a-disk"\n      }\n    }\n  ],\n  "changes":[\n    {\n      "id":"x"\n    }\n  ]\n}\n' > "$sd/vm-a.json"
	echo '{}' > "$sd/vm-b.json"
	out=$(bash -c '
		[ -f /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
		. "$1"; shift
		c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		      COMPREPLY=(); _kvm_launch kvm-launch "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"; echo "${COMPREPLY[*]}"; }
		c kvm-launch --sta
		c kvm-launch --state-dir "$1" --status ""
		c kvm-launch --state-dir "$1" --set vm-a ""
		c kvm-launch --state-dir "$1" --set vm-a virtio-disk0 cache=w
		c kvm-launch -- -dri' _ "$comp" "$sd")
	echo "completion: $out" | sed 's/^/  /'
	[ "$(sed -n 1p <<<"$out")" = "--state-dir --status" ] || fail "completion of --sta"
	[ "$(sed -n 2p <<<"$out")" = "vm-a vm-b" ] || fail "completion of VM names"
	[ "$(sed -n 3p <<<"$out")" = "virtio-disk0 libvirt-1-format /img/a.qcow2" ] || fail "completion of disks"
	[ "$(sed -n 4p <<<"$out")" = "cache=writeback" ] || fail "completion of settings"
	[ -z "$(sed -n 5p <<<"$out")" ] || fail "completion offered words after --"
fi
if [ -n "${tmpfiles_skipped:-}" ]; then
	echo "SKIP: $0: $tmpfiles_skipped (everything else passed)"
	exit 77
fi
echo "PASS: install, uninstall, tmpfiles, completion"
