#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# contrib/apparmor parses with apparmor_parser, each snippet inside a profile like the ones it is meant for and
# inside Debian's real libvirt profiles (usr.sbin.libvirtd and libvirt/TEMPLATE.qemu, through their local/
# includes); a deliberately broken line in the same place must make the parse fail, so the snippets really were
# read.  contrib/selinux compiles with checkmodule and packages with semodule_package.  Enforcement cannot be
# tested here; see contrib/apparmor/README and contrib/selinux/README.
# The libvirt profiles come from /etc/apparmor.d when libvirt-daemon-system is installed, else from that package
# unpacked (not installed: it would reconfigure the machine's libvirtd) into $KL_AA_CACHE
# (default /var/cache/kvm-launch-tests/libvirt-apparmor) with `apt-get download`, once.  Anything missing: exit 77.
. "$(dirname "$0")/../functions.sh"
requires apparmor_parser checkmodule semodule_package dpkg-deb
[ -f /etc/apparmor.d/tunables/global ] || { echo "SKIP: $0: no /etc/apparmor.d/tunables/global (apparmor)"; exit 77; }
kl_tmpdir
. "$(dirname "$0")/lib.sh"
aa=$KL_TOP/contrib/apparmor
se=$KL_TOP/contrib/selinux

if ! kl_libvirt_profiles; then
	echo "SKIP: $0: libvirt's AppArmor profiles are neither installed nor obtainable with apt-get download"
	exit 77
fi
echo "libvirt profiles from $LVAA"

for snippet in libvirt-qemu.kvm-launch usr.sbin.libvirtd.kvm-launch; do
	{ echo '#include <tunables/global>'
	  echo "profile kl-test-$snippet flags=(attach_disconnected) {"
	  echo '  #include <abstractions/base>'
	  cat "$aa/$snippet"
	  echo '}'; } > "$TMP/$snippet.profile"
	apparmor_parser -Q -K "$TMP/$snippet.profile" 2>&1 | grep -v 'Cache read/write disabled' >&2
	[ "${PIPESTATUS[0]}" = 0 ] || fail "apparmor_parser rejects $snippet"
	echo "apparmor_parser: $snippet parses"
done

# A tree: the system's apparmor.d (tunables, abstractions) with libvirt's profiles over it, and the snippets (or a
# broken line) in libvirt's local/ includes.
aa_tree() { # DIR EXTRA-LINE
	rm -rf "$1"
	cp -a /etc/apparmor.d "$1"
	cp -a "$LVAA/." "$1/"
	mkdir -p "$1/local/abstractions"
	{ cat "$aa/libvirt-qemu.kvm-launch"; echo "$2"; } >> "$1/local/abstractions/libvirt-qemu"
	{ cat "$aa/usr.sbin.libvirtd.kvm-launch"; echo "$2"; } >> "$1/local/usr.sbin.libvirtd"
}
aa_tree "$TMP/aa" ""
aa_tree "$TMP/aa-broken" "this is not an apparmor rule,"
for p in usr.sbin.libvirtd libvirt/TEMPLATE.qemu; do
	apparmor_parser -Q -K -b "$TMP/aa" "$TMP/aa/$p" 2>&1 | grep -v 'Cache read/write disabled' >&2
	[ "${PIPESTATUS[0]}" = 0 ] || fail "libvirt's $p does not parse with the kvm-launch rules"
	if apparmor_parser -Q -K -b "$TMP/aa-broken" "$TMP/aa-broken/$p" >/dev/null 2>&1; then
		fail "libvirt's $p parses even with a broken line in its local include: the snippets were not read"
	fi
	echo "apparmor_parser: libvirt's $p with the kvm-launch rules parses (and a broken line there fails)"
done

(cd "$TMP" && checkmodule -M -m -o kvm_launch.mod "$se/kvm-launch.te") || fail "checkmodule rejects kvm-launch.te"
echo "checkmodule: kvm-launch.te compiles"
(cd "$TMP" && semodule_package -o kvm_launch.pp -m kvm_launch.mod -f "$se/kvm-launch.fc") ||
	fail "semodule_package rejects kvm-launch.fc"
echo "semodule_package: kvm_launch.pp built ($(stat -c %s "$TMP/kvm_launch.pp") bytes)"
echo "PASS: the AppArmor and SELinux files parse"
