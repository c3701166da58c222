# SPDX-License-Identifier: GPL-2.0-or-later
# tests/libvirt/lib.sh — shared by tests/libvirt/t-*.sh (bash; source after tests/functions.sh).
#
# libvirt resets the environment and passes no options to its <emulator>, so the kvm-launch under test must find
# its policy, state directory and cache through the paths compiled into it.  klt_install builds a dedicated copy of
# the sources (tar of configure, Makefile.in, NEWS and the C modules, without objects) in
# /var/lib/kvm-launch-tests/build, configured with
#   --prefix=/var/lib/kvm-launch-tests/prefix --sysconfdir=/var/lib/kvm-launch-tests/etc
#   --runstatedir=/var/lib/kvm-launch-tests/run --localstatedir=/var/lib/kvm-launch-tests/var --with-qemu=$QEMU
# (plus --enable-asan/--enable-werror when the main build has them), and installs the binary as $KLT_BIN.  The
# build is reused while the sources and options are unchanged (a stamp file), so the main build is never touched.
#
#   klt_setup             root, tools, helpers, guest, libvirtd (started if not running; stopped at exit only if
#                         we started it), the test installation and its policy; sets KLT_DIR (images, logs)
#   klt_policy            (re)write the test policy $KLT_POLICY (root-owned, 0644)
#   klt_domain NAME ARGS  write $KLT_DIR/NAME.xml with make-domain.sh (emulator = $KLT_BIN, serial log
#                         $KLT_DIR/NAME.serial); ARGS are make-domain options and disks
#   klt_create NAME       `virsh create` it (transient; destroyed at exit), remove its old domain log first
#   klt_pid NAME          QEMU's PID from /run/libvirt/qemu/NAME.pid
#   klt_check_qemu_pid NAME   the PID runs the real QEMU (not kvm-launch) and --status says the same PID
#   klt_query_block NAME FILE
#   klt_no_agents         fail if any process runs $KLT_BIN (an agent) — call when no domain should run

KLT_BASE=/var/lib/kvm-launch-tests
KLT_PREFIX=$KLT_BASE/prefix
KLT_ETC=$KLT_BASE/etc
KLT_RUN=$KLT_BASE/run
KLT_VAR=$KLT_BASE/var
KLT_BUILD=$KLT_BASE/build
KLT_BIN=$KLT_PREFIX/bin/kvm-launch
KLT_POLICY=$KLT_ETC/kvm-launch/kvm-launch.conf
KLT_STATE=$KLT_RUN/kvm-launch/root   # QEMU runs as root under the test libvirtd
VIRSH=(virsh -q -c qemu:///system)
export LC_ALL=C

. "$(dirname "$0")/../guest/lib.sh"

klt_setup() {
	requires_root
	PATH=$PATH:/usr/sbin:/sbin
	requires virsh libvirtd virtlogd qemu-img losetup truncate "$QEMU" flock
	kl_need_helpers
	kl_guest_build
	klt_libvirtd_up
	klt_install
	klt_policy
	mkdir -p "$KLT_BASE/tmp"
	KLT_DIR=$(mktemp -d "$KLT_BASE/tmp/$(basename "$0" .sh).XXXXXX")
	cleanup_fn "[ \"\${KL_KEEP:-0}\" = 1 ] && echo \"kept $KLT_DIR\" || rm -rf '$KLT_DIR'"
}

klt_libvirtd_up() {
	local rc=0 running=0 pid
	if [ -s /run/libvirtd.pid ]; then
		pid=$(cat /run/libvirtd.pid)
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] && running=1
	fi
	"$KL_TOP/tests/libvirt/libvirtd-up.sh" || rc=$?
	if [ "$rc" = 77 ]; then
		echo "SKIP: $0: libvirtd cannot run here (libvirtd-up.sh said why above)"
		exit 77
	fi
	[ "$rc" = 0 ] || fail "tests/libvirt/libvirtd-up.sh failed (exit $rc)"
	if [ "$running" = 0 ]; then
		cleanup_fn "'$KL_TOP/tests/libvirt/libvirtd-down.sh' --restore-config"
	else
		echo "note: using the libvirtd that was already running (left running)"
	fi
}

# The sources and options the test installation is built from; a change means a rebuild.
klt_build_stamp() {
	(
		cd "$KL_TOP" || exit 1
		echo "options: $*"
		find common policy qmp launcher -name '*.[ch]' -print | LC_ALL=C sort | xargs sha256sum
		sha256sum configure Makefile.in
	) | sha256sum | cut -d' ' -f1
}

klt_install() {
	local opts=() stamp
	opts=("--prefix=$KLT_PREFIX" "--sysconfdir=$KLT_ETC" "--runstatedir=$KLT_RUN" "--localstatedir=$KLT_VAR"
		"--with-qemu=$QEMU")
	if [ -f "$KL_TOP/Makefile" ]; then
		grep -q '^SAN_FLAGS = .*-fsanitize' "$KL_TOP/Makefile" && opts+=(--enable-asan)
		grep -q -- '-Werror' "$KL_TOP/Makefile" && opts+=(--enable-werror)
	fi
	mkdir -p "$KLT_BASE"
	exec 8>"$KLT_BASE/build.lock"
	flock 8
	stamp=$(klt_build_stamp "${opts[@]}") || fail "cannot hash the sources"
	if [ -x "$KLT_BIN" ] && [ "$(cat "$KLT_BASE/build.stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "test installation: $KLT_BIN (up to date)"
	else
		echo "test installation: building $KLT_BIN (${opts[*]})"
		rm -rf "$KLT_BUILD" "$KLT_BASE/build.stamp"
		mkdir -p "$KLT_BUILD"
		# Only what building kvm-launch needs (the rest of the tree may be changing under a parallel run).
		(cd "$KL_TOP" && tar cf - --exclude='*.o' --exclude='*.a' configure Makefile.in NEWS common policy qmp launcher) |
			tar xf - -C "$KLT_BUILD" || fail "cannot copy the sources to $KLT_BUILD"
		(cd "$KLT_BUILD" && ./configure "${opts[@]}" && make -j"$(nproc)" kvm-launch) >"$KLT_BASE/build.log" 2>&1 ||
			{ tail -n 30 "$KLT_BASE/build.log" >&2; fail "building the test installation failed (log $KLT_BASE/build.log)"; }
		grep -q "KL_DEFAULT_CONFIG \"$KLT_POLICY\"" "$KLT_BUILD/config.h" ||
			fail "the test build's config.h does not point at $KLT_POLICY"
		install -d -m 0755 "$KLT_PREFIX/bin"
		install -m 0755 "$KLT_BUILD/kvm-launch" "$KLT_BIN.new"
		mv -f "$KLT_BIN.new" "$KLT_BIN"
		echo "$stamp" >"$KLT_BASE/build.stamp"
	fi
	flock -u 8
	exec 8>&-
}

klt_policy() {
	install -d -m 0755 "$KLT_ETC" "$KLT_ETC/kvm-launch"
	cat >"$KLT_POLICY.new" <<'EOF'
# Written by tests/libvirt/lib.sh for the kvm-launch test installation.  Every domain disk of the tests gets a
# cache mode different from its XML, so a rewrite that does not happen shows.
[rule lv-raw]
path = */lv-raw*.img
cache = writethrough
aio = threads

[rule lv-qcow2]
format = qcow2
cache = none
aio = native

[rule lv-block]
backend = block
cache = directsync
aio = native
EOF
	chown root:root "$KLT_POLICY.new"
	chmod 0644 "$KLT_POLICY.new"
	mv -f "$KLT_POLICY.new" "$KLT_POLICY"
	"$KLT_BIN" --check-policy "$KLT_POLICY" >/dev/null || fail "the test policy does not validate"
}

klt_domain() { # NAME MAKE-DOMAIN-ARGS...
	local name=$1 a
	local -a args=()
	shift
	# Many TCG guests on few host CPUs: the kernel's early IO-APIC timer check can fail under load ("IO-APIC +
	# timer doesn't work!", a panic seen with 10 domains on 2 cores).  make-domain.sh has no option for more kernel
	# parameters, but it writes the --guest-cmd value after "kl.cmd=" on the kernel command line, so a word after
	# a space there is a kernel parameter of its own (the guest's init reads only the kl.cmd= word).
	while [ $# -gt 0 ]; do
		a=$1
		shift
		if [ "$a" = --guest-cmd ] && [ $# -gt 0 ]; then
			args+=("$a" "$1 no_timer_check")
			shift
		else
			args+=("$a")
		fi
	done
	# The suite's mark (tests/run-tests.sh), which libvirt would not pass on by itself.
	[ -n "${KL_SUITE_ID:-}" ] && args=(--env "KL_SUITE_ID=$KL_SUITE_ID" "${args[@]}")
	"$KL_TOP/tests/libvirt/make-domain.sh" --name "$name" --emulator "$KLT_BIN" \
		--kernel "$KL_GUEST_KERNEL" --initrd "$KL_GUEST_INITRD" --serial-log "$KLT_DIR/$name.serial" "${args[@]}" \
		>"$KLT_DIR/$name.xml" || fail "make-domain.sh failed for $name"
}

klt_create() { # NAME
	local name=$1 out
	# A leftover of an interrupted run of this test would block the name.
	"${VIRSH[@]}" destroy "$name" >/dev/null 2>&1 || true
	rm -f "/var/log/libvirt/qemu/$name.log"
	cleanup_fn "'${VIRSH[0]}' -q -c qemu:///system destroy '$name' >/dev/null 2>&1; rm -f '$KLT_STATE/$name.agent.log'"
	out=$("${VIRSH[@]}" create "$KLT_DIR/$name.xml" 2>&1) || {
		[ -f "/var/log/libvirt/qemu/$name.log" ] && sed 's/^/    domain log: /' "/var/log/libvirt/qemu/$name.log" >&2
		fail "virsh create $name failed: $out"
	}
}

klt_pid() { # NAME
	local f=/run/libvirt/qemu/$1.pid n=50
	while [ ! -s "$f" ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
	[ -s "$f" ] || fail "no pid file $f"
	cat "$f"
}

# PID runs the real QEMU; --status --json in $2 lists NAME with that PID, running, with a live agent.
klt_check_qemu_pid() { # NAME STATUSJSON
	local name=$1 pid exe sp
	pid=$(klt_pid "$name")
	exe=$(readlink -f "/proc/$pid/exe") || fail "$name: no process $pid"
	[ "$exe" = "$(readlink -f "$QEMU")" ] || fail "$name: pid $pid runs $exe, not the real QEMU"
	sp=$("$JSON_GET" "$2" "vms.[name=$name].pid") || fail "$name: kvm-launch --status does not list it"
	[ "$sp" = "$pid" ] || fail "$name: --status says pid $sp, libvirt's pid file says $pid"
	[ "$("$JSON_GET" "$2" "vms.[name=$name].state")" = running ] ||
		fail "$name: --status state is $("$JSON_GET" "$2" "vms.[name=$name].state")"
	[ "$("$JSON_GET" "$2" "vms.[name=$name].agent.alive")" = true ] ||
		fail "$name: no live agent: $("$JSON_GET" "$2" "vms.[name=$name].agent")"
	echo "$name: pid $pid runs $exe (the PID libvirt forked), agent pid $("$JSON_GET" "$2" "vms.[name=$name].agent.pid")"
}

klt_query_block() { # NAME FILE
	"${VIRSH[@]}" qemu-monitor-command "$1" '{"execute":"query-block"}' >"$2" ||
		fail "$1: virsh qemu-monitor-command query-block failed"
	"$JSON_GET" "$2" >/dev/null || fail "$1: query-block reply is not JSON: $(cat "$2")"
}

klt_status_json() { # FILE
	"$KLT_BIN" --status --json >"$1" || fail "$KLT_BIN --status --json failed"
	"$JSON_GET" "$1" >/dev/null || fail "--status --json is not JSON"
}

klt_no_agents() {
	local a
	a=$(kl_agents_of "$KLT_BIN")
	[ -z "$a" ] || fail "processes still running $KLT_BIN: $(for p in $a; do tr '\0' ' ' <"/proc/$p/cmdline"; echo; done)"
}

# Wait until NAME's QEMU is gone, its agent exited and its state file was removed.
klt_wait_cleaned() { # NAME QEMUPID AGENTPID
	kl_wait_gone "$2" 20 || fail "$1: QEMU (pid $2) still running"
	[ -z "$3" ] || kl_wait_gone "$3" 10 || fail "$1: its agent (pid $3) still runs 10 s after QEMU exited"
	local n=50
	while [ -e "$KLT_STATE/$1.json" ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
	[ ! -e "$KLT_STATE/$1.json" ] || fail "$1: state file left: $(cat "$KLT_STATE/$1.json")"
}

# klt_relays NAME: the relay processes (the active and its standby) of domain NAME, on one line.
klt_relays() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "^kvm-launch --relay $KLT_STATE/$1\." && printf '%s ' "${p#/proc/}"
	done
	return 0
}

# klt_restart_libvirtd: stops libvirtd and starts it again; running domains stay.
klt_restart_libvirtd() {
	local lpid
	lpid=$(cat /run/libvirtd.pid)
	kill "$lpid"
	kl_wait_gone "$lpid" 20 || fail "libvirtd did not stop"
	"$KL_TOP/tests/libvirt/libvirtd-up.sh" > /dev/null || fail "libvirtd did not come back"
}
