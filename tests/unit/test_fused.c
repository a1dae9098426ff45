/* The speed variants against the kernels they stand in for. Bit for bit: the blocked GEMM
 * kernels (long k) against the plain ones; the dense layer with its bias and activation fused
 * (forward into the NT GEMM's epilogue; backward with the activation gradient and the bias
 * gradient in the NN and TN GEMMs' epilogues) against the separate launches; the 2x2 max pooling
 * kernels (forward and backward) against the general ones; batch norm with the activation after it fused (forward and
 * backward) against the separate kernels. The plain kernels are checked against double
 * references in test_gemm, test_layers, test_pool and test_batchnorm; equal bits carry those
 * checks over. To float rounding: the narrow-row loss kernels CPUs run (16 rows per work-item,
 * sums in class order, vector exp/log) against the work-group ones (both are also checked
 * against double references in test_loss and test_distill_loss). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/batchnorm.h"
#include "nn/distill_loss.h"
#include "nn/gemm.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/pool.h"
#include "testutil.h"

/* The built-in GEMM's tile and group shape (host/nn/gemm.c, kernels/gemm.cl defaults). */
#define TM 8
#define TN 32
#define WG_X 8
#define WG_Y 2

static void assert_same_bits(const char *what, const float *got, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && !(isnan(got[i]) && isnan(want[i])))
      fail_msg("%s: element %zu is %.9g, expected %.9g (bit for bit)", what, i, (double)got[i],
               (double)want[i]);
}

/* ---- GEMM: blocked kernels vs the plain ones ---- */

static void gemm_blocked_case(size_t M, size_t N, size_t K, int ta, int tb, float alpha,
                              float beta) {
  kd_device *dev = kd_test_device();
  const size_t off = 5, pad = 3;
  const size_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const size_t na = off + (ta ? K : M) * lda, nb = off + (tb ? N : K) * ldb, nc = off + M * ldc;
  float *a = kd_test_floats(na), *b = kd_test_floats(nb), *c = kd_test_floats(nc);
  float *got = kd_test_floats(nc), *want = kd_test_floats(nc);
  kd_test_fill_uniform(a, na, -1, 1, M + 7 * K);
  kd_test_fill_uniform(b, nb, -1, 1, N + 11 * K);
  kd_test_fill_uniform(c, nc, -1, 1, 3);
  cl_mem da = kd_test_buffer(na, a), db = kd_test_buffer(nb, b);
  cl_mem dc1 = kd_test_buffer(nc, c), dc2 = kd_test_buffer(nc, c);
  kd_gemm_backend saved = dev->gemm_backend;
  dev->gemm_backend = KD_GEMM_BUILTIN;
  /* kd_gemm takes the blocked kernel for these sizes */
  KD_OK(kd_gemm(dev, ta, tb, M, N, K, alpha, da, off, lda, db, off, ldb, beta, dc1, off, ldc, err));
  dev->gemm_backend = saved;
  const char *plain = ta ? (tb ? "kd_gemm_tt" : "kd_gemm_tn") : "kd_gemm_nn";
  size_t rows = ta && tb ? N : M, cols = ta && tb ? M : N;
  size_t global[2] = {(cols + TN - 1) / TN, (rows + TM - 1) / TM}, local[2] = {WG_X, WG_Y};
  KD_OK(KD_RUN(dev, plain, 2, global, local, err, KD_UINT(M), KD_UINT(N), KD_UINT(K),
               KD_FLOAT(alpha), KD_MEM(da), KD_UINT(off), KD_UINT(lda), KD_MEM(db), KD_UINT(off),
               KD_UINT(ldb), KD_FLOAT(beta), KD_MEM(dc2), KD_UINT(off), KD_UINT(ldc)));
  kd_test_read(dc1, 0, nc, got);
  kd_test_read(dc2, 0, nc, want);
  char what[128];
  snprintf(what, sizeof what, "blocked %c%c M=%zu N=%zu K=%zu beta=%g", ta ? 'T' : 'N',
           tb ? 'T' : 'N', M, N, K, (double)beta);
  assert_same_bits(what, got, want, nc);
  clReleaseMemObject(da), clReleaseMemObject(db), clReleaseMemObject(dc1), clReleaseMemObject(dc2);
  free(a), free(b), free(c), free(got), free(want);
}

static void gemm_blocked_matches_plain_bits(void **state) {
  (void)state;
  for (int t = 0; t < 3; t++) {
    int ta = t > 0, tb = t > 1; /* NN, TN, TT: the shapes the blocked kernels serve */
    gemm_blocked_case(150, 70, 1030, ta, tb, 1.0f, 0.0f);    /* ragged rows, cols, last k block */
    gemm_blocked_case(133, 130, 1100, ta, tb, 1.25f, 0.5f);  /* beta, alpha, shifted edge tile */
  }
}

/* ---- dense + activation ---- */

static void dense_fused_case(kd_gemm_backend be, size_t B, size_t in, size_t out, int act,
                             int bias) {
  kd_device *dev = kd_test_device();
  float *x = kd_test_floats(B * in), *w = kd_test_floats(out * in), *b = kd_test_floats(out);
  float *dy = kd_test_floats(B * out), *got = kd_test_floats(B * out),
        *want = kd_test_floats(B * out), *gb = kd_test_floats(out), *wb = kd_test_floats(out);
  kd_test_fill_uniform(x, B * in, -1, 1, 1);
  kd_test_fill_uniform(w, out * in, -0.2f, 0.2f, 2);
  kd_test_fill_uniform(b, out, -1, 1, 3);
  kd_test_fill_uniform(dy, B * out, -1, 1, 4);
  cl_mem bx = kd_test_buffer(B * in, x), bw = kd_test_buffer(out * in, w),
         bb = kd_test_buffer(out, b), bdy = kd_test_buffer(B * out, dy);
  cl_mem pre_s = kd_test_buffer(B * out, NULL), y_s = kd_test_buffer(B * out, NULL);
  cl_mem pre_f = kd_test_buffer(B * out, NULL), y_f = kd_test_buffer(B * out, NULL);
  cl_mem dx_s = kd_test_buffer(B * in, NULL), dx_f = kd_test_buffer(B * in, NULL);
  cl_mem dw = kd_test_buffer(out * in, NULL), db_s = kd_test_buffer(out, NULL),
         db_f = kd_test_buffer(out, NULL);
  kd_ref bias_ref = kd_at(bias ? bb : NULL, 0);
  kd_gemm_backend saved = dev->gemm_backend;
  dev->gemm_backend = be;
  char what[128];
  snprintf(what, sizeof what, "%s %s bias %d [%zux%zu->%zu]", kd_gemm_backend_name(be),
           kd_activation_name((kd_activation)act), bias, B, in, out);

  /* separate: dense, then the activation */
  KD_OK(kd_dense_forward(dev, kd_at(pre_s, 0), kd_at(bx, 0), kd_at(bw, 0), bias_ref, B, in, out,
                         err));
  KD_OK(kd_activation_forward(dev, (kd_activation)act, kd_at(y_s, 0), kd_at(pre_s, 0), B * out,
                              err));
  /* fused, keeping the value before the activation */
  KD_OK(kd_dense_forward_act(dev, kd_at(y_f, 0), kd_at(pre_f, 0), kd_at(bx, 0), kd_at(bw, 0),
                             bias_ref, B, in, out, act, err));
  kd_test_read(y_f, 0, B * out, got);
  kd_test_read(y_s, 0, B * out, want);
  assert_same_bits(what, got, want, B * out);
  kd_test_read(pre_f, 0, B * out, got);
  kd_test_read(pre_s, 0, B * out, want);
  assert_same_bits(what, got, want, B * out);
  /* fused without keeping it */
  KD_OK(kd_dense_forward_act(dev, kd_at(y_f, 0), kd_at(NULL, 0), kd_at(bx, 0), kd_at(bw, 0),
                             bias_ref, B, in, out, act, err));
  kd_test_read(y_f, 0, B * out, got);
  kd_test_read(y_s, 0, B * out, want);
  assert_same_bits(what, got, want, B * out);

  /* backward of a dense layer after an activation: plain GEMMs, the bias-sum kernel and the
   * activation's backward, against kd_dense_backward_act (epilogues on the built-in GEMM).
   * The activation's tensors are [B, in]: its input xa (x here) and output ya. */
  cl_mem ya = kd_test_buffer(B * in, NULL);
  KD_OK(kd_activation_forward(dev, (kd_activation)act, kd_at(ya, 0), kd_at(bx, 0), B * in, err));
  KD_OK(kd_gemm(dev, 0, 0, B, in, out, 1.0f, bdy, 0, out, bw, 0, in, 0.0f, dx_s, 0, in, err));
  KD_OK(kd_activation_backward(dev, (kd_activation)act, kd_at(dx_s, 0), kd_at(dx_s, 0),
                               kd_at(bx, 0), kd_at(ya, 0), B * in, err));
  KD_OK(kd_gemm(dev, 1, 0, out, in, B, 1.0f, bdy, 0, out, bx, 0, in, 0.0f, dw, 0, in, err));
  size_t g = out, l = KD_WG;
  KD_OK(KD_RUN(dev, "kd_dense_bias_backward", 1, &g, &l, err, KD_MEM(db_s), KD_UINT(0),
               KD_MEM(bdy), KD_UINT(0), KD_UINT(B), KD_UINT(out)));
  cl_mem dw_f = kd_test_buffer(out * in, NULL);
  KD_OK(kd_dense_backward_act(dev, kd_at(dx_f, 0), act, kd_at(bx, 0), kd_at(ya, 0),
                              kd_at(dw_f, 0), kd_at(bias ? db_f : NULL, 0), kd_at(bdy, 0),
                              kd_at(bx, 0), kd_at(bw, 0), B, in, out, err));
  float *g1 = kd_test_floats(B * in + out * in), *g2 = kd_test_floats(B * in + out * in);
  kd_test_read(dx_f, 0, B * in, g1);
  kd_test_read(dx_s, 0, B * in, g2);
  assert_same_bits(what, g1, g2, B * in);
  kd_test_read(dw_f, 0, out * in, g1);
  kd_test_read(dw, 0, out * in, g2);
  assert_same_bits(what, g1, g2, out * in);
  if (bias) {
    kd_test_read(db_f, 0, out, gb);
    kd_test_read(db_s, 0, out, wb);
    assert_same_bits(what, gb, wb, out);
  }
  clReleaseMemObject(ya), clReleaseMemObject(dw_f);
  free(g1), free(g2);

  dev->gemm_backend = saved;
  cl_mem all[] = {bx, bw, bb, bdy, pre_s, y_s, pre_f, y_f, dx_s, dx_f, dw, db_s, db_f};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) clReleaseMemObject(all[i]);
  free(x), free(w), free(b), free(dy), free(got), free(want), free(gb), free(wb);
}

static void dense_fused_matches_separate_bits(void **state) {
  (void)state;
  kd_gemm_backend be[2];
  int nbe = kd_test_gemm_backends(be);
  for (int k = 0; k < nbe; k++)
    for (int act = 0; act < 4; act++)
      for (int bias = 0; bias < 2; bias++) {
        dense_fused_case(be[k], 33, 130, 70, act, bias);
        dense_fused_case(be[k], 5, 7, 3, act, bias);
      }
  /* long k: the blocked NN (dx, k = out) and TN (dw with the bias sums, k = B) kernels */
  for (int act = 0; act < 4; act += 3) { /* relu, sigmoid */
    dense_fused_case(KD_GEMM_BUILTIN, 130, 40, 1030, act, 1);
    dense_fused_case(KD_GEMM_BUILTIN, 1030, 40, 130, act, 1);
  }
}

/* ---- losses: 16 rows per work-item vs one work-group per row ---- */

/* |got - want| <= atol + rtol |want|, and NaN exactly where want is NaN. */
static void assert_near(const char *what, const float *got, const float *want, size_t n,
                        double atol, double rtol) {
  for (size_t i = 0; i < n; i++) {
    if (isnan(want[i]) || isnan(got[i])) {
      if (!(isnan(want[i]) && isnan(got[i])))
        fail_msg("%s: element %zu is %g, expected %g", what, i, (double)got[i], (double)want[i]);
      continue;
    }
    if (fabs((double)got[i] - want[i]) > atol + rtol * fabs((double)want[i]))
      fail_msg("%s: element %zu is %.9g, expected %.9g", what, i, (double)got[i],
               (double)want[i]);
  }
}

/* Logits with the awkward rows: +-80, all equal, a NaN, a label out of range. */
static void loss_inputs(float *z, float *t, int32_t *y, size_t B, size_t C, uint64_t seed) {
  kd_test_fill_uniform(z, B * C, -6, 6, seed);
  kd_test_fill_uniform(t, B * C, -6, 6, seed + 1);
  kd_test_random_labels(y, B, C, seed + 2);
  for (size_t j = 0; j < C; j++) {
    z[0 * C + j] = (j % 2) ? 80.0f : -80.0f;
    z[1 * C + j] = 3.0f;
    t[1 * C + j] = -2.0f;
  }
  z[2 * C + C / 2] = NAN;
  t[3 * C] = NAN;
  y[4] = (int32_t)C; /* out of range: a NaN row */
}

static void loss_rows_case(size_t B, size_t C, int loss) {
  kd_device *dev = kd_test_device();
  float *z = kd_test_floats(B * C), *t = kd_test_floats(B * C);
  int32_t *y = kd_test_ints(B);
  loss_inputs(z, t, y, B, C, 100 + C);
  cl_mem bz = kd_test_buffer(B * C, z), bt = kd_test_buffer(B * C, t);
  cl_mem by = kd_test_int_buffer(0, B, y, 0);
  cl_mem ce[2], kd[2], dl[2];
  for (int v = 0; v < 2; v++) {
    ce[v] = kd_test_buffer(B, NULL);
    kd[v] = kd_test_buffer(B, NULL);
    dl[v] = kd_test_buffer(B * C, NULL);
  }
  const float scale = 1.0f / (float)B;
  kd_distill_config cfg;
  kd_distill_config_defaults(&cfg);
  cfg.loss = (kd_distill_loss)loss;
  cfg.temperature = 2.5f;
  cfg.alpha = 0.3f;
  size_t g = B * KD_WG, l = KD_WG;
  char what[128];
  if (loss < 0) { /* plain cross-entropy */
    snprintf(what, sizeof what, "softmax CE rows [%zu x %zu]", B, C);
    KD_OK(kd_softmax_ce_forward_backward(dev, kd_at(ce[0], 0), kd_at(dl[0], 0), kd_at(bz, 0),
                                         kd_at(by, 0), B, C, scale, err));
    KD_OK(KD_RUN(dev, "kd_softmax_ce_forward_backward", 1, &g, &l, err, KD_MEM(ce[1]),
                 KD_UINT(0), KD_MEM(dl[1]), KD_UINT(0), KD_INT(1), KD_MEM(bz), KD_UINT(0),
                 KD_MEM(by), KD_UINT(0), KD_UINT(B), KD_UINT(C), KD_FLOAT(scale)));
  } else {
    snprintf(what, sizeof what, "distill %s rows [%zu x %zu]", kd_distill_loss_name(cfg.loss), B,
             C);
    KD_OK(kd_distill_forward_backward(dev, &cfg, kd_at(ce[0], 0), kd_at(kd[0], 0),
                                      kd_at(dl[0], 0), kd_at(bz, 0), kd_at(by, 0), kd_at(bt, 0),
                                      B, C, scale, err));
    float alpha = cfg.loss == KD_LOSS_CE ? 1.0f : cfg.alpha;
    KD_OK(KD_RUN(dev, "kd_distill_dense_forward_backward", 1, &g, &l, err, KD_MEM(ce[1]),
                 KD_UINT(0), KD_MEM(kd[1]), KD_UINT(0), KD_MEM(dl[1]), KD_UINT(0), KD_INT(1),
                 KD_MEM(bz), KD_UINT(0), KD_MEM(by), KD_UINT(0), KD_MEM(bt), KD_UINT(0),
                 KD_UINT(B), KD_UINT(C), KD_INT(cfg.loss), KD_FLOAT(cfg.temperature),
                 KD_FLOAT(alpha), KD_FLOAT(cfg.beta), KD_FLOAT(cfg.skew), KD_FLOAT(scale)));
  }
  /* Sums over up to 256 terms in another order, and exp/log that may differ in the last bit. */
  const double atol = 1e-6, rtol = 3e-5;
  float *got = kd_test_floats(B * C), *want = kd_test_floats(B * C);
  kd_test_read(ce[0], 0, B, got);
  kd_test_read(ce[1], 0, B, want);
  assert_near(what, got, want, B, atol, rtol);
  if (loss >= 0) {
    kd_test_read(kd[0], 0, B, got);
    kd_test_read(kd[1], 0, B, want);
    assert_near(what, got, want, B, atol, rtol);
  }
  kd_test_read(dl[0], 0, B * C, got);
  kd_test_read(dl[1], 0, B * C, want);
  assert_near(what, got, want, B * C, atol, rtol * 0.1 + 1e-7);
  for (int v = 0; v < 2; v++)
    clReleaseMemObject(ce[v]), clReleaseMemObject(kd[v]), clReleaseMemObject(dl[v]);
  clReleaseMemObject(bz), clReleaseMemObject(bt), clReleaseMemObject(by);
  free(z), free(t), free(y), free(got), free(want);
}

static void loss_rows_match_group(void **state) {
  (void)state;
  if (!kd_loss_rows_path(kd_test_device(), 10)) {
    print_message("this device runs every row as a work-group; skipped\n");
    skip();
  }
  const size_t widths[] = {10, 13, 64, 65, 200, KD_LOSS_ROWS_MAX_CLASSES};
  for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
    for (int loss = -1; loss <= KD_LOSS_CE; loss++) {
      loss_rows_case(9, widths[i], loss);  /* one work-item, lanes past the batch */
      loss_rows_case(37, widths[i], loss); /* several work-items and groups, a ragged last one */
    }
}

/* ---- 2x2 stride-2 max pooling vs the general kernel ---- */

static void maxpool_2x2_case(size_t n, size_t C, size_t H, size_t W) {
  kd_device *dev = kd_test_device();
  const size_t OH = H / 2, OW = W / 2, in = n * C * H * W, out = n * C * OH * OW;
  float *x = kd_test_floats(in);
  kd_test_fill_uniform(x, in, -2, 2, H * 31 + W);
  for (size_t i = 0; i < in; i += 7) x[i] = x[i > 0 ? i - 1 : 0]; /* ties */
  for (size_t i = 3; i < in; i += 23) x[i] = 0.0f;
  x[5] = NAN, x[6] = NAN;                        /* two NaNs in one window: the last wins */
  x[in / 2] = -INFINITY;
  for (size_t i = 0; i < 4 && i < in; i++) x[i + W * 2] = -INFINITY; /* an all -inf window */
  cl_mem bx = kd_test_buffer(in, x);
  cl_mem by1 = kd_test_buffer(out, NULL), by2 = kd_test_buffer(out, NULL);
  cl_mem ba1 = kd_test_int_buffer(0, out, NULL, -7), ba2 = kd_test_int_buffer(0, out, NULL, -7);
  KD_OK(kd_maxpool2d_forward(dev, kd_at(by1, 0), kd_at(ba1, 0), kd_at(bx, 0), n, C, H, W, 2, 2, 0,
                             err));
  size_t g = n * C * OH, l = KD_WG;
  KD_OK(KD_RUN(dev, "kd_maxpool2d_forward", 1, &g, &l, err, KD_MEM(by2), KD_UINT(0), KD_MEM(ba2),
               KD_UINT(0), KD_MEM(bx), KD_UINT(0), KD_UINT(n * C), KD_UINT(H), KD_UINT(W),
               KD_UINT(OH), KD_UINT(OW), KD_UINT(2), KD_UINT(2), KD_UINT(0)));
  float *y1 = kd_test_floats(out), *y2 = kd_test_floats(out);
  int32_t *a1 = kd_test_ints(out), *a2 = kd_test_ints(out);
  kd_test_read(by1, 0, out, y1);
  kd_test_read(by2, 0, out, y2);
  kd_test_read_ints(ba1, 0, out, a1);
  kd_test_read_ints(ba2, 0, out, a2);
  char what[96];
  snprintf(what, sizeof what, "maxpool 2x2 [%zu, %zu, %zu, %zu]", n, C, H, W);
  assert_same_bits(what, y1, y2, out);
  assert_memory_equal(a1, a2, out * sizeof(int32_t));
  /* backward from the same argmax; dy with a -0 to show it comes back as +0 */
  float *dy = kd_test_floats(out), *d1 = kd_test_floats(in), *d2 = kd_test_floats(in);
  kd_test_fill_uniform(dy, out, -1, 1, 77);
  dy[1] = -0.0f;
  cl_mem bdy = kd_test_buffer(out, dy), bd1 = kd_test_buffer(in, NULL), bd2 = kd_test_buffer(in, NULL);
  KD_OK(kd_maxpool2d_backward(dev, kd_at(bd1, 0), kd_at(bdy, 0), kd_at(ba1, 0), n, C, H, W, 2, 2, 0,
                              err));
  g = n * C * H;
  KD_OK(KD_RUN(dev, "kd_maxpool2d_backward", 1, &g, &l, err, KD_MEM(bd2), KD_UINT(0), KD_MEM(bdy),
               KD_UINT(0), KD_MEM(ba1), KD_UINT(0), KD_UINT(n * C), KD_UINT(H), KD_UINT(W),
               KD_UINT(OH), KD_UINT(OW), KD_UINT(2), KD_UINT(2), KD_UINT(0)));
  kd_test_read(bd1, 0, in, d1);
  kd_test_read(bd2, 0, in, d2);
  assert_same_bits(what, d1, d2, in);
  clReleaseMemObject(bdy), clReleaseMemObject(bd1), clReleaseMemObject(bd2);
  free(dy), free(d1), free(d2);
  clReleaseMemObject(bx), clReleaseMemObject(by1), clReleaseMemObject(by2);
  clReleaseMemObject(ba1), clReleaseMemObject(ba2);
  free(x), free(y1), free(y2), free(a1), free(a2);
}

static void maxpool_2x2_matches_general(void **state) {
  (void)state;
  maxpool_2x2_case(3, 2, 8, 10);  /* rows of 5 windows: one block of 4 and one alone */
  maxpool_2x2_case(2, 3, 7, 9);   /* odd: the last row and column belong to no window */
  maxpool_2x2_case(2, 2, 16, 28); /* rows of 14 windows, as in the CNN */
}

/* ---- batch norm + activation ---- */

static void bn_act_case(size_t n, size_t C, size_t S, int act) {
  kd_device *dev = kd_test_device();
  const size_t N = n * C * S;
  float *x = kd_test_floats(N), *dy = kd_test_floats(N), *p = kd_test_floats(4 * C);
  kd_test_fill_uniform(x, N, -3, 3, 11 + S);
  kd_test_fill_uniform(dy, N, -1, 1, 12 + S);
  kd_test_fill_uniform(p, 4 * C, 0.5f, 1.5f, 13); /* gamma, beta, running mean, running var */
  cl_mem bx = kd_test_buffer(N, x), bdy = kd_test_buffer(N, dy), bp = kd_test_buffer(4 * C, p);
  cl_mem st[2], y[2], a_s = kd_test_buffer(N, NULL), dx[2], dg[2], g_s = kd_test_buffer(N, NULL);
  for (int v = 0; v < 2; v++) {
    st[v] = kd_test_buffer(4 * C, p); /* its own running statistics, then save_mean/invstd */
    y[v] = kd_test_buffer(N, NULL);
    dx[v] = kd_test_buffer(N, NULL);
    dg[v] = kd_test_buffer(2 * C, NULL);
  }
  kd_ref gamma = kd_at(bp, 0), beta = kd_at(bp, C);
#define RM(v) kd_at(st[v], 2 * C)
#define RV(v) kd_at(st[v], 3 * C)
#define SM(v) kd_at(st[v], 0)
#define SI(v) kd_at(st[v], C)
  char what[96];
  snprintf(what, sizeof what, "batch norm + %s [%zu, %zu, %zu]",
           kd_activation_name((kd_activation)act), n, C, S);
  float *got = kd_test_floats(N), *want = kd_test_floats(N);
  /* training forward: separate, then fused */
  KD_OK(kd_batchnorm_forward_train(dev, kd_at(y[0], 0), kd_at(bx, 0), gamma, beta, RM(0), RV(0),
                                   SM(0), SI(0), n, C, S, 0.1f, 1e-5f, err));
  KD_OK(kd_activation_forward(dev, (kd_activation)act, kd_at(a_s, 0), kd_at(y[0], 0), N, err));
  KD_OK(kd_batchnorm_forward_train_act(dev, kd_at(y[1], 0), kd_at(bx, 0), gamma, beta, RM(1),
                                       RV(1), SM(1), SI(1), n, C, S, 0.1f, 1e-5f, act, err));
  kd_test_read(y[1], 0, N, got);
  kd_test_read(a_s, 0, N, want);
  assert_same_bits(what, got, want, N);
  float s1[4 * 64], s2[4 * 64];
  assert_true(C <= 64);
  kd_test_read(st[0], 0, 4 * C, s2);
  kd_test_read(st[1], 0, 4 * C, s1);
  assert_same_bits(what, s1, s2, 4 * C);
  /* backward: the activation's, then batch norm's; against the fused one */
  KD_OK(kd_activation_backward(dev, (kd_activation)act, kd_at(g_s, 0), kd_at(bdy, 0),
                               kd_at(y[0], 0), kd_at(a_s, 0), N, err));
  KD_OK(kd_batchnorm_backward(dev, kd_at(dx[0], 0), kd_at(dg[0], 0), kd_at(dg[0], C),
                              kd_at(g_s, 0), kd_at(bx, 0), gamma, SM(0), SI(0), n, C, S, err));
  KD_OK(kd_batchnorm_backward_act(dev, kd_at(dx[1], 0), kd_at(dg[1], 0), kd_at(dg[1], C),
                                  kd_at(bdy, 0), kd_at(bx, 0), gamma, SM(1), SI(1), n, C, S, act,
                                  kd_at(a_s, 0), err));
  kd_test_read(dx[1], 0, N, got);
  kd_test_read(dx[0], 0, N, want);
  assert_same_bits(what, got, want, N);
  kd_test_read(dg[1], 0, 2 * C, s1);
  kd_test_read(dg[0], 0, 2 * C, s2);
  assert_same_bits(what, s1, s2, 2 * C);
  /* evaluation forward */
  KD_OK(kd_batchnorm_forward_eval(dev, kd_at(y[0], 0), kd_at(bx, 0), gamma, beta, RM(0), RV(0), n,
                                  C, S, 1e-5f, err));
  KD_OK(kd_activation_forward(dev, (kd_activation)act, kd_at(a_s, 0), kd_at(y[0], 0), N, err));
  KD_OK(kd_batchnorm_forward_eval_act(dev, kd_at(y[1], 0), kd_at(bx, 0), gamma, beta, RM(0),
                                      RV(0), n, C, S, 1e-5f, act, err));
  kd_test_read(y[1], 0, N, got);
  kd_test_read(a_s, 0, N, want);
  assert_same_bits(what, got, want, N);
#undef RM
#undef RV
#undef SM
#undef SI
  for (int v = 0; v < 2; v++)
    clReleaseMemObject(st[v]), clReleaseMemObject(y[v]), clReleaseMemObject(dx[v]),
        clReleaseMemObject(dg[v]);
  clReleaseMemObject(bx), clReleaseMemObject(bdy), clReleaseMemObject(bp);
  clReleaseMemObject(a_s), clReleaseMemObject(g_s);
  free(x), free(dy), free(p), free(got), free(want);
}

static void batchnorm_act_matches_separate_bits(void **state) {
  (void)state;
  const int acts[] = {KD_ACT_RELU, KD_ACT_TANH, KD_ACT_SIGMOID};
  for (int a = 0; a < 3; a++) {
    bn_act_case(5, 3, 37, acts[a]);  /* 2d: rows with a scalar tail */
    bn_act_case(4, 6, 300, acts[a]); /* 2d: rows split into segments */
    bn_act_case(9, 5, 1, acts[a]);   /* 1d */
  }
  kd_error err = {{0}};
  assert_int_equal(kd_batchnorm_forward_eval_act(kd_test_device(), kd_at(NULL, 0), kd_at(NULL, 0),
                                                 kd_at(NULL, 0), kd_at(NULL, 0), kd_at(NULL, 0),
                                                 kd_at(NULL, 0), 2, 2, 2, 1e-5f, KD_ACT_GELU,
                                                 &err),
                   -1);
  kd_test_assert_msg_has(err.msg, "cannot be fused", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gemm_blocked_matches_plain_bits),
      cmocka_unit_test(dense_fused_matches_separate_bits),
      cmocka_unit_test(loss_rows_match_group),
      cmocka_unit_test(maxpool_2x2_matches_general),
      cmocka_unit_test(batchnorm_act_matches_separate_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
