/* Teacher outputs in datasets: kd_dataset_write_teacher (in place and to another file, crash-safe
 * protocol), kd_dataset_open's validation of /teacher, kd_dataset_check_teacher and
 * kd_dataset_read_teacher_rows. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "data/h5util.h"
#include "data/teacher.h"
#include "h5testutil.h"

static int setup(void **state) {
  (void)state;
  return kd_test_h5_setup("teacher");
}

static uint64_t rng_state = 987654321;
static uint64_t next_u64(void) { return kd_test_xorshift64(&rng_state); }

static float *random_logits(int64_t n, int C) {
  float *z = malloc((size_t)n * (size_t)C * sizeof *z);
  kd_test_fill_uniform(z, (size_t)n * (size_t)C, -8.0f, 8.0f, next_u64());
  return z;
}

/* A valid top-k teacher: K distinct classes per row, log-probabilities sorted descending. */
static void random_topk(int64_t n, int C, int K, int32_t *idx, float *logp) {
  int *perm = malloc((size_t)C * sizeof *perm);
  for (int64_t r = 0; r < n; r++) {
    for (int c = 0; c < C; c++) perm[c] = c;
    for (int j = 0; j < K; j++) {
      int s = j + (int)(next_u64() % (uint64_t)(C - j));
      int t = perm[j];
      perm[j] = perm[s];
      perm[s] = t;
      idx[r * K + j] = perm[j];
      logp[r * K + j] = (j == 0 ? -logf((float)K) : logp[r * K + j - 1]) - (float)(next_u64() % 1000) / 300.0f;
    }
  }
  free(perm);
}

static void check_logits_rows(kd_dataset *ds, const float *z, int C, const int64_t *rows,
                              size_t n) {
  float *out = malloc(n * (size_t)C * sizeof *out);
  KD_OK(kd_dataset_read_teacher_rows(ds, rows, n, out, NULL, NULL, err));
  for (size_t i = 0; i < n; i++)
    if (memcmp(out + i * (size_t)C, z + rows[i] * C, (size_t)C * sizeof *out))
      fail_msg("teacher logits of request %zu (row %lld) differ", i, (long long)rows[i]);
  free(out);
}

static void check_topk_rows(kd_dataset *ds, const int32_t *idx, const float *logp, int K,
                            const int64_t *rows, size_t n) {
  int32_t *io = malloc(n * (size_t)K * sizeof *io);
  float *lo = malloc(n * (size_t)K * sizeof *lo);
  KD_OK(kd_dataset_read_teacher_rows(ds, rows, n, NULL, io, lo, err));
  for (size_t i = 0; i < n; i++) {
    if (memcmp(io + i * (size_t)K, idx + rows[i] * K, (size_t)K * sizeof *io))
      fail_msg("topk_idx of request %zu (row %lld) differs", i, (long long)rows[i]);
    if (memcmp(lo + i * (size_t)K, logp + rows[i] * K, (size_t)K * sizeof *lo))
      fail_msg("topk_logp of request %zu (row %lld) differs", i, (long long)rows[i]);
  }
  /* Either output alone. */
  memset(io, 0, n * (size_t)K * sizeof *io);
  KD_OK(kd_dataset_read_teacher_rows(ds, rows, n, NULL, io, NULL, err));
  for (size_t i = 0; i < n; i++)
    assert_memory_equal(io + i * (size_t)K, idx + rows[i] * K, (size_t)K * sizeof *io);
  memset(lo, 0, n * (size_t)K * sizeof *lo);
  KD_OK(kd_dataset_read_teacher_rows(ds, rows, n, NULL, NULL, lo, err));
  for (size_t i = 0; i < n; i++)
    assert_memory_equal(lo + i * (size_t)K, logp + rows[i] * K, (size_t)K * sizeof *lo);
  free(io);
  free(lo);
}

/* Asserts the teacher dataset `name` is chunked by whole rows of 64 KiB..1 MiB (or all rows),
 * unfiltered, of file type ftype. */
static void check_layout(hid_t f, const char *name, hid_t ftype, int64_t n, int cols) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  assert_true(d >= 0);
  hid_t t = H5Dget_type(d);
  assert_true(H5Tequal(t, ftype) > 0);
  H5Tclose(t);
  hid_t dcpl = H5Dget_create_plist(d);
  assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
  hsize_t chunk[2];
  assert_int_equal(H5Pget_chunk(dcpl, 2, chunk), 2);
  assert_int_equal(chunk[1], (hsize_t)cols);
  size_t bytes = (size_t)chunk[0] * (size_t)cols * 4;
  assert_true(chunk[0] == (hsize_t)n || (bytes >= 64 * 1024 && bytes <= 1024 * 1024));
  assert_int_equal(H5Pget_nfilters(dcpl), 0);
  H5Pclose(dcpl);
  H5Dclose(d);
}

/* ---- Round trips ---- */

static void logits_in_place(void **state) {
  (void)state;
  const int64_t n = 5000;
  const int C = 10;
  const char *path = kd_test_write_dataset("logits.h5", n, C, 0);
  float *z = random_logits(n, C);
  z[7] = -0.0f;
  z[8] = 1e-40f; /* subnormal: bit-exact */
  kd_teacher_data t = {.kind = KD_TEACHER_LOGITS, .n = n, .num_classes = C, .logits = z,
                       .teacher_id = "resnet-teacher"};
  KD_OK(kd_dataset_write_teacher(path, NULL, &t, err));
  assert_false(kd_test_exists(kd_test_tmp_path("logits.h5.tmp")));

  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_LOGITS);
  assert_true(ds.has_teacher);
  assert_int_equal(ds.teacher_classes, C);
  assert_int_equal(ds.teacher_k, C);
  assert_string_equal(ds.teacher_id, "resnet-teacher");
  assert_true(ds.t_logits >= 0 && ds.t_idx < 0 && ds.t_logp < 0);
  KD_OK(kd_dataset_check_teacher(&ds, err));
  KD_OK(kd_dataset_check_labels(&ds, err));
  int64_t rows[400];
  kd_test_random_rows(rows, 400, n, &rng_state);
  check_logits_rows(&ds, z, C, rows, 400);
  int64_t seq[3000]; /* sorted, crossing chunk boundaries: read straight into the output */
  for (int i = 0; i < 3000; i++) seq[i] = 1000 + i;
  check_logits_rows(&ds, z, C, seq, 3000);
  check_logits_rows(&ds, z, C, &rows[9], 1);
  KD_OK(kd_dataset_read_teacher_rows(&ds, rows, 0, NULL, NULL, NULL, err));
  /* The inputs and labels are still there. */
  float xo[8];
  int32_t yo[2];
  int64_t two[2] = {4999, 3};
  KD_OK(kd_dataset_read_rows(&ds, two, 2, xo, yo, err));
  assert_true(xo[0] == 4999 * 4 * 0.5f && xo[4] == 12 * 0.5f && yo[0] == 9 && yo[1] == 3);
  /* A row out of range is named. */
  kd_error e = {{0}};
  int64_t bad[2] = {3, 5000};
  float buf[20];
  assert_int_equal(kd_dataset_read_teacher_rows(&ds, bad, 2, buf, NULL, NULL, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "row 5000", NULL);
  kd_dataset_close(&ds);

  /* The file is what the design says. */
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t g = H5Gopen2(f, "/teacher", H5P_DEFAULT);
  char s[64];
  int32_t v;
  size_t nv;
  assert_int_equal(kd_h5_read_attr_string(g, "kind", "", s, sizeof s, &e), 0);
  assert_string_equal(s, "logits");
  assert_int_equal(kd_h5_read_attr_ints(g, "num_classes", "", &v, 1, &nv, &e), 0);
  assert_int_equal(v, C);
  assert_int_equal(kd_h5_read_attr_ints(g, "k", "", &v, 1, &nv, &e), 0);
  assert_int_equal(v, C);
  H5Gclose(g);
  check_layout(f, "/teacher/logits", H5T_IEEE_F32LE, n, C);
  H5Fclose(f);
  free(z);
}

static void topk_to_out_path_then_replaced(void **state) {
  (void)state;
  const int64_t n = 3000;
  const int C = 50, K = 7;
  const char *src = kd_test_write_dataset("topk-src.h5", n, C, 0);
  const char *out = kd_test_tmp_path("topk-out.h5");
  assert_int_equal(chmod(src, 0640), 0);
  size_t src_size;
  unsigned char *src_bytes = kd_test_slurp(src, &src_size);
  int32_t *idx = malloc((size_t)n * K * sizeof *idx);
  float *logp = malloc((size_t)n * K * sizeof *logp);
  random_topk(n, C, K, idx, logp);
  kd_teacher_data t = {.kind = KD_TEACHER_TOPK, .n = n, .num_classes = C, .k = K,
                       .topk_idx = idx, .topk_logp = logp, .teacher_id = "api"};
  KD_OK(kd_dataset_write_teacher(src, out, &t, err));
  kd_test_assert_same_bytes(src_bytes, src_size, src);
  assert_false(kd_test_exists(kd_test_tmp_path("topk-out.h5.tmp")));
  struct stat st;
  assert_int_equal(stat(out, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640); /* the dataset's permission bits */

  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, out, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_TOPK);
  assert_int_equal(ds.teacher_classes, C);
  assert_int_equal(ds.teacher_k, K);
  assert_string_equal(ds.teacher_id, "api");
  assert_true(ds.t_logits < 0 && ds.t_idx >= 0 && ds.t_logp >= 0);
  KD_OK(kd_dataset_check_teacher(&ds, err));
  int64_t rows[500];
  kd_test_random_rows(rows, 500, n, &rng_state);
  check_topk_rows(&ds, idx, logp, K, rows, 500);
  int64_t seq[2000];
  for (int i = 0; i < 2000; i++) seq[i] = 500 + i;
  check_topk_rows(&ds, idx, logp, K, seq, 2000);
  /* A logits output is ignored for a topk teacher. */
  float ignored[4];
  int32_t io[7];
  KD_OK(kd_dataset_read_teacher_rows(&ds, rows, 1, ignored, io, NULL, err));
  kd_dataset_close(&ds);
  hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  check_layout(f, "/teacher/topk_idx", H5T_STD_I32LE, n, K);
  check_layout(f, "/teacher/topk_logp", H5T_IEEE_F32LE, n, K);
  H5Fclose(f);

  /* Replacing it in place with a logits teacher leaves no topk datasets behind. */
  float *z = random_logits(n, C);
  kd_teacher_data tl = {.kind = KD_TEACHER_LOGITS, .n = n, .num_classes = C, .logits = z,
                        .teacher_id = NULL};
  KD_OK(kd_dataset_write_teacher(out, NULL, &tl, err));
  KD_OK(kd_dataset_open(&ds, out, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_LOGITS);
  assert_string_equal(ds.teacher_id, "");
  check_logits_rows(&ds, z, C, rows, 500);
  kd_dataset_close(&ds);
  f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_false(kd_h5_exists(f, "/teacher/topk_idx"));
  assert_false(kd_h5_exists(f, "/teacher/topk_logp"));
  H5Fclose(f);
  /* And back to topk (K == C is allowed). */
  int32_t *idx2 = malloc((size_t)n * C * sizeof *idx2);
  float *logp2 = malloc((size_t)n * C * sizeof *logp2);
  random_topk(n, C, C, idx2, logp2);
  kd_teacher_data t2 = {.kind = KD_TEACHER_TOPK, .n = n, .num_classes = C, .k = C,
                        .topk_idx = idx2, .topk_logp = logp2, .teacher_id = "x"};
  KD_OK(kd_dataset_write_teacher(out, NULL, &t2, err));
  KD_OK(kd_dataset_open(&ds, out, err));
  assert_int_equal(ds.teacher_k, C);
  KD_OK(kd_dataset_check_teacher(&ds, err));
  check_topk_rows(&ds, idx2, logp2, C, rows, 500);
  kd_dataset_close(&ds);
  kd_test_assert_same_bytes(src_bytes, src_size, src);
  free(src_bytes);
  free(idx);
  free(logp);
  free(idx2);
  free(logp2);
  free(z);
}

/* Files written by other tools: the library's default (earliest) format and libver latest. */
static void foreign_files_get_a_teacher(void **state) {
  (void)state;
  for (int latest = 0; latest < 2; latest++) {
    const char *path = kd_test_tmp_path(latest ? "latest.h5" : "earliest.h5");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (latest) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    float x[6][2] = {{0}};
    int64_t y[6] = {0, 1, 2, 0, 1, 2};
    int64_t dx[2] = {6, 2}, dy[1] = {6};
    kd_error e = {{0}};
    assert_int_equal(kd_h5_write_dataset(f, "/inputs/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2,
                                         dx, x, &e), 0);
    assert_int_equal(kd_h5_write_dataset(f, "/labels/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dy,
                                         y, &e), 0);
    hid_t d = H5Dopen2(f, "/labels/y", H5P_DEFAULT);
    assert_int_equal(kd_h5_write_attr_int(d, "num_classes", 3, &e), 0);
    H5Dclose(d);
    H5Fclose(f);
    float z[18];
    for (int i = 0; i < 18; i++) z[i] = (float)i - 9.0f;
    kd_teacher_data t = {.kind = KD_TEACHER_LOGITS, .n = 6, .num_classes = 3, .logits = z,
                         .teacher_id = "t"};
    KD_OK(kd_dataset_write_teacher(path, NULL, &t, err));
    kd_dataset ds;
    KD_OK(kd_dataset_open(&ds, path, err));
    int64_t rows[3] = {5, 0, 5};
    float out[9];
    KD_OK(kd_dataset_read_teacher_rows(&ds, rows, 3, out, NULL, NULL, err));
    assert_true(out[0] == 6.0f && out[2] == 8.0f && out[3] == -9.0f && out[6] == 6.0f);
    kd_dataset_close(&ds);
  }
}

/* ---- Refusals on open ---- */

/* A dataset of 100 rows / 10 classes with a valid teacher of the given kind (topk: K = 3). */
static const char *with_teacher(const char *name, kd_teacher_kind kind) {
  const char *path = kd_test_write_dataset(name, 100, 10, 0);
  float z[1000];
  int32_t idx[300];
  float logp[300];
  for (int i = 0; i < 1000; i++) z[i] = (float)(i % 17) - 8.0f;
  for (int r = 0; r < 100; r++)
    for (int j = 0; j < 3; j++) idx[r * 3 + j] = (r + j) % 10, logp[r * 3 + j] = -0.5f - (float)j;
  kd_teacher_data t = {.kind = kind, .n = 100, .num_classes = 10, .k = 3, .logits = z,
                       .topk_idx = idx, .topk_logp = logp, .teacher_id = "t"};
  KD_OK(kd_dataset_write_teacher(path, NULL, &t, err));
  return path;
}

static void set_teacher_attr_int(const char *path, const char *name, int32_t v) {
  hid_t f = kd_test_h5_open_rw(path);
  hid_t g = H5Gopen2(f, "/teacher", H5P_DEFAULT);
  kd_error e;
  assert_int_equal(kd_h5_write_attr_int(g, name, v, &e), 0);
  H5Gclose(g);
  H5Fclose(f);
}

static void set_teacher_attr_string(const char *path, const char *name, const char *v) {
  hid_t f = kd_test_h5_open_rw(path);
  hid_t g = H5Gopen2(f, "/teacher", H5P_DEFAULT);
  kd_error e;
  assert_int_equal(kd_h5_write_attr_string(g, name, v, &e), 0);
  H5Gclose(g);
  H5Fclose(f);
}

/* Replaces /teacher/<name> with a dataset of the given type and shape (zeros). */
static void replace_dset(const char *path, const char *name, hid_t ftype, hid_t mtype, int ndim,
                         int64_t d0, int64_t d1) {
  hid_t f = kd_test_h5_open_rw(path);
  char full[64];
  snprintf(full, sizeof full, "/teacher/%s", name);
  if (kd_h5_exists(f, full)) assert_true(H5Ldelete(f, full, H5P_DEFAULT) >= 0);
  int64_t dims[2] = {d0, d1};
  void *zeros = calloc((size_t)(d0 * (ndim == 2 ? d1 : 1)), 8);
  kd_error e = {{0}};
  assert_int_equal(kd_h5_write_dataset(f, full, ftype, mtype, ndim, dims, zeros, &e), 0);
  free(zeros);
  H5Fclose(f);
}

static void class_count_mismatch(void **state) {
  (void)state;
  const char *path = with_teacher("nc.h5", KD_TEACHER_LOGITS);
  set_teacher_attr_int(path, "num_classes", 7);
  kd_test_expect_open_fails(path, "/teacher num_classes 7 differs from /labels/y num_classes 10",
                            NULL);
  kd_test_h5_delete(path, "/teacher", "num_classes");
  kd_test_expect_open_fails(path, "/teacher has no attribute num_classes", NULL);
}

static void wrong_shapes(void **state) {
  (void)state;
  const char *path = with_teacher("shape.h5", KD_TEACHER_LOGITS);
  replace_dset(path, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 100, 9);
  kd_test_expect_open_fails(
      path, "/teacher/logits has shape [100, 9] but the teacher has 10 classes", NULL);
  replace_dset(path, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 99, 10);
  kd_test_expect_open_fails(path, "/teacher/logits has 99 rows but /inputs/x has 100", NULL);
  replace_dset(path, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, 100, 0);
  kd_test_expect_open_fails(path, "/teacher/logits has shape [100]", "[100, 10]");
  replace_dset(path, "logits", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, 100, 10);
  kd_test_expect_open_fails(path, "/teacher/logits has type int32", "float32");
  kd_test_h5_delete(path, "/teacher/logits", NULL);
  kd_test_expect_open_fails(path, "missing /teacher/logits", NULL);

  const char *p2 = with_teacher("shape-topk.h5", KD_TEACHER_TOPK);
  replace_dset(p2, "topk_logp", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 100, 4);
  kd_test_expect_open_fails(p2, "/teacher/topk_logp has shape [100, 4] but the teacher has k = 3",
                            NULL);
  replace_dset(p2, "topk_logp", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 100, 3);
  replace_dset(p2, "topk_idx", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 100, 3);
  kd_test_expect_open_fails(p2, "/teacher/topk_idx has type float32", "int32");
  /* Other integer types are converted on read. */
  replace_dset(p2, "topk_idx", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, 100, 3);
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, p2, err));
  kd_dataset_close(&ds);
}

static void bad_attributes(void **state) {
  (void)state;
  const char *path = with_teacher("kind.h5", KD_TEACHER_TOPK);
  kd_test_h5_delete(path, "/teacher", "kind");
  kd_test_expect_open_fails(path, "/teacher has no attribute kind", "\"logits\" or \"topk\"");
  set_teacher_attr_string(path, "kind", "probs");
  kd_test_expect_open_fails(path, "/teacher attribute kind is \"probs\"", NULL);
  set_teacher_attr_string(path, "kind", "topk");
  set_teacher_attr_int(path, "k", 0);
  kd_test_expect_open_fails(path, "/teacher attribute k is 0", "[1, 10]");
  set_teacher_attr_int(path, "k", 11);
  kd_test_expect_open_fails(path, "/teacher attribute k is 11", NULL);
  kd_test_h5_delete(path, "/teacher", "k");
  kd_test_expect_open_fails(path, "/teacher has no attribute k", NULL);

  /* /teacher that is not a group. */
  const char *p2 = kd_test_write_dataset("notgroup.h5", 10, 10, 0);
  hid_t f = kd_test_h5_open_rw(p2);
  int64_t d[1] = {3};
  int32_t v[3] = {0};
  kd_error e;
  assert_int_equal(kd_h5_write_dataset(f, "/teacher", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d, v,
                                       &e), 0);
  H5Fclose(f);
  kd_test_expect_open_fails(p2, "/teacher is not a group", NULL);
}

/* A broken /teacher does not stop a new one from replacing it. */
static void broken_teacher_is_replaced(void **state) {
  (void)state;
  const char *path = with_teacher("broken.h5", KD_TEACHER_LOGITS);
  replace_dset(path, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 100, 9);
  kd_test_expect_open_fails(path, "has shape [100, 9]", NULL);
  float z[1000];
  for (int i = 0; i < 1000; i++) z[i] = (float)i;
  kd_teacher_data t = {.kind = KD_TEACHER_LOGITS, .n = 100, .num_classes = 10, .logits = z};
  KD_OK(kd_dataset_write_teacher(path, NULL, &t, err));
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  int64_t r = 99;
  float out[10];
  KD_OK(kd_dataset_read_teacher_rows(&ds, &r, 1, out, NULL, NULL, err));
  assert_true(out[0] == 990.0f && out[9] == 999.0f);
  kd_dataset_close(&ds);
}

/* ---- Value checks ---- */

/* Overwrites element [row, col] of /teacher/<name> (native type mtype) with *value. */
static void poke(const char *path, const char *name, hid_t mtype, int64_t row, int col,
                 const void *value) {
  hid_t f = kd_test_h5_open_rw(path);
  char full[64];
  snprintf(full, sizeof full, "/teacher/%s", name);
  hid_t d = H5Dopen2(f, full, H5P_DEFAULT);
  hid_t fs = H5Dget_space(d);
  hsize_t st[2] = {(hsize_t)row, (hsize_t)col}, one[2] = {1, 1};
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, one, NULL);
  hid_t ms = H5Screate_simple(2, one, NULL);
  assert_true(H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, value) >= 0);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  H5Fclose(f);
}

static void expect_check_fails(const char *path, const char *needle1, const char *needle2) {
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err)); /* values are not scanned on open */
  kd_error e = {{0}};
  assert_int_equal(kd_dataset_check_teacher(&ds, &e), -1);
  print_message("check refused: %s\n", e.msg);
  kd_test_assert_msg_has(e.msg, path, needle1, needle2, NULL);
  kd_dataset_close(&ds);
}

static void nan_and_inf_logits(void **state) {
  (void)state;
  const char *path = with_teacher("nan.h5", KD_TEACHER_LOGITS);
  float nan = NAN, inf = -INFINITY, ok = 0;
  poke(path, "logits", H5T_NATIVE_FLOAT, 17, 3, &nan);
  poke(path, "logits", H5T_NATIVE_FLOAT, 40, 0, &inf);
  expect_check_fails(path, "/teacher/logits row 17 has a NaN", "class 3");
  poke(path, "logits", H5T_NATIVE_FLOAT, 17, 3, &ok);
  expect_check_fails(path, "/teacher/logits row 40 has an infinite value", "-inf");

  /* Beyond the first 4 MiB block of the scan: 150000 rows of 10 logits. */
  const int64_t n = 150000;
  const char *big = kd_test_write_dataset("nan-big.h5", n, 10, 0);
  float *z = random_logits(n, 10);
  kd_teacher_data t = {.kind = KD_TEACHER_LOGITS, .n = n, .num_classes = 10, .logits = z};
  KD_OK(kd_dataset_write_teacher(big, NULL, &t, err));
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, big, err));
  KD_OK(kd_dataset_check_teacher(&ds, err));
  kd_dataset_close(&ds);
  poke(big, "logits", H5T_NATIVE_FLOAT, 149998, 9, &nan);
  expect_check_fails(big, "/teacher/logits row 149998 has a NaN", "class 9");
  free(z);
}

static void bad_topk_values(void **state) {
  (void)state;
  const char *path = with_teacher("topk-bad.h5", KD_TEACHER_TOPK);
  /* Row 5 holds classes 5, 6, 7. */
  int32_t c10 = 10, cneg = -1, c5 = 5, c6 = 6;
  poke(path, "topk_idx", H5T_NATIVE_INT32, 5, 1, &c10);
  expect_check_fails(path, "/teacher/topk_idx row 5 entry 1 is class 10", "outside [0, 10)");
  poke(path, "topk_idx", H5T_NATIVE_INT32, 5, 1, &cneg);
  expect_check_fails(path, "/teacher/topk_idx row 5 entry 1 is class -1", NULL);
  poke(path, "topk_idx", H5T_NATIVE_INT32, 5, 2, &c5);
  poke(path, "topk_idx", H5T_NATIVE_INT32, 5, 1, &c6);
  expect_check_fails(path, "/teacher/topk_idx row 5 has class 5 twice", "entries 0 and 2");
  int32_t c7 = 7;
  poke(path, "topk_idx", H5T_NATIVE_INT32, 5, 2, &c7);
  float pos = 0.5f, tiny = 5e-5f, nan = NAN, inf = INFINITY;
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 2, &pos);
  expect_check_fails(path, "/teacher/topk_logp row 63 entry 2 is 0.5", "not a log-probability");
  /* Rounding slack is accepted: a top entry a hair above 0 with the rest negligible. */
  float far1 = -20.0f, far2 = -21.0f;
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 0, &tiny);
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 1, &far1);
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 2, &far2);
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  KD_OK(kd_dataset_check_teacher(&ds, err));
  kd_dataset_close(&ds);
  /* Rows must be sorted descending and cannot hold more than all the probability. */
  float up = -19.0f, half = -0.6f;
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 2, &up);
  expect_check_fails(path, "/teacher/topk_logp row 63 is not sorted descending", NULL);
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 63, 2, &far2);
  for (int j = 0; j < 3; j++) poke(path, "topk_logp", H5T_NATIVE_FLOAT, 64, j, &half);
  expect_check_fails(path, "/teacher/topk_logp row 64 has probabilities summing to", "> 1");
  for (int j = 0; j < 3; j++) poke(path, "topk_logp", H5T_NATIVE_FLOAT, 64, j, &far2);
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 80, 0, &nan);
  expect_check_fails(path, "/teacher/topk_logp row 80 has a NaN", NULL);
  poke(path, "topk_logp", H5T_NATIVE_FLOAT, 80, 0, &inf);
  expect_check_fails(path, "/teacher/topk_logp row 80 has an infinite value", NULL);
  /* int64 indices beyond int32 are refused, not clipped into range. */
  replace_dset(path, "topk_idx", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, 100, 3);
  int64_t huge = (int64_t)1 << 40;
  poke(path, "topk_idx", H5T_NATIVE_INT64, 2, 0, &huge);
  expect_check_fails(path, "/teacher/topk_idx", "int32 range");
}

/* ---- Writer refusals ---- */

static void write_refusals_leave_file_alone(void **state) {
  (void)state;
  const char *path = with_teacher("keep.h5", KD_TEACHER_TOPK);
  const char *out = kd_test_tmp_path("keep-out.h5");
  size_t size;
  unsigned char *bytes = kd_test_slurp(path, &size);
  float z[1010];
  for (int i = 0; i < 1010; i++) z[i] = 1.0f;
  kd_teacher_data t = {.kind = KD_TEACHER_LOGITS, .n = 101, .num_classes = 10, .logits = z};
  kd_error e = {{0}};
  for (int to_out = 0; to_out < 2; to_out++) {
    const char *o = to_out ? out : NULL;
    t.n = 101, t.num_classes = 10;
    assert_int_equal(kd_dataset_write_teacher(path, o, &t, &e), -1);
    kd_test_assert_msg_has(e.msg, path, "101 rows", "100", NULL);
    t.n = 100, t.num_classes = 11;
    assert_int_equal(kd_dataset_write_teacher(path, o, &t, &e), -1);
    kd_test_assert_msg_has(e.msg, path, "11 classes", "10", NULL);
    t.num_classes = 10;
    z[555] = NAN;
    assert_int_equal(kd_dataset_write_teacher(path, o, &t, &e), -1);
    kd_test_assert_msg_has(e.msg, path, "/teacher/logits row 55 has a NaN", "class 5", NULL);
    z[555] = 1.0f;
    kd_teacher_data tk = {.kind = KD_TEACHER_TOPK, .n = 100, .num_classes = 10, .k = 11,
                          .topk_idx = (const int32_t *)z, .topk_logp = z};
    assert_int_equal(kd_dataset_write_teacher(path, o, &tk, &e), -1);
    kd_test_assert_msg_has(e.msg, "k = 11", NULL);
    char longid[300];
    memset(longid, 'a', sizeof longid - 1);
    longid[299] = '\0';
    t.teacher_id = longid;
    assert_int_equal(kd_dataset_write_teacher(path, o, &t, &e), -1);
    kd_test_assert_msg_has(e.msg, "teacher_id", "255", NULL);
    t.teacher_id = NULL;
    kd_test_assert_same_bytes(bytes, size, path);
    assert_false(kd_test_exists(kd_test_tmp_path("keep.h5.tmp")));
    assert_false(kd_test_exists(out));
    assert_false(kd_test_exists(kd_test_tmp_path("keep-out.h5.tmp")));
  }
  /* A missing output directory; a missing dataset. */
  assert_int_equal(kd_dataset_write_teacher(path, kd_test_tmp_path("no-dir/x.h5"), &t, &e), -1);
  kd_test_assert_msg_has(e.msg, "no-dir", "does not exist", NULL);
  assert_int_equal(kd_dataset_write_teacher(kd_test_tmp_path("missing.h5"), NULL, &t, &e), -1);
  kd_test_assert_msg_has(e.msg, "missing.h5", "no such file", NULL);
  assert_false(kd_test_exists(kd_test_tmp_path("missing.h5")));
  kd_test_assert_same_bytes(bytes, size, path);
  /* The old teacher is intact. */
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_TOPK);
  KD_OK(kd_dataset_check_teacher(&ds, err));
  kd_dataset_close(&ds);
  free(bytes);
}

static void no_teacher(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("plain.h5", 10, 3, 0);
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_NONE);
  assert_false(ds.has_teacher);
  assert_true(ds.t_logits < 0 && ds.t_idx < 0 && ds.t_logp < 0);
  kd_error e = {{0}};
  assert_int_equal(kd_dataset_check_teacher(&ds, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "no /teacher", NULL);
  int64_t r = 0;
  float out[3];
  assert_int_equal(kd_dataset_read_teacher_rows(&ds, &r, 1, out, NULL, NULL, &e), -1);
  kd_test_assert_msg_has(e.msg, path, "no /teacher", NULL);
  kd_dataset_close(&ds);
}

/* The importer: a tiny end-to-end case (the integration test covers the CLI and each error). */
static void jsonl_import(void **state) {
  (void)state;
  const char *path = kd_test_write_dataset("api.h5", 3, 5, 0);
  const char *jl = kd_test_tmp_path("api.jsonl");
  kd_test_write_file(jl, "w",
                     "{\"row\": 2, \"top_logprobs\": [{\"class\": 1, \"logprob\": -2.5}, "
                     "{\"class\": 4, \"logprob\": -0.25}]}\n\n"
                     "{\"row\": 0, \"top_logprobs\": [{\"class\": 0, \"logprob\": -0.5}, "
                     "{\"class\": 3, \"logprob\": -1}]}\n"
                     "{\"row\": 1, \"top_logprobs\": [{\"class\": 2, \"logprob\": -3}, "
                     "{\"class\": 1, \"logprob\": -3}]}\n");
  KD_OK(kd_import_teacher_topk_jsonl(jl, path, NULL, NULL, err));
  kd_dataset ds;
  KD_OK(kd_dataset_open(&ds, path, err));
  assert_int_equal(ds.teacher_kind, KD_TEACHER_TOPK);
  assert_int_equal(ds.teacher_k, 2);
  assert_string_equal(ds.teacher_id, "api");
  int64_t rows[3] = {0, 1, 2};
  int32_t idx[6];
  float logp[6];
  KD_OK(kd_dataset_read_teacher_rows(&ds, rows, 3, NULL, idx, logp, err));
  const int32_t want_idx[6] = {0, 3, 1, 2, 4, 1};
  const float want_logp[6] = {-0.5f, -1.0f, -3.0f, -3.0f, -0.25f, -2.5f};
  assert_memory_equal(idx, want_idx, sizeof idx);
  assert_memory_equal(logp, want_logp, sizeof logp);
  kd_dataset_close(&ds);

  /* A duplicate row is refused with both line numbers; the dataset is untouched. */
  size_t size;
  unsigned char *bytes = kd_test_slurp(path, &size);
  kd_test_write_file(jl, "a",
                     "{\"row\": 0, \"top_logprobs\": [{\"class\": 0, \"logprob\": -0.5}, "
                     "{\"class\": 3, \"logprob\": -1}]}\n");
  kd_error e = {{0}};
  assert_int_equal(kd_import_teacher_topk_jsonl(jl, path, NULL, "x", &e), -1);
  kd_test_assert_msg_has(e.msg, jl, ":5: row 0 appears twice (first on line 3)", NULL);
  kd_test_assert_same_bytes(bytes, size, path);
  free(bytes);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(logits_in_place),
      cmocka_unit_test(topk_to_out_path_then_replaced),
      cmocka_unit_test(foreign_files_get_a_teacher),
      cmocka_unit_test(class_count_mismatch),
      cmocka_unit_test(wrong_shapes),
      cmocka_unit_test(bad_attributes),
      cmocka_unit_test(broken_teacher_is_replaced),
      cmocka_unit_test(nan_and_inf_logits),
      cmocka_unit_test(bad_topk_values),
      cmocka_unit_test(write_refusals_leave_file_alone),
      cmocka_unit_test(no_teacher),
      cmocka_unit_test(jsonl_import),
  };
  return cmocka_run_group_tests(tests, setup, kd_test_h5_teardown);
}
