# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by tests/security/t-*.sh after tests/functions.sh (issue 17: nothing another uid can write is trusted).
# The tests run as root against the package's own layout: a copy of the tree configured for a test prefix and
# installed there with `make install` (so the tmpfiles rules get their paths exactly as Makefile.in's SUBST
# gives them), then `systemd-tmpfiles --create` on the installed rules.  The attacker is kl-attacker, an
# unprivileged system user whose only supplementary group is kvm (what Debian tells KVM users to join).
#
#   sec_setup          root, tools, the attacker user, the test installation ($SEC_KL, built once per source
#                      state, reused while unchanged), a fresh state and cache tree from its tmpfiles rules
#                      (removed at exit, with any process still running $SEC_KL); holds a lock for the test's life
#                      so two runs of this tree do not share the tree at the same time
#   as_attacker CMD... run CMD as kl-attacker (no XDG_RUNTIME_DIR, HOME=/nonexistent) under a deadline of
#                      $SEC_DEADLINE seconds (default 20); prints "as_attacker: CMD: exit N" (124 = deadline)
#                      on stderr and returns N
#   sec_attacker_dir   echo a fresh directory owned by kl-attacker (0700) under $SEC_TMP
#
# Variables after sec_setup: SEC_KL (configured binary), SEC_STATE (RUNSTATEDIR/kvm-launch), SEC_CACHE
# (LOCALSTATEDIR/cache/kvm-launch), SEC_POLICY (the compiled-in policy path; absent unless a test writes it),
# SEC_TMPFILES (the installed tmpfiles rules), SEC_TMP (a scratch dir, 0755, removed at exit), ATTACKER_UID.

SEC_ROOT=/var/lib/kvm-launch-sec
# One base per worktree: the paths are compiled into the binary, and another tree may run its own suite.
SEC_BASE=$SEC_ROOT/$(printf '%s' "$KL_TOP" | sha256sum | cut -c1-10)
SEC_BUILD=$SEC_BASE/build
SEC_PREFIX=$SEC_BASE/prefix
SEC_KL=$SEC_PREFIX/bin/kvm-launch
SEC_STATE=$SEC_BASE/run/kvm-launch
SEC_CACHE=$SEC_BASE/var/cache/kvm-launch
SEC_POLICY=$SEC_BASE/etc/kvm-launch/kvm-launch.conf
SEC_TMPFILES=$SEC_PREFIX/lib/tmpfiles.d/kvm-launch.conf
SEC_DEADLINE=${SEC_DEADLINE:-20}
ATTACKER=kl-attacker
export LC_ALL=C

sec_setup() {
	requires_root
	PATH=$PATH:/usr/sbin:/sbin
	requires systemd-tmpfiles setpriv timeout useradd usermod groupadd flock make sha256sum
	sec_attacker_user
	install -d -m 0755 "$SEC_ROOT" "$SEC_BASE"
	exec 9>"$SEC_BASE/lock"
	flock 9
	sec_install
	sec_layout
	SEC_TMP=$(mktemp -d "$SEC_BASE/tmp.XXXXXX")
	chmod 0755 "$SEC_TMP"
	cleanup_fn "rm -rf '$SEC_TMP'"
}

# kl-attacker exists and its only supplementary group is kvm (both created if absent).
sec_attacker_user() {
	# Two suites (two worktrees) may create the user at once.  /run/lock
	# may not exist (a private /run, as in contrib/stack-backports.sh).
	mkdir -p /run/lock || fail "cannot make /run/lock"
	(
		flock 8
		getent group kvm >/dev/null || groupadd --system kvm || exit 1
		if ! getent passwd "$ATTACKER" >/dev/null; then
			useradd --system --user-group --groups kvm --home-dir /nonexistent --no-create-home \
				--shell /usr/sbin/nologin "$ATTACKER" || exit 1
		fi
		usermod -G kvm "$ATTACKER" || exit 1
	) 8>/run/lock/kl-attacker-user.lock || fail "cannot create the user $ATTACKER in group kvm"
	ATTACKER_UID=$(id -u "$ATTACKER")
	[ "$(id -Gn "$ATTACKER" | tr ' ' '\n' | grep -vx "$(id -gn "$ATTACKER")" | sort | tr '\n' ' ')" = "kvm " ] ||
		fail "$ATTACKER has other groups than kvm: $(id -Gn "$ATTACKER")"
}

# The sources and options the test installation is built from; a change means a rebuild.
sec_stamp() {
	(
		cd "$KL_TOP" || exit 1
		echo "options: $*"
		find common policy qmp launcher contrib doc -type f ! -name '*.o' -print | LC_ALL=C sort | xargs sha256sum
		sha256sum configure Makefile.in NEWS README.md
	) | sha256sum | cut -d' ' -f1
}

sec_install() {
	local opts=("--prefix=$SEC_PREFIX" "--sysconfdir=$SEC_BASE/etc" "--runstatedir=$SEC_BASE/run"
		"--localstatedir=$SEC_BASE/var" "--with-qemu=$QEMU") stamp
	if [ -f "$KL_TOP/Makefile" ]; then
		grep -q '^SAN_FLAGS = .*-fsanitize' "$KL_TOP/Makefile" && opts+=(--enable-asan)
		grep -q -- '-Werror' "$KL_TOP/Makefile" && opts+=(--enable-werror)
	fi
	stamp=$(sec_stamp "${opts[@]}") || fail "cannot hash the sources"
	if [ -x "$SEC_KL" ] && [ "$(cat "$SEC_BASE/build.stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "test installation: $SEC_KL (up to date)"
		return
	fi
	echo "test installation: building $SEC_KL (${opts[*]})"
	rm -rf "$SEC_BUILD" "$SEC_PREFIX" "$SEC_BASE/build.stamp"
	mkdir -p "$SEC_BUILD"
	# What `make install` needs, without objects (the tree may be changing under a parallel build).
	(cd "$KL_TOP" && tar cf - --exclude='*.o' --exclude='*.a' configure Makefile.in NEWS README.md doc contrib \
		common policy qmp launcher) | tar xf - -C "$SEC_BUILD" || fail "cannot copy the sources to $SEC_BUILD"
	(cd "$SEC_BUILD" && ./configure "${opts[@]}" && make -j"$(nproc)" kvm-launch && make install) \
		>"$SEC_BASE/build.log" 2>&1 ||
		{ tail -n 30 "$SEC_BASE/build.log" >&2; fail "building the test installation failed (log $SEC_BASE/build.log)"; }
	[ -x "$SEC_KL" ] && [ -f "$SEC_TMPFILES" ] || fail "make install did not give $SEC_KL and $SEC_TMPFILES"
	echo "$stamp" >"$SEC_BASE/build.stamp"
}

# A fresh state and cache tree, exactly as the installed tmpfiles rules say.
sec_layout() {
	sec_teardown
	cleanup_fn sec_teardown
	! grep -n '@[a-z]*dir@' "$SEC_TMPFILES" || fail "$SEC_TMPFILES: unsubstituted path"
	systemd-tmpfiles --create "$SEC_TMPFILES" || fail "systemd-tmpfiles --create $SEC_TMPFILES failed"
	[ -d "$SEC_STATE" ] && [ -d "$SEC_CACHE" ] || fail "the tmpfiles rules made no $SEC_STATE and $SEC_CACHE"
	echo "layout from $SEC_TMPFILES:"
	find "$SEC_BASE/run" "$SEC_BASE/var" -printf '  %M %u:%g %p\n'
}

# Processes of the test installation (agents) and its trees go; the build stays.
sec_teardown() {
	local pids
	pids=$(pgrep -f "^$SEC_KL( |\$)" || true)
	[ -z "$pids" ] || kill $pids 2>/dev/null
	for p in $pids; do wait_for 5 gone "$p" || kill -9 "$p" 2>/dev/null; done
	rm -rf "$SEC_BASE/run" "$SEC_BASE/var" "$SEC_BASE/etc"
}

as_attacker() {
	local rc=0
	timeout -k 2 "$SEC_DEADLINE" env -u XDG_RUNTIME_DIR HOME=/nonexistent \
		setpriv --reuid="$ATTACKER" --regid="$ATTACKER" --init-groups -- "$@" || rc=$?
	echo "as_attacker: $(printf '%s' "$*" | tr '\n\t' '  '): exit $rc$([ "$rc" = 124 ] && echo ' (deadline)')" >&2
	return "$rc"
}

sec_attacker_dir() {
	local d
	d=$(mktemp -d "$SEC_TMP/att.XXXXXX") && chown "$ATTACKER:" "$d" && chmod 0700 "$d" && echo "$d"
}
