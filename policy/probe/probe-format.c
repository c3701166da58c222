/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Image format from the header bytes, the way QEMU's format probes look at
 * them (block/qcow2.c, qed.c, vmdk.c, vdi.c, vhdx.c, vpc.c, crypto.c...). */
#include "policy/probe/probe.h"

#include <stdio.h>
#include <string.h>

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p + 4) << 32 | le32(p);
}

static bool has(const unsigned char *buf, size_t len, size_t off, const char *magic, size_t mlen)
{
	return len >= off + mlen && memcmp(buf + off, magic, mlen) == 0;
}

#define HAS(buf, len, off, lit) has(buf, len, off, lit, sizeof(lit) - 1)

static void set_format(struct kl_image_info *out, const char *name)
{
	snprintf(out->format, sizeof out->format, "%s", name);
}

static bool detect_head(const unsigned char *h, size_t n, struct kl_image_info *out)
{
	if (HAS(h, n, 0, "QFI\xfb") && n >= 8) {
		out->version = be32(h + 4);
		set_format(out, out->version == 1 ? "qcow" : "qcow2");
		if (n >= 32) {
			out->has_backing = be64(h + 8) != 0;   /* backing_file_offset */
			out->virtual_size = be64(h + 24);      /* size, both versions */
		}
		return true;
	}
	if (HAS(h, n, 0, "QED\0")) {
		set_format(out, "qed");
		if (n >= 56) {
			out->has_backing = (le64(h + 16) & 1) != 0;  /* QED_F_BACKING_FILE */
			out->virtual_size = le64(h + 48);
		}
		return true;
	}
	if (HAS(h, n, 0, "KDMV")) {                      /* VMDK4 sparse extent */
		set_format(out, "vmdk");
		if (n >= 20)
			out->virtual_size = le64(h + 12) * 512;  /* capacity in sectors */
		return true;
	}
	if (HAS(h, n, 0, "COWD") || HAS(h, n, 0, "# Disk DescriptorFile") ||
	    HAS(h, n, 0, "\xef\xbb\xbf# Disk DescriptorFile")) {
		set_format(out, "vmdk");
		return true;
	}
	if (n >= 0x44 && le32(h + 0x40) == 0xbeda107f) {  /* VDI signature */
		set_format(out, "vdi");
		if (n >= 0x178)
			out->virtual_size = le64(h + 0x170);
		return true;
	}
	if (HAS(h, n, 0, "vhdxfile")) {
		set_format(out, "vhdx");
		return true;
	}
	if (HAS(h, n, 0, "conectix")) {                  /* dynamic VHD: footer copy first */
		set_format(out, "vpc");
		if (n >= 64) {                           /* reads up to h[63] */
			out->virtual_size = be64(h + 48);
			out->has_backing = be32(h + 60) == 4;    /* differencing disk */
		}
		return true;
	}
	if (HAS(h, n, 0, "LUKS\xba\xbe")) {
		set_format(out, "luks");
		if (n >= 8)
			out->version = (unsigned)h[6] << 8 | h[7];
		return true;
	}
	if (HAS(h, n, 0, "WithoutFreeSpace") || HAS(h, n, 0, "WithouFreSpacExt")) {
		set_format(out, "parallels");
		if (n >= 44)
			out->virtual_size = le64(h + 36) * 512;
		return true;
	}
	if (HAS(h, n, 0, "Bochs Virtual HD Image")) {
		set_format(out, "bochs");
		return true;
	}
	if (HAS(h, n, 0, "#!/bin/sh\n#V2.0 Format\n")) {
		set_format(out, "cloop");
		return true;
	}
	return false;
}

static bool detect_tail(const unsigned char *t, size_t n, struct kl_image_info *out)
{
	if (HAS(t, n, 0, "conectix")) {                  /* fixed VHD: footer only */
		set_format(out, "vpc");
		if (n >= 62)
			out->virtual_size = be64(t + 48);
		return true;
	}
	if (HAS(t, n, 0, "koly")) {                      /* DMG trailer */
		set_format(out, "dmg");
		return true;
	}
	return false;
}

void kl_image_detect(const unsigned char *head, size_t head_len, const unsigned char *tail, size_t tail_len,
		     struct kl_image_info *out)
{
	memset(out, 0, sizeof *out);
	if (head && detect_head(head, head_len, out))
		return;
	if (tail && detect_tail(tail, tail_len, out))
		return;
	set_format(out, "raw");
}
