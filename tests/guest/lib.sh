# SPDX-License-Identifier: GPL-2.0-or-later
# tests/guest/lib.sh — shared by the guest and libvirt tests (bash).  Source it after tests/functions.sh.
#
#   kl_need_helpers                    json-get present (fail otherwise: `make test-programs` builds it)
#   kl_guest_build                     build (cached) the tiny guest; sets KL_GUEST_KERNEL/INITRD/HELPER; skips on 77
#   kl_wait_serial LOG REGEX SECS [PID]    wait until a line of LOG matches REGEX (ERE); fail on `KL error`,
#                                      on the guest finishing early (`KL done` when REGEX is not it) or PID exiting
#   kl_mode_flags MODE                 "DIRECT NOFLUSH WC" (on/off) of a cache mode, DESIGN.md section 2
#   kl_guest_wc MODE                   what the guest's /sys/block/X/queue/write_cache says for MODE
#   kl_args_load PID                   /proc/PID/cmdline into the array KL_ARGS (KL_ARGS[0] is the program)
#   kl_disk_effective ID               from KL_ARGS: what QEMU runs disk ID (a -device id, or a -drive id) with:
#                                      sets D_KIND (drive|blockdev) D_AIO D_DIRECT D_NOFLUSH D_WC D_DESC
#   kl_check_disk_cmdline ID MODE AIO  fail unless the disk runs with cache MODE and aio AIO (every node of its
#                                      -blockdev chain; aio on every protocol node)
#   kl_qb_flags QUERYBLOCK ID          "WRITEBACK DIRECT NOFLUSH" (on/off) of device ID from a query-block reply
#   kl_check_query_block QUERYBLOCK ID MODE
#   kl_check_guest_wc LOG DEV MODE     the guest's report line for DEV says MODE's write cache
#   kl_agents_of BIN                   PIDs of live processes whose executable is BIN (agents re-exec kvm-launch)
#   kl_loop_setup FILE                 attach FILE to a free loop device (root), detach at exit; sets KL_LOOP
#   kl_wait_gone PID SECS              wait until PID has exited (works for non-children too)
#   kl_imgdir                          a directory for disk images on a filesystem with O_DIRECT; sets IMG
# Conventions: every failure goes through `fail` (tests/functions.sh), so the test's cleanups run.

JSON_GET=${JSON_GET:-$KL_TOP/tests/helpers/json-get}
QMP_CLI=${QMP_CLI:-$KL_TOP/tests/helpers/qmp-cli}

kl_need_helpers() {
	local h
	for h in "$JSON_GET" "$@"; do
		[ -x "$h" ] || fail "$h is missing: run 'make test-programs' first"
	done
}

# json-get on a string: jq_s JSON PATH
jq_s() { printf '%s' "$1" | "$JSON_GET" - "$2"; }

kl_guest_build() {
	local out rc=0
	if [ -z "${KL_GUEST_CACHE:-}" ] && [ "$(id -u)" != 0 ] && ! [ -w /var/cache/kvm-launch-tests/guest ] &&
		! [ -s /var/cache/kvm-launch-tests/guest/initrd.gz ]; then
		export KL_GUEST_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kvm-launch-tests/guest
	fi
	out=$("$KL_TOP/tests/guest/build-guest.sh" ${KL_GUEST_CACHE:+"$KL_GUEST_CACHE"}) || rc=$?
	if [ "$rc" = 77 ]; then
		echo "SKIP: $0: cannot build the test guest (build-guest.sh said why above)"
		exit 77
	fi
	[ "$rc" = 0 ] || fail "tests/guest/build-guest.sh failed (exit $rc)"
	eval "$out"
	export KL_GUEST_KERNEL KL_GUEST_INITRD KL_GUEST_HELPER
}

kl_wait_serial() { # LOG REGEX SECS [PID]
	local log=$1 re=$2 secs=$3 pid=${4:-} deadline
	deadline=$(($(date +%s) + secs))
	while :; do
		if [ -f "$log" ] && grep -Eq "$re" "$log"; then
			return 0
		fi
		if [ -f "$log" ] && grep -q '^KL error' "$log"; then
			sed 's/^/    serial: /' "$log" >&2
			fail "the guest reported an error (waiting for /$re/)"
		fi
		if [ -f "$log" ] && grep -q '^KL done' "$log" && ! [[ "KL done" =~ $re ]]; then
			sed 's/^/    serial: /' "$log" >&2
			fail "the guest finished before printing /$re/"
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			[ -f "$log" ] && sed 's/^/    serial: /' "$log" >&2
			fail "QEMU (pid $pid) exited while waiting for /$re/ in the serial log"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			[ -f "$log" ] && sed 's/^/    serial: /' "$log" >&2
			fail "no /$re/ in $log within ${secs}s"
		fi
		sleep 0.1
	done
}

kl_wait_gone() { # PID SECS
	local n=$(($2 * 10))
	while [ -d "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; do
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
		n=$((n - 1))
	done
	return 0
}

kl_mode_flags() {
	case $1 in
	none) echo "on off on" ;;
	writeback) echo "off off on" ;;
	writethrough) echo "off off off" ;;
	directsync) echo "on off off" ;;
	unsafe) echo "off on on" ;;
	*) fail "kl_mode_flags: unknown cache mode '$1'" ;;
	esac
}

kl_guest_wc() {
	local f
	f=$(kl_mode_flags "$1")
	[ "${f##* }" = on ] && echo "write back" || echo "write through"
}

kl_bool() { # normalise a QEMU/JSON boolean to on/off; anything else is printed as is
	case $1 in
	on | true | yes) echo on ;;
	off | false | no) echo off ;;
	*) echo "$1" ;;
	esac
}

kl_args_load() {
	[ -r "/proc/$1/cmdline" ] || fail "no process $1"
	mapfile -d '' -t KL_ARGS <"/proc/$1/cmdline"
	[ "${#KL_ARGS[@]}" -gt 0 ] || fail "empty /proc/$1/cmdline"
}

# kv_get ARG KEY [IMPLIED]: a key of a QEMU option string: JSON ({...}, dotted KEY for nested members) or keyval
# (a,b=c with ",," for a comma; IMPLIED names the value of a first element without "=", like -device's driver).
# Prints the value (the last one given) and returns 0, or returns 1 when the key is absent.
kv_get() {
	local arg=$1 key=$2 implied=${3:-}
	case $arg in
	'{'*) printf '%s' "$arg" | "$JSON_GET" - "$key" 2>/dev/null ;;
	*)
		awk -v k="$key" -v imp="$implied" 'BEGIN {
			s = ENVIRON["KV_ARG"]; n = length(s); cur = ""; idx = 0; found = 0
			for (i = 1; i <= n + 1; i++) {
				c = i <= n ? substr(s, i, 1) : ","
				if (c == "," && i < n && substr(s, i + 1, 1) == ",") { cur = cur ","; i++; continue }
				if (c != ",") { cur = cur c; continue }
				idx++
				p = index(cur, "=")
				if (p == 0) { kk = idx == 1 && imp != "" ? imp : cur; vv = idx == 1 && imp != "" ? cur : "on" }
				else { kk = substr(cur, 1, p - 1); vv = substr(cur, p + 1) }
				if (kk == k) { val = vv; found = 1 }
				cur = ""
			}
			if (found) print val
			exit found ? 0 : 1
		}' </dev/null ;;
	esac
}
kv() { KV_ARG=$1 kv_get "$@"; }

# The value following option OPT (e.g. -blockdev) whose KEY equals VALUE; prints it, returns 1 if none.
kl_find_opt() { # OPT KEY VALUE [IMPLIED]
	local i v
	for ((i = 1; i < ${#KL_ARGS[@]} - 1; i++)); do
		[ "${KL_ARGS[i]}" = "$1" ] || continue
		v=$(kv "${KL_ARGS[i + 1]}" "$2" "${4:-}") || continue
		if [ "$v" = "$3" ]; then
			printf '%s\n' "${KL_ARGS[i + 1]}"
			return 0
		fi
	done
	return 1
}

kl_disk_effective() { # ID
	local id=$1 dev drive mode f aio wc
	D_KIND= D_AIO= D_DIRECT= D_NOFLUSH= D_WC= D_DESC=
	dev=$(kl_find_opt -device id "$id" driver) || dev=
	if [ -n "$dev" ]; then
		drive=$(kv "$dev" drive driver) || fail "-device id=$id has no drive="
		wc=$(kv "$dev" write-cache driver) || wc=auto
		wc=$(kl_bool "$wc")
	else
		drive=$id
		wc=auto
	fi
	local d
	if d=$(kl_find_opt -drive id "$drive"); then
		D_KIND=drive
		D_DESC="-drive $d"
		mode=$(kv "$d" cache) || mode=writeback
		f=$(kl_mode_flags "$mode")
		D_DIRECT=${f%% *}
		f=${f#* }
		D_NOFLUSH=${f%% *}
		local dwc=${f#* } x
		x=$(kv "$d" cache.direct) && D_DIRECT=$(kl_bool "$x")
		x=$(kv "$d" cache.no-flush) && D_NOFLUSH=$(kl_bool "$x")
		x=$(kv "$d" cache.writeback) && dwc=$(kl_bool "$x")
		[ "$wc" = auto ] && wc=$dwc
		D_WC=$wc
		aio=$(kv "$d" aio) || aio=threads
		D_AIO=$aio
		[ -n "$dev" ] && D_DESC="$D_DESC -device $dev"
		return 0
	fi
	# A -blockdev chain: every node reachable through file/backing (and other string references).
	D_KIND=blockdev
	D_DESC=
	local -a todo=("$drive")
	local n b direct noflush drv seen=" " ref x
	D_DIRECT=
	D_NOFLUSH=
	D_AIO=
	while [ ${#todo[@]} -gt 0 ]; do
		n=${todo[0]}
		todo=("${todo[@]:1}")
		case $seen in *" $n "*) continue ;; esac
		seen="$seen$n "
		b=$(kl_find_opt -blockdev node-name "$n") || fail "disk $id: no -blockdev node-name=$n on the command line"
		D_DESC="$D_DESC -blockdev $b"
		direct=$(kv "$b" cache.direct) && direct=$(kl_bool "$direct") || direct=off
		noflush=$(kv "$b" cache.no-flush) && noflush=$(kl_bool "$noflush") || noflush=off
		# Every node must agree; a disagreement shows as "mixed".
		[ -z "$D_DIRECT" ] && D_DIRECT=$direct
		[ "$D_DIRECT" = "$direct" ] || D_DIRECT=mixed
		[ -z "$D_NOFLUSH" ] && D_NOFLUSH=$noflush
		[ "$D_NOFLUSH" = "$noflush" ] || D_NOFLUSH=mixed
		drv=$(kv "$b" driver) || drv='?'
		case $drv in
		file | host_device | host_cdrom)
			aio=$(kv "$b" aio) || aio=threads
			[ -z "$D_AIO" ] && D_AIO=$aio
			[ "$D_AIO" = "$aio" ] || D_AIO=mixed
			;;
		esac
		for ref in file backing; do
			if x=$(kv "$b" "$ref") && [ -n "$x" ] && [ "$x" != null ] && [ "${x#\{}" = "$x" ]; then
				todo+=("$x")
			fi
		done
	done
	[ -n "$dev" ] && D_DESC="$D_DESC -device $dev"
	D_WC=$wc
	[ -n "$D_AIO" ] || D_AIO=-
}

kl_check_disk_cmdline() { # ID MODE AIO
	local f want_direct want_noflush want_wc
	kl_disk_effective "$1"
	f=$(kl_mode_flags "$2")
	read -r want_direct want_noflush want_wc <<<"$f"
	local got="aio=$D_AIO direct=$D_DIRECT no-flush=$D_NOFLUSH write-cache=$D_WC"
	local bad=
	[ "$D_DIRECT" = "$want_direct" ] || bad="$bad cache.direct"
	[ "$D_NOFLUSH" = "$want_noflush" ] || bad="$bad cache.no-flush"
	# Without an explicit write-cache a -blockdev disk's device defaults to on (checked on QEMU 7.2).
	if [ "$D_WC" = auto ]; then
		[ "$want_wc" = on ] || bad="$bad write-cache(absent, so on)"
	else
		[ "$D_WC" = "$want_wc" ] || bad="$bad write-cache"
	fi
	[ "$3" = any ] || [ "$D_AIO" = "$3" ] || bad="$bad aio"
	if [ -n "$bad" ]; then
		echo "disk $1 on the running command line:$D_DESC" >&2
		fail "disk $1: want cache=$2 aio=$3, the command line has $got (wrong:$bad)"
	fi
	echo "cmdline: disk $1: cache=$2 aio=$D_AIO ($got)"
}

# query-block reply (the "return" array, or {"return": [...]}) in a file.
kl_qb_entry() { # FILE ID: prints the query-block entry of device ID
	local f=$1 id=$2 e p sel
	p=
	"$JSON_GET" "$f" return >/dev/null 2>&1 && p=return.
	for sel in "[qdev=/machine/peripheral/$id/virtio-backend]" "[qdev=/machine/peripheral/$id]" "[qdev=$id]" \
		"[device=$id]"; do
		e=$("$JSON_GET" "$f" "$p$sel" 2>/dev/null) && [ -n "$e" ] && { printf '%s\n' "$e" | head -n1; return 0; }
	done
	return 1
}

kl_qb_flags() { # FILE ID
	local e wb d nf
	e=$(kl_qb_entry "$1" "$2") || fail "query-block lists no device $2: $(cat "$1")"
	wb=$(jq_s "$e" inserted.cache.writeback) || fail "query-block: device $2 has no inserted.cache"
	d=$(jq_s "$e" inserted.cache.direct)
	nf=$(jq_s "$e" inserted.cache.no-flush)
	echo "$(kl_bool "$wb") $(kl_bool "$d") $(kl_bool "$nf")"
}

kl_check_query_block() { # FILE ID MODE
	local got want f d nf wc
	got=$(kl_qb_flags "$1" "$2") || exit 1
	f=$(kl_mode_flags "$3")
	read -r d nf wc <<<"$f"
	want="$wc $d $nf"
	[ "$got" = "$want" ] ||
		fail "query-block: device $2: writeback/direct/no-flush are '$got', want '$want' (cache=$3)"
	echo "query-block: disk $2: writeback/direct/no-flush = $got (cache=$3)"
}

kl_check_guest_wc() { # LOG DEV MODE
	local want line
	want=$(kl_guest_wc "$3")
	line=$(grep -E "^KL disk $2 " "$1" | tail -n1)
	[ -n "$line" ] || fail "the guest reported no line for $2"
	case $line in
	"KL disk $2 write_cache=$want size="*) echo "guest: $line (cache=$3)" ;;
	*) fail "guest: $2 should have write_cache=$want (cache=$3): $line" ;;
	esac
}

kl_agents_of() { # BIN: PIDs of processes running BIN (by /proc/PID/exe)
	local bin p exe
	bin=$(readlink -f "$1")
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		[ "$exe" = "$bin" ] && echo "${p#/proc/}"
	done
	return 0
}

kl_loop_setup() { # FILE
	KL_LOOP=$(losetup -f --show "$1") || fail "losetup -f --show $1 failed (no loop devices in this environment?)"
	cleanup_fn "losetup -d '$KL_LOOP' 2>/dev/null"
	[ -b "$KL_LOOP" ] || fail "$KL_LOOP is not a block device"
}

# A directory for images: $KL_IMG_BASE (default /var/tmp), where O_DIRECT works (tmpfs refuses it before Linux 6.6;
# the hard rules would then change the cache mode and the expectations below would not hold).
kl_imgdir() {
	local base=${KL_IMG_BASE:-/var/tmp}
	IMG=$(mktemp -d "$base/kl-img.XXXXXX") || fail "cannot create a directory in $base"
	cleanup_fn "rm -rf '$IMG'"
	if ! dd if=/dev/zero of="$IMG/.odirect" bs=4096 count=1 oflag=direct 2>/dev/null; then
		fail "$base does not support O_DIRECT: set KL_IMG_BASE to a directory on a local disk filesystem"
	fi
	rm -f "$IMG/.odirect"
}

# Fail if a sanitizer (check-asan builds) reported anything in these logs (kvm-launch's stderr, domain logs).
kl_no_sanitizer_reports() { # FILE...
	local f
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|Undefined)' "$f"; then
			grep -E -B2 -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -n 60 >&2
			fail "sanitizer report in $f"
		fi
	done
}

# The agent is detached from what QEMU inherited: its own session, and none of QEMU's stdout/stderr (a libvirt
# domain log pipe must close when QEMU exits) or other inherited descriptors (DESIGN.md: the agent closes what
# it does not need).
kl_check_agent_detached() { # AGENTPID QEMUPID
	local a=$1 q=$2 sid qsid fd t qt
	# Field 6 of /proc/PID/stat is the session (comm, field 2, has no spaces here: kvm-launch, qemu-system-x86).
	sid=$(awk '{print $6}' "/proc/$a/stat" 2>/dev/null) || fail "no agent process $a"
	qsid=$(awk '{print $6}' "/proc/$q/stat" 2>/dev/null) || fail "no QEMU process $q"
	[ "$sid" != "$qsid" ] || fail "agent $a is in QEMU's session $qsid: it did not setsid()"
	for fd in 1 2; do
		qt=$(readlink "/proc/$q/fd/$fd") || continue
		case $qt in /dev/null) continue ;; esac
		for t in /proc/"$a"/fd/*; do
			[ "$(readlink "$t")" = "$qt" ] && fail "agent $a holds QEMU's fd $fd ($qt) open as fd ${t##*/}"
		done
	done
	echo "agent $a: own session $sid (QEMU's: $qsid), none of QEMU's stdout/stderr ($(readlink "/proc/$q/fd/2")) open; fds: $(
		for t in /proc/"$a"/fd/*; do printf '%s=%s ' "${t##*/}" "$(readlink "$t")"; done)"
}

# The elements of an option string other than its cache/aio settings, one per line, in order: for keyval the
# "key=value" items (",," kept), for JSON "key=value" of the top-level members (values as json-get prints them).
kl_opt_rest() { # ARG
	local k keys v
	case $1 in
	'{'*)
		keys=$(printf '%s' "$1" | "$JSON_GET" - keys) || { echo "json-get failed on: $1"; return 1; }
		while IFS= read -r k; do
			case $k in cache | aio | write-cache) continue ;; esac
			v=$(printf '%s' "$1" | "$JSON_GET" - "$k") || { echo "json-get failed on: $1"; return 1; }
			printf '%s=%s\n' "$k" "$v"
		done <<<"$keys" ;;
	*)
		KV_ARG=$1 awk 'BEGIN {
			s = ENVIRON["KV_ARG"]; n = length(s); cur = ""
			for (i = 1; i <= n + 1; i++) {
				c = i <= n ? substr(s, i, 1) : ","
				if (c == "," && i < n && substr(s, i + 1, 1) == ",") { cur = cur ",,"; i++; continue }
				if (c != ",") { cur = cur c; continue }
				k = cur; sub(/=.*/, "", k)
				if (k != "cache" && k != "aio" && k != "write-cache" && k !~ /^cache\./) print cur
				cur = ""
			}
		}' </dev/null ;;
	esac
}

# A rewritten disk argument keeps everything but its cache and aio settings (same keys, values and order).
kl_check_only_cache_changed() { # ORIG NEW
	local a b
	a=$(kl_opt_rest "$1") || fail "$a"
	b=$(kl_opt_rest "$2") || fail "$b"
	[ "$a" = "$b" ] || fail "a disk argument changed beyond cache/aio: '$1' became '$2'"
}

# For cleanups: SIGKILL PID only while it still runs EXE (a PID recorded earlier may belong to another process now).
kl_kill_if() { # PID EXE
	local e
	[ -n "$1" ] || return 0
	e=$(readlink -f "/proc/$1/exe" 2>/dev/null) || return 0
	[ "$e" = "$(readlink -f "$2")" ] && kill -KILL "$1" 2>/dev/null
	return 0
}
