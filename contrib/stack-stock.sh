#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Pins the host to Debian 12's stock QEMU and libvirt (QEMU 7.2, libvirt 9.0), the first tested stack,
# so that a test run on it does not depend on what an earlier run or an operator left installed:
# for each package, the highest version that bookworm, bookworm-updates or bookworm-security offers
# (never bookworm-backports or any other source), installed with --allow-downgrades when something
# newer is there; their dependencies (libvirt0, qemu-system-common, ...) come from the same suites
# (an apt preferences file for this run pins them at 1001).  Prints the versions installed.  As root; the second stack is
# contrib/stack-backports.sh, which runs in its own root and leaves the host alone.
#   sh contrib/stack-stock.sh          install (or keep) the stock versions, print them
#   sh contrib/stack-stock.sh --print  only print what is installed and what stock would be
#   sh contrib/stack-stock.sh --simulate  what apt-get would do (apt-get -s), changing nothing
set -eu
pkgs="qemu-system-x86 qemu-system-arm qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"
suites="bookworm bookworm-updates bookworm-security"
die() { echo "stack-stock: $*" >&2; exit 1; }

# stock_version PKG: the highest version of PKG in the stock suites (empty if none).
stock_version() {
	apt-cache madison "$1" | awk -F' [|] ' -v s=" $suites " '
		{ n = split($3, w, " "); split(w[2], suite, "/"); if (index(s, " " suite[1] " ")) print $2 }' |
	{
		best=
		while read -r v; do
			if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
		done
		echo "$best"
	}
}
installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | awk '$3 == "installed" {print $4}'; }

want=
todo=
for p in $pkgs; do
	v=$(stock_version "$p")
	[ -n "$v" ] || die "no version of $p in $suites (apt-get update first?)"
	want="$want $p=$v"
	[ "$(installed_version "$p")" = "$v" ] || todo="$todo $p=$v"
done

sim=
case ${1:-} in
--simulate) sim=-s ;;
--print) ;;
"") ;;
*) die "usage: $0 [--print | --simulate]" ;;
esac
if [ "${1:-}" = --print ]; then
	for pv in $want; do echo "stack-stock: ${pv%%=*} stock ${pv#*=}, installed $(installed_version "${pv%%=*}")"; done
	exit 0
fi
[ "$(id -u)" = 0 ] || [ -n "$sim" ] || die "must run as root (apt-get)"
if [ -n "$todo" ]; then
	echo "stack-stock: installing$todo"
	prefs=$(mktemp /tmp/kl-stack-stock.XXXXXX)
	trap 'rm -f "$prefs"' EXIT
	for s in $suites; do printf 'Package: *\nPin: release n=%s\nPin-Priority: 1001\n\n' "$s"; done > "$prefs"
	DEBIAN_FRONTEND=noninteractive apt-get install $sim -y -q --no-install-recommends --allow-downgrades \
		-o Dir::Etc::Preferences="$prefs" $todo || die "apt-get install failed"
	[ -z "$sim" ] || exit 0
fi
echo "stack-stock: stack (pinned to stock Debian 12: $suites):"
for pv in $want; do
	p=${pv%%=*}
	[ "$(installed_version "$p")" = "${pv#*=}" ] || die "$p is $(installed_version "$p"), not ${pv#*=}"
	echo "stack-stock:   $p $(installed_version "$p")"
done
echo "stack-stock:   $(/usr/bin/qemu-system-x86_64 --version | head -n 1); libvirtd $(/usr/sbin/libvirtd --version | awk '{print $NF}')"
