#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A stand-in QEMU that records its argv (NUL-separated, its own path first)
# into $KL_RECORD and exits.  kvm-launch's capability question (-qmp stdio)
# is answered with a failure so it is not recorded.
for a in "$@"; do
	[ "$a" = stdio ] && exit 1
done
printf '%s\0' "$0" "$@" > "${KL_RECORD:?}"
exit 0
