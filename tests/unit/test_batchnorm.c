/* Batch norm (host/nn/batchnorm.c, kernels/batchnorm.cl) against plain-C double references,
 * batchnorm1d ([n, C], S = 1) and batchnorm2d ([n, C, H*W]): training forward with the
 * running statistics after two calls, evaluation forward, backward (dx, dgamma, dbeta), data
 * whose mean is large against its spread (mean 100, std 1), the N == 1 refusal, in-place use,
 * and the same bits on a repeat. The analytic backward reference is checked against central
 * finite differences of the double training forward (h = 1e-5), the kernels against it. One
 * test times the CNN shape [128, 64, 14*14] and prints milliseconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/batchnorm.h"
#include "testutil.h"

#define OFF 3
#define GARBAGE 1234.5f

static const kd_test_pad PAD = {OFF, 0, GARBAGE, GARBAGE};

/* A buffer of OFF + n floats holding `host` (or GARBAGE when host is NULL) from offset OFF. */
static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* The OFF floats in front of the tensor still hold GARBAGE. */
static void assert_front_untouched(cl_mem b) { kd_test_assert_margins("batch norm", b, &PAD, 0); }

/* ---- double references ---- */

/* Training forward on double x [n, C, S]: per channel mean, biased var, invstd; y. */
static void bn_train_ref(const double *x, const double *gamma, const double *beta, size_t n,
                         size_t C, size_t S, double eps, double *y, double *mean, double *var,
                         double *invstd) {
  double N = (double)(n * S);
  for (size_t c = 0; c < C; c++) {
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) m += x[(i * C + c) * S + s];
    m /= N;
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) {
        double d = x[(i * C + c) * S + s] - m;
        v += d * d;
      }
    v /= N;
    double is = 1 / sqrt(v + eps);
    if (mean) mean[c] = m, var[c] = v, invstd[c] = is;
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) {
        size_t j = (i * C + c) * S + s;
        y[j] = (x[j] - m) * is * gamma[c] + beta[c];
      }
  }
}

/* Backward of the training forward: dx, dgamma, dbeta. */
static void bn_backward_ref(const float *dy, const double *x, const double *gamma,
                            const double *mean, const double *invstd, size_t n, size_t C,
                            size_t S, double *dx, double *dgamma, double *dbeta) {
  double N = (double)(n * S);
  for (size_t c = 0; c < C; c++) {
    double db = 0, dg = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) {
        size_t j = (i * C + c) * S + s;
        db += dy[j];
        dg += dy[j] * (x[j] - mean[c]) * invstd[c];
      }
    dbeta[c] = db, dgamma[c] = dg;
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) {
        size_t j = (i * C + c) * S + s;
        double xhat = (x[j] - mean[c]) * invstd[c];
        dx[j] = gamma[c] * invstd[c] * (dy[j] - db / N - xhat * dg / N);
      }
  }
}

static double bn_loss(const double *x, const double *gamma, const double *beta, const float *dy,
                      size_t n, size_t C, size_t S, double eps, double *y_tmp) {
  bn_train_ref(x, gamma, beta, n, C, S, eps, y_tmp, NULL, NULL, NULL);
  double L = 0;
  for (size_t j = 0; j < n * C * S; j++) L += dy[j] * y_tmp[j];
  return L;
}

/* The analytic reference against central differences of L = sum(dy * y) of the double
 * training forward: x at a spread of elements, gamma and beta everywhere. */
static void check_reference_by_fd(const float *xf, const float *gf, const float *bf,
                                  const float *dy, size_t n, size_t C, size_t S, double eps,
                                  const double *dx, const double *dgamma, const double *dbeta) {
  size_t numel = n * C * S;
  double *x = kd_test_doubles(numel), *g = kd_test_doubles(C), *b = kd_test_doubles(C),
         *y = kd_test_doubles(numel);
  for (size_t j = 0; j < numel; j++) x[j] = xf[j];
  for (size_t c = 0; c < C; c++) g[c] = gf[c], b[c] = bf[c];
  double *vars[3] = {x, g, b};
  const double *grads[3] = {dx, dgamma, dbeta};
  size_t sizes[3] = {numel, C, C};
  const char *names[3] = {"dx", "dgamma", "dbeta"};
  for (int v = 0; v < 3; v++)
    for (size_t i = 0; i < sizes[v]; i += v == 0 ? 1 + numel / 23 : 1) {
      const double h = 1e-5;
      double keep = vars[v][i];
      vars[v][i] = keep + h;
      double Lp = bn_loss(x, g, b, dy, n, C, S, eps, y);
      vars[v][i] = keep - h;
      double Lm = bn_loss(x, g, b, dy, n, C, S, eps, y);
      vars[v][i] = keep;
      double fd = (Lp - Lm) / (2 * h);
      if (fabs(fd - grads[v][i]) > 1e-6 * (1 + fabs(fd)))
        fail_msg("batch norm reference %s[%zu] = %.12g vs double FD %.12g", names[v], i,
                 grads[v][i], fd);
    }
  free(x), free(g), free(b), free(y);
}

/* max |got - want| / (unit + |want|) over n values: reported for the accuracy test. */
static double max_rel_err(const float *got, const double *want, size_t n, double unit) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)got[i] - want[i]) / (unit + fabs(want[i])));
  return m;
}

/* ---- training forward, running statistics, backward ---- */

typedef struct bn_tol {
  double y_atol, stat_rtol, dx_atol, dparam_atol;
} bn_tol;

/* Runs two training steps (two different x) then backward on the second, and eval with the
 * running statistics the two steps left. x ~ U(lo, hi). check_fd: also check the backward
 * reference by finite differences; report: print the largest errors seen. */
static void bn_case(size_t n, size_t C, size_t S, float lo, float hi, bn_tol tol,
                    int check_fd, int report) {
  kd_device *dev = kd_test_device();
  size_t numel = n * C * S;
  const float momentum = 0.1f, eps = 1e-5f;
  float *x1 = kd_test_floats(numel), *x2 = kd_test_floats(numel), *dy = kd_test_floats(numel),
        *got = kd_test_floats(numel);
  float gamma[64], beta[64], rm0[64], rv0[64], cgot[64];
  assert_true(C <= 64);
  kd_test_fill_uniform(x1, numel, lo, hi, 1 + S);
  kd_test_fill_uniform(x2, numel, lo * 1.5f, hi * 1.25f, 2 + S);
  kd_test_fill_uniform(dy, numel, -1, 1, 3 + S);
  kd_test_fill_uniform(gamma, C, 0.5f, 1.5f, 4);
  kd_test_fill_uniform(beta, C, -0.5f, 0.5f, 5);
  for (size_t c = 0; c < C; c++) rm0[c] = 0.0f, rv0[c] = 1.0f; /* PyTorch's initial values */
  double *xd = kd_test_doubles(numel), *gd = kd_test_doubles(C), *bd = kd_test_doubles(C),
         *want = kd_test_doubles(numel);
  double mean[64], var[64], invstd[64], rm[64], rv[64], dg[64], db[64];
  for (size_t c = 0; c < C; c++) gd[c] = gamma[c], bd[c] = beta[c], rm[c] = 0, rv[c] = 1;
  char what[160];
  int len = snprintf(what, sizeof what, "bn [%zu,%zu,%zu] x~U(%g,%g) ", n, C, S, (double)lo,
                     (double)hi);

  cl_mem bx1 = padded(numel, x1), bx2 = padded(numel, x2), by = padded(numel, NULL),
         bg = padded(C, gamma), bb = padded(C, beta), brm = padded(C, rm0), brv = padded(C, rv0),
         bsm = padded(C, NULL), bsi = padded(C, NULL), bdy = padded(numel, dy),
         bdx = padded(numel, NULL), bdg = padded(C, NULL), bdb = padded(C, NULL);
  for (int step = 0; step < 2; step++) {
    const float *x = step ? x2 : x1;
    for (size_t j = 0; j < numel; j++) xd[j] = x[j];
    bn_train_ref(xd, gd, bd, n, C, S, eps, want, mean, var, invstd);
    double N = (double)(n * S);
    for (size_t c = 0; c < C; c++) {
      rm[c] = (1 - momentum) * rm[c] + momentum * mean[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * var[c] * N / (N - 1);
    }
    KD_OK(kd_batchnorm_forward_train(dev, kd_at(by, OFF), kd_at(step ? bx2 : bx1, OFF),
                                     kd_at(bg, OFF), kd_at(bb, OFF), kd_at(brm, OFF),
                                     kd_at(brv, OFF), kd_at(bsm, OFF), kd_at(bsi, OFF), n, C, S,
                                     momentum, eps, err));
    kd_test_read(by, OFF, numel, got);
    snprintf(what + len, sizeof what - len, "step %d y", step);
    if (report)
      print_message("%s: max |error| / (1 + |y|) = %.2g\n", what,
                    max_rel_err(got, want, numel, 1));
    kd_test_assert_close(what, got, want, numel, tol.y_atol, 1e-6);
    kd_test_read(bsm, OFF, C, cgot);
    snprintf(what + len, sizeof what - len, "step %d save_mean", step);
    kd_test_assert_close(what, cgot, mean, C, 1e-7, 1e-7);
    kd_test_read(bsi, OFF, C, cgot);
    snprintf(what + len, sizeof what - len, "step %d save_invstd", step);
    if (report)
      print_message("%s: max relative error %.2g\n", what, max_rel_err(cgot, invstd, C, 0));
    kd_test_assert_close(what, cgot, invstd, C, 0, tol.stat_rtol);
    kd_test_read(brm, OFF, C, cgot);
    snprintf(what + len, sizeof what - len, "step %d running_mean", step);
    kd_test_assert_close(what, cgot, rm, C, 1e-7, 1e-6);
    kd_test_read(brv, OFF, C, cgot);
    snprintf(what + len, sizeof what - len, "step %d running_var", step);
    kd_test_assert_close(what, cgot, rv, C, 0, tol.stat_rtol);
  }
  assert_front_untouched(by), assert_front_untouched(bsm), assert_front_untouched(bsi);

  /* Backward of the second step. */
  double *want_dx = kd_test_doubles(numel);
  bn_backward_ref(dy, xd, gd, mean, invstd, n, C, S, want_dx, dg, db);
  if (check_fd) check_reference_by_fd(x2, gamma, beta, dy, n, C, S, eps, want_dx, dg, db);
  KD_OK(kd_batchnorm_backward(dev, kd_at(bdx, OFF), kd_at(bdg, OFF), kd_at(bdb, OFF),
                              kd_at(bdy, OFF), kd_at(bx2, OFF), kd_at(bg, OFF), kd_at(bsm, OFF),
                              kd_at(bsi, OFF), n, C, S, err));
  kd_test_read(bdx, OFF, numel, got);
  snprintf(what + len, sizeof what - len, "dx");
  if (report)
    print_message("%s: max |error| / (1 + |dx|) = %.2g\n", what,
                  max_rel_err(got, want_dx, numel, 1));
  kd_test_assert_close(what, got, want_dx, numel, tol.dx_atol, 1e-5);
  kd_test_read(bdg, OFF, C, cgot);
  snprintf(what + len, sizeof what - len, "dgamma");
  kd_test_assert_close(what, cgot, dg, C, tol.dparam_atol, 1e-5);
  kd_test_read(bdb, OFF, C, cgot);
  snprintf(what + len, sizeof what - len, "dbeta");
  kd_test_assert_close(what, cgot, db, C, tol.dparam_atol, 1e-5);
  assert_front_untouched(bdx), assert_front_untouched(bdg), assert_front_untouched(bdb);

  /* Eval forward with the running statistics of the two steps. */
  for (size_t c = 0; c < C; c++) {
    double is = 1 / sqrt(rv[c] + eps);
    for (size_t i = 0; i < n; i++)
      for (size_t s = 0; s < S; s++) {
        size_t j = (i * C + c) * S + s;
        want[j] = (x1[j] - rm[c]) * is * gamma[c] + beta[c];
      }
  }
  KD_OK(kd_batchnorm_forward_eval(dev, kd_at(by, OFF), kd_at(bx1, OFF), kd_at(bg, OFF),
                                  kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF), n, C, S, eps,
                                  err));
  kd_test_read(by, OFF, numel, got);
  snprintf(what + len, sizeof what - len, "eval y");
  /* The kernel's running statistics are float roundings of the reference's double ones: for
   * large means the rounding of running_mean (half an ulp of |x|) shows in y. */
  double scale = fmax(fabs(lo), fabs(hi));
  kd_test_assert_close(what, got, want, numel, 2e-6 + 1e-7 * scale, 1e-6);
  assert_front_untouched(by);

  clReleaseMemObject(bx1), clReleaseMemObject(bx2), clReleaseMemObject(by);
  clReleaseMemObject(bg), clReleaseMemObject(bb), clReleaseMemObject(brm);
  clReleaseMemObject(brv), clReleaseMemObject(bsm), clReleaseMemObject(bsi);
  clReleaseMemObject(bdy), clReleaseMemObject(bdx), clReleaseMemObject(bdg);
  clReleaseMemObject(bdb);
  free(x1), free(x2), free(dy), free(got), free(xd), free(gd), free(bd), free(want),
      free(want_dx);
}

/* Float tolerances: y is a few roundings of O(1) values; statistics are float sums of N terms
 * in a KD_BN_WG-way tree (relative error well under 1e-6 for these N); dx and the parameter
 * gradients are float sums of N terms |dy*xhat| <~ 2 (so atol grows like sqrt(N) ulps). */
static void batchnorm1d_matches_reference(void **state) {
  (void)state;
  bn_tol tol = {2e-6, 2e-6, 2e-6, 1e-5};
  bn_case(16, 5, 1, -2, 3, tol, 1, 0);
  bn_case(2, 3, 1, -1, 1, tol, 1, 0);      /* N = 2: the smallest batch */
  bn_case(300, 7, 1, -2, 3, tol, 1, 0);    /* more rows than work-items in the group */
}

static void batchnorm2d_matches_reference(void **state) {
  (void)state;
  bn_tol tol = {2e-6, 2e-6, 2e-6, 1e-5};
  bn_case(4, 3, 35, -2, 3, tol, 1, 0);   /* S = 7x5 */
  bn_case(1, 2, 9, -2, 3, tol, 1, 0);    /* one row: N = S */
  bn_case(3, 4, 300, -2, 3, tol, 1, 0);  /* S larger than the work-group */
  bn_case(8, 4, 196, -2, 3, tol, 0, 0);  /* N = 1568, S = 14x14 */
}

/* Mean 100, std 1 (U(100 - sqrt(3), 100 + sqrt(3))): the brief's accuracy target is ~1e-5
 * relative against double. x itself is exact, so y may only lose the rounding of the float
 * mean (half an ulp of 100 = 3.8e-6, times invstd ~ 1). */
static void batchnorm_large_mean_is_accurate(void **state) {
  (void)state;
  bn_tol tol = {1e-5, 1e-5, 1e-5, 2e-4};
  bn_case(32, 3, 196, 100.0f - 1.7320508f, 100.0f + 1.7320508f, tol, 0, 1);
  bn_case(512, 4, 1, 100.0f - 1.7320508f, 100.0f + 1.7320508f, tol, 0, 1);
}

/* In place (y is x; dx is dy), dx skipped, and the same bits on a repeat. */
static void batchnorm_aliasing_skip_and_repeat(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  const size_t n = 6, C = 3, S = 10, numel = n * C * S;
  float x[6 * 3 * 10], dy[6 * 3 * 10], g[3] = {1.0f, 0.5f, 2.0f}, b[3] = {0.0f, 1.0f, -1.0f},
                                       rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
  float y_ref[6 * 3 * 10], dx_ref[6 * 3 * 10], got[6 * 3 * 10], dg1[3], db1[3], dg2[3], db2[3];
  kd_test_fill_uniform(x, numel, -3, 3, 9);
  kd_test_fill_uniform(dy, numel, -1, 1, 10);
  cl_mem bx = padded(numel, x), by = padded(numel, NULL), bg = padded(C, g), bb = padded(C, b),
         brm = padded(C, rm), brv = padded(C, rv), bsm = padded(C, NULL), bsi = padded(C, NULL),
         bdy = padded(numel, dy), bdx = padded(numel, NULL), bdg = padded(C, NULL),
         bdb = padded(C, NULL);
  KD_OK(kd_batchnorm_forward_train(dev, kd_at(by, OFF), kd_at(bx, OFF), kd_at(bg, OFF),
                                   kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF),
                                   kd_at(bsm, OFF), kd_at(bsi, OFF), n, C, S, 0.1f, 1e-5f, err));
  kd_test_read(by, OFF, numel, y_ref);
  KD_OK(kd_batchnorm_backward(dev, kd_at(bdx, OFF), kd_at(bdg, OFF), kd_at(bdb, OFF),
                              kd_at(bdy, OFF), kd_at(bx, OFF), kd_at(bg, OFF), kd_at(bsm, OFF),
                              kd_at(bsi, OFF), n, C, S, err));
  kd_test_read(bdx, OFF, numel, dx_ref);
  kd_test_read(bdg, OFF, C, dg1);
  kd_test_read(bdb, OFF, C, db1);

  /* Repeat: the same bits. */
  KD_OK(kd_batchnorm_forward_train(dev, kd_at(by, OFF), kd_at(bx, OFF), kd_at(bg, OFF),
                                   kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF),
                                   kd_at(bsm, OFF), kd_at(bsi, OFF), n, C, S, 0.1f, 1e-5f, err));
  kd_test_read(by, OFF, numel, got);
  assert_memory_equal(got, y_ref, sizeof got);

  /* dx skipped: dgamma/dbeta still written, dx untouched. */
  cl_mem bdx2 = padded(numel, NULL);
  KD_OK(kd_batchnorm_backward(dev, kd_at(NULL, 0), kd_at(bdg, OFF), kd_at(bdb, OFF),
                              kd_at(bdy, OFF), kd_at(bx, OFF), kd_at(bg, OFF), kd_at(bsm, OFF),
                              kd_at(bsi, OFF), n, C, S, err));
  kd_test_read(bdg, OFF, C, dg2);
  kd_test_read(bdb, OFF, C, db2);
  assert_memory_equal(dg1, dg2, sizeof dg1);
  assert_memory_equal(db1, db2, sizeof db1);
  kd_test_read(bdy, OFF, numel, got);
  assert_memory_equal(got, dy, sizeof got);
  clReleaseMemObject(bdx2);

  /* dx aliases dy. */
  KD_OK(kd_batchnorm_backward(dev, kd_at(bdy, OFF), kd_at(bdg, OFF), kd_at(bdb, OFF),
                              kd_at(bdy, OFF), kd_at(bx, OFF), kd_at(bg, OFF), kd_at(bsm, OFF),
                              kd_at(bsi, OFF), n, C, S, err));
  kd_test_read(bdy, OFF, numel, got);
  assert_memory_equal(got, dx_ref, sizeof got);

  /* y aliases x (train), then eval in place. */
  KD_OK(kd_batchnorm_forward_train(dev, kd_at(bx, OFF), kd_at(bx, OFF), kd_at(bg, OFF),
                                   kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF),
                                   kd_at(bsm, OFF), kd_at(bsi, OFF), n, C, S, 0.1f, 1e-5f, err));
  kd_test_read(bx, OFF, numel, got);
  assert_memory_equal(got, y_ref, sizeof got);
  KD_OK(kd_write_floats(dev, bx, OFF, numel, x, err));
  KD_OK(kd_batchnorm_forward_eval(dev, kd_at(by, OFF), kd_at(bx, OFF), kd_at(bg, OFF),
                                  kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF), n, C, S,
                                  1e-5f, err));
  KD_OK(kd_batchnorm_forward_eval(dev, kd_at(bx, OFF), kd_at(bx, OFF), kd_at(bg, OFF),
                                  kd_at(bb, OFF), kd_at(brm, OFF), kd_at(brv, OFF), n, C, S,
                                  1e-5f, err));
  kd_test_read(by, OFF, numel, y_ref);
  kd_test_read(bx, OFF, numel, got);
  assert_memory_equal(got, y_ref, sizeof got);
  cl_mem bufs[] = {bx, by, bg, bb, brm, brv, bsm, bsi, bdy, bdx, bdg, bdb};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) clReleaseMemObject(bufs[i]);
}

static void batchnorm_refuses_one_value_per_channel_and_bad_shapes(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem buf = kd_test_buffer(256, NULL);
  kd_ref r = kd_at(buf, 0);
  kd_error err = {{0}};
  /* N = n*S = 1: PyTorch raises in training mode. */
  assert_int_equal(kd_batchnorm_forward_train(dev, r, r, r, r, r, r, r, r, 1, 4, 1, 0.1f, 1e-5f,
                                              &err), -1);
  assert_non_null(strstr(err.msg, "batch norm needs more than one value per channel"));
  /* One row is fine for batchnorm2d with S > 1, and eval takes any n. */
  cl_mem big = kd_test_buffer(256, NULL);
  kd_ref x = kd_at(big, 0), y = kd_at(big, 64), s = kd_at(buf, 0);
  KD_OK(kd_batchnorm_forward_train(dev, y, x, kd_at(buf, 0), kd_at(buf, 8), kd_at(buf, 16),
                                   kd_at(buf, 24), kd_at(buf, 32), kd_at(buf, 40), 1, 4, 2, 0.1f,
                                   1e-5f, err));
  KD_OK(kd_batchnorm_forward_eval(dev, y, x, s, s, s, s, 1, 4, 1, 1e-5f, err));
  assert_int_equal(kd_batchnorm_forward_train(dev, r, r, r, r, r, r, r, r, 4, 0, 1, 0.1f, 1e-5f,
                                              &err), -1);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(kd_batchnorm_forward_eval(dev, r, r, r, r, r, r, 4, 4, 4, -1.0f, &err), -1);
  assert_non_null(strstr(err.msg, "eps"));
  assert_int_equal(kd_batchnorm_backward(dev, r, r, kd_at(NULL, 0), r, r, r, r, r, 2, 2, 2,
                                         &err), -1);
  assert_non_null(strstr(err.msg, "dbeta buffer is NULL"));
  assert_int_equal(kd_batchnorm_backward(dev, r, r, r, r, r, r, r, r, 1 << 16, 1 << 8, 1 << 8,
                                         &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  KD_OK(kd_device_finish(dev, err));
  clReleaseMemObject(buf), clReleaseMemObject(big);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The CNN teacher's shape: [128, 64, 14x14]. Prints the mean ms of forward (train) and
 * backward over a few calls after a warm-up; checks only that they ran. */
static void batchnorm_timing_cnn_shape(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  const size_t n = 128, C = 64, S = 196, numel = n * C * S;
  float *x = kd_test_floats(numel);
  kd_test_fill_uniform(x, numel, -2, 3, 77);
  float ones[64];
  for (int c = 0; c < 64; c++) ones[c] = 1.0f;
  cl_mem bx = kd_test_buffer(numel, x), by = kd_test_buffer(numel, NULL),
         bdy = kd_test_buffer(numel, x), bdx = kd_test_buffer(numel, NULL),
         bc = kd_test_buffer(8 * 64, NULL);
  KD_OK(kd_write_floats(dev, bc, 0, 64, ones, err));
  KD_OK(kd_write_floats(dev, bc, 3 * 64, 64, ones, err));
  kd_ref g = kd_at(bc, 0), b = kd_at(bc, 64), rm = kd_at(bc, 128), rv = kd_at(bc, 192),
         sm = kd_at(bc, 256), si = kd_at(bc, 320), dg = kd_at(bc, 384), db = kd_at(bc, 448);
  const int reps = 5;
  double t_fwd = 0, t_bwd = 0, t_eval = 0;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    double t0 = now_ms();
    KD_OK(kd_batchnorm_forward_train(dev, kd_at(by, 0), kd_at(bx, 0), g, b, rm, rv, sm, si, n, C,
                                     S, 0.1f, 1e-5f, err));
    KD_OK(kd_device_finish(dev, err));
    double t1 = now_ms();
    KD_OK(kd_batchnorm_backward(dev, kd_at(bdx, 0), dg, db, kd_at(bdy, 0), kd_at(bx, 0), g, sm,
                                si, n, C, S, err));
    KD_OK(kd_device_finish(dev, err));
    double t2 = now_ms();
    KD_OK(kd_batchnorm_forward_eval(dev, kd_at(by, 0), kd_at(bx, 0), g, b, rm, rv, n, C, S,
                                    1e-5f, err));
    KD_OK(kd_device_finish(dev, err));
    double t3 = now_ms();
    if (r >= 0) t_fwd += t1 - t0, t_bwd += t2 - t1, t_eval += t3 - t2;
  }
  print_message("batch norm [%zu, %zu, %zu] on %s: forward train %.2f ms, backward %.2f ms, "
                "forward eval %.2f ms (mean of %d, KD_BN_WG %d)\n",
                n, C, S, dev->info.name, t_fwd / reps, t_bwd / reps, t_eval / reps, reps,
                KD_BN_WG);
  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bdy);
  clReleaseMemObject(bdx), clReleaseMemObject(bc);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(batchnorm1d_matches_reference),
      cmocka_unit_test(batchnorm2d_matches_reference),
      cmocka_unit_test(batchnorm_large_mean_is_accurate),
      cmocka_unit_test(batchnorm_aliasing_skip_and_repeat),
      cmocka_unit_test(batchnorm_refuses_one_value_per_channel_and_bad_shapes),
      cmocka_unit_test(batchnorm_timing_cnn_shape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
