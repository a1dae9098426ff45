/* Whole-number settings from environment variables, parsed one strict way: unset or empty is
 * "not set"; anything else must be decimal digits only (no sign, space or suffix) within range. */
#ifndef KD_ENV_H
#define KD_ENV_H

#include <stdint.h>

#include "runtime/error.h"

/* Reads variable `name` into *out (untouched when not set; *set says which). Errors name the
 * variable, its value, the range [0, max], and `meaning` (what the number is). */
int kd_env_uint(const char *name, uint64_t max, const char *meaning, uint64_t *out, int *set,
                kd_error *err);

#endif
