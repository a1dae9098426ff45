/* Fused softmax cross-entropy (host/nn/loss.c, kernels/loss.cl) against a plain-C double
 * reference (max-subtracted log-sum-exp). Gradient checked against the analytic double
 * reference (tight), the reference against central differences of the double loss (h = 1e-6),
 * and the kernel against central differences of the FLOAT kernel's loss (h = 1e-2, loose). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/loss.h"
#include "testutil.h"

#define OFF 5
#define GARBAGE 777.0f

static const kd_test_pad PAD = {OFF, 0, GARBAGE, GARBAGE};

/* A buffer of OFF + n floats holding `host` (or GARBAGE when host is NULL) from offset OFF. */
static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* int32 labels at int offset OFF, zeros before them. */
static cl_mem label_buffer(size_t B, const int32_t *labels) {
  return kd_test_int_buffer(OFF, B, labels, 0);
}

/* Double reference of one row: returns the loss, writes the gradient * scale into d. */
static double ce_row_ref(const double *z, size_t C, int y, double scale, double *d) {
  double m = -INFINITY, s = 0;
  for (size_t j = 0; j < C; j++) m = z[j] > m ? z[j] : m;
  for (size_t j = 0; j < C; j++) s += exp(z[j] - m);
  if (d)
    for (size_t j = 0; j < C; j++) d[j] = (exp(z[j] - m) / s - ((int)j == y)) * scale;
  return log(s) - (z[y] - m);
}

static void ce_ref(const float *z, const int32_t *y, size_t B, size_t C, double scale,
                   double *loss, double *d) {
  double *row = kd_test_doubles(C);
  for (size_t r = 0; r < B; r++) {
    for (size_t j = 0; j < C; j++) row[j] = z[r * C + j];
    loss[r] = ce_row_ref(row, C, y[r], scale, d ? d + r * C : NULL);
  }
  free(row);
}

static void run_ce(cl_mem loss, cl_mem dl, cl_mem z, cl_mem lab, size_t B, size_t C,
                   float scale) {
  KD_OK(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(loss, OFF), kd_at(dl, OFF),
                                       kd_at(z, OFF), kd_at(lab, OFF), B, C, scale, err));
}

/* Kernel vs double reference for logits z[B,C]; loss and gradient tolerances given. */
static void ce_case(const char *name, const float *z, const int32_t *y, size_t B, size_t C,
                    double loss_tol, double grad_tol) {
  float scale = 1.0f / (float)B;
  float *loss = kd_test_floats(B), *d = kd_test_floats(B * C);
  double *want_loss = kd_test_doubles(B), *want_d = kd_test_doubles(B * C);
  ce_ref(z, y, B, C, scale, want_loss, want_d);
  cl_mem bz = padded(B * C, z), bl = padded(B, NULL), bd = padded(B * C, NULL),
         by = label_buffer(B, y);
  run_ce(bl, bd, bz, by, B, C, scale);
  kd_test_read(bl, OFF, B, loss);
  kd_test_read(bd, OFF, B * C, d);
  char what[96];
  snprintf(what, sizeof what, "%s: loss", name);
  kd_test_assert_finite(what, loss, B);
  snprintf(what, sizeof what, "%s: dlogits", name);
  kd_test_assert_finite(what, d, B * C);
  snprintf(what, sizeof what, "%s loss [%zu x %zu]", name, B, C);
  kd_test_assert_close(what, loss, want_loss, B, loss_tol, loss_tol);
  snprintf(what, sizeof what, "%s dlogits [%zu x %zu]", name, B, C);
  kd_test_assert_close(what, d, want_d, B * C, grad_tol, grad_tol);
  /* Forward only gives the same losses, bit for bit. */
  float *loss2 = kd_test_floats(B);
  cl_mem bl2 = padded(B, NULL);
  KD_OK(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(bl2, OFF), kd_at(NULL, 0),
                                       kd_at(bz, OFF), kd_at(by, OFF), B, C, scale, err));
  kd_test_read(bl2, OFF, B, loss2);
  assert_memory_equal(loss, loss2, B * sizeof(float));
  /* dlogits aliasing logits: the same gradient, in place. */
  run_ce(bl2, bz, bz, by, B, C, scale);
  float *d2 = kd_test_floats(B * C);
  kd_test_read(bz, OFF, B * C, d2);
  kd_test_read(bl2, OFF, B, loss2);
  assert_memory_equal(d, d2, B * C * sizeof(float));
  assert_memory_equal(loss, loss2, B * sizeof(float));
  clReleaseMemObject(bz), clReleaseMemObject(bl), clReleaseMemObject(bd), clReleaseMemObject(by),
      clReleaseMemObject(bl2);
  free(loss), free(d), free(want_loss), free(want_d), free(loss2), free(d2);
}

static void ce_matches_reference(void **state) {
  (void)state;
  size_t shapes[][2] = {{7, 13}, {1, 1}, {5, 2}, {3, 1000}, {64, 10}, {2, 64}, {2, 65}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    size_t B = shapes[s][0], C = shapes[s][1];
    float *z = kd_test_floats(B * C);
    int32_t *y = malloc(B * sizeof(int32_t));
    kd_test_fill_uniform(z, B * C, -5, 5, 100 + s);
    kd_test_random_labels(y, B, C, 200 + s);
    /* float exp/log over C terms: loss to ~1e-6 relative, gradient entries to ~1e-7 */
    ce_case("softmax CE", z, y, B, C, 2e-6, 1e-6);
    free(z), free(y);
  }
}

static void ce_large_logits_stay_finite(void **state) {
  (void)state;
  enum { B = 6, C = 11 };
  float z[B * C];
  int32_t y[B] = {0, 3, 10, 5, 7, 2};
  kd_test_fill_uniform(z, B * C, -80, 80, 300);
  for (int j = 0; j < C; j++) {
    z[0 * C + j] = (j % 2) ? 80.0f : -80.0f; /* +-80 alternating, label on a -80 */
    z[1 * C + j] = 80.0f;                    /* all equal and large */
    z[2 * C + j] = -80.0f + (float)j;        /* all very negative */
    z[3 * C + j] = (j == 5) ? 1000.0f : -1000.0f; /* confident and right: loss ~ 0 */
    z[4 * C + j] = (j == 0) ? 1000.0f : -1000.0f; /* confident and wrong: loss 2000 */
  }
  /* Row 5: random in [-80, 80]. Loss up to 2000 in float: 1e-6 relative. */
  ce_case("softmax CE large logits", z, y, B, C, 1e-6, 1e-6);
}

/* grad_scale * sum of the float kernel's row losses, in double. */
static double ce_kernel_objective(cl_mem bl, cl_mem bz, cl_mem by, size_t B, size_t C,
                                  float scale) {
  float loss[16];
  assert_true(B <= 16);
  KD_OK(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(bl, OFF), kd_at(NULL, 0),
                                       kd_at(bz, OFF), kd_at(by, OFF), B, C, scale, err));
  kd_test_read(bl, OFF, B, loss);
  double L = 0;
  for (size_t i = 0; i < B; i++) L += loss[i];
  return L * scale;
}

static void ce_gradient_matches_finite_differences(void **state) {
  (void)state;
  enum { B = 7, C = 13 };
  const float scale = 1.0f / B;
  float z[B * C], d[B * C];
  int32_t y[B];
  double loss_ref[B], d_ref[B * C];
  kd_test_fill_uniform(z, B * C, -3, 3, 400);
  kd_test_random_labels(y, B, C, 401);
  ce_ref(z, y, B, C, scale, loss_ref, d_ref);
  /* Reference gradient vs central differences of the double objective, every element. */
  double zd[B * C];
  for (int i = 0; i < B * C; i++) zd[i] = z[i];
  for (int i = 0; i < B * C; i++) {
    const double h = 1e-6;
    int r = i / C;
    double keep = zd[i];
    zd[i] = keep + h;
    double Lp = ce_row_ref(zd + r * C, C, y[r], scale, NULL);
    zd[i] = keep - h;
    double Lm = ce_row_ref(zd + r * C, C, y[r], scale, NULL);
    zd[i] = keep;
    double fd = (Lp - Lm) / (2 * h) * scale;
    if (fabs(fd - d_ref[i]) > 1e-8) fail_msg("reference dlogits[%d] %g vs double FD %g", i, d_ref[i], fd);
  }
  /* Kernel gradient vs central differences of the float kernel's objective. */
  cl_mem bz = padded(B * C, z), bl = padded(B, NULL), bd = padded(B * C, NULL),
         by = label_buffer(B, y);
  run_ce(bl, bd, bz, by, B, C, scale);
  kd_test_read(bd, OFF, B * C, d);
  for (int i = 0; i < B * C; i++) {
    const float h = 1e-2f;
    float v = z[i], vp = v + h, vm = v - h;
    kd_test_write(bz, OFF + i, 1, &vp);
    double Lp = ce_kernel_objective(bl, bz, by, B, C, scale);
    kd_test_write(bz, OFF + i, 1, &vm);
    double Lm = ce_kernel_objective(bl, bz, by, B, C, scale);
    kd_test_write(bz, OFF + i, 1, &v);
    double fd = (Lp - Lm) / ((double)vp - vm);
    /* truncation h^2/6 |f'''| ~ 2e-5 * scale, float rounding ~1e-7 * L / 2h ~ 1e-5 */
    kd_test_assert_close("dlogits vs float FD (h=1e-2)", &d[i], &fd, 1, 5e-5, 1e-3);
  }
  clReleaseMemObject(bz), clReleaseMemObject(bl), clReleaseMemObject(bd), clReleaseMemObject(by);
}

static void ce_bad_label_gives_nan_row(void **state) {
  (void)state;
  enum { B = 4, C = 5 };
  float z[B * C], loss[B], d[B * C];
  int32_t y[B] = {1, -1, 5, 4};
  kd_test_fill_uniform(z, B * C, -1, 1, 500);
  cl_mem bz = padded(B * C, z), bl = padded(B, NULL), bd = padded(B * C, NULL),
         by = label_buffer(B, y);
  run_ce(bl, bd, bz, by, B, C, 1.0f);
  kd_test_read(bl, OFF, B, loss);
  kd_test_read(bd, OFF, B * C, d);
  assert_true(isfinite(loss[0]) && isfinite(loss[3]));
  assert_true(isnan(loss[1]) && isnan(loss[2]));
  for (int j = 0; j < C; j++) {
    assert_true(isfinite(d[0 * C + j]) && isfinite(d[3 * C + j]));
    assert_true(isnan(d[1 * C + j]) && isnan(d[2 * C + j]));
  }
  /* NaN logits reach the loss too. */
  z[3 * C + 2] = NAN;
  kd_test_write(bz, OFF, B * C, z);
  run_ce(bl, bd, bz, by, B, C, 1.0f);
  kd_test_read(bl, OFF, B, loss);
  assert_true(isnan(loss[3]) && isfinite(loss[0]));
  kd_error err = {{0}};
  assert_int_equal(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(bl, 0), kd_at(bd, 0),
                                                  kd_at(bz, 0), kd_at(by, 0), 0, C, 1, &err),
                   -1);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(kd_softmax_ce_forward_backward(kd_test_device(), kd_at(NULL, 0), kd_at(bd, 0),
                                                  kd_at(bz, 0), kd_at(by, 0), B, C, 1, &err),
                   -1);
  clReleaseMemObject(bz), clReleaseMemObject(bl), clReleaseMemObject(bd), clReleaseMemObject(by);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ce_matches_reference),
      cmocka_unit_test(ce_large_logits_stay_finite),
      cmocka_unit_test(ce_gradient_matches_finite_differences),
      cmocka_unit_test(ce_bad_label_gives_nan_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
