#!/bin/bash
# contrib/apparmor parses with apparmor_parser (each snippet inside a profile
# like the ones it is meant for; and inside Debian's real libvirt profiles
# when libvirt-daemon-system's are installed), and contrib/selinux compiles
# with checkmodule and packages with semodule_package.  Enforcement cannot be
# tested here; see contrib/apparmor/README and contrib/selinux/README.
. "$(dirname "$0")/../functions.sh"
kl_tmpdir
aa=$KL_TOP/contrib/apparmor
se=$KL_TOP/contrib/selinux
checked=0

if command -v apparmor_parser >/dev/null && [ -f /etc/apparmor.d/tunables/global ]; then
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
	if [ -f /etc/apparmor.d/usr.sbin.libvirtd ] && [ -f /etc/apparmor.d/abstractions/libvirt-qemu ]; then
		cp -a /etc/apparmor.d "$TMP/aa"
		mkdir -p "$TMP/aa/local/abstractions"
		cat "$aa/libvirt-qemu.kvm-launch" >> "$TMP/aa/local/abstractions/libvirt-qemu"
		cat "$aa/usr.sbin.libvirtd.kvm-launch" >> "$TMP/aa/local/usr.sbin.libvirtd"
		for p in usr.sbin.libvirtd libvirt/TEMPLATE.qemu; do
			apparmor_parser -Q -K -b "$TMP/aa" "$TMP/aa/$p" 2>&1 | grep -v 'Cache read/write disabled' >&2
			[ "${PIPESTATUS[0]}" = 0 ] || fail "libvirt's $p does not parse with the kvm-launch rules"
			echo "apparmor_parser: libvirt's $p with the kvm-launch rules parses"
		done
	fi
	checked=$((checked + 1))
fi

if command -v checkmodule >/dev/null; then
	(cd "$TMP" && checkmodule -M -m -o kvm_launch.mod "$se/kvm-launch.te") || fail "checkmodule rejects kvm-launch.te"
	echo "checkmodule: kvm-launch.te compiles"
	if command -v semodule_package >/dev/null; then
		(cd "$TMP" && semodule_package -o kvm_launch.pp -m kvm_launch.mod -f "$se/kvm-launch.fc") ||
			fail "semodule_package rejects kvm-launch.fc"
		echo "semodule_package: kvm_launch.pp built ($(stat -c %s "$TMP/kvm_launch.pp") bytes)"
	fi
	checked=$((checked + 1))
fi

if [ "$checked" = 0 ]; then
	echo "SKIP: $0: requires apparmor_parser (apparmor) or checkmodule (checkpolicy)"
	exit 77
fi
echo "PASS: the AppArmor and SELinux files parse"
