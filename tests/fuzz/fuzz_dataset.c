/* Fuzz target: the dataset reader on arbitrary file contents: kd_dataset_open, the label, input
 * and teacher scans, and a few rows read as training reads them. */
#include <stdlib.h>

#include <hdf5.h>

#include "data/dataset.h"
#include "fuzz.h"

/* Reads rows the way a shuffled batch does (unsorted, one repeated), when they fit in memory
 * a real run would also need. */
static void read_some_rows(kd_dataset *ds, kd_error *err) {
  int64_t n = ds->num_rows;
  int64_t rows[4] = {n - 1, 0, n / 2, n - 1};
  size_t count = 4;
  if (ds->sample_size == 0 || ds->sample_size > ((size_t)4 << 20)) return;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  void *x = malloc(count * ds->sample_size * elem);
  int32_t *y = malloc(count * sizeof *y);
  if (x && y) kd_dataset_read_rows(ds, rows, count, x, y, err);
  free(x);
  free(y);
  if (ds->teacher_kind == KD_TEACHER_NONE || ds->teacher_k <= 0 || ds->teacher_k > (1 << 20))
    return;
  size_t k = (size_t)ds->teacher_k, c = (size_t)ds->teacher_classes;
  if (c > (1 << 20)) return;
  float *logits = malloc(count * (c > k ? c : k) * sizeof(float));
  int32_t *idx = malloc(count * k * sizeof(int32_t));
  float *logp = malloc(count * k * sizeof(float));
  if (logits && idx && logp) kd_dataset_read_teacher_rows(ds, rows, count, logits, idx, logp, err);
  free(logits);
  free(idx);
  free(logp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = kd_fuzz_write_file(data, size);
  if (!path) return 0;
  kd_dataset ds;
  kd_error err;
  if (kd_dataset_open(&ds, path, &err) == 0) {
    kd_dataset_check_labels(&ds, &err);
    kd_dataset_check_inputs(&ds, &err);
    if (ds.teacher_kind != KD_TEACHER_NONE) kd_dataset_check_teacher(&ds, &err);
    read_some_rows(&ds, &err);
    kd_dataset_close(&ds);
  }
  /* libhdf5's free lists keep every block it ever freed (huge ones too, for files that
   * claim huge objects): give them back, or the fuzzer's RSS limit counts them. */
  H5garbage_collect();
  return 0;
}
