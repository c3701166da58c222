#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Debian package (debian/): build it from a copy of this tree, install it,
# check its files, conffile and directories, upgrade it with a second build
# (changelog bumped) over an edited conffile, remove it, purge it, and check
# nothing is left.  Root only; skipped when a kvm-launch package is already
# installed (not ours to replace).
. "$(dirname "$0")/../functions.sh"
requires_root
PATH=$PATH:/usr/sbin:/sbin
requires dpkg-buildpackage dh dpkg dpkg-query tar
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
kl_tmpdir
. "$(dirname "$0")/lib.sh"
log() { echo "t-deb: $*"; }

if dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -qv 'not-installed'; then
	echo "SKIP: $0: a kvm-launch package is already installed ($(dpkg-query -W -f='${Version} ${Status}' kvm-launch))"
	exit 77
fi
if [ -n "$(dpkg-divert --listpackage /usr/bin/qemu-system-x86_64)" ]; then
	echo "SKIP: $0: /usr/bin/qemu-system-x86_64 is diverted: not installing a package under that"
	exit 77
fi
# Purging removes /run/kvm-launch: outside CI, not while VMs keep state there.
if [ "${CI:-}" != true ] && ls /run/kvm-launch/*.json >/dev/null 2>&1; then
	echo "SKIP: $0: /run/kvm-launch holds state of VMs (a purge would remove it)"
	exit 77
fi
if ! (cd "$KL_TOP" && dpkg-checkbuilddeps) 2>"$TMP/deps"; then
	echo "SKIP: $0: $(cat "$TMP/deps") (sh contrib/deps.sh --tests)"
	exit 77
fi

# dpkg waits for nobody: retry while another dpkg or apt holds the lock.
dpkg_do() {
	local out
	for _ in $(seq 60); do
		if out=$(dpkg "$@" 2>&1); then
			printf '%s\n' "$out" | sed 's/^/  /'
			return 0
		fi
		printf '%s\n' "$out" | grep -q 'lock' || { printf '%s\n' "$out" >&2; return 1; }
		sleep 2
	done
	return 1
}
cleanup_fn "dpkg-query -W kvm-launch >/dev/null 2>&1 && dpkg -P kvm-launch >/dev/null 2>&1"

# ---- build (twice: the second with a bumped changelog) ----
log "$(kl_build_deb v1)"
v1=$(dpkg-parsechangelog -l "$KL_TOP/debian/changelog" -S Version)
deb1=$TMP/kvm-launch_${v1}_$(dpkg --print-architecture).deb
[ -f "$deb1" ] || fail "no $deb1"
log "contents of $(basename "$deb1"):"
dpkg-deb -c "$deb1" | awk '{ print "  " $1, $2, $6 }'
v2=$v1+upgradetest1
log "$(kl_build_deb v2 "$v2")"
deb2=$TMP/kvm-launch_${v2}_$(dpkg --print-architecture).deb
[ -f "$deb2" ] || fail "no $deb2"

# ---- install ----
log "\$ dpkg -i $(basename "$deb1")"
dpkg_do -i "$deb1" || fail "dpkg -i failed"
[ "$(dpkg-query -W -f='${Status} ${Version}' kvm-launch)" = "install ok installed $v1" ] || fail "not installed"
dpkg -L kvm-launch | sort > "$TMP/files1"
for f in /usr/bin/kvm-launch /usr/sbin/kvm-launch-divert /usr/share/man/man8/kvm-launch.8.gz \
	/usr/share/man/man8/kvm-launch-divert.8.gz /usr/share/man/man5/kvm-launch.conf.5.gz \
	/etc/kvm-launch/kvm-launch.conf /usr/lib/tmpfiles.d/kvm-launch.conf \
	/usr/share/bash-completion/completions/kvm-launch /lib/systemd/system/kvm-launch-prometheus.timer \
	/usr/lib/kvm-launch/prometheus-textfile /etc/apparmor.d/abstractions/libvirt-qemu.d/kvm-launch \
	/usr/share/doc/kvm-launch/nova.md /usr/share/doc/kvm-launch/examples/kvm-launch.conf; do
	grep -qx "$f" "$TMP/files1" || fail "dpkg -L: no $f"
	[ -e "$f" ] || fail "$f is listed but missing"
done
log "dpkg -L kvm-launch: $(wc -l < "$TMP/files1") entries"
conffiles=$(dpkg-query -W -f='${Conffiles}' kvm-launch)
echo "$conffiles" | sed 's/^/  conffile/'
grep -q ' /etc/kvm-launch/kvm-launch.conf ' <<<"$conffiles" || fail "the policy is not a conffile"
/usr/bin/kvm-launch --version | grep -qx "kvm-launch $(sed -n 's/^## kvm-launch \([0-9.]*\).*/\1/p' "$KL_TOP/NEWS" | head -n1)" ||
	fail "kvm-launch --version"
/usr/bin/kvm-launch --help | grep -q '(default /etc/kvm-launch/kvm-launch.conf)' || fail "compiled-in policy path"
/usr/bin/kvm-launch --check-policy /etc/kvm-launch/kvm-launch.conf || fail "the packaged policy is not valid"
[ -z "$(grep -v -e '^#' -e '^[[:space:]]*$' /etc/kvm-launch/kvm-launch.conf)" ] || fail "the packaged policy has active lines"
if getent group kvm >/dev/null; then
	[ "$(stat -c '%a %U %G' /run/kvm-launch)" = "755 root root" ] || fail "/run/kvm-launch: $(stat -c '%a %U %G' /run/kvm-launch)"
	[ "$(stat -c '%a %U %G' /run/kvm-launch/root)" = "2750 root kvm" ] || fail "/run/kvm-launch/root: $(stat -c '%a %U %G' /run/kvm-launch/root)"
	[ "$(stat -c '%a %U %G' /run/kvm-launch/users)" = "3770 root kvm" ] || fail "/run/kvm-launch/users: $(stat -c '%a %U %G' /run/kvm-launch/users)"
	[ "$(stat -c '%a %U %G' /var/cache/kvm-launch)" = "755 root root" ] || fail "/var/cache/kvm-launch: $(stat -c '%a %U %G' /var/cache/kvm-launch)"
fi
log "state $(stat -c '%n %a %U:%G' /run/kvm-launch), cache $(stat -c '%n %a %U:%G' /var/cache/kvm-launch)"
grep -q 'systemd-tmpfiles' /var/lib/dpkg/info/kvm-launch.postinst || fail "postinst does not run systemd-tmpfiles"
/usr/bin/kvm-launch --dry-run -- -name x -drive file=/dev/null,format=raw,if=virtio | head -n 1 | grep -qx /usr/bin/qemu-system-x86_64 ||
	fail "the packaged kvm-launch does not default to /usr/bin/qemu-system-x86_64"

# ---- the packaged kvm-launch-divert; removal must undo it ----
Q=/usr/bin/qemu-system-x86_64
divert=no
if [ -f "$Q" ] && [ ! -L "$Q" ] && [ -z "$(dpkg-divert --listpackage "$Q")" ]; then
	if [ "${CI:-}" = true ] || ! pgrep -x qemu-system-x86 >/dev/null; then
		divert=yes
	else
		log "other QEMUs run: not diverting $Q under them (the diversion part is left out)"
	fi
fi
if [ "$divert" = yes ]; then
	sum_q=$(sha256sum < "$Q")
	cleanup_fn "[ \"\$(dpkg-divert --listpackage $Q)\" = LOCAL ] && /usr/sbin/kvm-launch-divert undo"
	log "\$ kvm-launch-divert install"
	/usr/sbin/kvm-launch-divert install | sed 's/^/  /' || fail "kvm-launch-divert install"
	[ "$(readlink "$Q")" = /usr/bin/kvm-launch ] || fail "$Q is not a link to /usr/bin/kvm-launch"
	grep -qx "qemu = $Q.distrib" /etc/kvm-launch/kvm-launch.conf || fail "no qemu line in the packaged policy"
	[ "$("$Q" --dry-run -- -name x | head -n 1)" = "$Q.distrib" ] || fail "kvm-launch at $Q would not run $Q.distrib"
fi

# ---- upgrade over an edited conffile ----
printf '\n# local edit kept across upgrades\n' >> /etc/kvm-launch/kvm-launch.conf
sum_conf=$(sha256sum < /etc/kvm-launch/kvm-launch.conf)
log "\$ dpkg -i $(basename "$deb2")   (upgrade)"
dpkg_do -i "$deb2" || fail "upgrade failed"
[ "$(dpkg-query -W -f='${Status} ${Version}' kvm-launch)" = "install ok installed $v2" ] || fail "not upgraded"
[ "$(sha256sum < /etc/kvm-launch/kvm-launch.conf)" = "$sum_conf" ] || fail "the upgrade changed the edited conffile"
[ -d /run/kvm-launch ] || fail "the upgrade lost /run/kvm-launch"
/usr/bin/kvm-launch --version >/dev/null || fail "kvm-launch does not run after the upgrade"
log "upgraded to $v2; edited conffile kept"

if [ "$divert" = yes ]; then
	/usr/sbin/kvm-launch-divert status >/dev/null || fail "the upgrade lost the diversion"
	/usr/sbin/kvm-launch-divert undo | sed 's/^/  /'
	! grep -q 'kvm-launch-divert' /etc/kvm-launch/kvm-launch.conf || fail "undo left its lines in the policy"
	grep -qx '# local edit kept across upgrades' /etc/kvm-launch/kvm-launch.conf || fail "undo lost the local edit"
	/usr/sbin/kvm-launch-divert install >/dev/null || fail "kvm-launch-divert install (again)"
fi

# ---- remove, then purge ----
log "\$ dpkg -r kvm-launch"
dpkg_do -r kvm-launch || fail "dpkg -r failed"
if [ "$divert" = yes ]; then
	[ -z "$(dpkg-divert --listpackage "$Q")" ] || fail "removing the package left the diversion"
	[ "$(sha256sum < "$Q")" = "$sum_q" ] || fail "$Q is not the original after removing the package"
	log "removing the package undid the diversion: $Q is the original again"
fi
[ "$(dpkg-query -W -f='${Status}' kvm-launch)" = "deinstall ok config-files" ] || fail "status after remove"
[ ! -e /usr/bin/kvm-launch ] || fail "/usr/bin/kvm-launch left after remove"
[ -f /etc/kvm-launch/kvm-launch.conf ] || fail "remove took the conffile (only purge may)"
log "\$ dpkg -P kvm-launch"
dpkg_do -P kvm-launch || fail "dpkg -P failed"
! dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files' || fail "still known to dpkg"
left=
while read -r f; do
	[ -d "$f" ] && continue
	[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done < "$TMP/files1"
[ -z "$left" ] || fail "left after purge:$left"
for d in /etc/kvm-launch /run/kvm-launch /var/cache/kvm-launch /usr/lib/kvm-launch /usr/share/doc/kvm-launch; do
	[ ! -e "$d" ] || fail "$d left after purge"
done
log "purged: no file of the package, no /etc/kvm-launch, /run/kvm-launch or /var/cache/kvm-launch"
echo "PASS: build, install, upgrade, remove and purge of the Debian package"
