/* Logits files: one float32 [N, C] dataset, written atomically. */
#include "data/logits.h"

#include "data/h5util.h"

int kd_logits_write(const char *path, const float *logits, int64_t n, int64_t c, kd_error *err) {
  if (n < 0 || c < 1 || (n > 0 && c > INT64_MAX / n))
    return kd_fail(err, "%s: bad logits shape [%lld, %lld]", path, (long long)n, (long long)c);
  if (n > 0 && !logits) return kd_fail(err, "%s: no logits to write", path);
  kd_h5_writer w;
  if (kd_h5_writer_begin(&w, path, "kdcl-logits", err)) return -1;
  int64_t dims[2] = {n, c};
  if (kd_h5_write_dataset(w.file, "/logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, logits,
                          err)) {
    kd_fail_context(err, "%s", path);
    kd_h5_writer_abort(&w);
    return -1;
  }
  return kd_h5_writer_commit(&w, err);
}
