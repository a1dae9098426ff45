/* Settings from environment variables: whole numbers, parsed one strict way (unset or empty is
 * "not set"; anything else must be decimal digits only, no sign, space or suffix, within
 * range), and the cache directory. */
#ifndef KD_ENV_H
#define KD_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* Reads variable `name` into *out (untouched when not set; *set says which). Errors name the
 * variable, its value, the range [0, max], and `meaning` (what the number is). */
int kd_env_uint(const char *name, uint64_t max, const char *meaning, uint64_t *out, int *set,
                kd_error *err);

/* kdcl's cache directory (kernel binaries, GEMM choices, tuned CLBlast parameters):
 * $KDCL_CACHE_DIR, else $XDG_CACHE_HOME/kdcl, else $HOME/.cache/kdcl; "" when none is set. */
void kd_cache_dir(char *buf, size_t len);

#endif
