#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A stand-in QEMU for the bad-input and security tests (tests/bad/).
#  - Asked for its capabilities (`-qmp stdio`, as kvm-launch does), it
#    answers over QMP: the file $KL_FAKE_QMP if set (a hostile transcript,
#    sent as is), else a valid exchange whose schema has io_uring.  It then
#    reads until kvm-launch closes the connection.
#  - Otherwise it records its argv, NUL-separated with its own path first,
#    into $KL_RECORD, its PID into $KL_RECORD.pid (and appends it to
#    $KL_RECORD_PIDS if set), then
#    exits 0, or with $KL_FAKE_STAY set sleeps that many
#    seconds so the VM "runs" (the state entry and agent stay).  It serves
#    no monitor: the listening sockets kvm-launch hands it (-chardev
#    socket,...,fd=N) are closed, so --status sees them refused at once, as
#    from a QEMU whose monitors are gone, instead of waiting for a greeting.
# Configuration through the environment is fine here: this is the test's
# QEMU, not kvm-launch.
for a in "$@"; do
	if [ "$a" = stdio ]; then
		if [ -n "${KL_FAKE_QMP:-}" ]; then
			cat "$KL_FAKE_QMP"
		else
			printf '%s\r\n' \
				'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": []}}' \
				'{"return": {}, "id": "kl-1"}' \
				'{"return": [{"name": "BlockdevAioOptions", "meta-type": "enum", "values": ["threads", "native", "io_uring"]}], "id": "kl-2"}' \
				'{"return": {}, "id": "kl-3"}'
		fi
		cat > /dev/null
		exit 0
	fi
done
printf '%s\0' "$0" "$@" > "${KL_RECORD:?}"
echo $$ > "$KL_RECORD.pid"
if [ -n "${KL_RECORD_PIDS:-}" ]; then
	echo $$ >> "$KL_RECORD_PIDS"
fi
if [ -n "${KL_FAKE_STAY:-}" ]; then
	fds=$(printf '%s\n' "$@" | sed -n 's/^socket,id=kvmlaunch-[a-z]*,fd=\([0-9]*\),.*/\1/p')
	exec perl -MPOSIX -e 'POSIX::close($_) for @ARGV[1..$#ARGV]; exec "sleep", $ARGV[0] or die "sleep: $!"' \
		"$KL_FAKE_STAY" $fds
fi
exit 0
