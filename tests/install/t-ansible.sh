#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Ansible role (contrib/ansible) with Debian's ansible-core against this
# host (-i localhost, -c local), root only; it installs the package built
# from this tree and diverts the system QEMU, and always undoes both:
#   1. first run: package installed, policy from the variables, the system
#      QEMU diverted to kvm-launch (which runs the real one), verified;
#   2. second run: changed=0;
#   3. a policy that does not validate: the run fails and the policy file,
#      dpkg-divert's list, the QEMU binaries and the package are unchanged;
#   4. undo: no diversion, no package, the QEMU binary back byte for byte
#      (and its mode, owner, size and mtime); undo again: changed=0;
#   5. the broken policy on a host without kvm-launch: fails, installs nothing;
#   6. a QEMU kvm-launch-divert would refuse (a stray QEMU.distrib, in $TMP):
#      fails before the package is installed.
# Holds /tmp/kl-libvirt.lock (set KL_SYSTEM_LOCK_HELD=1 when the caller holds
# it already), like every test that changes the system QEMU.  KL_DEB=FILE
# uses that package instead of building one.
. "$(dirname "$0")/../functions.sh"
requires_root
PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
Q=${KL_ANSIBLE_QEMU:-/usr/bin/qemu-system-x86_64}
requires ansible-playbook dpkg-divert dpkg-deb dpkg-buildpackage sha256sum flock tar "$Q"
kl_tmpdir
log() { echo "t-ansible: $*"; }

if [ -z "${KL_SYSTEM_LOCK_HELD:-}" ]; then
	exec 8>"${KL_SYSTEM_LOCK:-/tmp/kl-libvirt.lock}"
	flock -w 1800 8 || fail "${KL_SYSTEM_LOCK:-/tmp/kl-libvirt.lock} stays locked"
fi

# ---- nothing of ours or anyone's in the way ----
if dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files'; then
	echo "SKIP: $0: a kvm-launch package is already installed ($(dpkg-query -W -f='${Version} ${Status}' kvm-launch))"
	exit 77
fi
[ -z "$(dpkg-divert --listpackage "$Q")" ] || fail "$Q is already diverted ($(dpkg-divert --listpackage "$Q")): undo it first"
[ ! -e "$Q.distrib" ] || fail "$Q.distrib exists without a diversion: a leftover? move it away first"
[ -f "$Q" ] && [ ! -L "$Q" ] || fail "$Q is not a regular file"
if [ "${CI:-}" != true ] && [ -n "$(find /run/kvm-launch -name '*.json' 2>/dev/null | head -n 1)" ]; then
	echo "SKIP: $0: /run/kvm-launch holds state of VMs (purging the package would remove it)"
	exit 77
fi
# Outside CI, other tests' QEMUs would run through kvm-launch while the
# diversion lasts: wait for them to finish.
if [ "${CI:-}" != true ]; then
	for i in $(seq 120); do
		busy=$(pgrep -x qemu-system-x86 || pgrep -f "^$Q " || true)
		[ -z "$busy" ] && break
		[ "$i" = 120 ] && { echo "SKIP: $0: other QEMUs keep running (pids $busy): not diverting under them"; exit 77; }
		sleep 1
	done
fi

# ---- the package ----
if [ -n "${KL_DEB:-}" ]; then
	deb=$KL_DEB
else
	mkdir -p "$TMP/src"
	(cd "$KL_TOP" && tar cf - --exclude=./.git --exclude='*.o' --exclude='*.a' --exclude=./kvm-launch \
		--exclude=./kvm-launch-top --exclude=./Makefile --exclude=./config.h --exclude=./tests/logs \
		--exclude=./build-asan --exclude=./tests/fuzz/out --exclude=./tests/guest/out \
		--exclude='./tests/unit/test-*[!c]' --exclude=./debian/kvm-launch --exclude=./debian/.debhelper \
		--exclude='./debian/*.log' --exclude='./debian/*.substvars' --exclude=./debian/files .) | tar xf - -C "$TMP/src"
	start=$SECONDS
	(cd "$TMP/src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") > "$TMP/build.log" 2>&1 ||
		{ tail -30 "$TMP/build.log"; fail "dpkg-buildpackage failed"; }
	deb=$(ls "$TMP"/kvm-launch_*.deb)
	log "built $(basename "$deb") in $((SECONDS - start)) s"
fi
[ -f "$deb" ] || fail "no package $deb"
dpkg-deb -c "$deb" > "$TMP/contents" || fail "dpkg-deb -c $deb"
grep -q '/usr/lib/kvm-launch/kvm-launch-top$' "$TMP/contents" || fail "the package lacks kvm-launch-top"
grep -q 'examples/ansible/roles/kvm_launch/tasks/present.yml$' "$TMP/contents" || fail "the package lacks the role"
grep -q 'examples/prometheus/kvm-launch.rules.yml$' "$TMP/contents" || fail "the package lacks the alert rules"
dpkg-deb -f "$deb" Depends | grep -q 'libncursesw6' || fail "the package does not depend on libncursesw6"

# ---- whatever happens, the host ends as it began ----
sum_q=$(sha256sum < "$Q")
stat_q=$(stat -c '%a %U %G %s %Y' "$Q")
diverts_before=$(dpkg-divert --list | sort | sha256sum)
restore() {
	if [ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] && [ -x /usr/sbin/kvm-launch-divert ]; then
		/usr/sbin/kvm-launch-divert undo --qemu "$Q" >/dev/null 2>&1
	fi
	if dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files'; then
		dpkg -P kvm-launch >/dev/null 2>&1
	fi
	[ "$(sha256sum < "$Q")" = "$sum_q" ] || echo "t-ansible: WARNING: $Q differs from before the test" >&2
}
cleanup_fn restore

export ANSIBLE_LOCAL_TEMP=$TMP/ansible-local ANSIBLE_REMOTE_TEMP=$TMP/ansible-remote ANSIBLE_NOCOLOR=1 \
	ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOCALHOST_WARNING=0 \
	ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_DEPRECATION_WARNINGS=0
cat > "$TMP/vars.yml" <<VARS_EOF
kvm_launch_deb: $deb
kvm_launch_qemu: $Q
kvm_launch_policy_globals:
  on-error: passthrough
kvm_launch_policy_rules:
  - { name: ansible-raw-files, backend: file, format: raw, cache: none, aio: [io_uring, threads] }
  - { name: ansible-cdrom, cdrom: true, aio: keep, cache: keep }
VARS_EOF
# play NAME [ansible-playbook args]: runs the playbook, keeps its log, prints its PLAY RECAP line.
play() {
	local name=$1 rc=0
	shift
	LC_ALL=C.UTF-8 ansible-playbook -i localhost, -c local "$KL_TOP/contrib/ansible/kvm-launch.yml" -e "@$TMP/vars.yml" "$@" \
		> "$TMP/$name.log" 2>&1 || rc=$?
	recap=$(grep -E '^localhost +: ok=' "$TMP/$name.log") || { cat "$TMP/$name.log"; fail "$name: no PLAY RECAP"; }
	recap=$(echo "$recap" | tr -s ' ')
	log "$name (exit $rc): $recap"
	return $rc
}
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$recap"; }
# host_state FILE: what a run must not change when it fails.
host_state() {
	{
		sha256sum /etc/kvm-launch/kvm-launch.conf 2>&1
		dpkg-divert --list | sort
		stat -c '%N %a %U %G %s %Y' "$Q" "$Q.distrib" 2>&1
		sha256sum "$Q" "$Q.distrib" 2>&1
		dpkg-query -W -f='${Status} ${Version}\n' kvm-launch 2>&1
	} > "$1"
}
unchanged() { # BEFORE-FILE WHAT
	host_state "$1.after"
	diff -u "$1" "$1.after" || fail "$2 changed the host (diff above)"
}

# ---- 1. first run ----
play first || { cat "$TMP/first.log"; fail "first run failed"; }
[ "$(field failed)" = 0 ] && [ "$(field changed)" -gt 0 ] || fail "first run: $recap"
dpkg-query -W -f='${Status}' kvm-launch | grep -q 'install ok installed' || fail "the package is not installed"
[ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] || fail "$Q is not diverted"
[ "$(readlink "$Q")" = /usr/bin/kvm-launch ] || fail "$Q is not kvm-launch"
[ "$(sha256sum < "$Q.distrib")" = "$sum_q" ] || fail "$Q.distrib is not the original QEMU"
grep -qx "qemu = $Q.distrib" /etc/kvm-launch/kvm-launch.conf || fail "policy: no qemu line"
grep -qx '\[rule ansible-raw-files\]' /etc/kvm-launch/kvm-launch.conf || fail "policy: the rule from the variables is missing"
grep -qx 'aio = io_uring, threads' /etc/kvm-launch/kvm-launch.conf || fail "policy: a list is not joined"
grep -qx 'cdrom = yes' /etc/kvm-launch/kvm-launch.conf || fail "policy: a boolean is not yes/no"
! grep -q '^# >>> kvm-launch-divert' /etc/kvm-launch/kvm-launch.conf || fail "kvm-launch-divert edited the policy (the role's file must be final)"
/usr/bin/kvm-launch --check-policy /etc/kvm-launch/kvm-launch.conf >/dev/null || fail "the policy in place is not valid"
[ "$("$Q" --dry-run -- -name x | head -n 1)" = "$Q.distrib" ] || fail "kvm-launch at $Q would not run $Q.distrib"
truncate -s 16M "$TMP/disk.raw"
"$Q" --explain -- -name x -drive "file=$TMP/disk.raw,format=raw,if=virtio" > "$TMP/explain" || fail "--explain"
grep -q 'ansible-raw-files' "$TMP/explain" || { cat "$TMP/explain"; fail "the policy's rule does not decide a raw file"; }
grep -q 'kvm-launch runs: ' "$TMP/first.log" || fail "the role did not verify with --status --json"
log "installed $(dpkg-query -W -f='${Version}' kvm-launch); $Q -> $(readlink "$Q"); $(grep -m1 'kvm-launch runs: ' "$TMP/first.log" | sed 's/^ *"msg": //')"

# ---- 2. second run: nothing to do ----
play second || { cat "$TMP/second.log"; fail "second run failed"; }
[ "$(field changed)" = 0 ] && [ "$(field failed)" = 0 ] ||
	{ grep -E '^changed:' -B1 "$TMP/second.log"; fail "second run is not idempotent: $recap"; }

# ---- 3. a broken policy changes nothing ----
host_state "$TMP/state.broken"
if play broken -e '{"kvm_launch_policy_rules": [{"name": "bad", "backend": "file", "cache": "sometimes"}]}'; then
	fail "a policy that does not validate was accepted"
fi
[ "$(field changed)" = 0 ] && [ "$(field failed)" = 1 ] || fail "broken policy: $recap"
grep -q 'check-policy' "$TMP/broken.log" && grep -q 'sometimes' "$TMP/broken.log" ||
	{ cat "$TMP/broken.log"; fail "broken policy: the failure does not show kvm-launch --check-policy's message"; }
unchanged "$TMP/state.broken" "the broken run"
log "broken policy: failed at validation; policy, diversions, QEMU binaries and package unchanged"

# ---- 4. undo ----
play undo -e kvm_launch_state=absent || { cat "$TMP/undo.log"; fail "undo failed"; }
[ "$(field failed)" = 0 ] && [ "$(field changed)" -gt 0 ] || fail "undo: $recap"
[ -z "$(dpkg-divert --listpackage "$Q")" ] || fail "undo left the diversion"
[ -f "$Q" ] && [ ! -L "$Q" ] && [ ! -e "$Q.distrib" ] || fail "$Q is not the plain binary after undo"
[ "$(sha256sum < "$Q")" = "$sum_q" ] || fail "$Q is not the original binary after undo"
[ "$(stat -c '%a %U %G %s %Y' "$Q")" = "$stat_q" ] || fail "$Q: mode, owner, size or mtime changed"
[ "$(dpkg-divert --list | sort | sha256sum)" = "$diverts_before" ] || fail "dpkg-divert's list differs from before"
! dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files' || fail "the package is still there"
[ ! -e /etc/kvm-launch ] && [ ! -e /usr/bin/kvm-launch ] || fail "undo left files"
log "undo: $Q $(stat -c '%a %U %G %s %Y' "$Q") sha256 $(sha256sum < "$Q" | cut -c1-16)...: as before the test"
play undo-again -e kvm_launch_state=absent || fail "undo again failed"
[ "$(field changed)" = 0 ] || fail "undo is not idempotent: $recap"

# ---- 5. a broken policy on a host without kvm-launch installs nothing ----
host_state "$TMP/state.fresh"
if play broken-fresh -e '{"kvm_launch_policy_rules": [{"name": "bad", "bogus-key": 1}]}'; then
	fail "a policy that does not validate was accepted (fresh host)"
fi
[ "$(field changed)" = 0 ] && [ "$(field failed)" = 1 ] || fail "broken policy on a fresh host: $recap"
unchanged "$TMP/state.fresh" "the broken run on a fresh host"
! dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files' || fail "the broken run installed the package"
ls -d /tmp/kvm-launch-ansible.* >/dev/null 2>&1 && fail "a run left its scratch directory"
log "broken policy on a fresh host: nothing installed, nothing diverted"

# ---- 6. a QEMU that cannot be diverted: refused before anything is installed ----
cp "$KL_TOP/tests/helpers/fake-qemu.sh" "$TMP/qemu-x"
: > "$TMP/qemu-x.distrib"
host_state "$TMP/state.undivertible"
if play undivertible -e "kvm_launch_qemu=$TMP/qemu-x"; then
	fail "a QEMU with a stray .distrib was diverted"
fi
[ "$(field changed)" = 0 ] && [ "$(field failed)" = 1 ] || fail "undivertible QEMU: $recap"
grep -q 'distrib exists without a diversion' "$TMP/undivertible.log" || { cat "$TMP/undivertible.log"; fail "undivertible QEMU: no reason given"; }
unchanged "$TMP/state.undivertible" "the refused run"
[ -z "$(dpkg-divert --listpackage "$TMP/qemu-x")" ] || fail "the refused run diverted $TMP/qemu-x"
log "a QEMU that cannot be diverted: refused before the package was installed"
echo "PASS: the Ansible role installs, is idempotent, refuses a broken policy without changing anything, and undoes"
