/* Dataset files: write -> open -> read_rows round trips, and every refusal of a bad file. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/h5util.h"
#include "h5testutil.h"

static int setup(void **state) {
  (void)state;
  return kd_test_h5_setup("dataset");
}

static uint64_t rng_state = 12345;
static uint64_t next_u64(void) { return kd_test_xorshift64(&rng_state); }

/* Creates a 1-D dataset `name` of n values of file type ftype from memory of type mtype. */
static void make_1d(hid_t f, const char *name, hid_t ftype, hid_t mtype, hsize_t n,
                    const void *data) {
  hid_t space = H5Screate_simple(1, &n, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, name, ftype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(d >= 0);
  if (n) assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(space);
}

static void set_num_classes(hid_t f, const char *dset, int32_t nc) {
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  kd_error err;
  assert_int_equal(kd_h5_write_attr_int(d, "num_classes", nc, &err), 0);
  H5Dclose(d);
}

/* ---- Round trips ---- */

static void check_rows(kd_dataset *ds, const void *x, const int32_t *y, const int64_t *rows,
                       size_t n) {
  size_t row_bytes = ds->sample_size * (ds->x_is_u8 ? 1 : sizeof(float));
  unsigned char *xo = malloc(n * row_bytes);
  int32_t *yo = malloc(n * sizeof *yo);
  KD_OK(kd_dataset_read_rows(ds, rows, n, xo, yo, err));
  for (size_t i = 0; i < n; i++) {
    if (memcmp(xo + i * row_bytes, (const unsigned char *)x + rows[i] * row_bytes, row_bytes))
      fail_msg("x of request %zu (row %lld) differs", i, (long long)rows[i]);
    assert_int_equal(yo[i], y[rows[i]]);
  }
  /* Without labels. */
  memset(xo, 0, n * row_bytes);
  KD_OK(kd_dataset_read_rows(ds, rows, n, xo, NULL, err));
  for (size_t i = 0; i < n; i++)
    assert_memory_equal(xo + i * row_bytes, (const unsigned char *)x + rows[i] * row_bytes,
                        row_bytes);
  free(xo);
  free(yo);
}

static void round_trip_u8(void **state) {
  (void)state;
  const int64_t n = 1000, shape[3] = {1, 28, 28}; /* 784 B rows: 334 rows per chunk, 3 chunks */
  uint8_t *x = malloc((size_t)n * 784);
  int32_t *y = malloc((size_t)n * sizeof *y);
  for (int64_t i = 0; i < n * 784; i++) x[i] = (uint8_t)next_u64();
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(next_u64() % 10);
  const char *path = kd_test_tmp_path("u8.h5");
  KD_OK(kd_dataset_write(path, x, 1, n, 3, shape, y, 10, 1.0f / 255, 0.2860f, 0.3530f, err));
  assert_false(kd_test_exists(kd_test_tmp_path("u8.h5.tmp")));

  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_string_equal(ds.path, path);
  assert_int_equal(ds.num_rows, n);
  assert_int_equal(ds.sample_ndim, 3);
  assert_int_equal(ds.sample_shape[0], 1);
  assert_int_equal(ds.sample_shape[1], 28);
  assert_int_equal(ds.sample_shape[2], 28);
  assert_int_equal(ds.sample_size, 784);
  assert_true(ds.x_is_u8);
  assert_true(ds.scale == 1.0f / 255 && ds.mean == 0.2860f && ds.std == 0.3530f);
  assert_int_equal(ds.num_classes, 10);
  assert_false(ds.has_teacher);
  KD_OK(kd_dataset_check_labels(&ds, err));

  int64_t rows[300];
  kd_test_random_rows(rows, 300, n, &rng_state);
  check_rows(&ds, x, y, rows, 300);
  /* A sorted run crossing the chunk boundaries at 334 and 668, read straight into the output. */
  int64_t seq[500];
  for (int i = 0; i < 500; i++) seq[i] = 300 + i;
  check_rows(&ds, x, y, seq, 500);
  /* Every row, reversed. */
  int64_t *all = malloc((size_t)n * sizeof *all);
  for (int64_t i = 0; i < n; i++) all[i] = n - 1 - i;
  check_rows(&ds, x, y, all, (size_t)n);
  /* One row; zero rows is a no-op. */
  check_rows(&ds, x, y, &rows[7], 1);
  KD_OK(kd_dataset_read_rows(&ds, rows, 0, NULL, NULL, err));
  free(all);

  /* A row out of range is named. */
  kd_error e = {{0}};
  int64_t bad[3] = {5, 1000, 2};
  uint8_t buf[3 * 784];
  assert_int_equal(kd_dataset_read_rows(&ds, bad, 3, buf, NULL, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "row 1000", "1000 rows", NULL);
  bad[1] = -1;
  assert_int_equal(kd_dataset_read_rows(&ds, bad, 3, buf, NULL, &e), -1);
  kd_test_assert_msg_has(e.msg, "row -1", NULL);
  kd_dataset_close(&ds);
  kd_dataset_close(&ds); /* twice is harmless */
  free(x);
  free(y);
}

static void round_trip_f32(void **state) {
  (void)state;
  const int64_t n = 200, shape[1] = {777}; /* 3108 B rows: 84 rows per chunk */
  float *x = malloc((size_t)n * 777 * sizeof *x);
  int32_t *y = malloc((size_t)n * sizeof *y);
  kd_test_fill_uniform(x, (size_t)n * 777, -3.0f, 3.0f, 7);
  x[5] = -0.0f;
  x[6] = 1e-40f; /* subnormal: bit-exact too */
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % 3);
  const char *path = kd_test_tmp_path("f32.h5");
  KD_OK(kd_dataset_write(path, x, 0, n, 1, shape, y, 3, 1.0f, 0.0f, 1.0f, err));
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_false(ds.x_is_u8);
  assert_int_equal(ds.sample_ndim, 1);
  assert_int_equal(ds.sample_size, 777);
  assert_int_equal(ds.num_classes, 3);
  int64_t rows[150];
  kd_test_random_rows(rows, 150, n, &rng_state);
  check_rows(&ds, x, y, rows, 150);
  int64_t seq[120];
  for (int i = 0; i < 120; i++) seq[i] = 40 + i;
  check_rows(&ds, x, y, seq, 120);
  kd_dataset_close(&ds);

  /* The file is what the design says: types, attributes, chunks, filters. */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char s[64];
  kd_error err;
  assert_int_equal(kd_h5_read_attr_string(f, "format", path, s, sizeof s, &err), 0);
  assert_string_equal(s, "kdcl-dataset");
  int32_t v[4];
  size_t nv;
  assert_int_equal(kd_h5_read_attr_ints(f, "format_version", path, v, 4, &nv, &err), 0);
  assert_true(nv == 2 && v[0] == 1 && v[1] == 0);
  hid_t d = H5Dopen2(f, "/inputs/x", H5P_DEFAULT);
  assert_int_equal(kd_h5_read_attr_string(d, "layout", path, s, sizeof s, &err), 0);
  assert_string_equal(s, "flat");
  hid_t t = H5Dget_type(d);
  assert_true(H5Tequal(t, H5T_IEEE_F32LE) > 0);
  H5Tclose(t);
  hid_t dcpl = H5Dget_create_plist(d);
  hsize_t chunk[2];
  assert_int_equal(H5Pget_chunk(dcpl, 2, chunk), 2);
  assert_true(chunk[0] * 777 * 4 <= 1024 * 1024 && chunk[0] * 777 * 4 >= 64 * 1024 / 2);
  assert_int_equal(H5Pget_nfilters(dcpl), 0);
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  free(x);
  free(y);
}

/* A file written by hand (as with h5py): no format attributes, float64 inputs, int64 labels. */
static void hand_written_file_is_accepted(void **state) {
  (void)state;
  const char *path = kd_test_tmp_path("hand.h5");
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  double x[5][4];
  int64_t y[5] = {0, 1, 2, 1, 0};
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) x[i][j] = i * 10 + j + 0.5;
  hsize_t dims[2] = {5, 4};
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, "/inputs/x", H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
  H5Dclose(d);
  H5Sclose(space);
  H5Pclose(lcpl);
  make_1d(f, "/labels/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 5, y);
  set_num_classes(f, "/labels/y", 3);
  H5Fclose(f);

  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_false(ds.x_is_u8);
  assert_true(ds.scale == 1.0f && ds.mean == 0.0f && ds.std == 1.0f);
  KD_OK(kd_dataset_check_labels(&ds, err));
  int64_t rows[3] = {4, 0, 4};
  float xo[12];
  int32_t yo[3];
  KD_OK(kd_dataset_read_rows(&ds, rows, 3, xo, yo, err));
  assert_true(xo[0] == 40.5f && xo[3] == 43.5f && xo[4] == 0.5f && xo[8] == 40.5f);
  assert_true(yo[0] == 0 && yo[1] == 0 && yo[2] == 0);
  kd_dataset_close(&ds);
}

/* ---- Refusals ---- */

static void mismatched_row_counts(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("rows.h5", 100, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  assert_true(H5Ldelete(f, "/labels/y", H5P_DEFAULT) >= 0);
  int32_t y[99] = {0};
  make_1d(f, "/labels/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 99, y);
  set_num_classes(f, "/labels/y", 10);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "/labels/y has 99 rows but /inputs/x has 100", NULL);
}

static void missing_labels(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("nolabels.h5", 10, 10, 1);
  kd_test_h5_delete(path, "/labels/y", NULL);
  kd_test_expect_open_fails(path, "missing /labels/y", NULL);
  /* And without the whole group. */
  kd_test_h5_delete(path, "/labels", NULL);
  kd_test_expect_open_fails(path, "missing /labels/y", NULL);
}

static void missing_inputs(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("noinputs.h5", 10, 10, 1);
  kd_test_h5_delete(path, "/inputs", NULL);
  kd_test_expect_open_fails(path, "missing /inputs/x", NULL);
}

static void float_labels(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("floatlabels.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  assert_true(H5Ldelete(f, "/labels/y", H5P_DEFAULT) >= 0);
  float y[10] = {0};
  make_1d(f, "/labels/y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 10, y);
  set_num_classes(f, "/labels/y", 10);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "/labels/y has type float32", "labels must be integers");
}

static void wrong_input_type(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("int16x.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  assert_true(H5Ldelete(f, "/inputs/x", H5P_DEFAULT) >= 0);
  int16_t x[10] = {0};
  make_1d(f, "/inputs/x", H5T_STD_I16LE, H5T_NATIVE_INT16, 10, x);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "/inputs/x has type int16", "uint8 or float32");
}

static void rank1_inputs(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("rank1.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  assert_true(H5Ldelete(f, "/inputs/x", H5P_DEFAULT) >= 0);
  uint8_t x[10] = {0};
  make_1d(f, "/inputs/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 10, x);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "/inputs/x has shape [10]", "2 to 4 dimensions");
}

static void wrong_format_string(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("format.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  kd_error err;
  assert_int_equal(kd_h5_write_attr_string(f, "format", "kdcl-checkpoint", &err), 0);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "format is \"kdcl-checkpoint\"", "\"kdcl-dataset\"");
}

static void newer_format_version(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("version.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(path);
  kd_error err;
  int32_t v[2] = {2, 0};
  assert_int_equal(kd_h5_write_attr_ints(f, "format_version", v, 2, &err), 0);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "format_version is [2, 0]", "1.x");
  /* A newer minor version is fine. */
  f = kd_test_h5_open_rw(path);
  v[0] = 1, v[1] = 7;
  assert_int_equal(kd_h5_write_attr_ints(f, "format_version", v, 2, &err), 0);
  H5Fclose(f);
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  kd_dataset_close(&ds);
}

static void zero_rows(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("empty.h5", 0, 10, 1);
  kd_test_expect_open_fails(path, "/inputs/x has 0 rows", NULL);
}

static void missing_num_classes(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("nonc.h5", 10, 10, 1);
  kd_test_h5_delete(path, "/labels/y", "num_classes");
  kd_test_expect_open_fails(path, "/labels/y has no attribute num_classes", NULL);
  hid_t f = kd_test_h5_open_rw(path);
  set_num_classes(f, "/labels/y", 0);
  H5Fclose(f);
  kd_test_expect_open_fails(path, "/labels/y attribute num_classes is 0", NULL);
}

static void label_out_of_range(void **state) {
  (void)state;
  const int64_t n = 70000, shape[1] = {2}; /* labels span two check blocks */
  uint8_t *x = calloc((size_t)n, 2);
  int32_t *y = calloc((size_t)n, sizeof *y);
  y[66000] = 10;
  y[68000] = -1;
  const char *path = kd_test_tmp_path("range.h5");
  KD_OK(kd_dataset_write(path, x, 1, n, 1, shape, y, 10, 1, 0, 1, err));
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  kd_error e = {{0}};
  assert_int_equal(kd_dataset_check_labels(&ds, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "/labels/y row 66000 has label 10", "[0, 10)", NULL);
  kd_dataset_close(&ds);
  free(x);
  free(y);

  /* int64 labels beyond int32 are refused, not clipped. */
  const char *p2 = kd_test_write_dataset("range64.h5", 10, 10, 1);
  hid_t f = kd_test_h5_open_rw(p2);
  H5Ldelete(f, "/labels/y", H5P_DEFAULT);
  int64_t y64[10] = {0, 1, 2, 3, (int64_t)1 << 40, 5, 6, 7, 8, 9};
  make_1d(f, "/labels/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 10, y64);
  set_num_classes(f, "/labels/y", 10);
  H5Fclose(f);
  KD_OK(kd_dataset_open(&ds, p2, err));
  assert_int_equal(kd_dataset_check_labels(&ds, &e), -1);
  kd_test_assert_msg_has(e.msg, p2, "/labels/y", "int32 range", NULL);
  int64_t rows[2] = {4, 1};
  uint8_t xb[128];
  int32_t yb[2];
  assert_int_equal(kd_dataset_read_rows(&ds, rows, 2, xb, yb, &e), -1);
  kd_test_assert_msg_has(e.msg, p2, "/labels/y", "int32 range", NULL);
  kd_dataset_close(&ds);
}

static void not_hdf5(void **state) {
  (void)state;
  const char *path = kd_test_tmp_path("text.h5");
  kd_test_write_file(path, "w",
                     "this is not an HDF5 file, just some text that is long enough to be read\n");
  kd_test_expect_open_fails(path, "not an HDF5 file", NULL);
  const char *empty = kd_test_tmp_path("empty-file.h5");
  kd_test_write_file(empty, "w", "");
  kd_test_expect_open_fails(empty, "not an HDF5 file", NULL);
}

static void truncated(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("trunc.h5", 2000, 10, 1);
  kd_test_truncate_to_half(path);
  kd_test_expect_open_fails(path, "truncated HDF5 file (partial copy or crash?)", NULL);
}

static void missing_file(void **state) {
  (void)state;
  const char *path = kd_test_tmp_path("no-such-file.h5");
  kd_test_expect_open_fails(path, "no such file", NULL);
  kd_test_expect_open_fails(kd_test_tmp_dir(), "is a directory", NULL);
}

static void write_refuses_bad_arguments(void **state) {
  (void)state;
  kd_error e = {{0}};
  uint8_t x[4] = {0};
  int32_t y[1] = {0};
  int64_t shape[1] = {4};
  assert_int_equal(
      kd_dataset_write(kd_test_tmp_path("bad.h5"), x, 1, 1, 1, shape, y, 0, 1, 0, 1, &e), -1);
  kd_test_assert_msg_has(e.msg, "num_classes", NULL);
  assert_int_equal(
      kd_dataset_write("/nonexistent-dir-kdcl/d.h5", x, 1, 1, 1, shape, y, 2, 1, 0, 1, &e), -1);
  kd_test_assert_msg_has(e.msg, "/nonexistent-dir-kdcl/d.h5", "does not exist", NULL);
}

/* A file cut short, written to or replaced after it was opened: the next read fails (libhdf5
 * would read a lost part as zeros) and names the file; an untouched file reads on. */
static void file_changed_after_open(void **state) {
  (void)state;
  const char *names[3] = {"cut.h5", "touched.h5", "replaced.h5"};
  for (int c = 0; c < 3; c++) {
    const char *path = kd_test_write_dataset(names[c], 500, 10, 1);
    kd_dataset ds;
    KD_OK(kd_dataset_open(&ds, path, err));
    int64_t rows[4] = {0, 1, 250, 499};
    unsigned char x[4 * 64];
    int32_t y[4];
    KD_OK(kd_dataset_read_rows(&ds, rows, 4, x, y, err));
    if (c == 0) {
      assert_int_equal(truncate(path, ds.file_size / 2), 0);
    } else if (c == 1) {
      struct timespec later[2] = {{0, UTIME_OMIT}, {ds.file_mtime_ns / 1000000000 + 5, 0}};
      assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
    } else {
      char moved[4200];
      snprintf(moved, sizeof moved, "%s.old", path);
      assert_int_equal(rename(path, moved), 0);
      kd_test_write_dataset(names[c], 500, 10, 1);
    }
    kd_error e = {{0}};
    assert_int_equal(kd_dataset_read_rows(&ds, rows, 4, x, y, &e), -1);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "changed while it was being read"));
    if (c == 2) assert_non_null(strstr(e.msg, "replaced by another file"));
    kd_dataset_close(&ds);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(file_changed_after_open),
      cmocka_unit_test(round_trip_u8),
      cmocka_unit_test(round_trip_f32),
      cmocka_unit_test(hand_written_file_is_accepted),
      cmocka_unit_test(mismatched_row_counts),
      cmocka_unit_test(missing_labels),
      cmocka_unit_test(missing_inputs),
      cmocka_unit_test(float_labels),
      cmocka_unit_test(wrong_input_type),
      cmocka_unit_test(rank1_inputs),
      cmocka_unit_test(wrong_format_string),
      cmocka_unit_test(newer_format_version),
      cmocka_unit_test(zero_rows),
      cmocka_unit_test(missing_num_classes),
      cmocka_unit_test(label_out_of_range),
      cmocka_unit_test(not_hdf5),
      cmocka_unit_test(truncated),
      cmocka_unit_test(missing_file),
      cmocka_unit_test(write_refuses_bad_arguments),
  };
  return cmocka_run_group_tests(tests, setup, kd_test_h5_teardown);
}
