#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Each libFuzzer target for a short, fixed time (FUZZ_SECONDS, default 15):
# CI fails on any crash.  `make fuzz` runs them longer.
. "$(dirname "$0")/../functions.sh"
requires clang
cd "$KL_TOP" || fail "no $KL_TOP"
# libFuzzer's runtime comes with libclang-rt (Debian: libclang-rt-14-dev).
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > /tmp/kl-fuzz-probe.$$.c
if ! clang -fsanitize=fuzzer -o /tmp/kl-fuzz-probe.$$ /tmp/kl-fuzz-probe.$$.c 2>/dev/null; then
	rm -f /tmp/kl-fuzz-probe.$$*
	echo "SKIP: $0: clang cannot link libFuzzer (apt-get install libclang-rt-14-dev)"
	exit 77
fi
rm -f /tmp/kl-fuzz-probe.$$*
make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-15}" || fail "a fuzz target crashed (see tests/fuzz/out/)"
echo "fuzz: every target ran ${FUZZ_SECONDS:-15} s without a crash"
