#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Ansible role installing from a signed apt repository, with Debian's ansible-core against this host
# (-i localhost, -c local), root only.  A local file: repository in $TMP holds the package built from this tree
# and a newer one (the same, repacked), signed with a throwaway gpg key (InRelease); the role gets the source
# line, the key and kvm_launch_version pinned to the older one, the metrics timer, and AppArmor under a copy of
# the profiles with libvirt's over them ($TMP/aa, so the host's /etc/apparmor.d is not touched):
#   1. a wrong key: fails, nothing changed;  2. a version the repository lacks: fails, nothing changed;
#   3. first run: the pinned version installed, the key in /etc/apt/keyrings, the source with signed-by, apt's
#      own policy shows the pin winning over the newer version, the timer enabled (systemctl is-enabled and
#      the link; it cannot be started without systemd as PID 1) and its service's ExecStart writes the .prom,
#      the include in place and libvirt's domain profile parses;  4. second run: changed=0;
#   5. a broken policy, 6. the wrong key again, 7. a broken AppArmor include: each fails, nothing changed;
#   8. the role's AppArmor step alone with the broken include: the local include is put back byte for byte;
#   9. undo: QEMU byte for byte, no package, no repository files (lists too), no timer link, no include;
#      undo again: changed=0.
# Holds /tmp/kl-libvirt.lock unless KL_SYSTEM_LOCK_HELD=1.  KL_DEB=FILE uses that package.
. "$(dirname "$0")/../functions.sh"
requires_root
PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
Q=${KL_ANSIBLE_QEMU:-/usr/bin/qemu-system-x86_64}
requires ansible-playbook dpkg-divert dpkg-deb dpkg-buildpackage dpkg-scanpackages gpg apparmor_parser systemctl \
	sha256sum flock tar "$Q"
[ -f /etc/apparmor.d/tunables/global ] || { echo "SKIP: $0: no /etc/apparmor.d/tunables/global (apparmor)"; exit 77; }
kl_tmpdir
. "$(dirname "$0")/lib.sh"
log() { echo "t-ansible-repo: $*"; }
kl_system_lock
kl_ansible_preflight
for f in /etc/apt/sources.list.d/kvm-launch.list /etc/apt/keyrings/kvm-launch.asc /etc/apt/keyrings/kvm-launch.gpg \
	/etc/apt/preferences.d/kvm-launch /etc/systemd/system/timers.target.wants/kvm-launch-prometheus.timer; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f exists: a leftover? remove it first"
done
kl_libvirt_profiles >/dev/null || { echo "SKIP: $0: libvirt's AppArmor profiles are not obtainable"; exit 77; }

# ---- the packages: this tree's, and the same repacked as a newer version ----
kl_ansible_deb
chmod 0755 "$TMP"   # apt reads the file: repository as _apt
mkdir -p "$TMP/repo" "$TMP/newer"
cp "$deb" "$TMP/repo/"
v1=$(dpkg-deb -f "$deb" Version)
v2=$v1+repotest2
dpkg-deb -R "$deb" "$TMP/newer" && sed -i "s/^Version: .*/Version: $v2/" "$TMP/newer/DEBIAN/control" &&
	dpkg-deb -b "$TMP/newer" "$TMP/repo/kvm-launch_${v2}_$(dpkg --print-architecture).deb" >/dev/null ||
	fail "repacking $deb as $v2"

# ---- a signed flat repository ----
genkey() { # HOMEDIR
	mkdir -m 0700 "$1"
	gpg --homedir "$1" --batch --quiet --passphrase '' --quick-gen-key 'kvm-launch test repository <repo@localhost>' \
		ed25519 sign never 2>/dev/null || fail "gpg --quick-gen-key"
}
genkey "$TMP/gpg"
genkey "$TMP/gpg-wrong"
gpg --homedir "$TMP/gpg" --armor --export 2>/dev/null > "$TMP/key.asc"
gpg --homedir "$TMP/gpg-wrong" --export 2>/dev/null > "$TMP/wrong.gpg"
(
	cd "$TMP/repo" || exit 1
	dpkg-scanpackages --multiversion . > Packages 2>/dev/null || exit 1
	{
		printf 'Origin: kvm-launch-tests\nLabel: kvm-launch-tests\nSuite: test\nCodename: test\n'
		printf 'Date: %s\nArchitectures: %s\nSHA256:\n' "$(date -u '+%a, %d %b %Y %H:%M:%S UTC')" "$(dpkg --print-architecture)"
		printf ' %s %s Packages\n' "$(sha256sum < Packages | cut -d' ' -f1)" "$(stat -c %s Packages)"
	} > Release
	gpg --homedir "$TMP/gpg" --batch --quiet --clearsign -o InRelease Release
) || fail "making the repository"
[ "$(grep -c '^Version:' "$TMP/repo/Packages")" = 2 ] || fail "the repository does not list both versions"
log "repository file:$TMP/repo: $v1 and $v2, InRelease signed by $(gpg --homedir "$TMP/gpg" --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')"

# ---- AppArmor: the system's tree, libvirt's profiles and the package's rules, in $TMP/aa ----
KL_AA_DIR=$TMP/aa
cp -a /etc/apparmor.d "$KL_AA_DIR" && cp -a "$LVAA/." "$KL_AA_DIR/" &&
	install -D -m 0644 "$KL_TOP/contrib/apparmor/libvirt-qemu.kvm-launch" "$KL_AA_DIR/abstractions/libvirt-qemu.d/kvm-launch" ||
	fail "copying the AppArmor profiles"
# Not in abstractions/libvirt-qemu.d: libvirt 11's abstraction includes that whole directory.
mkdir -p "$KL_AA_DIR/kl-test" && printf 'this is not an apparmor rule,\n' > "$KL_AA_DIR/kl-test/kl-broken"
aa_local=$KL_AA_DIR/local/abstractions/libvirt-qemu
# libvirt-daemon-system's postinst makes it empty when it is missing; so here.
[ -e "$aa_local" ] || install -D -m 0644 /dev/null "$aa_local"
aa_before=$(sha256sum "$aa_local" 2>&1)

# ---- the metrics timer's output directory (Debian's prometheus-node-exporter makes it) ----
prom=/var/lib/prometheus/node-exporter
if [ ! -d "$prom" ]; then
	made=/var/lib/prometheus
	[ -d "$made" ] && made=$prom
	mkdir -p "$prom"
	cleanup_fn "rm -rf '$made'"
fi

# ---- whatever happens, the host ends as it began ----
SUM_Q=$(sha256sum < "$Q")
stat_q=$(stat -c '%a %U %G %s %Y' "$Q")
diverts_before=$(dpkg-divert --list | sort | sha256sum)
lists_before=$(ls /var/lib/apt/lists | sha256sum)
cleanup_fn kl_ansible_restore
cleanup_fn "rm -f /etc/apt/sources.list.d/kvm-launch.list /etc/apt/keyrings/kvm-launch.* /etc/apt/preferences.d/kvm-launch \
/etc/systemd/system/timers.target.wants/kvm-launch-prometheus.timer \
/var/lib/apt/lists/*$(echo "${TMP#/}" | tr / _)_repo_*"
kl_ansible_env
cat > "$TMP/vars.yml" <<VARS_EOF
kvm_launch_apt_repo: "deb [arch=$(dpkg --print-architecture)] file:$TMP/repo ./"
kvm_launch_apt_key: $TMP/key.asc
kvm_launch_version: "$v1"
kvm_launch_qemu: $Q
kvm_launch_prometheus_timer: true
kvm_launch_apparmor: true
kvm_launch_apparmor_dir: $KL_AA_DIR
kvm_launch_policy_rules:
  - { name: ansible-raw-files, backend: file, format: raw, cache: none, aio: [io_uring, threads] }
VARS_EOF
# must_fail NAME WHAT-TO-FIND [ansible-playbook args]: the run fails, changes nothing, and says WHAT-TO-FIND.
must_fail() {
	local name=$1 what=$2
	shift 2
	host_state "$TMP/state.$name"
	if play "$name" "$@"; then
		fail "$name: the run succeeded"
	fi
	[ "$(field changed)" = 0 ] && [ "$(field failed)" = 1 ] || fail "$name: $recap"
	grep -q -- "$what" "$TMP/$name.log" || { cat "$TMP/$name.log"; fail "$name: the failure does not say '$what'"; }
	unchanged "$TMP/state.$name" "$name"
	log "$name: $(grep -m1 -o -- ".\{0,70\}\($what\).\{0,50\}" "$TMP/$name.log" | head -n 1)"
}

# ---- 1., 2. a wrong key, a missing version: nothing changes ----
must_fail wrong-key-fresh 'NO_PUBKEY\|not signed\|signature' -e "kvm_launch_apt_key=$TMP/wrong.gpg"
log "wrong key: apt-get update failed on the scratch copy; nothing installed, no key, no source"
must_fail missing-version "Version '0.0.0-missing' for 'kvm-launch' was not found" -e kvm_launch_version=0.0.0-missing
log "missing version: apt-get download failed; nothing changed"

# ---- 3. first run ----
play first || { cat "$TMP/first.log"; fail "first run failed"; }
[ "$(field failed)" = 0 ] && [ "$(field changed)" -gt 0 ] || fail "first run: $recap"
[ "$(dpkg-query -W -f='${Status} ${Version}' kvm-launch)" = "install ok installed $v1" ] ||
	fail "installed: $(dpkg-query -W -f='${Status} ${Version}' kvm-launch), not $v1"
cmp "$TMP/key.asc" /etc/apt/keyrings/kvm-launch.asc || fail "the key in /etc/apt/keyrings is not the repository's"
[ "$(cat /etc/apt/sources.list.d/kvm-launch.list)" = \
	"deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/kvm-launch.asc] file:$TMP/repo ./" ] ||
	fail "source line: $(cat /etc/apt/sources.list.d/kvm-launch.list)"
apt-cache policy kvm-launch > "$TMP/policy"
grep -q "Candidate: $v1\$" "$TMP/policy" && grep -q "$v2 " "$TMP/policy" && grep -q "file:$TMP/repo" "$TMP/policy" ||
	{ cat "$TMP/policy"; fail "apt does not see the repository, or the pin does not hold $v1"; }
[ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] && [ "$(readlink "$Q")" = /usr/bin/kvm-launch ] || fail "$Q is not diverted"
[ "$("$Q" --dry-run -- -name x | head -n 1)" = "$Q.distrib" ] || fail "kvm-launch at $Q would not run $Q.distrib"
log "first run: $(dpkg-query -W -f='${Version}' kvm-launch) from file:$TMP/repo (newer $v2 there); apt-cache policy: $(grep -m1 Candidate "$TMP/policy" | tr -s ' ')"
# The timer: enabled without a running systemd (the link), and its service's command writes the metrics.
[ "$(systemctl is-enabled kvm-launch-prometheus.timer)" = enabled ] || fail "the timer is not enabled"
link=/etc/systemd/system/timers.target.wants/kvm-launch-prometheus.timer
[ "$(readlink "$link")" = /lib/systemd/system/kvm-launch-prometheus.timer ] || fail "$link: $(readlink "$link")"
read -ra cmd <<<"$(sed -n 's/^ExecStart=//p' /lib/systemd/system/kvm-launch-prometheus.service)"
rm -f "$prom/kvm-launch.prom"
"${cmd[@]}" || fail "the service's ExecStart (${cmd[*]}) failed"
grep -q '^kvm_launch_host_io_uring' "$prom/kvm-launch.prom" || { cat "$prom/kvm-launch.prom"; fail "no metrics in $prom/kvm-launch.prom"; }
rm -f "$prom/kvm-launch.prom"
log "timer: is-enabled, $link -> $(readlink "$link"); ExecStart ${cmd[*]} wrote kvm-launch.prom"
# AppArmor: the include, and libvirt's domain profile parses with it (a broken line there would not).
grep -qx 'include <abstractions/libvirt-qemu.d/kvm-launch>' "$aa_local" || fail "no include in $aa_local"
apparmor_parser -Q -K -b "$KL_AA_DIR" "$KL_AA_DIR/libvirt/TEMPLATE.qemu" 2>/dev/null || fail "TEMPLATE.qemu does not parse"
log "AppArmor: $aa_local includes the package's rules; TEMPLATE.qemu parses (apparmor_parser -Q -K)"

# ---- 4. second run: nothing to do ----
play second || { cat "$TMP/second.log"; fail "second run failed"; }
[ "$(field changed)" = 0 ] && [ "$(field failed)" = 0 ] ||
	{ grep -E '^changed:' -B1 "$TMP/second.log"; fail "second run is not idempotent: $recap"; }

# ---- 5.-7. failures that change nothing ----
must_fail broken-policy sometimes -e '{"kvm_launch_policy_rules": [{"name": "bad", "backend": "file", "cache": "sometimes"}]}'
must_fail wrong-key 'NO_PUBKEY\|not signed\|signature' -e "kvm_launch_apt_key=$TMP/wrong.gpg"
must_fail broken-apparmor 'AppArmor parser error' -e kvm_launch_apparmor_include=kl-test/kl-broken
log "broken policy, wrong key, broken AppArmor include: each failed before changing anything"

# ---- 8. the AppArmor step alone: the rollback ----
sum_local=$(sha256sum < "$aa_local")
stat_local=$(stat -c '%a %s %Y' "$aa_local")
cat > "$TMP/aa.yml" <<AA_EOF
- hosts: all
  tasks:
    - ansible.builtin.tempfile: { state: directory, prefix: kvm-launch-ansible. }
      register: kl_tmp
    - block:
        - ansible.builtin.include_role: { name: kvm_launch, tasks_from: apparmor.yml }
      always:
        - ansible.builtin.file: { path: "{{ kl_tmp.path }}", state: absent }
AA_EOF
if PLAYBOOK=$TMP/aa.yml play aa-rollback -e kvm_launch_apparmor_include=kl-test/kl-broken; then
	fail "the AppArmor step accepted a broken include"
fi
grep -q 'put back as it was' "$TMP/aa-rollback.log" || { cat "$TMP/aa-rollback.log"; fail "aa-rollback: no rollback"; }
[ "$(sha256sum < "$aa_local")" = "$sum_local" ] && [ "$(stat -c '%a %s %Y' "$aa_local")" = "$stat_local" ] ||
	fail "the local include was not put back byte for byte"
! grep -q kl-broken "$aa_local" || fail "the broken include stayed"
log "AppArmor step alone with a broken include: apparmor_parser failed, $aa_local put back (sha256, mode, size, mtime)"

# ---- 9. undo ----
play undo -e kvm_launch_state=absent || { cat "$TMP/undo.log"; fail "undo failed"; }
[ "$(field failed)" = 0 ] && [ "$(field changed)" -gt 0 ] || fail "undo: $recap"
[ -z "$(dpkg-divert --listpackage "$Q")" ] && [ -f "$Q" ] && [ ! -L "$Q" ] && [ ! -e "$Q.distrib" ] || fail "$Q after undo"
[ "$(sha256sum < "$Q")" = "$SUM_Q" ] && [ "$(stat -c '%a %U %G %s %Y' "$Q")" = "$stat_q" ] || fail "$Q is not the original"
[ "$(dpkg-divert --list | sort | sha256sum)" = "$diverts_before" ] || fail "dpkg-divert's list differs from before"
! dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files' || fail "the package is still there"
for f in /etc/apt/sources.list.d/kvm-launch.list /etc/apt/keyrings/kvm-launch.asc /etc/apt/preferences.d/kvm-launch "$link"; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "undo left $f"
done
[ "$(ls /var/lib/apt/lists | sha256sum)" = "$lists_before" ] || fail "undo left the repository's lists: $(ls /var/lib/apt/lists | grep repo)"
[ "$(sha256sum "$aa_local" 2>&1)" = "$aa_before" ] || fail "undo did not restore $aa_local"
log "undo: $Q sha256 $(sha256sum < "$Q" | cut -c1-16)... as before; no package, source, key, pin, lists, timer link or include"
play undo-again -e kvm_launch_state=absent || fail "undo again failed"
[ "$(field changed)" = 0 ] || fail "undo is not idempotent: $recap"
echo "PASS: the role installs from a signed repository at a pinned version, checks key and version first, enables the timer, parse-checks and rolls back the AppArmor include, and undoes"
