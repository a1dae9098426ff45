/* Dataset files (format "kdcl-dataset"): /inputs/x [N, ...] and /labels/y [N], opened and
 * validated once, then read as batches of arbitrary rows with one HDF5 read per dataset. */
#ifndef KD_DATASET_H
#define KD_DATASET_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* What /teacher holds: nothing, dense logits [N, C], or an API-style top-k [N, K]. */
typedef enum kd_teacher_kind { KD_TEACHER_NONE, KD_TEACHER_LOGITS, KD_TEACHER_TOPK } kd_teacher_kind;

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
  int has_teacher;        /* teacher_kind != KD_TEACHER_NONE */
  /* /teacher (validated by kd_dataset_open when present). */
  kd_teacher_kind teacher_kind;
  int teacher_classes;    /* attr num_classes (== num_classes) */
  int teacher_k;          /* attr k for topk; num_classes for logits */
  char teacher_id[256];   /* attr teacher_id ("" when absent) */
  hid_t t_logits, t_idx, t_logp; /* open handles of /teacher/logits or /teacher/topk_{idx,logp}
                                    (negative when absent) */
  /* the file as opened: inode, size, modification time (ns). libhdf5 reads a part of the file
   * that is cut off as zeros: every read checks the file is still this one. */
  uint64_t file_ino;
  int64_t file_size, file_mtime_ns;
} kd_dataset;

/* Opens and validates path. Checks: root attr `format` (if present) is "kdcl-dataset" and
 * `format_version` (if present) has major 1 (files written by hand with h5py may omit both);
 * /inputs/x is uint8 or a float type, rank 2..4 [N, ...]; /labels/y is an integer [N] that
 * fits int32 ("labels must be integers" otherwise); row counts equal; N > 0; /labels/y attr
 * num_classes >= 1; optional x attrs scale/mean/std finite, std != 0. Every refusal names the
 * file, the object and what was expected, e.g. "data.h5: /labels/y has 99 rows but
 * /inputs/x has 100". On failure nothing stays open (ds->file etc. are negative).
 * When /teacher is present it is opened and validated too: attrs kind (required, "logits" or
 * "topk"), num_classes (required, equal to /labels/y's: "data.h5: /teacher num_classes 7
 * differs from /labels/y num_classes 10"), k (required for topk, 1 <= k <= num_classes),
 * teacher_id (optional string, under 256 bytes); /teacher/logits float [N, C], or
 * /teacher/topk_idx integer [N, K] and /teacher/topk_logp float [N, K], N equal to the rows of
 * /inputs/x ("data.h5: /teacher/logits has shape [100, 9] but the teacher has 10 classes"). */
int kd_dataset_open(kd_dataset *ds, const char *path, kd_error *err);

/* Flags for kd_dataset_open_flags. KD_DATASET_SKIP_TEACHER: neither open nor validate /teacher
 * (teacher_kind stays NONE); the teacher writer uses it so a broken /teacher can be replaced. */
#define KD_DATASET_SKIP_TEACHER 1u
int kd_dataset_open_flags(kd_dataset *ds, const char *path, unsigned flags, kd_error *err);

/* Checks every label is in [0, num_classes), reading 64 Ki labels at a time; the error names
 * the first bad row and its value. */
int kd_dataset_check_labels(kd_dataset *ds, kd_error *err);

/* Scans the teacher data in bounded-memory chunks: NaN/Inf logits or log-probabilities,
 * topk_idx outside [0,C) or repeated within a row, topk_logp > 1e-4 (not a log-probability) —
 * error names the row, e.g. "data.h5: /teacher/logits row 17 has a NaN". A dataset without a
 * teacher is an error. */
int kd_dataset_check_teacher(kd_dataset *ds, kd_error *err);

/* Fails ("data.h5 changed while it was being read ...") when the file at ds->path is no longer
 * the one opened: cut short, grown, written to or replaced. kd_dataset_read_rows and
 * kd_dataset_read_teacher_rows call it after every read. */
int kd_dataset_check_unchanged(const kd_dataset *ds, kd_error *err);

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

/* Reads the teacher rows matching `rows` (same contract and speed tricks as
 * kd_dataset_read_rows: any order, duplicates allowed): logits_out [n, C] for kind logits;
 * idx_out [n, K] and logp_out [n, K] for kind topk (unused outputs may be NULL and are ignored
 * when not). A dataset without a teacher is an error. */
int kd_dataset_read_teacher_rows(kd_dataset *ds, const int64_t *rows, size_t n, float *logits_out,
                                 int32_t *idx_out, float *logp_out, kd_error *err);

/* Reads every row, in file order and blocks of rows, into x_out [num_rows, sample_size]
 * (stored type), y_out [num_rows] and, when given, the teacher's rows: logits_out
 * [num_rows, C], or idx_out and logp_out [num_rows, K] (NULL: not read). Errors as
 * kd_dataset_read_rows and kd_dataset_read_teacher_rows. */
int kd_dataset_read_all(kd_dataset *ds, void *x_out, int32_t *y_out, float *logits_out,
                        int32_t *idx_out, float *logp_out, kd_error *err);

/* Scans float inputs in bounded-memory blocks for values that are, or become after
 * (x*scale - mean)/std, NaN or Inf; the error names the row. uint8 inputs pass at once. */
int kd_dataset_check_inputs(kd_dataset *ds, kd_error *err);

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
