/* kd_gemm on both back ends against a plain-C double-precision reference: every transpose pair,
 * odd sizes, offsets, padded leading dimensions, beta = 0 over NaN, and bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "testutil.h"

/* Written into every float outside the operands' views; must come back unchanged in C. */
#define SENTINEL 12345.0f

typedef struct gemm_case {
  size_t M, N, K;
  float alpha, beta;
  size_t off, pad; /* applied to all three operands: offset, and ld = columns + pad */
} gemm_case;

static const gemm_case cases[] = {
    {1, 1, 1, 1.0f, 0.0f, 0, 0},       {7, 5, 3, 0.5f, -1.5f, 3, 2},
    {33, 17, 65, 1.0f, 1.0f, 1, 5},    {130, 257, 31, -0.75f, 0.25f, 7, 3},
    {9, 11, 0, 2.0f, 0.5f, 2, 1},      {64, 96, 128, 1.0f, 0.0f, 0, 0},
    {67, 100, 129, 1.25f, 0.0f, 5, 9}, {16, 33, 17, 1.0f, 2.0f, 0, 1},
    /* long k, enough rows: the built-in GEMM's blocked kernels (NN, TN, TT) */
    {150, 140, 1030, 0.5f, -0.25f, 3, 5},
};

/* op(X)[r][c] of a stored matrix; trans means X is stored [cols][rows]. */
static double at(const float *x, size_t off, size_t ld, int trans, size_t r, size_t c) {
  return trans ? x[off + c * ld + r] : x[off + r * ld + c];
}

static void run_case(kd_gemm_backend backend, const gemm_case *t, int ta, int tb) {
  kd_device *dev = kd_test_device();
  const size_t M = t->M, N = t->N, K = t->K;
  const size_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const size_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  const size_t lda = a_cols + t->pad, ldb = b_cols + t->pad, ldc = N + t->pad;
  const size_t na = t->off + a_rows * lda + 1, nb = t->off + b_rows * ldb + 1;
  const size_t nc = t->off + M * ldc + 1;
  float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
  float *got = malloc(nc * sizeof *got);
  double *want = malloc(nc * sizeof *want);
  assert_true(a && b && c && got && want);
  for (size_t i = 0; i < na; i++) a[i] = SENTINEL;
  for (size_t i = 0; i < nb; i++) b[i] = SENTINEL;
  for (size_t i = 0; i < nc; i++) c[i] = t->beta == 0.0f ? NAN : SENTINEL;
  uint64_t seed = M * 1000003u + N * 1009u + K * 17u + (size_t)(2 * ta + tb);
  for (size_t r = 0; r < a_rows; r++)
    kd_test_fill_uniform(a + t->off + r * lda, a_cols, -1, 1, seed + r);
  for (size_t r = 0; r < b_rows; r++)
    kd_test_fill_uniform(b + t->off + r * ldb, b_cols, -1, 1, seed + 7919 + r);
  if (t->beta != 0.0f)
    for (size_t r = 0; r < M; r++)
      kd_test_fill_uniform(c + t->off + r * ldc, N, -1, 1, seed + 31 + r);

  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double s = 0;
      for (size_t k = 0; k < K; k++)
        s += at(a, t->off, lda, ta, i, k) * at(b, t->off, ldb, tb, k, j);
      double *w = &want[t->off + i * ldc + j];
      *w = t->alpha * s + (t->beta == 0.0f ? 0.0 : t->beta * (double)c[t->off + i * ldc + j]);
    }

  cl_mem da = kd_test_buffer(na, a), db = kd_test_buffer(nb, b), dc = kd_test_buffer(nc, c);
  dev->gemm_backend = backend;
  KD_OK(kd_gemm(dev, ta, tb, M, N, K, t->alpha, da, t->off, lda, db, t->off, ldb, t->beta, dc,
                t->off, ldc, err));
  kd_test_read(dc, 0, nc, got);
  dev->gemm_backend = KD_GEMM_BUILTIN;

  char what[160];
  snprintf(what, sizeof what, "%s %c%c M=%zu N=%zu K=%zu off=%zu pad=%zu beta=%g",
           kd_gemm_backend_name(backend), ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, t->off, t->pad,
           (double)t->beta);
  /* Tolerance: terms lie in [-1, 1], so each of the K float32 additions rounds by ~6e-8 times
   * a running sum of a few units; atol 1e-6 per term covers any summation order with margin,
   * while a wrong or missing term (~0.1-1) fails. rtol covers the beta*C part. */
  const double atol = 1e-6 * (double)(K + 1), rtol = 1e-5;
  for (size_t i = 0; i < M; i++) {
    char row[200];
    snprintf(row, sizeof row, "%s, row %zu", what, i);
    kd_test_assert_close(row, got + t->off + i * ldc, want + t->off + i * ldc, N, atol, rtol);
  }
  for (size_t i = 0; i < nc; i++) {
    const int inside = i >= t->off && (i - t->off) / ldc < M && (i - t->off) % ldc < N;
    if (!inside && !(got[i] == c[i] || (isnan(got[i]) && isnan(c[i]))))
      fail_msg("%s: float %zu, outside the view of C, changed to %g", what, i, (double)got[i]);
  }
  clReleaseMemObject(da);
  clReleaseMemObject(db);
  clReleaseMemObject(dc);
  free(a), free(b), free(c), free(got), free(want);
}

static void run_all(kd_gemm_backend backend) {
  for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) run_case(backend, &cases[n], ta, tb);
}

static void builtin_matches_reference(void **state) {
  (void)state;
  run_all(KD_GEMM_BUILTIN);
}

static void clblast_matches_reference(void **state) {
  (void)state;
  kd_error err = {{0}};
  if (!kd_gemm_clblast_usable(kd_test_device(), &err)) {
    print_message("CLBlast is not usable on this device (%s); skipped\n", err.msg);
    skip();
  }
  run_all(KD_GEMM_CLBLAST);
}

static void bad_arguments_are_refused(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem small = kd_test_buffer(16, NULL);
  kd_error err = {{0}};
  dev->gemm_backend = KD_GEMM_BUILTIN;
  /* lda below the column count of A [4 x 3]. */
  assert_int_equal(kd_gemm(dev, 0, 0, 4, 2, 3, 1, small, 0, 2, small, 0, 2, 0, small, 0, 2, &err),
                   -1);
  assert_non_null(strstr(err.msg, "leading dimension of A"));
  /* B [8 x 8] does not fit in 16 floats. */
  assert_int_equal(kd_gemm(dev, 0, 0, 1, 8, 8, 1, small, 0, 8, small, 0, 8, 0, small, 0, 8, &err),
                   -1);
  assert_non_null(strstr(err.msg, "B"));
  assert_non_null(strstr(err.msg, "holds 16"));
  /* An empty output is nothing to do, whatever the rest says. */
  assert_int_equal(kd_gemm(dev, 0, 0, 0, 8, 8, 1, small, 0, 0, small, 0, 0, 0, small, 0, 0, &err),
                   0);
  clReleaseMemObject(small);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(builtin_matches_reference),
      cmocka_unit_test(clblast_matches_reference),
      cmocka_unit_test(bad_arguments_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
