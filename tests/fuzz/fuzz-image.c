/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: image headers (policy/probe-format.c, kl_image_detect) and
 * what the file probe makes of them (policy/probe-file.c,
 * kl_probe_file_alloc: guest size against allocated blocks, with notes).
 * The input is the image file: its first and last 512 bytes are what the
 * probe reads.
 *
 * Invariants (a broken one aborts): the format is one of QEMU's names,
 * "raw" for anything unknown; the preallocation verdict is known. */
#include "fuzz.h"

#include <sys/stat.h>

#include "policy/probe/probe.h"
#include "policy/types.h"

#define FUZZ_MAX_INPUT (1024 * 1024)

static bool known(const char *f)
{
	static const char *const names[] = { "raw", "qcow2", "qcow", "qed", "vmdk", "vdi", "vhdx", "vpc",
					     "luks", "dmg", "parallels", "bochs", "cloop" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(f, names[i]) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet();
	if (size > FUZZ_MAX_INPUT)
		return 0;
	size_t head = size < 512 ? size : 512;
	size_t tail = size < 512 ? size : 512;
	struct kl_image_info img;
	kl_image_detect(data, head, size ? data + size - tail : NULL, tail, &img);
	FUZZ_CHECK(memchr(img.format, '\0', sizeof img.format) != NULL);
	FUZZ_CHECK(known(img.format));

	/* The allocation check, for a file of this size with 0, half or all of
	 * its blocks allocated, and one whose size the header contradicts. */
	for (int k = 0; k < 4; k++) {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_mode = S_IFREG | 0644;
		st.st_size = k == 3 ? (off_t)INT64_MAX : (off_t)size * 4096;
		st.st_blocks = k == 0 ? 0 : k == 1 ? st.st_size / 1024 : (blkcnt_t)(st.st_size / 512);
		struct kl_disk_facts f;
		memset(&f, 0, sizeof f);
		kl_probe_file_alloc(&st, &img, &f);
		FUZZ_CHECK(f.preallocated == KL_TRI_YES || f.preallocated == KL_TRI_NO);
		kl_disk_facts_free(&f);
	}
	return 0;
}
