#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Exec contract: the real QEMU replaces kvm-launch (same PID), environment
# and inherited fds are kept; libvirt's capability probe passes through; a
# QEMU that is kvm-launch itself is refused; QEMU's own -help/-version pass.
. "$(dirname "$0")/../functions.sh"
requires "$KL"
kl_tmpdir
export KL_RECORD=$TMP/argv
printf 'cache-dir = %s/cache\nstate-dir = %s/state\n' "$TMP" "$TMP" > "$TMP/k.conf"
chmod 0644 "$TMP/k.conf"

# Same PID, environment and an inherited fd: the stand-in reports them.
cat > "$TMP/qemu" <<'EOT'
#!/bin/sh
for a in "$@"; do [ "$a" = stdio ] && exit 1; done
echo "pid=$$ env=$KL_TEST_ENV fd9=$(cat <&9)" > "$KL_RECORD"
EOT
chmod +x "$TMP/qemu"
echo inherited > "$TMP/fd9"
KL_TEST_ENV=kept bash -c 'echo "launcher=$$"; exec "$0" --config "$1" --qemu "$2" -- -name t -m 64 9<"$3"' \
	"$KL" "$TMP/k.conf" "$TMP/qemu" "$TMP/fd9" > "$TMP/out" 2> "$TMP/err" || fail "launch failed: $(cat "$TMP/err")"
launcher=$(sed -n 's/^launcher=//p' "$TMP/out")
grep -q "^pid=$launcher env=kept fd9=inherited\$" "$KL_RECORD" || fail "exec contract broken: $(cat "$KL_RECORD") (launcher $launcher)"

# libvirt's capability probe: untouched, and no state written.
fake=$KL_TOP/tests/helpers/fake-qemu.sh
printf 'cache-dir = %s/cache\nstate-dir = %s/probe-state\n' "$TMP" "$TMP" > "$TMP/probe.conf"
chmod 0644 "$TMP/probe.conf"
probe=(-S -no-user-config -nodefaults -nographic -machine none,accel=kvm:tcg -qmp unix:/tmp/x.monitor,server=on,wait=off -pidfile /tmp/x.pid -daemonize)
"$KL" --config "$TMP/probe.conf" --qemu "$fake" "${probe[@]}" 2> "$TMP/err" || fail "probe: exit $?"
printf '%s\0' "$fake" "${probe[@]}" | cmp -s - "$KL_RECORD" || fail "probe arguments changed"
[ ! -e "$TMP/probe-state" ] || [ -z "$(ls -A "$TMP/probe-state")" ] || fail "probe left state"
[ ! -s "$TMP/err" ] || fail "probe: kvm-launch wrote to stderr: $(cat "$TMP/err")"

# QEMU's single-dash -help/-version are QEMU's.
for a in -help -version; do
	"$KL" --config "$TMP/k.conf" --qemu "$fake" "$a" || fail "$a: exit $?"
	printf '%s\0' "$fake" "$a" | cmp -s - "$KL_RECORD" || fail "$a did not reach QEMU"
done

# Refuse to exec itself.
if "$KL" --config "$TMP/k.conf" --qemu "$KL" -- -name t 2> "$TMP/err"; then
	fail "exec'd itself"
fi
grep -q 'kvm-launch itself' "$TMP/err" || fail "no self-exec message"
ln -s "$KL" "$TMP/qemu-system-x86_64"
if "$KL" --config "$TMP/k.conf" --qemu "$TMP/qemu-system-x86_64" -- -name t 2>/dev/null; then
	fail "exec'd itself through a symlink"
fi

# Our own options.
"$KL" --version | grep -q '^kvm-launch [0-9]' || fail "--version"
"$KL" --help | grep -q -- '--dry-run' || fail "--help"
echo "exec contract: ok"

# Two kvm-launches in a row (an <emulator> kvm-launch whose real QEMU is the
# diverted system QEMU, i.e. another kvm-launch): the second sees the first
# one's monitors and passes the command line through untouched, so QEMU never
# gets them twice (it refuses duplicate chardev ids).
truncate -s 1M "$TMP/d.raw"
first=(-name twice -drive "file=$TMP/d.raw,format=raw,if=virtio,cache=none,aio=io_uring"
	-chardev "socket,id=kvmlaunch-agent,path=$TMP/s/twice.agent.sock,server=on,wait=off"
	-mon chardev=kvmlaunch-agent,mode=control)
"$KL" --config "$TMP/k.conf" --qemu "$fake" -- "${first[@]}" 2> "$TMP/err" || fail "double wrap: exit $?"
printf '%s\0' "$fake" "${first[@]}" | cmp -s - "$KL_RECORD" || fail "double wrap: arguments changed: $(tr '\0' ' ' < "$KL_RECORD")"
grep -q 'prepared this command line already' "$TMP/err" || fail "double wrap: no message"
[ ! -e "$TMP/state/twice.json" ] || fail "double wrap: a second state entry"
echo "double wrap: ok"

# KVM_LAUNCH_TIMING=1: one line before the exec, every phase and a total that
# is their sum; without it, no such line.
KVM_LAUNCH_TIMING=1 "$KL" --config "$TMP/k.conf" --qemu "$fake" -- -name timed -drive "file=$TMP/d.raw,format=raw,if=virtio" \
	2> "$TMP/err" || fail "timing: exit $?"
line=$(grep 'start timing (ms):' "$TMP/err") || fail "timing: no line: $(cat "$TMP/err")"
for ph in policy parse host qemu-caps disks decision state monitors state-file agent exec total; do
	printf '%s\n' "$line" | grep -Eq " $ph [0-9]+\.[0-9]{3}( |\$)" || fail "timing: no phase $ph in: $line"
done
printf '%s\n' "$line" | awk '{sub(/.*\(ms\):/, ""); for (i = 1; i < NF - 1; i += 2) s += $(i + 1); if (s - $NF > 0.01 || $NF - s > 0.01) exit 1}' ||
	fail "timing: the phases do not add up to the total: $line"
"$KL" --config "$TMP/k.conf" --qemu "$fake" -- -name untimed 2> "$TMP/err" || fail "untimed: exit $?"
! grep -q 'start timing' "$TMP/err" || fail "a timing line without KVM_LAUNCH_TIMING"
echo "start timing: ok"
