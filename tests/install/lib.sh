# SPDX-License-Identifier: GPL-2.0-or-later
# Shared by the install tests, sourced after functions.sh (and kl_tmpdir) as
# `. "$(dirname "$0")/lib.sh"`.

# kl_build_deb NAME [VERSION]: the Debian package built from a copy of this
# tree in $TMP/NAME (build products left out), with debian/changelog bumped to
# VERSION when given; the .deb lands in $TMP, the log in $TMP/build-NAME.log.
kl_build_deb() {
	local d=$TMP/$1 start=$SECONDS
	mkdir -p "$d"
	(cd "$KL_TOP" && tar cf - --exclude=./.git --exclude='*.o' --exclude='*.a' --exclude=./kvm-launch \
		--exclude=./kvm-launch-top --exclude=./Makefile --exclude=./config.h --exclude=./tests/logs \
		--exclude=./build-asan --exclude=./tests/fuzz/out --exclude=./tests/guest/out \
		--exclude='./tests/unit/test-*[!c]' --exclude=./debian/kvm-launch --exclude=./debian/.debhelper \
		--exclude='./debian/*.log' --exclude='./debian/*.substvars' --exclude=./debian/files .) | tar xf - -C "$d"
	if [ -n "${2:-}" ]; then
		{ printf 'kvm-launch (%s) unstable; urgency=medium\n\n  * Test build.\n\n -- kvm-launch tests <tests@localhost>  %s\n\n' \
			"$2" "$(date -R)"; cat "$d/debian/changelog"; } > "$d/debian/changelog.new"
		mv "$d/debian/changelog.new" "$d/debian/changelog"
	fi
	(cd "$d" && dpkg-buildpackage -us -uc -b -j"$(nproc)") > "$TMP/build-$1.log" 2>&1 ||
		{ tail -30 "$TMP/build-$1.log"; fail "dpkg-buildpackage failed ($1)"; }
	echo "built $1 in $((SECONDS - start)) s"
}

# kl_libvirt_profiles: sets LVAA to a directory with libvirt's AppArmor profiles (usr.sbin.libvirtd,
# abstractions/, libvirt/): /etc/apparmor.d when libvirt-daemon-system is installed, else that package unpacked
# (not installed: it would reconfigure the machine's libvirtd) into $KL_AA_CACHE (default
# /var/cache/kvm-launch-tests/libvirt-apparmor) with `apt-get download`, once.  Returns 1 when neither works.
kl_libvirt_profiles() {
	if [ -f /etc/apparmor.d/usr.sbin.libvirtd ] && [ -f /etc/apparmor.d/abstractions/libvirt-qemu ] &&
		[ -f /etc/apparmor.d/libvirt/TEMPLATE.qemu ]; then
		LVAA=/etc/apparmor.d
		return 0
	fi
	LVAA=${KL_AA_CACHE:-/var/cache/kvm-launch-tests/libvirt-apparmor}
	[ -f "$LVAA/usr.sbin.libvirtd" ] && [ -f "$LVAA/libvirt/TEMPLATE.qemu" ] && return 0
	local dl=$TMP/dl
	mkdir -p "$dl" && chmod 0777 "$dl"
	(cd "$dl" && apt-get download -q libvirt-daemon-system >&2) || return 1
	dpkg-deb -x "$dl"/libvirt-daemon-system_*.deb "$dl/x" || return 1
	mkdir -p "$LVAA.new" && cp -a "$dl/x/etc/apparmor.d/." "$LVAA.new/" || return 1
	rm -rf "$LVAA" && mv "$LVAA.new" "$LVAA"
	echo "libvirt's AppArmor profiles unpacked from $(basename "$dl"/libvirt-daemon-system_*.deb) into $LVAA"
}

# ---- the Ansible role's tests (t-ansible*.sh); they set Q (the system QEMU) first ----

# kl_system_lock: hold /tmp/kl-libvirt.lock (KL_SYSTEM_LOCK) on fd 8 unless KL_SYSTEM_LOCK_HELD is set (the caller
# holds it already), like every test that changes the system QEMU.
kl_system_lock() {
	[ -n "${KL_SYSTEM_LOCK_HELD:-}" ] && return 0
	exec 8>"${KL_SYSTEM_LOCK:-/tmp/kl-libvirt.lock}"
	flock -w 1800 8 || fail "${KL_SYSTEM_LOCK:-/tmp/kl-libvirt.lock} stays locked"
}

# kl_ansible_deb: sets deb to the package to roll out: $KL_DEB when set, else one built from this tree.
kl_ansible_deb() {
	if [ -n "${KL_DEB:-}" ]; then
		deb=$KL_DEB
	else
		echo "$(basename "$0" .sh): $(kl_build_deb src)"
		deb=$(ls "$TMP"/kvm-launch_*.deb)
	fi
	[ -f "$deb" ] || fail "no package $deb"
}

# kl_ansible_preflight: nothing of ours or anyone's in the way of installing the package and diverting $Q
# (exit 77 or fail otherwise); outside CI, waits for other tests' QEMUs to finish (they would run through
# kvm-launch while the diversion lasts).
kl_ansible_preflight() {
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
	[ "${CI:-}" = true ] && return 0
	local i busy
	for i in $(seq 120); do
		busy=$(pgrep -x qemu-system-x86 || pgrep -f "^$Q " || true)
		[ -z "$busy" ] && return 0
		sleep 1
	done
	echo "SKIP: $0: other QEMUs keep running (pids $busy): not diverting under them"
	exit 77
}

# kl_ansible_restore: the cleanup: undo the diversion, purge the package, and warn when $Q differs from SUM_Q.
kl_ansible_restore() {
	if [ "$(dpkg-divert --listpackage "$Q")" = LOCAL ] && [ -x /usr/sbin/kvm-launch-divert ]; then
		/usr/sbin/kvm-launch-divert undo --qemu "$Q" >/dev/null 2>&1
	fi
	if dpkg-query -W -f='${Status}' kvm-launch 2>/dev/null | grep -q 'installed\|config-files'; then
		dpkg -P kvm-launch >/dev/null 2>&1
	fi
	[ "$(sha256sum < "$Q")" = "$SUM_Q" ] || echo "$0: WARNING: $Q differs from before the test" >&2
}

# kl_ansible_env: ansible-playbook's settings, its files in $TMP.
kl_ansible_env() {
	export ANSIBLE_LOCAL_TEMP=$TMP/ansible-local ANSIBLE_REMOTE_TEMP=$TMP/ansible-remote ANSIBLE_NOCOLOR=1 \
		ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOCALHOST_WARNING=0 \
		ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_DEPRECATION_WARNINGS=0 \
		ANSIBLE_ROLES_PATH=$KL_TOP/contrib/ansible/roles
}

# play NAME [ansible-playbook args]: the role's playbook (PLAYBOOK, default contrib/ansible/kvm-launch.yml) with
# $TMP/vars.yml against this host; keeps its log in $TMP/NAME.log, prints and sets recap (its PLAY RECAP line).
play() {
	local name=$1 rc=0
	shift
	LC_ALL=C.UTF-8 ansible-playbook -i localhost, -c local "${PLAYBOOK:-$KL_TOP/contrib/ansible/kvm-launch.yml}" \
		-e "@$TMP/vars.yml" "$@" > "$TMP/$name.log" 2>&1 || rc=$?
	recap=$(grep -E '^localhost +: ok=' "$TMP/$name.log") || { cat "$TMP/$name.log"; fail "$name: no PLAY RECAP"; }
	recap=$(echo "$recap" | tr -s ' ')
	echo "$(basename "$0" .sh): $name (exit $rc): $recap"
	return $rc
}
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$recap"; }

# host_state FILE: what a failed run must not change: the policy, dpkg-divert's list, the QEMU binaries, the
# package, the apt repository's files (sources, keys, pin, the lists' names), the timer's links, and the
# AppArmor local include under $KL_AA_DIR when set.
host_state() {
	{
		sha256sum /etc/kvm-launch/kvm-launch.conf 2>&1
		dpkg-divert --list | sort
		stat -c '%N %a %U %G %s %Y' "$Q" "$Q.distrib" 2>&1
		sha256sum "$Q" "$Q.distrib" 2>&1
		dpkg-query -W -f='${Status} ${Version}\n' kvm-launch 2>&1
		sha256sum /etc/apt/sources.list.d/kvm-launch.list /etc/apt/keyrings/kvm-launch.* \
			/usr/share/keyrings/kvm-launch.* /etc/apt/preferences.d/kvm-launch 2>&1
		ls /var/lib/apt/lists
		ls -l /etc/systemd/system/timers.target.wants
		[ -z "${KL_AA_DIR:-}" ] || stat -c '%n %a %s %Y' "$KL_AA_DIR/local/abstractions/libvirt-qemu" 2>&1
		[ -z "${KL_AA_DIR:-}" ] || sha256sum "$KL_AA_DIR/local/abstractions/libvirt-qemu" 2>&1
	} > "$1"
}
unchanged() { # BEFORE-FILE WHAT
	host_state "$1.after"
	diff -u "$1" "$1.after" || fail "$2 changed the host (diff above)"
}
