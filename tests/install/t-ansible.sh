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
. "$(dirname "$0")/lib.sh"
log() { echo "t-ansible: $*"; }
kl_system_lock
kl_ansible_preflight

# ---- the package ----
kl_ansible_deb
dpkg-deb -c "$deb" > "$TMP/contents" || fail "dpkg-deb -c $deb"
grep -q '/usr/lib/kvm-launch/kvm-launch-top$' "$TMP/contents" || fail "the package lacks kvm-launch-top"
grep -q 'examples/ansible/roles/kvm_launch/tasks/present.yml$' "$TMP/contents" || fail "the package lacks the role"
grep -q 'examples/prometheus/kvm-launch.rules.yml$' "$TMP/contents" || fail "the package lacks the alert rules"
dpkg-deb -f "$deb" Depends | grep -q 'libncursesw6' || fail "the package does not depend on libncursesw6"

# ---- whatever happens, the host ends as it began ----
SUM_Q=$(sha256sum < "$Q")
stat_q=$(stat -c '%a %U %G %s %Y' "$Q")
diverts_before=$(dpkg-divert --list | sort | sha256sum)
cleanup_fn kl_ansible_restore
kl_ansible_env
cat > "$TMP/vars.yml" <<VARS_EOF
kvm_launch_deb: $deb
kvm_launch_qemu: $Q
kvm_launch_policy_globals:
  on-error: passthrough
kvm_launch_policy_rules:
  - { name: ansible-raw-files, backend: file, format: raw, cache: none, aio: [io_uring, threads] }
  - { name: ansible-cdrom, cdrom: true, aio: keep, cache: keep }
VARS_EOF

# ---- 1. first run ----
play first || { cat "$TMP/first.log"; fail "first run failed"; }
[ "$(field failed)" = 0 ] && [ "$(field changed)" -gt 0 ] || fail "first run: $recap"
dpkg-query -W -f='${Status}' kvm-launch | grep -q 'install ok installed' || fail "the package is not installed"
[ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] || fail "$Q is not diverted"
[ "$(readlink "$Q")" = /usr/bin/kvm-launch ] || fail "$Q is not kvm-launch"
[ "$(sha256sum < "$Q.distrib")" = "$SUM_Q" ] || fail "$Q.distrib is not the original QEMU"
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
[ "$(sha256sum < "$Q")" = "$SUM_Q" ] || fail "$Q is not the original binary after undo"
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
