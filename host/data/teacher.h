/* Teacher outputs inside datasets: writing /teacher (dense logits or an API-style top-k) into a
 * copy of a dataset crash-safely, and importing top-k log-probabilities from JSONL. Reading is
 * in dataset.h (kd_dataset_open, kd_dataset_check_teacher, kd_dataset_read_teacher_rows). */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include <stdint.h>

#include "data/dataset.h"
#include "runtime/error.h"

/* What to write: kind logits uses logits [n, num_classes]; kind topk uses topk_idx and
 * topk_logp [n, k] (row-major; entries of a row sorted by descending log-probability). */
typedef struct kd_teacher_data {
  kd_teacher_kind kind;
  int64_t n;
  int num_classes;
  int k;
  const float *logits;
  const int32_t *topk_idx;
  const float *topk_logp;
  const char *teacher_id;
} kd_teacher_data;

/* Writes /teacher (replacing any existing /teacher) into a copy of the dataset at data_path:
 * the copy is out_path, or data_path itself when out_path is NULL — in both cases built as
 * OUT.tmp (byte copy of the dataset, then HDF5 edits), fsynced and renamed over OUT, so a kill
 * at any moment leaves the dataset readable and as it was (a kill may leave a stale OUT.tmp,
 * which the next write replaces). Checks n == dataset rows and num_classes == dataset's, and
 * the values as kd_dataset_check_teacher would (NaN/Inf, topk_idx outside [0, C) or repeated in
 * a row, topk_logp > 1e-4), naming the row. teacher_id NULL is written as "" (under 256
 * bytes). Teacher datasets f32/i32 little-endian, row-chunked (chunks of 64-128 KiB of whole
 * rows, one row when a row is larger), uncompressed. Attrs kind, teacher_id, num_classes, k
 * (k = C for logits; t->k is ignored then). A stale space of a replaced /teacher stays in the
 * file (HDF5 does not shrink files). */
int kd_dataset_write_teacher(const char *data_path, const char *out_path, const kd_teacher_data *t,
                             kd_error *err);

/* Top-k log-probabilities from a hosted model's API, one JSON object per line:
 * {"row": i, "top_logprobs": [{"class": c, "logprob": x}, ...]} (other keys are ignored).
 * K = entries of the first line; every line must have exactly K entries; each row of the
 * dataset exactly once; class in [0,C) and not repeated; logprob finite and <= 1e-4; entries
 * are sorted descending on import (ties by class). Blank lines are skipped. Each problem is an
 * error naming the file and line number: "api.jsonl:12: row 5 appears twice (first on line 3)",
 * "api.jsonl:7: not valid JSON", "api.jsonl: rows 4, 9, ... missing (N of M rows have no
 * line)". Writes through kd_dataset_write_teacher with kind topk, teacher_id given or "api". */
int kd_import_teacher_topk_jsonl(const char *jsonl_path, const char *data_path,
                                 const char *out_path, const char *teacher_id, kd_error *err);

/* Shared by the writer and kd_dataset_check_teacher: checks rows [row0, row0 + nrows) of a
 * teacher held in memory (logits [nrows, C] for kind logits; idx and logp [nrows, K] for kind
 * topk). stamp is scratch of C int64 values, all -1 before the first call of a pass (rows must
 * increase across the calls of a pass). Messages read "<prefix>/teacher/logits row 17 has a NaN
 * (class 3)". */
int kd_teacher_check_rows(kd_teacher_kind kind, int num_classes, int k, int64_t row0,
                          int64_t nrows, const float *logits, const int32_t *idx,
                          const float *logp, int64_t *stamp, const char *prefix, kd_error *err);

/* The largest log-probability accepted (rounding slack above 0). */
#define KD_TEACHER_LOGP_MAX 1e-4
/* How far the top-k probabilities may sum above 1 (float rounding of log-probabilities from an
 * API, summed over k entries). */
#define KD_TEACHER_MASS_SLACK 1e-3

#endif
