/* Element-wise helpers for residual blocks: the join of the two paths, the gradient of the
 * skip path joining the main one, and a copy. Floats; every function enqueues only (no host
 * sync) and returns 0, or -1 with a message in err. n = 0 is a no-op; extents must fit the
 * kernels' 32-bit indices (offset + n < 2^32), else -1. An output may be exactly an input
 * (same buffer and offset) where said; a partial overlap is refused. One launch each. */
#ifndef KD_RESIDUAL_H
#define KD_RESIDUAL_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* y = a + b over n floats (y may alias a or b). */
int kd_add_forward(kd_device *dev, kd_ref y, kd_ref a, kd_ref b, size_t n, kd_error *err);

/* dst += src over n floats (gradient of a residual's skip path joining the main path). src may
 * be dst (doubles it). */
int kd_accumulate(kd_device *dev, kd_ref dst, kd_ref src, size_t n, kd_error *err);

/* dst = src (n floats). dst == src (same buffer and offset) does nothing, without a launch. */
int kd_copy(kd_device *dev, kd_ref dst, kd_ref src, size_t n, kd_error *err);

#endif
