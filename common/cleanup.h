/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Scope-bound cleanup helpers (__attribute__((cleanup))), in the style of systemd/crun. */
#ifndef KL_CLEANUP_H
#define KL_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>
#include <json-c/json.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void kl_freep(void *p) { free(*(void **)p); }
static inline void kl_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void kl_fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void kl_closedirp(DIR **d) { if (*d) closedir(*d); }
static inline void kl_json_putp(json_object **o) { if (*o) json_object_put(*o); }

#define _cleanup_free_ _cleanup_(kl_freep)
#define _cleanup_close_ _cleanup_(kl_closep)
#define _cleanup_fclose_ _cleanup_(kl_fclosep)
#define _cleanup_closedir_ _cleanup_(kl_closedirp)
#define _cleanup_json_ _cleanup_(kl_json_putp)

/* Hand ownership out of a cleanup-managed variable. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _kl_p = *(pp); *(pp) = NULL; _kl_p; })
#define steal_fd(fdp) ({ int _kl_fd = *(fdp); *(fdp) = -1; _kl_fd; })

#endif
