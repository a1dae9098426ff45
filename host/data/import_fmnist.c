/* Fashion-MNIST: IDX files -> kdcl datasets, with the normalisation of the training pixels. */
#include "data/import_fmnist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/dataset.h"
#include "data/idx.h"

typedef struct split {
  const char *prefix, *out_name;
  int64_t rows;
} split;

static int read_split(const char *src, const split *s, kd_idx *images, kd_idx *labels,
                      kd_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", src, s->prefix);
  if (kd_idx_read(path, 3, images, err)) return -1;
  if (images->dims[0] != s->rows || images->dims[1] != 28 || images->dims[2] != 28) {
    kd_fail(err, "%s: expected %lld images of 28x28, found %lld of %lldx%lld", path,
            (long long)s->rows, (long long)images->dims[0], (long long)images->dims[1],
            (long long)images->dims[2]);
    kd_idx_free(images);
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", src, s->prefix);
  if (kd_idx_read(path, 1, labels, err)) {
    kd_idx_free(images);
    return -1;
  }
  int64_t bad = -1;
  for (int64_t i = 0; i < labels->dims[0] && bad < 0; i++)
    if (labels->data[i] > 9) bad = i;
  if (labels->dims[0] != s->rows || bad >= 0) {
    if (bad >= 0)
      kd_fail(err, "%s: label %d at row %lld is outside 0..9", path, labels->data[bad],
              (long long)bad);
    else
      kd_fail(err, "%s: expected %lld labels, found %lld", path, (long long)s->rows,
              (long long)labels->dims[0]);
    kd_idx_free(images);
    kd_idx_free(labels);
    return -1;
  }
  return 0;
}

int kd_import_fashion_mnist(const char *src_dir, const char *out_dir, kd_error *err) {
  const split splits[2] = {{"train", "fashion-mnist-train.h5", 60000},
                           {"t10k", "fashion-mnist-test.h5", 10000}};
  kd_idx images[2], labels[2];
  for (int s = 0; s < 2; s++)
    if (read_split(src_dir, &splits[s], &images[s], &labels[s], err)) {
      if (s) {
        kd_idx_free(&images[0]);
        kd_idx_free(&labels[0]);
      }
      return -1;
    }
  /* Normalisation from the training pixels only, so test data is never looked at. */
  double sum = 0, sum_sq = 0;
  int64_t n = images[0].dims[0] * 28 * 28;
  for (int64_t i = 0; i < n; i++) {
    double v = images[0].data[i] / 255.0;
    sum += v;
    sum_sq += v * v;
  }
  double mean = sum / (double)n, std = sqrt(sum_sq / (double)n - mean * mean);
  int rc = 0;
  for (int s = 0; s < 2 && rc == 0; s++) {
    int64_t rows = images[s].dims[0];
    int32_t *y = malloc((size_t)rows * sizeof *y);
    if (!y) {
      rc = kd_fail(err, "out of host memory");
      break;
    }
    for (int64_t i = 0; i < rows; i++) y[i] = labels[s].data[i];
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", out_dir, splits[s].out_name);
    const int64_t shape[3] = {1, 28, 28};
    rc = kd_dataset_write(path, images[s].data, 1, rows, 3, shape, y, 10, 1.0f / 255.0f,
                          (float)mean, (float)std, err);
    free(y);
  }
  for (int s = 0; s < 2; s++) {
    kd_idx_free(&images[s]);
    kd_idx_free(&labels[s]);
  }
  return rc;
}
