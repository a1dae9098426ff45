/* safetensors files (the Hugging Face tensor format) written from kdcl tensors, so a checkpoint's
 * /model can go to tools that load safetensors. No C library for it exists in Debian; the format
 * is small: u64 little-endian header length, a JSON header, then the packed tensor bytes. */
#ifndef KD_SAFETENSORS_H
#define KD_SAFETENSORS_H

#include "data/checkpoint.h"
#include "runtime/error.h"

/* One "__metadata__" entry: both strings UTF-8, any length (JSON-escaped on writing). */
typedef struct kd_safetensors_meta {
  const char *key;
  const char *value;
} kd_safetensors_meta;

/* Writes the n tensors to path in the safetensors format, atomically (path.tmp, fsync, rename
 * over path, fsync of the directory; on any failure path is untouched and path.tmp removed).
 *
 * Layout: 8 bytes u64 LE = header length H (a multiple of 8, so the data starts 8-aligned),
 * then H bytes of JSON {"__metadata__": {key: value, ...}, "<name>": {"dtype": "F32" | "I64",
 * "shape": [d0, ...], "data_offsets": [begin, end]}, ...} padded with spaces, then the tensor
 * bytes, little-endian, row-major, packed in the given order with no gaps (offsets are byte
 * offsets from the start of the data). A tensor with idata != NULL is written as I64 from
 * idata, any other as F32 from data; rank 0 (a scalar) has shape []. Names must be non-empty,
 * unique and not "__metadata__"; meta keys unique. n_meta may be 0 (no "__metadata__").
 *
 * Errors (one message in err, naming path): bad or duplicate names, a bad shape, a header that
 * cannot be built, a directory that is missing or not writable, a write that fails (disk full,
 * I/O error), the fsync or rename failing. */
int kd_safetensors_write(const char *path, const kd_named_tensor *tensors, int n,
                         const kd_safetensors_meta *meta, int n_meta, kd_error *err);

#endif
