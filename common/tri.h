/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A fact that may be unknown: probes answer yes, no, or cannot tell. */
#ifndef KL_TRI_H
#define KL_TRI_H

enum kl_tri { KL_TRI_UNKNOWN = 0, KL_TRI_NO, KL_TRI_YES };

/* "yes", "no" or "unknown": how tables and --explain word it. */
static inline const char *kl_tri_word(enum kl_tri t)
{
	return t == KL_TRI_YES ? "yes" : t == KL_TRI_NO ? "no" : "unknown";
}

#endif
