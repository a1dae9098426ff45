/* Arenas: one cl_mem per class of data (params, grads, optimizer state, activations,
 * workspace). Sizes are planned first (kd_arena_reserve), then the buffer is created once;
 * a tensor is (arena buffer, offset in floats, shape). Nothing is allocated in the step loop. */
#ifndef KD_ARENA_H
#define KD_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/device.h"

/* Offsets are aligned to 16 floats (64 bytes) so vector loads and CLBlast see aligned data. */
#define KD_ARENA_ALIGN 16

typedef struct kd_arena {
  const char *name; /* for messages: "params", "grads", ... */
  cl_mem buf;
  size_t used; /* floats reserved so far (the planned size once planning ends) */
} kd_arena;

typedef struct kd_tensor {
  cl_mem buf;
  size_t off; /* in floats */
  int ndim;
  int64_t shape[4];
} kd_tensor;

/* A place in a buffer: the cl_mem and an offset in floats (or in elements of the buffer's
 * type for non-float buffers). What layer functions take; dims travel as separate arguments. */
typedef struct kd_ref {
  cl_mem buf;
  size_t off;
} kd_ref;

static inline kd_ref kd_at(cl_mem buf, size_t off) { return (kd_ref){buf, off}; }

/* Reserves n floats; returns their offset. Only valid before kd_arena_create. */
size_t kd_arena_reserve(kd_arena *a, size_t n);

/* Creates the device buffer (zero-filled) for everything reserved. An arena of size 0 gets a
 * 64-byte buffer so kernels always have a valid cl_mem. Fails with the arena's name and size
 * when the device cannot hold it. */
int kd_arena_create(kd_device *dev, kd_arena *a, kd_error *err);
void kd_arena_release(kd_arena *a);

/* Number of elements of a tensor shape. */
int64_t kd_tensor_numel(const kd_tensor *t);

/* Blocking host <-> device copies of n floats at a tensor-style (buf, offset). */
int kd_read_floats(kd_device *dev, cl_mem buf, size_t off, size_t n, float *host, kd_error *err);
int kd_write_floats(kd_device *dev, cl_mem buf, size_t off, size_t n, const float *host,
                    kd_error *err);

#endif
