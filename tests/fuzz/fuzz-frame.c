/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: the monitor relay's framing (qmp/frame.c).  The first bytes
 * of the input choose the chunk sizes and which chunks carry an fd; the rest
 * is the client's byte stream.
 *
 * Invariants (a broken one aborts): the frames put together are exactly the
 * input; a whole frame starts with '{' or '[', is within the size limit and
 * ends with its matching closer; every fd fed comes out in exactly one frame
 * (none lost, none twice); nothing stays buffered after finish. */
#include "fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include "qmp/frame.h"

#define MAX_MESSAGE 64

static void take(struct qmp_framer *f, const uint8_t *input, size_t *pos, size_t *fds_out)
{
	struct qmp_frame fr;
	while (qmp_framer_next(f, &fr)) {
		FUZZ_CHECK(fr.len == 0 || memcmp(fr.bytes, input + *pos, fr.len) == 0);
		if (fr.whole) {
			FUZZ_CHECK(fr.len >= 2 && fr.len <= MAX_MESSAGE);
			FUZZ_CHECK(fr.bytes[0] == '{' || fr.bytes[0] == '[');
			char last = fr.bytes[fr.len - 1];
			FUZZ_CHECK(last == '}' || last == ']');
		}
		*pos += fr.len;
		*fds_out += fr.nfds;
		qmp_frame_clear(&fr);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	const uint8_t *plan = data;
	size_t nplan = 4;
	const uint8_t *input = data + nplan;
	size_t len = size - nplan;
	struct qmp_framer *f = qmp_framer_new(MAX_MESSAGE);
	size_t off = 0, pos = 0, fds_in = 0, fds_out = 0, k = 0;
	while (off < len) {
		size_t chunk = 1 + plan[k % nplan] % 37;
		if (chunk > len - off)
			chunk = len - off;
		int fd = -1;
		if (plan[(k + 1) % nplan] & 1)
			fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		qmp_framer_feed(f, (const char *)input + off, chunk, &fd, fd >= 0);
		fds_in += fd >= 0;
		off += chunk;
		k++;
		take(f, input, &pos, &fds_out);
	}
	qmp_framer_finish(f);
	take(f, input, &pos, &fds_out);
	FUZZ_CHECK(pos == len);
	FUZZ_CHECK(fds_in == fds_out);
	FUZZ_CHECK(qmp_framer_pending(f) == 0);
	qmp_framer_free(f);
	return 0;
}
