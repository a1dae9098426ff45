/* Dataset files (format "kdcl-dataset"): /inputs/x [N, ...] and /labels/y [N], opened and
 * validated once, then read as batches of arbitrary rows with one HDF5 read per dataset. */
#ifndef KD_DATASET_H
#define KD_DATASET_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct kd_dataset {
  char path[4096];
  hid_t file, x, y; /* open handles */
  int64_t num_rows;
  int sample_ndim;
  int64_t sample_shape[3];
  size_t sample_size;     /* elements per row of /inputs/x */
  int x_is_u8;            /* else float32 (float16/float64 files are converted on read) */
  float scale, mean, std; /* attrs of /inputs/x; each defaults to 1, 0, 1 when absent (also for
                             uint8 inputs: scale is never guessed as 1/255) */
  int num_classes;        /* attr of /labels/y (required) */
  int has_teacher;        /* /teacher group present */
} kd_dataset;

/* Opens and validates path. Checks: root attr `format` (if present) is "kdcl-dataset" and
 * `format_version` (if present) has major 1 (files written by hand with h5py may omit both);
 * /inputs/x is uint8 or a float type, rank 2..4 [N, ...]; /labels/y is an integer [N] that
 * fits int32 ("labels must be integers" otherwise); row counts equal; N > 0; /labels/y attr
 * num_classes >= 1; optional x attrs scale/mean/std finite, std != 0. Every refusal names the
 * file, the object and what was expected, e.g. "data.h5: /labels/y has 99 rows but
 * /inputs/x has 100". On failure nothing stays open (ds->file etc. are negative). */
int kd_dataset_open(kd_dataset *ds, const char *path, kd_error *err);

/* Checks every label is in [0, num_classes), reading 64 Ki labels at a time; the error names
 * the first bad row and its value. */
int kd_dataset_check_labels(kd_dataset *ds, kd_error *err);

/* Reads rows[0..n) (any order, duplicates allowed, each in [0, num_rows)) into x_out
 * (n * sample_size elements: uint8 when x_is_u8, else float, in the order given) and y_out
 * (n int32, or NULL to skip the labels). The rows are sorted and merged into runs; /labels/y
 * is read with one H5Dread over the union of the runs, /inputs/x with one H5Dread per run
 * (for chunked data libhdf5 1.10 maps a union selection element by element, 20x slower; see
 * dataset.c). Strictly increasing rows are read straight into the outputs; otherwise extra
 * memory is one copy of the unique rows plus O(n) indices, independent of the file's size.
 * Errors: a row out of range (named), a label outside int32, an HDF5 read failure. */
int kd_dataset_read_rows(kd_dataset *ds, const int64_t *rows, size_t n, void *x_out, int32_t *y_out,
                         kd_error *err);

/* Closes the handles (safe on a dataset that failed to open or was already closed). */
void kd_dataset_close(kd_dataset *ds);

/* Writes a new dataset file atomically (PATH.tmp, then renamed): x uint8 (x_is_u8) or float32
 * [num_rows, sample_shape[0..sample_ndim)] with sample_ndim 1..3, y int32 [num_rows] (labels
 * are stored as given, not range-checked: see kd_dataset_check_labels), root attrs
 * format="kdcl-dataset", format_version=[1, 0]; x attrs layout ("CHW" when sample_ndim == 3
 * else "flat"), scale, mean, std (float32); y attr num_classes (scalar int32). Chunks of whole
 * rows, 64-128 KiB (one row when a row is larger); uint8 inputs are shuffled and deflated
 * (level 4). num_rows may be 0 (such a file is refused by kd_dataset_open). */
int kd_dataset_write(const char *path, const void *x, int x_is_u8, int64_t num_rows,
                     int sample_ndim, const int64_t *sample_shape, const int32_t *y,
                     int num_classes, float scale, float mean, float std, kd_error *err);

#endif
