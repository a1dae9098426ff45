/* Shared fixtures for the unit tests of HDF5 files. */
#include "h5testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/h5util.h"

static char tmpdir[64];

int kd_test_h5_setup(const char *tag) {
  kd_h5_init();
  snprintf(tmpdir, sizeof tmpdir, "/tmp/kdcl-%s-XXXXXX", tag);
  return mkdtemp(tmpdir) ? 0 : -1;
}

int kd_test_h5_teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

const char *kd_test_tmp_dir(void) { return tmpdir; }

const char *kd_test_tmp_path(const char *name) {
  static char buf[16][256];
  static int k;
  char *p = buf[k++ % 16];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  return p;
}

hid_t kd_test_h5_open_rw(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  assert_true(f >= 0);
  return f;
}

void kd_test_h5_delete(const char *path, const char *obj, const char *attr) {
  hid_t f = kd_test_h5_open_rw(path);
  if (attr) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    assert_true(o >= 0);
    assert_true(H5Adelete(o, attr) >= 0);
    H5Oclose(o);
  } else {
    assert_true(H5Ldelete(f, obj, H5P_DEFAULT) >= 0);
  }
  H5Fclose(f);
}

const char *kd_test_write_dataset(const char *name, int64_t n, int C, int u8) {
  const char *path = kd_test_tmp_path(name);
  const int64_t features = u8 ? 64 : 4, shape_u8[3] = {1, 8, 8}, shape_f32[1] = {4};
  void *x = malloc((size_t)(n * features) * (u8 ? 1 : sizeof(float)) + 1);
  int32_t *y = malloc((size_t)n * sizeof *y + 1);
  assert_true(x && y);
  for (int64_t i = 0; i < n * features; i++) {
    if (u8) ((uint8_t *)x)[i] = (uint8_t)(i * 7);
    else ((float *)x)[i] = (float)i * 0.5f;
  }
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % C);
  if (u8)
    KD_OK(kd_dataset_write(path, x, 1, n, 3, shape_u8, y, C, 1.0f / 255, 0.5f, 0.25f, err));
  else
    KD_OK(kd_dataset_write(path, x, 0, n, 1, shape_f32, y, C, 1, 0, 1, err));
  free(x);
  free(y);
  return path;
}

void kd_test_expect_open_fails(const char *path, const char *needle1, const char *needle2) {
  kd_dataset ds;
  kd_error err = {{0}};
  assert_int_equal(kd_dataset_open(&ds, path, &err), -1);
  assert_true(ds.file < 0 && ds.x < 0 && ds.y < 0 && ds.t_logits < 0 && ds.t_idx < 0 &&
              ds.t_logp < 0);
  print_message("refused: %s\n", err.msg);
  kd_test_assert_msg_has(err.msg, path, needle1, needle2, NULL);
}

void kd_test_random_rows(int64_t *rows, size_t n, int64_t num_rows, uint64_t *rng) {
  for (size_t i = 0; i < n; i++) rows[i] = (int64_t)(kd_test_xorshift64(rng) % (uint64_t)num_rows);
  /* Make sure there are duplicates and both ends. */
  rows[1] = rows[0];
  rows[n / 2] = rows[3];
  rows[2] = num_rows - 1;
  rows[5] = 0;
}
