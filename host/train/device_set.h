/* A training set held whole in device memory: its inputs as stored (uint8 or
 * float), labels and teacher rows, read from the file once, and the epoch
 * order. A step then takes its batch with one kernel launch that gathers the
 * batch's rows by position in the order, normalises the inputs and places
 * labels and teacher rows where the trainer reads them: no host copy, no write
 * per step (PoCL charges each command ~5 us, a tenth of a small model's step).
 */
#ifndef KD_DEVICE_SET_H
#define KD_DEVICE_SET_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "nn/arena.h"
#include "runtime/device.h"

typedef struct kd_device_set {
  kd_device *dev;
  int64_t rows;        /* N */
  size_t sample_size;  /* input features per row */
  int x_is_u8;         /* inputs stored as uint8 (else float) */
  size_t teacher_cols; /* columns of the teacher rows held (0: none) */
  int topk;            /* teacher rows are top-k (classes + log-probabilities) */
  cl_mem x;            /* [N, sample_size] of the stored type */
  cl_mem y;            /* int32 [N] */
  cl_mem teacher;      /* float [N, teacher_cols]: dense logits or top-k
                          log-probabilities */
  cl_mem teacher_idx;  /* int32 [N, teacher_cols]: top-k classes */
  cl_mem order;        /* int32 [N]: the epoch order, dataset rows by position */
  int32_t *order_host; /* its host copy, read by the write order_written */
  cl_event order_written;
} kd_device_set;

/* Reads the whole of ds (inputs, labels, and with with_teacher its /teacher
 * rows) into device buffers, in file order and blocks of rows, through mapped
 * memory (no second host copy). Returns 1 when the set is held; 0 when the
 * device cannot hold it (a buffer over the device's largest allocation, or an
 * allocation or mapping refused): nothing is kept and the caller streams the
 * set instead; -1 when a read of the file fails (err says which). */
int kd_device_set_load(kd_device_set *s, kd_device *dev, kd_dataset *ds, int with_teacher,
                       kd_error *err);

/* Copies an epoch order (len positions, each a row in [0, N)) to the device
 * without blocking; the gathers enqueued after it read it. Errors: a row out of
 * range, an OpenCL failure. */
int kd_device_set_order(kd_device_set *s, const int64_t *order, int64_t len, kd_error *err);

/* Enqueues one launch that gathers the n rows at positions [first, first + n)
 * of the order: x_out [n, sample_size] floats = (x * scale - mean) / std (the
 * formula of kd_normalize_inputs, bit for bit); y_out int32 [n] the labels (buf
 * NULL: not wanted); with teacher rows held, teacher_out [n, teacher_cols]
 * floats and, for top-k, teacher_idx_out int32 [n, teacher_cols]
 * (teacher_out.buf NULL: not wanted). Errors: positions past the order, bad
 * std, OpenCL. */
int kd_device_set_gather(const kd_device_set *s, int64_t first, size_t n, kd_ref x_out, float scale,
                         float mean, float std, kd_ref y_out, kd_ref teacher_out,
                         kd_ref teacher_idx_out, kd_error *err);

void kd_device_set_release(kd_device_set *s);

#endif
