/* Logits files (format "kdcl-logits"): the output of kdcl predict. */
#ifndef KD_LOGITS_H
#define KD_LOGITS_H

#include <stdint.h>

#include "runtime/error.h"

/* Writes logits (n rows of c floats, row-major) atomically to path: /logits float32 [n, c]
 * (H5T_IEEE_F32LE, contiguous), root attrs format="kdcl-logits", format_version=[1, 0].
 * n may be 0; c must be >= 1. On failure path is untouched. */
int kd_logits_write(const char *path, const float *logits, int64_t n, int64_t c, kd_error *err);

#endif
