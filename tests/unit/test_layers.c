/* Layers (host/nn/layers.c, kernels/{dense,activation,dropout,normalize}.cl) against plain-C
 * double references. Gradients are checked twice: the kernel against the analytic double
 * reference (tight), and the kernel against central finite differences of the FLOAT forward
 * kernel on L = sum(dy * f(x)) (h = 1e-2, loose: float rounding / 2h dominates). The analytic
 * references are also checked against central differences of the double forward (h = 1e-5).
 * Dense tests run on every GEMM back end present (CLBlast; the built-in kernel once
 * kernels/gemm.cl defines kd_gemm_nn). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/layers.h"
#include "testutil.h"

/* Padding in front of every tensor, so offsets are exercised (not a multiple of 4 or 16). */
#define OFF 3
/* Garbage written into outputs first, to prove they are overwritten, not accumulated. */
#define GARBAGE 1234.5f

static const kd_test_pad PAD = {OFF, 0, GARBAGE, GARBAGE};

/* A buffer of OFF + n floats holding `host` (or GARBAGE when host is NULL) from offset OFF. */
static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* ---- dense ---- */

static void dense_ref(double *y, const float *x, const float *w, const float *b, size_t B,
                      size_t in, size_t out) {
  for (size_t r = 0; r < B; r++)
    for (size_t o = 0; o < out; o++) {
      double acc = b ? b[o] : 0.0;
      for (size_t k = 0; k < in; k++) acc += (double)x[r * in + k] * w[o * in + k];
      y[r * out + o] = acc;
    }
}

static void dense_forward_case(size_t B, size_t in, size_t out, int bias) {
  kd_device *dev = kd_test_device();
  float *x = kd_test_floats(B * in), *w = kd_test_floats(out * in), *b = kd_test_floats(out),
        *y = kd_test_floats(B * out);
  double *want = kd_test_doubles(B * out);
  kd_test_fill_uniform(x, B * in, -1, 1, 1);
  kd_test_fill_uniform(w, out * in, -1, 1, 2);
  kd_test_fill_uniform(b, out, -1, 1, 3);
  dense_ref(want, x, w, bias ? b : NULL, B, in, out);
  cl_mem bx = padded(B * in, x), bw = padded(out * in, w), bb = padded(out, b);
  kd_gemm_backend be[2];
  int nbe = kd_test_gemm_backends(be);
  kd_gemm_backend saved = dev->gemm_backend;
  for (int k = 0; k < nbe; k++) {
    dev->gemm_backend = be[k];
    cl_mem by = padded(B * out, NULL);
    KD_OK(kd_dense_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), kd_at(bw, OFF),
                           kd_at(bias ? bb : NULL, OFF), B, in, out, err));
    kd_test_read(by, OFF, B * out, y);
    char what[96];
    snprintf(what, sizeof what, "dense y [%zux%zu->%zu] bias %d %s", B, in, out, bias,
             kd_gemm_backend_name(be[k]));
    /* float GEMM over `in` terms of |x w| <= 1 */
    kd_test_assert_close(what, y, want, B * out, 1e-5 * (double)in, 1e-5);
    float pad[OFF];
    kd_test_read(by, 0, OFF, pad);
    for (int i = 0; i < OFF; i++) assert_true(pad[i] == GARBAGE); /* nothing before y.off */
    clReleaseMemObject(by);
  }
  dev->gemm_backend = saved;
  clReleaseMemObject(bx), clReleaseMemObject(bw), clReleaseMemObject(bb);
  free(x), free(w), free(b), free(y), free(want);
}

static void dense_forward_matches_reference(void **state) {
  (void)state;
  dense_forward_case(7, 13, 5, 1);
  dense_forward_case(7, 13, 5, 0);
  dense_forward_case(1, 1, 1, 1);
  dense_forward_case(33, 130, 70, 1); /* spans several GEMM tiles, ragged edges */
}

/* L = sum(dy * (x w^T + b)) entirely in double. */
static double dense_loss_ref(const double *x, const double *w, const double *b, const float *dy,
                             size_t B, size_t in, size_t out) {
  double L = 0;
  for (size_t r = 0; r < B; r++)
    for (size_t o = 0; o < out; o++) {
      double acc = b[o];
      for (size_t k = 0; k < in; k++) acc += x[r * in + k] * w[o * in + k];
      L += dy[r * out + o] * acc;
    }
  return L;
}

/* L = sum(dy * y) evaluated from the float kernel's y, in double. */
static double dense_loss_kernel(cl_mem by, cl_mem bx, cl_mem bw, cl_mem bb, const float *dy,
                                float *y, size_t B, size_t in, size_t out) {
  KD_OK(kd_dense_forward(kd_test_device(), kd_at(by, OFF), kd_at(bx, OFF), kd_at(bw, OFF),
                         kd_at(bb, OFF), B, in, out, err));
  kd_test_read(by, OFF, B * out, y);
  double L = 0;
  for (size_t i = 0; i < B * out; i++) L += (double)dy[i] * y[i];
  return L;
}

/* Central difference of the float kernel's L in one element of a host array mirrored in buf. */
static double dense_fd(float *host, cl_mem buf, size_t idx, cl_mem by, cl_mem bx, cl_mem bw,
                       cl_mem bb, const float *dy, float *y, size_t B, size_t in, size_t out) {
  const float h = 1e-2f;
  float v = host[idx], vp = v + h, vm = v - h;
  kd_test_write(buf, OFF + idx, 1, &vp);
  double Lp = dense_loss_kernel(by, bx, bw, bb, dy, y, B, in, out);
  kd_test_write(buf, OFF + idx, 1, &vm);
  double Lm = dense_loss_kernel(by, bx, bw, bb, dy, y, B, in, out);
  kd_test_write(buf, OFF + idx, 1, &v);
  return (Lp - Lm) / ((double)vp - (double)vm);
}

static void dense_backward_case(size_t B, size_t in, size_t out, int with_dx, int with_db) {
  kd_device *dev = kd_test_device();
  float *x = kd_test_floats(B * in), *w = kd_test_floats(out * in), *b = kd_test_floats(out),
        *dy = kd_test_floats(B * out);
  float *y = kd_test_floats(B * out), *dx = kd_test_floats(B * in), *dw = kd_test_floats(out * in),
        *db = kd_test_floats(out);
  double *want_dx = kd_test_doubles(B * in), *want_dw = kd_test_doubles(out * in),
         *want_db = kd_test_doubles(out);
  kd_test_fill_uniform(x, B * in, -1, 1, 11);
  kd_test_fill_uniform(w, out * in, -1, 1, 12);
  kd_test_fill_uniform(b, out, -1, 1, 13);
  kd_test_fill_uniform(dy, B * out, -1, 1, 14);
  /* Analytic double reference. */
  for (size_t r = 0; r < B; r++)
    for (size_t k = 0; k < in; k++) {
      double acc = 0;
      for (size_t o = 0; o < out; o++) acc += (double)dy[r * out + o] * w[o * in + k];
      want_dx[r * in + k] = acc;
    }
  for (size_t o = 0; o < out; o++) {
    double acc_b = 0;
    for (size_t r = 0; r < B; r++) acc_b += dy[r * out + o];
    want_db[o] = acc_b;
    for (size_t k = 0; k < in; k++) {
      double acc = 0;
      for (size_t r = 0; r < B; r++) acc += (double)dy[r * out + o] * x[r * in + k];
      want_dw[o * in + k] = acc;
    }
  }
  /* The analytic reference against central differences of the double forward L (linear, so
   * they agree to rounding; this guards the reference's indexing). */
  {
    double *xd = kd_test_doubles(B * in), *wd = kd_test_doubles(out * in),
           *bd = kd_test_doubles(out);
    for (size_t i = 0; i < B * in; i++) xd[i] = x[i];
    for (size_t i = 0; i < out * in; i++) wd[i] = w[i];
    for (size_t i = 0; i < out; i++) bd[i] = b[i];
    double *vars[3] = {xd, wd, bd}, *grads[3] = {want_dx, want_dw, want_db};
    size_t sizes[3] = {B * in, out * in, out};
    for (int v = 0; v < 3; v++)
      for (size_t i = 0; i < sizes[v]; i += 1 + sizes[v] / 7) {
        const double h = 1e-5;
        double keep = vars[v][i];
        vars[v][i] = keep + h;
        double Lp = dense_loss_ref(xd, wd, bd, dy, B, in, out);
        vars[v][i] = keep - h;
        double Lm = dense_loss_ref(xd, wd, bd, dy, B, in, out);
        vars[v][i] = keep;
        double fd = (Lp - Lm) / (2 * h);
        if (fabs(fd - grads[v][i]) > 1e-7 * (1 + fabs(fd)))
          fail_msg("dense reference grad %d[%zu] = %g vs double FD %g", v, i, grads[v][i], fd);
      }
    free(xd), free(wd), free(bd);
  }

  cl_mem bx = padded(B * in, x), bw = padded(out * in, w), bb = padded(out, b),
         bdy = padded(B * out, dy), by = padded(B * out, NULL);
  kd_gemm_backend be[2];
  int nbe = kd_test_gemm_backends(be);
  kd_gemm_backend saved = dev->gemm_backend;
  for (int k = 0; k < nbe; k++) {
    dev->gemm_backend = be[k];
    cl_mem bdx = padded(B * in, NULL), bdw = padded(out * in, NULL), bdb = padded(out, NULL);
    KD_OK(kd_dense_backward(dev, kd_at(with_dx ? bdx : NULL, OFF), kd_at(bdw, OFF),
                            kd_at(with_db ? bdb : NULL, OFF), kd_at(bdy, OFF), kd_at(bx, OFF),
                            kd_at(bw, OFF), B, in, out, err));
    kd_test_read(bdx, OFF, B * in, dx);
    kd_test_read(bdw, OFF, out * in, dw);
    kd_test_read(bdb, OFF, out, db);
    char what[96];
    const char *bn = kd_gemm_backend_name(be[k]);
    snprintf(what, sizeof what, "dense dw [%zux%zu->%zu] %s", B, in, out, bn);
    kd_test_assert_close(what, dw, want_dw, out * in, 1e-5 * (double)B, 1e-5);
    if (with_dx) {
      snprintf(what, sizeof what, "dense dx [%zux%zu->%zu] %s", B, in, out, bn);
      kd_test_assert_close(what, dx, want_dx, B * in, 1e-5 * (double)out, 1e-5);
    } else {
      for (size_t i = 0; i < B * in; i++) assert_true(dx[i] == GARBAGE); /* skipped */
    }
    if (with_db) {
      snprintf(what, sizeof what, "dense db [%zux%zu->%zu] %s", B, in, out, bn);
      kd_test_assert_close(what, db, want_db, out, 1e-5 * (double)B, 1e-5);
    } else {
      for (size_t i = 0; i < out; i++) assert_true(db[i] == GARBAGE);
    }

    /* Finite differences of the float kernel at a few entries (L linear: only float rounding
     * of y, about 1e-7 * sum|dy y| / 2h, separates them). */
    if (with_dx && with_db) {
      size_t xi[3] = {0, (B * in) / 2, B * in - 1}, wi[3] = {0, (out * in) / 3, out * in - 1},
             bi[2] = {0, out - 1};
      const double fd_atol = 2e-3, fd_rtol = 1e-3;
      for (int p = 0; p < 3; p++) {
        double fd = dense_fd(x, bx, xi[p], by, bx, bw, bb, dy, y, B, in, out);
        kd_test_assert_close("dense dx vs float FD (h=1e-2)", &dx[xi[p]], &fd, 1, fd_atol, fd_rtol);
        fd = dense_fd(w, bw, wi[p], by, bx, bw, bb, dy, y, B, in, out);
        kd_test_assert_close("dense dw vs float FD (h=1e-2)", &dw[wi[p]], &fd, 1, fd_atol, fd_rtol);
      }
      for (int p = 0; p < 2; p++) {
        double fd = dense_fd(b, bb, bi[p], by, bx, bw, bb, dy, y, B, in, out);
        kd_test_assert_close("dense db vs float FD (h=1e-2)", &db[bi[p]], &fd, 1, fd_atol, fd_rtol);
      }
    }
    clReleaseMemObject(bdx), clReleaseMemObject(bdw), clReleaseMemObject(bdb);
  }
  dev->gemm_backend = saved;
  clReleaseMemObject(bx), clReleaseMemObject(bw), clReleaseMemObject(bb);
  clReleaseMemObject(bdy), clReleaseMemObject(by);
  free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
  free(want_dx), free(want_dw), free(want_db);
}

static void dense_backward_matches_reference_and_fd(void **state) {
  (void)state;
  dense_backward_case(7, 13, 5, 1, 1);
  dense_backward_case(7, 13, 5, 0, 1);
  dense_backward_case(7, 13, 5, 1, 0);
  dense_backward_case(1, 1, 1, 1, 1);
  dense_backward_case(33, 130, 70, 1, 1);
}

static void dense_rejects_bad_shapes(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem buf = kd_test_buffer(16, NULL);
  kd_error err = {{0}};
  assert_int_equal(kd_dense_forward(dev, kd_at(buf, 0), kd_at(buf, 0), kd_at(buf, 0),
                                    kd_at(NULL, 0), 0, 3, 3, &err), -1);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(kd_dense_forward(dev, kd_at(NULL, 0), kd_at(buf, 0), kd_at(buf, 0),
                                    kd_at(NULL, 0), 1, 1, 1, &err), -1);
  assert_non_null(strstr(err.msg, "y buffer is NULL"));
  assert_int_equal(kd_dense_backward(dev, kd_at(NULL, 0), kd_at(buf, 0), kd_at(NULL, 0),
                                     kd_at(buf, 0), kd_at(buf, 0), kd_at(buf, 0), 1,
                                     (size_t)1 << 20, (size_t)1 << 20, &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  clReleaseMemObject(buf);
}

/* ---- activations ---- */

static double act_ref(kd_activation a, double x) {
  switch (a) {
    case KD_ACT_RELU: return x > 0 ? x : 0;
    case KD_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KD_ACT_TANH: return tanh(x);
    default: return 1 / (1 + exp(-x));
  }
}

static double act_grad_ref(kd_activation a, double x) {
  switch (a) {
    case KD_ACT_RELU: return x > 0 ? 1 : 0;
    case KD_ACT_GELU:
      return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) * 0.39894228040143267794;
    case KD_ACT_TANH: return 1 - tanh(x) * tanh(x);
    default: {
      double s = 1 / (1 + exp(-x));
      return s * (1 - s);
    }
  }
}

static void activation_parse_names(void **state) {
  (void)state;
  const char *names[] = {"relu", "gelu", "tanh", "sigmoid"};
  for (int i = 0; i < 4; i++) {
    kd_activation a;
    assert_int_equal(kd_activation_parse(names[i], &a), 0);
    assert_int_equal((int)a, i);
    assert_string_equal(kd_activation_name(a), names[i]);
  }
  kd_activation a;
  assert_int_equal(kd_activation_parse("ReLU", &a), -1);
  assert_int_equal(kd_activation_parse("softmax", &a), -1);
  assert_int_equal(kd_activation_parse("", &a), -1);
}

#define ACT_N 1037

static void activation_forward_matches_reference(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  float x[ACT_N], y[ACT_N];
  double want[ACT_N];
  kd_test_fill_uniform(x, ACT_N, -6, 6, 21);
  x[0] = 0.0f, x[1] = -0.0f, x[2] = 30.0f, x[3] = -30.0f, x[4] = 90.0f, x[5] = -90.0f;
  cl_mem bx = padded(ACT_N, x);
  for (int a = 0; a < 4; a++) {
    for (size_t i = 0; i < ACT_N; i++) want[i] = act_ref((kd_activation)a, x[i]);
    cl_mem by = padded(ACT_N, NULL);
    KD_OK(kd_activation_forward(dev, (kd_activation)a, kd_at(by, OFF), kd_at(bx, OFF), ACT_N,
                                err));
    kd_test_read(by, OFF, ACT_N, y);
    char what[64];
    snprintf(what, sizeof what, "%s forward", kd_activation_name((kd_activation)a));
    /* relu exact; the others a few float ulps of libm-quality erf/tanh/exp */
    kd_test_assert_close(what, y, want, ACT_N, a == KD_ACT_RELU ? 0 : 1e-6, 1e-5);
    /* In place: y aliases x. */
    cl_mem bz = padded(ACT_N, x);
    KD_OK(kd_activation_forward(dev, (kd_activation)a, kd_at(bz, OFF), kd_at(bz, OFF), ACT_N,
                                err));
    float z[ACT_N];
    kd_test_read(bz, OFF, ACT_N, z);
    assert_memory_equal(z, y, sizeof z);
    clReleaseMemObject(by), clReleaseMemObject(bz);
  }
  clReleaseMemObject(bx);
}

static void activation_backward_matches_reference_and_fd(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  static float x[ACT_N], dy[ACT_N], dx[ACT_N], xp[ACT_N], xm[ACT_N], yp[ACT_N],
      ym[ACT_N];
  static double want[ACT_N], fd[ACT_N];
  kd_test_fill_uniform(x, ACT_N, -5, 5, 31);
  kd_test_fill_uniform(dy, ACT_N, -1, 1, 32);
  const float h = 1e-2f;
  for (size_t i = 0; i < ACT_N; i++) {
    if (fabsf(x[i]) < 3 * h) x[i] = 3 * h; /* keep relu's kink out of the difference quotient */
    xp[i] = x[i] + h;
    xm[i] = x[i] - h;
  }
  cl_mem bx = padded(ACT_N, x), bdy = padded(ACT_N, dy), bxp = padded(ACT_N, xp),
         bxm = padded(ACT_N, xm);
  for (int ai = 0; ai < 4; ai++) {
    kd_activation a = (kd_activation)ai;
    const char *name = kd_activation_name(a);
    char what[96];
    for (size_t i = 0; i < ACT_N; i++) want[i] = dy[i] * act_grad_ref(a, x[i]);
    /* The analytic double reference against central differences of the double forward. */
    for (size_t i = 0; i < ACT_N; i++) {
      const double hd = 1e-5;
      double d = dy[i] * (act_ref(a, x[i] + hd) - act_ref(a, x[i] - hd)) / (2 * hd);
      if (fabs(d - want[i]) > 1e-7) fail_msg("%s: reference grad vs double FD at %zu", name, i);
    }
    cl_mem by = padded(ACT_N, NULL);
    KD_OK(kd_activation_forward(dev, a, kd_at(by, OFF), kd_at(bx, OFF), ACT_N, err));
    /* Three ways to call backward: from x and y, from x only, and in place (dx is dy). */
    for (int mode = 0; mode < 3; mode++) {
      if (mode == 1 && a == KD_ACT_GELU) continue;
      cl_mem bdx = mode == 2 ? padded(ACT_N, dy) : padded(ACT_N, NULL);
      KD_OK(kd_activation_backward(dev, a, kd_at(bdx, OFF),
                                   kd_at(mode == 2 ? bdx : bdy, OFF), kd_at(bx, OFF),
                                   kd_at(mode == 1 ? NULL : by, OFF), ACT_N, err));
      kd_test_read(bdx, OFF, ACT_N, dx);
      snprintf(what, sizeof what, "%s backward (mode %d) vs double", name, mode);
      kd_test_assert_close(what, dx, want, ACT_N, 1e-6, 1e-5);
      clReleaseMemObject(bdx);
    }
    /* The float kernel's own finite differences, all elements at once (element-wise op). */
    cl_mem byp = padded(ACT_N, NULL), bym = padded(ACT_N, NULL), bdx = padded(ACT_N, NULL);
    KD_OK(kd_activation_forward(dev, a, kd_at(byp, OFF), kd_at(bxp, OFF), ACT_N, err));
    KD_OK(kd_activation_forward(dev, a, kd_at(bym, OFF), kd_at(bxm, OFF), ACT_N, err));
    KD_OK(kd_activation_backward(dev, a, kd_at(bdx, OFF), kd_at(bdy, OFF), kd_at(bx, OFF),
                                 kd_at(by, OFF), ACT_N, err));
    kd_test_read(byp, OFF, ACT_N, yp);
    kd_test_read(bym, OFF, ACT_N, ym);
    kd_test_read(bdx, OFF, ACT_N, dx);
    for (size_t i = 0; i < ACT_N; i++)
      fd[i] = dy[i] * ((double)yp[i] - ym[i]) / ((double)xp[i] - xm[i]);
    snprintf(what, sizeof what, "%s backward vs float FD (h=1e-2)", name);
    kd_test_assert_close(what, dx, fd, ACT_N, 1e-3, 1e-3);
    clReleaseMemObject(by), clReleaseMemObject(byp), clReleaseMemObject(bym);
    clReleaseMemObject(bdx);
  }
  /* gelu without its input is an error, not a wrong answer. */
  kd_error err = {{0}};
  assert_int_equal(kd_activation_backward(dev, KD_ACT_GELU, kd_at(bdy, 0), kd_at(bdy, 0),
                                          kd_at(NULL, 0), kd_at(bx, 0), 4, &err), -1);
  assert_non_null(strstr(err.msg, "gelu"));
  clReleaseMemObject(bx), clReleaseMemObject(bdy), clReleaseMemObject(bxp),
      clReleaseMemObject(bxm);
}

/* ---- dropout ---- */

/* Philox-4x32-10 on the host, to check the kernel bit for bit. */
static void philox_ref(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
  uint32_t c[4] = {ctr_in[0], ctr_in[1], ctr_in[2], ctr_in[3]}, k0 = key_in[0], k1 = key_in[1];
  for (int r = 0; r < 10; r++) {
    if (r) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
    c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
  }
  memcpy(out, c, sizeof c);
}

static int keep_ref(uint64_t seed, uint64_t stream, size_t i, float rate) {
  uint32_t ctr[4] = {(uint32_t)(i / 4), 0, (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, r[4];
  philox_ref(ctr, key, r);
  float u = (float)(r[i % 4] >> 8) * 5.9604644775390625e-8f;
  return u >= rate;
}

static void philox_matches_random123_known_answers(void **state) {
  (void)state;
  /* Random123's tests/kat_vectors for philox4x32_10: counter[4], key[2] -> output[4]. */
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
       0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
       0x94fdcceb, 0x5001e420, 0x24126ea1}};
  uint32_t in[18], got[12];
  for (int t = 0; t < 3; t++) {
    memcpy(in + 6 * t, kat[t], 6 * sizeof(uint32_t));
    uint32_t host[4];
    philox_ref(kat[t], kat[t] + 4, host);
    assert_memory_equal(host, kat[t] + 6, sizeof host);
  }
  kd_device *dev = kd_test_device();
  cl_int rc;
  cl_mem bin = clCreateBuffer(dev->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof in,
                              in, &rc);
  assert_int_equal(rc, CL_SUCCESS);
  cl_mem bout = kd_test_buffer(12, NULL);
  size_t g = 3, l = KD_WG;
  KD_OK(KD_RUN(dev, "kd_philox4x32_10_test", 1, &g, &l, err, KD_MEM(bout), KD_MEM(bin),
               KD_UINT(3)));
  kd_test_read(bout, 0, 12, (float *)got);
  for (int t = 0; t < 3; t++) assert_memory_equal(got + 4 * t, kat[t] + 6, 4 * sizeof(uint32_t));
  clReleaseMemObject(bin), clReleaseMemObject(bout);
}

#define DROP_N 100003

static void dropout_mask_statistics_and_backward(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  const size_t n = DROP_N;
  const float rate = 0.3f;
  const uint64_t seed = 0x123456789abcdef0ull, stream = 0xfedcba9876543210ull;
  float *x = kd_test_floats(n), *y = kd_test_floats(n), *y2 = kd_test_floats(n),
        *y3 = kd_test_floats(n), *dy = kd_test_floats(n), *dx = kd_test_floats(n);
  kd_test_fill_uniform(x, n, 0.5f, 1.5f, 41); /* never zero: y == 0 exactly when dropped */
  kd_test_fill_uniform(dy, n, -1, 1, 42);
  cl_mem bx = padded(n, x), by = padded(n, NULL), bdy = padded(n, dy), bdx = padded(n, NULL);
  KD_OK(kd_dropout_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), n, rate, seed, stream, err));
  kd_test_read(by, OFF, n, y);
  const float scale = (float)(1.0 / (1.0 - rate));
  size_t kept = 0, kept_lane[4] = {0}, n_lane[4] = {0};
  for (size_t i = 0; i < n; i++) {
    int k = y[i] != 0.0f;
    if (k != keep_ref(seed, stream, i, rate)) fail_msg("mask[%zu] differs from host Philox", i);
    if (k && y[i] != x[i] * scale) fail_msg("kept y[%zu] = %g, want x * 1/(1-rate) = %g", i,
                                           (double)y[i], (double)(x[i] * scale));
    kept += k;
    kept_lane[i % 4] += k;
    n_lane[i % 4]++;
  }
  /* Kept fraction within 3 sigma of 1 - rate, overall and for each Philox output lane. */
  double p = 1.0 - rate, sigma = sqrt(n * p * (1 - p));
  if (fabs((double)kept - n * p) > 3 * sigma)
    fail_msg("kept %zu of %zu, want %.0f +- %.0f", kept, n, n * p, 3 * sigma);
  for (int k = 0; k < 4; k++) {
    double s = sqrt(n_lane[k] * p * (1 - p));
    if (fabs((double)kept_lane[k] - n_lane[k] * p) > 3 * s)
      fail_msg("lane %d kept %zu of %zu", k, kept_lane[k], n_lane[k]);
  }
  /* Same seed + stream: same bits. Other stream or seed: a different mask. */
  cl_mem by2 = padded(n, NULL);
  KD_OK(kd_dropout_forward(dev, kd_at(by2, OFF), kd_at(bx, OFF), n, rate, seed, stream, err));
  kd_test_read(by2, OFF, n, y2);
  assert_memory_equal(y, y2, n * sizeof(float));
  size_t differ = 0;
  KD_OK(kd_dropout_forward(dev, kd_at(by2, OFF), kd_at(bx, OFF), n, rate, seed, stream + 1, err));
  kd_test_read(by2, OFF, n, y2);
  KD_OK(kd_dropout_forward(dev, kd_at(by2, OFF), kd_at(bx, OFF), n, rate, seed + 1, stream, err));
  kd_test_read(by2, OFF, n, y3);
  for (size_t i = 0; i < n; i++) differ += (y2[i] != y[i]);
  /* Independent masks disagree on 2 p (1-p) of elements = 42% */
  if (differ < n / 4) fail_msg("stream + 1 changed only %zu of %zu mask entries", differ, n);
  differ = 0;
  for (size_t i = 0; i < n; i++) differ += (y3[i] != y[i]);
  if (differ < n / 4) fail_msg("seed + 1 changed only %zu of %zu mask entries", differ, n);

  /* Backward: the same mask and scale on dy; then in place (dx is dy). */
  KD_OK(kd_dropout_backward(dev, kd_at(bdx, OFF), kd_at(bdy, OFF), n, rate, seed, stream, err));
  kd_test_read(bdx, OFF, n, dx);
  for (size_t i = 0; i < n; i++) {
    float want = y[i] != 0.0f ? dy[i] * scale : 0.0f;
    if (dx[i] != want) fail_msg("dx[%zu] = %g, want %g", i, (double)dx[i], (double)want);
  }
  KD_OK(kd_dropout_backward(dev, kd_at(bdy, OFF), kd_at(bdy, OFF), n, rate, seed, stream, err));
  kd_test_read(bdy, OFF, n, y2);
  assert_memory_equal(y2, dx, n * sizeof(float));
  /* y aliasing x gives the same as out of place. */
  KD_OK(kd_dropout_forward(dev, kd_at(bx, OFF), kd_at(bx, OFF), n, rate, seed, stream, err));
  kd_test_read(bx, OFF, n, y2);
  assert_memory_equal(y2, y, n * sizeof(float));

  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(by2);
  clReleaseMemObject(bdy), clReleaseMemObject(bdx);
  free(x), free(y), free(y2), free(y3), free(dy), free(dx);
}

static void dropout_rate_edges(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  const size_t n = 1037;
  float x[1037], y[1037];
  kd_test_fill_uniform(x, n, -1, 1, 51);
  cl_mem bx = padded(n, x), by = padded(n, NULL);
  /* rate 0 copies exactly, out of place and in place. */
  KD_OK(kd_dropout_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), n, 0.0f, 1, 2, err));
  kd_test_read(by, OFF, n, y);
  assert_memory_equal(y, x, sizeof x);
  KD_OK(kd_dropout_forward(dev, kd_at(bx, OFF), kd_at(bx, OFF), n, 0.0f, 1, 2, err));
  kd_test_read(bx, OFF, n, y);
  assert_memory_equal(y, x, sizeof x);
  /* rate 1 zeroes. */
  KD_OK(kd_dropout_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), n, 1.0f, 1, 2, err));
  kd_test_read(by, OFF, n, y);
  for (size_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
  /* Odd sizes leave everything past n alone. */
  float tail[8];
  cl_mem bz = padded(n + 8, NULL);
  KD_OK(kd_dropout_forward(dev, kd_at(bz, OFF), kd_at(bx, OFF), n - 2, 0.5f, 3, 4, err));
  kd_test_read(bz, OFF + n - 2, 8, tail);
  for (int i = 0; i < 8; i++) assert_true(tail[i] == GARBAGE);
  kd_error err = {{0}};
  assert_int_equal(kd_dropout_forward(dev, kd_at(by, 0), kd_at(bx, 0), n, 1.5f, 1, 2, &err), -1);
  assert_non_null(strstr(err.msg, "rate"));
  assert_int_equal(kd_dropout_backward(dev, kd_at(by, 0), kd_at(bx, 0), n, NAN, 1, 2, &err), -1);
  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bz);
}

/* ---- input normalisation ---- */

static void normalize_inputs_u8_and_f32(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  enum { N = 1037, BOFF = 5 }; /* BOFF: a byte offset that is not a multiple of 4 */
  uint8_t u8[BOFF + N];
  float f[N], got[N];
  double want[N];
  for (int i = 0; i < BOFF + N; i++) u8[i] = (uint8_t)(i * 37 + 11);
  kd_test_fill_uniform(f, N, -3, 300, 61);
  const float scale = 1.0f / 255.0f, mean = 0.2860f, std = 0.3530f;
  cl_int rc;
  cl_mem bu = clCreateBuffer(dev->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof u8,
                             u8, &rc);
  assert_int_equal(rc, CL_SUCCESS);
  cl_mem bf = padded(N, f), bo = padded(N, NULL);
  KD_OK(kd_normalize_inputs(dev, kd_at(bo, OFF), kd_at(bu, BOFF), 1, N, scale, mean, std, err));
  kd_test_read(bo, OFF, N, got);
  for (int i = 0; i < N; i++) want[i] = ((double)u8[BOFF + i] * scale - mean) / std;
  kd_test_assert_close("normalize u8", got, want, N, 1e-6, 1e-6);
  KD_OK(kd_normalize_inputs(dev, kd_at(bo, OFF), kd_at(bf, OFF), 0, N, 2.0f, 1.5f, 4.0f, err));
  kd_test_read(bo, OFF, N, got);
  for (int i = 0; i < N; i++) want[i] = ((double)f[i] * 2.0 - 1.5) / 4.0;
  kd_test_assert_close("normalize f32", got, want, N, 1e-6, 1e-6);
  kd_error err = {{0}};
  assert_int_equal(kd_normalize_inputs(dev, kd_at(bo, 0), kd_at(bf, 0), 0, N, 1, 0, 0, &err), -1);
  assert_non_null(strstr(err.msg, "std"));
  clReleaseMemObject(bu), clReleaseMemObject(bf), clReleaseMemObject(bo);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dense_forward_matches_reference),
      cmocka_unit_test(dense_backward_matches_reference_and_fd),
      cmocka_unit_test(dense_rejects_bad_shapes),
      cmocka_unit_test(activation_parse_names),
      cmocka_unit_test(activation_forward_matches_reference),
      cmocka_unit_test(activation_backward_matches_reference_and_fd),
      cmocka_unit_test(philox_matches_random123_known_answers),
      cmocka_unit_test(dropout_mask_statistics_and_backward),
      cmocka_unit_test(dropout_rate_edges),
      cmocka_unit_test(normalize_inputs_u8_and_f32),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
