/* IDX files (the MNIST family's format), gzip-compressed as Debian's dataset-fashion-mnist
 * installs them: big-endian header, magic 0x0803 (u8 images [N, H, W]) or 0x0801 (u8 labels). */
#ifndef KD_IDX_H
#define KD_IDX_H

#include <stdint.h>

#include "runtime/error.h"

typedef struct kd_idx {
  int ndim;
  int64_t dims[3];
  uint8_t *data; /* malloc'd, product(dims) bytes */
} kd_idx;

/* Reads a .gz IDX file of unsigned bytes with `want_ndim` dimensions. Fails naming the file for
 * a bad magic number, a wrong rank, a size over 2^31 bytes, or data shorter than the header
 * says (truncated or corrupt download). */
int kd_idx_read(const char *path, int want_ndim, kd_idx *out, kd_error *err);
void kd_idx_free(kd_idx *idx);

#endif
