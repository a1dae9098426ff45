/* conv2d (host/nn/conv.c, kernels/conv.cl) against a plain-C double reference. Forward: the
 * kernel against the double convolution. Backward: the kernel against the analytic double
 * gradients (tight), the analytic gradients against central differences of the double forward
 * L = sum(dy * y) (h = 1e-2; L is linear, so they agree to rounding: this guards the
 * reference's indexing), and, in the main case, the kernel against central differences of the
 * FLOAT forward kernel (h = 1e-2, loose). Every case runs on each GEMM back end present, with
 * tensors at odd offsets, outputs pre-filled with garbage and the workspace with NaN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/conv.h"
#include "nn/gemm.h"
#include "testutil.h"

/* Padding in front of every tensor, so offsets are exercised (not a multiple of 4 or 16). */
#define OFF 3
/* Garbage written into outputs first, to prove they are overwritten, not accumulated. */
#define GARBAGE 1234.5f

/* Tensors at OFF with OFF floats of GARBAGE on both sides; outputs pre-filled with GARBAGE, the
 * workspace with NaN. */
static const kd_test_pad PAD = {OFF, OFF, GARBAGE, GARBAGE};
static const kd_test_pad NAN_PAD = {OFF, OFF, GARBAGE, NAN};

static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* ---- double reference ---- */

/* y[n,O,OH,OW] = conv(x, w) + b (b NULL: none), straight from the definition. */
static void conv_ref(double *y, const double *x, const double *w, const double *b,
                     const kd_conv2d_shape *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t o = 0; o < s->O; o++)
      for (size_t oh = 0; oh < s->OH; oh++)
        for (size_t ow = 0; ow < s->OW; ow++) {
          double acc = b ? b[o] : 0.0;
          for (size_t c = 0; c < s->C; c++)
            for (size_t kh = 0; kh < s->KH; kh++)
              for (size_t kw = 0; kw < s->KW; kw++) {
                long ih = (long)(oh * s->stride + kh) - (long)s->pad;
                long iw = (long)(ow * s->stride + kw) - (long)s->pad;
                if (ih < 0 || iw < 0 || ih >= (long)s->H || iw >= (long)s->W) continue;
                acc += x[((i * s->C + c) * s->H + (size_t)ih) * s->W + (size_t)iw] *
                       w[((o * s->C + c) * s->KH + kh) * s->KW + kw];
              }
          y[((i * s->O + o) * s->OH + oh) * s->OW + ow] = acc;
        }
}

/* Analytic gradients of L = sum(dy * y): dx, dw, db (zeroed first). */
static void conv_grad_ref(double *dx, double *dw, double *db, const double *dy, const double *x,
                          const double *w, const kd_conv2d_shape *s, size_t n) {
  memset(dx, 0, n * s->C * s->H * s->W * sizeof(double));
  memset(dw, 0, s->O * s->C * s->KH * s->KW * sizeof(double));
  memset(db, 0, s->O * sizeof(double));
  for (size_t i = 0; i < n; i++)
    for (size_t o = 0; o < s->O; o++)
      for (size_t oh = 0; oh < s->OH; oh++)
        for (size_t ow = 0; ow < s->OW; ow++) {
          double g = dy[((i * s->O + o) * s->OH + oh) * s->OW + ow];
          db[o] += g;
          for (size_t c = 0; c < s->C; c++)
            for (size_t kh = 0; kh < s->KH; kh++)
              for (size_t kw = 0; kw < s->KW; kw++) {
                long ih = (long)(oh * s->stride + kh) - (long)s->pad;
                long iw = (long)(ow * s->stride + kw) - (long)s->pad;
                if (ih < 0 || iw < 0 || ih >= (long)s->H || iw >= (long)s->W) continue;
                size_t xi = ((i * s->C + c) * s->H + (size_t)ih) * s->W + (size_t)iw;
                size_t wi = ((o * s->C + c) * s->KH + kh) * s->KW + kw;
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
        }
}

static double loss_ref(double *y, const double *dy, const double *x, const double *w,
                       const double *b, const kd_conv2d_shape *s, size_t n) {
  conv_ref(y, x, w, b, s, n);
  double L = 0;
  for (size_t i = 0; i < n * s->O * s->OH * s->OW; i++) L += dy[i] * y[i];
  return L;
}

/* The analytic gradients against central differences of the double L (about `samples` entries
 * of each tensor). */
static void check_ref_grads(const double *dy, double *x, double *w, double *b, const double *dx,
                            const double *dw, const double *db, const kd_conv2d_shape *s,
                            size_t n, size_t samples) {
  double *y = kd_test_doubles(n * s->O * s->OH * s->OW);
  double *vars[3] = {x, w, b};
  const double *grads[3] = {dx, dw, db};
  size_t sizes[3] = {n * s->C * s->H * s->W, s->O * s->C * s->KH * s->KW, s->O};
  for (int v = 0; v < 3; v++)
    for (size_t i = 0; i < sizes[v]; i += 1 + sizes[v] / samples) {
      const double h = 1e-2; /* L is linear in each tensor: no truncation error */
      double keep = vars[v][i];
      vars[v][i] = keep + h;
      double Lp = loss_ref(y, dy, x, w, b, s, n);
      vars[v][i] = keep - h;
      double Lm = loss_ref(y, dy, x, w, b, s, n);
      vars[v][i] = keep;
      double fd = (Lp - Lm) / (2 * h);
      if (fabs(fd - grads[v][i]) > 1e-7 * (1 + fabs(fd)))
        fail_msg("conv reference grad %d[%zu] = %g vs double FD %g", v, i, grads[v][i], fd);
    }
  free(y);
}

/* ---- cases ---- */

typedef struct conv_case {
  size_t B, n, C, H, W, O, KH, KW, stride, pad;
  int bias, with_dx, with_db, float_fd;
} conv_case;

static void to_double(double *d, const float *f, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = f[i];
}

/* L = sum(dy * y) from the float forward kernel, in double. */
static double loss_kernel(const kd_conv2d_shape *s, size_t n, cl_mem by, cl_mem bx, cl_mem bw,
                          cl_mem bb, cl_mem bws, const float *dy, float *y) {
  size_t yn = n * s->O * s->OH * s->OW;
  KD_OK(kd_conv2d_forward(kd_test_device(), s, n, kd_at(by, OFF), kd_at(bx, OFF),
                          kd_at(bw, OFF), kd_at(bb, OFF), kd_at(bws, OFF), err));
  kd_test_read(by, OFF, yn, y);
  double L = 0;
  for (size_t i = 0; i < yn; i++) L += (double)dy[i] * y[i];
  return L;
}

static double float_fd(const kd_conv2d_shape *s, size_t n, float *host, cl_mem buf, size_t idx,
                       cl_mem by, cl_mem bx, cl_mem bw, cl_mem bb, cl_mem bws, const float *dy,
                       float *y) {
  const float h = 1e-2f;
  float v = host[idx], vp = v + h, vm = v - h;
  kd_test_write(buf, OFF + idx, 1, &vp);
  double Lp = loss_kernel(s, n, by, bx, bw, bb, bws, dy, y);
  kd_test_write(buf, OFF + idx, 1, &vm);
  double Lm = loss_kernel(s, n, by, bx, bw, bb, bws, dy, y);
  kd_test_write(buf, OFF + idx, 1, &v);
  return (Lp - Lm) / ((double)vp - (double)vm);
}

static void conv_case_run(const conv_case *cc) {
  kd_device *dev = kd_test_device();
  kd_conv2d_shape s;
  KD_OK(kd_conv2d_shape_init(&s, cc->B, cc->C, cc->H, cc->W, cc->O, cc->KH, cc->KW, cc->stride,
                             cc->pad, err));
  const size_t n = cc->n;
  const size_t xn = n * s.C * s.H * s.W, yn = n * s.O * s.OH * s.OW,
               wn = s.O * s.C * s.KH * s.KW, wsn = kd_conv2d_workspace_floats(&s);
  /* Host buffers sized for the batch s.B; only the first n images are used. */
  const size_t xN = s.B * s.C * s.H * s.W, yN = s.B * s.O * s.OH * s.OW;
  float *x = kd_test_floats(xN), *w = kd_test_floats(wn), *b = kd_test_floats(s.O),
        *dy = kd_test_floats(yN);
  float *y = kd_test_floats(yN), *dx = kd_test_floats(xN), *dw = kd_test_floats(wn),
        *db = kd_test_floats(s.O);
  double *xd = kd_test_doubles(xn), *wd = kd_test_doubles(wn), *bd = kd_test_doubles(s.O),
         *dyd = kd_test_doubles(yn);
  double *want_y = kd_test_doubles(yn), *want_dx = kd_test_doubles(xn),
         *want_dw = kd_test_doubles(wn), *want_db = kd_test_doubles(s.O);
  kd_test_fill_uniform(x, xN, -1, 1, 101 + cc->C);
  kd_test_fill_uniform(w, wn, -1, 1, 102 + cc->O);
  kd_test_fill_uniform(b, s.O, -1, 1, 103);
  kd_test_fill_uniform(dy, yN, -1, 1, 104 + cc->H);
  to_double(xd, x, xn), to_double(wd, w, wn), to_double(bd, b, s.O), to_double(dyd, dy, yn);
  conv_ref(want_y, xd, wd, cc->bias ? bd : NULL, &s, n);
  conv_grad_ref(want_dx, want_dw, want_db, dyd, xd, wd, &s, n);
  /* big cases: fewer samples (each costs two full double convolutions) */
  check_ref_grads(dyd, xd, wd, bd, want_dx, want_dw, want_db, &s, n, yn > 20000 ? 4 : 60);

  char tag[160];
  snprintf(tag, sizeof tag, "B=%zu n=%zu C=%zu %zux%zu O=%zu k%zux%zu s%zu p%zu%s%s%s", s.B, n,
           s.C, s.H, s.W, s.O, s.KH, s.KW, s.stride, s.pad, cc->bias ? "" : " nobias",
           cc->with_dx ? "" : " nodx", cc->with_db ? "" : " nodb");
  const double kterms = (double)(s.C * s.KH * s.KW); /* terms of |x w| <= 1 per output */

  cl_mem bx = padded(xN, x), bw = padded(wn, w), bb = padded(s.O, b), bdy = padded(yN, dy);
  kd_gemm_backend be[2];
  int nbe = kd_test_gemm_backends(be);
  kd_gemm_backend saved = dev->gemm_backend;
  for (int k = 0; k < nbe; k++) {
    dev->gemm_backend = be[k];
    const char *bn = kd_gemm_backend_name(be[k]);
    char what[256];
    /* NaN in the workspace: nothing may depend on what it held before. */
    cl_mem bws = kd_test_padded(&NAN_PAD, wsn, NULL);
    cl_mem by = padded(yN, NULL);

    /* forward */
    KD_OK(kd_conv2d_forward(dev, &s, n, kd_at(by, OFF), kd_at(bx, OFF), kd_at(bw, OFF),
                            kd_at(cc->bias ? bb : NULL, OFF), kd_at(bws, OFF), err));
    kd_test_read(by, OFF, yN, y);
    snprintf(what, sizeof what, "conv y [%s] %s (float, %g-term sums)", tag, bn, kterms);
    kd_test_assert_close(what, y, want_y, yn, 1e-5 * kterms, 1e-5);
    for (size_t i = yn; i < yN; i++)
      if (y[i] != GARBAGE) fail_msg("%s: y[%zu] past the n images was written", what, i);
    kd_test_assert_margins("conv y", by, &PAD, yN);
    kd_test_assert_margins("conv workspace (forward)", bws, &PAD, wsn);

    /* backward */
    cl_mem bdx = padded(xN, NULL), bdw = padded(wn, NULL), bdb = padded(s.O, NULL);
    KD_OK(kd_conv2d_backward(dev, &s, n, kd_at(cc->with_dx ? bdx : NULL, OFF), kd_at(bdw, OFF),
                             kd_at(cc->with_db ? bdb : NULL, OFF), kd_at(bdy, OFF),
                             kd_at(bx, OFF), kd_at(bw, OFF), kd_at(bws, OFF), err));
    kd_test_read(bdx, OFF, xN, dx);
    kd_test_read(bdw, OFF, wn, dw);
    kd_test_read(bdb, OFF, s.O, db);
    const double nP = (double)(n * s.OH * s.OW);
    snprintf(what, sizeof what, "conv dw [%s] %s (float, %g-term sums)", tag, bn, nP);
    kd_test_assert_close(what, dw, want_dw, wn, 1e-5 * nP, 1e-5);
    if (cc->with_dx) {
      const double terms = (double)(s.O * s.KH * s.KW);
      snprintf(what, sizeof what, "conv dx [%s] %s (float, %g-term sums)", tag, bn, terms);
      kd_test_assert_close(what, dx, want_dx, xn, 1e-5 * terms, 1e-5);
      for (size_t i = xn; i < xN; i++)
        if (dx[i] != GARBAGE) fail_msg("%s: dx[%zu] past the n images was written", what, i);
    } else {
      for (size_t i = 0; i < xN; i++)
        if (dx[i] != GARBAGE) fail_msg("conv dx [%s] %s: skipped but written", tag, bn);
    }
    if (cc->with_db) {
      snprintf(what, sizeof what, "conv db [%s] %s (float, %g-term sums)", tag, bn, nP);
      kd_test_assert_close(what, db, want_db, s.O, 1e-5 * nP, 1e-5);
    } else {
      for (size_t i = 0; i < s.O; i++)
        if (db[i] != GARBAGE) fail_msg("conv db [%s] %s: skipped but written", tag, bn);
    }
    kd_test_assert_margins("conv dx", bdx, &PAD, xN);
    kd_test_assert_margins("conv dw", bdw, &PAD, wn);
    kd_test_assert_margins("conv db", bdb, &PAD, s.O);
    kd_test_assert_margins("conv workspace (backward)", bws, &PAD, wsn);

    /* Deterministic: a second backward gives the same bits. */
    {
      float *dx2 = kd_test_floats(xN), *dw2 = kd_test_floats(wn), *db2 = kd_test_floats(s.O);
      KD_OK(kd_conv2d_backward(dev, &s, n, kd_at(cc->with_dx ? bdx : NULL, OFF),
                               kd_at(bdw, OFF), kd_at(cc->with_db ? bdb : NULL, OFF),
                               kd_at(bdy, OFF), kd_at(bx, OFF), kd_at(bw, OFF), kd_at(bws, OFF),
                               err));
      kd_test_read(bdx, OFF, xN, dx2);
      kd_test_read(bdw, OFF, wn, dw2);
      kd_test_read(bdb, OFF, s.O, db2);
      assert_memory_equal(dx, dx2, xN * sizeof(float));
      assert_memory_equal(dw, dw2, wn * sizeof(float));
      assert_memory_equal(db, db2, s.O * sizeof(float));
      free(dx2), free(dw2), free(db2);
    }

    /* The kernel against central differences of the float forward kernel at a few entries
     * (L linear: only float rounding of y, ~1e-7 * sum|dy y| / 2h, separates them). */
    if (cc->float_fd && cc->with_dx && cc->with_db && cc->bias) {
      size_t xi[3] = {0, xn / 2, xn - 1}, wi[3] = {0, wn / 3, wn - 1}, bi[2] = {0, s.O - 1};
      const double fd_atol = 2e-3, fd_rtol = 1e-3;
      float *yt = kd_test_floats(yN);
      for (int p = 0; p < 3; p++) {
        double fd = float_fd(&s, n, x, bx, xi[p], by, bx, bw, bb, bws, dy, yt);
        kd_test_assert_close("conv dx vs float FD (h=1e-2)", &dx[xi[p]], &fd, 1, fd_atol,
                             fd_rtol);
        fd = float_fd(&s, n, w, bw, wi[p], by, bx, bw, bb, bws, dy, yt);
        kd_test_assert_close("conv dw vs float FD (h=1e-2)", &dw[wi[p]], &fd, 1, fd_atol,
                             fd_rtol);
      }
      for (int p = 0; p < 2; p++) {
        double fd = float_fd(&s, n, b, bb, bi[p], by, bx, bw, bb, bws, dy, yt);
        kd_test_assert_close("conv db vs float FD (h=1e-2)", &db[bi[p]], &fd, 1, fd_atol,
                             fd_rtol);
      }
      free(yt);
    }
    clReleaseMemObject(bdx), clReleaseMemObject(bdw), clReleaseMemObject(bdb);
    clReleaseMemObject(by), clReleaseMemObject(bws);
  }
  dev->gemm_backend = saved;
  clReleaseMemObject(bx), clReleaseMemObject(bw), clReleaseMemObject(bb), clReleaseMemObject(bdy);
  free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
  free(xd), free(wd), free(bd), free(dyd);
  free(want_y), free(want_dx), free(want_dw), free(want_db);
}

/*                          B  n  C  H  W  O KH KW s  p  bias dx db fd */
static void conv_3x3_same(void **state) {
  (void)state;
  conv_case_run(&(conv_case){3, 3, 2, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1});
}

static void conv_stride2_pad0(void **state) {
  (void)state;
  conv_case_run(&(conv_case){2, 2, 3, 9, 8, 5, 3, 3, 2, 0, 1, 1, 1, 0});
  /* stride larger than the kernel: some pixels feed no window (their dx is 0) */
  conv_case_run(&(conv_case){2, 2, 2, 10, 9, 3, 2, 3, 3, 2, 1, 1, 1, 0});
}

static void conv_1x1(void **state) {
  (void)state;
  conv_case_run(&(conv_case){2, 2, 3, 4, 5, 2, 1, 1, 1, 0, 1, 1, 1, 0});
  /* 1x1 at stride 2 with padding: border outputs see only zeros (y = b there) */
  conv_case_run(&(conv_case){2, 2, 3, 5, 4, 2, 1, 1, 2, 1, 1, 1, 1, 0});
}

static void conv_3x2_kernel(void **state) {
  (void)state;
  conv_case_run(&(conv_case){2, 2, 2, 6, 7, 3, 3, 2, 1, 1, 1, 1, 1, 0});
  conv_case_run(&(conv_case){1, 1, 3, 8, 5, 2, 2, 3, 2, 2, 1, 1, 1, 0});
}

static void conv_kernel_fills_padded_input(void **state) {
  (void)state;
  /* 3x4 input, pad 1: a 5x6 kernel covers it exactly, OH = OW = 1 */
  conv_case_run(&(conv_case){2, 2, 2, 3, 4, 3, 5, 6, 1, 1, 1, 1, 1, 0});
  /* and with no padding: the GEMM's N is the batch alone */
  conv_case_run(&(conv_case){3, 3, 1, 4, 4, 2, 4, 4, 1, 0, 1, 1, 1, 0});
}

static void conv_fewer_images_than_batch(void **state) {
  (void)state;
  conv_case_run(&(conv_case){5, 3, 2, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 0});
  conv_case_run(&(conv_case){4, 1, 3, 6, 6, 2, 3, 3, 2, 1, 1, 1, 1, 0});
}

static void conv_no_bias_no_dx_no_db(void **state) {
  (void)state;
  conv_case_run(&(conv_case){3, 3, 2, 7, 5, 4, 3, 3, 1, 1, 0, 1, 1, 0});
  conv_case_run(&(conv_case){3, 3, 2, 7, 5, 4, 3, 3, 1, 1, 1, 0, 1, 0});
  conv_case_run(&(conv_case){3, 3, 2, 7, 5, 4, 3, 3, 1, 1, 1, 1, 0, 0});
  conv_case_run(&(conv_case){3, 2, 2, 7, 5, 4, 3, 3, 1, 1, 0, 0, 0, 0});
}

static void conv_spans_gemm_tiles(void **state) {
  (void)state;
  /* O = 33 and K = 45 are ragged against the GEMM tiles; N = 4*110 spans many */
  conv_case_run(&(conv_case){4, 4, 5, 11, 10, 33, 3, 3, 1, 1, 1, 1, 1, 1});
  /* the CNN's second-layer shape in small: 32 -> 64 channels, 3x3 pad 1 */
  conv_case_run(&(conv_case){2, 2, 32, 6, 6, 64, 3, 3, 1, 1, 1, 1, 1, 0});
}

/* Batches larger than one chunk of the column matrix (host/nn/conv.c): several GEMMs per call,
 * dw summed over chunks, a short last chunk, and chunks of a single image. */
static void conv_chunked_batches(void **state) {
  (void)state;
  const conv_case cases[] = {
      {16, 16, 8, 32, 32, 5, 3, 3, 1, 1, 1, 1, 1, 0},
      {16, 15, 8, 32, 32, 5, 3, 3, 1, 1, 1, 1, 1, 0},
      {3, 3, 64, 32, 32, 2, 3, 3, 1, 1, 1, 1, 1, 0},
      {20, 20, 6, 40, 40, 3, 5, 5, 2, 2, 0, 1, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const conv_case *c = &cases[i];
    kd_conv2d_shape s;
    KD_OK(kd_conv2d_shape_init(&s, c->B, c->C, c->H, c->W, c->O, c->KH, c->KW, c->stride, c->pad,
                               err));
    /* the workspace holds less than the whole batch's column matrix: chunking happens */
    size_t whole = s.C * s.KH * s.KW * s.B * s.OH * s.OW;
    assert_true(kd_conv2d_workspace_floats(&s) < whole);
    conv_case_run(c);
  }
}

static void conv_shape_refusals(void **state) {
  (void)state;
  kd_conv2d_shape s;
  kd_error err = {{0}};
  /* a valid one, to see the fields */
  assert_int_equal(kd_conv2d_shape_init(&s, 128, 32, 14, 14, 64, 3, 3, 1, 1, &err), 0);
  assert_int_equal(s.OH, 14);
  assert_int_equal(s.OW, 14);
  /* workspace: col [288, g*196] + Y [64, g*196] for some chunk of g images */
  size_t ws = kd_conv2d_workspace_floats(&s);
  assert_true(ws % (352 * 196) == 0 && ws >= 352 * 196 && ws <= 352 * 196 * 128);
  assert_int_equal(kd_conv2d_shape_init(&s, 2, 1, 28, 27, 1, 5, 4, 3, 2, &err), 0);
  assert_int_equal(s.OH, (28 + 4 - 5) / 3 + 1);
  assert_int_equal(s.OW, (27 + 4 - 4) / 3 + 1);

  size_t zero_cases[8][9] = {{0, 1, 3, 3, 1, 1, 1, 1, 0}, {1, 0, 3, 3, 1, 1, 1, 1, 0},
                             {1, 1, 0, 3, 1, 1, 1, 1, 0}, {1, 1, 3, 0, 1, 1, 1, 1, 0},
                             {1, 1, 3, 3, 0, 1, 1, 1, 0}, {1, 1, 3, 3, 1, 0, 1, 1, 0},
                             {1, 1, 3, 3, 1, 1, 0, 1, 0}, {1, 1, 3, 3, 1, 1, 1, 0, 0}};
  for (int i = 0; i < 8; i++) {
    size_t *z = zero_cases[i];
    assert_int_equal(kd_conv2d_shape_init(&s, z[0], z[1], z[2], z[3], z[4], z[5], z[6], z[7],
                                          z[8], &err), -1);
    assert_non_null(strstr(err.msg, "at least 1"));
  }
  assert_int_equal(kd_conv2d_shape_init(&s, 1, 1, 3, 3, 1, 5, 5, 1, 0, &err), -1);
  assert_non_null(strstr(err.msg, "kernel 5x5 is larger than the padded input 3x3"));
  assert_int_equal(kd_conv2d_shape_init(&s, 1, 1, 3, 4, 1, 3, 7, 1, 1, &err), -1);
  assert_non_null(strstr(err.msg, "kernel 3x7 is larger than the padded input 5x6"));
  /* products past 2^31 elements, and past size_t */
  assert_int_equal(kd_conv2d_shape_init(&s, 1 << 16, 1, 256, 256, 1, 1, 1, 1, 0, &err), -1);
  assert_non_null(strstr(err.msg, "2^31"));
  assert_int_equal(kd_conv2d_shape_init(&s, SIZE_MAX / 2, SIZE_MAX / 2, 3, 3, 1, 1, 1, 1, 0,
                                        &err), -1);
  assert_non_null(strstr(err.msg, "2^31"));
  assert_int_equal(kd_conv2d_shape_init(&s, 1, 1, 3, 3, 1, 1, 1, 1, SIZE_MAX / 2, &err), -1);
  assert_non_null(strstr(err.msg, "2^31"));
  /* x and y fit, but one image's column matrix (9*C rows) does not */
  assert_int_equal(kd_conv2d_shape_init(&s, 1, 2048, 512, 512, 1, 3, 3, 1, 1, &err), -1);
  assert_non_null(strstr(err.msg, "workspace"));
}

static void conv_call_refusals(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  kd_conv2d_shape s;
  KD_OK(kd_conv2d_shape_init(&s, 2, 1, 4, 4, 2, 3, 3, 1, 1, err));
  cl_mem buf = kd_test_buffer(4096, NULL);
  kd_ref r = kd_at(buf, 0), none = kd_at(NULL, 0);
  kd_error err = {{0}};
  assert_int_equal(kd_conv2d_forward(dev, &s, 0, r, r, r, none, r, &err), -1);
  assert_non_null(strstr(err.msg, "1 to 2"));
  assert_int_equal(kd_conv2d_forward(dev, &s, 3, r, r, r, none, r, &err), -1);
  assert_non_null(strstr(err.msg, "1 to 2"));
  assert_int_equal(kd_conv2d_forward(dev, &s, 1, none, r, r, none, r, &err), -1);
  assert_non_null(strstr(err.msg, "y buffer is NULL"));
  assert_int_equal(kd_conv2d_forward(dev, &s, 1, r, r, r, none, none, &err), -1);
  assert_non_null(strstr(err.msg, "workspace buffer is NULL"));
  assert_int_equal(kd_conv2d_backward(dev, &s, 1, none, none, none, r, r, r, r, &err), -1);
  assert_non_null(strstr(err.msg, "dw buffer is NULL"));
  assert_int_equal(kd_conv2d_backward(dev, &s, 1, r, r, none, r, r, none, r, &err), -1);
  assert_non_null(strstr(err.msg, "w buffer is NULL"));
  assert_int_equal(kd_conv2d_forward(dev, &s, 1, kd_at(buf, (size_t)UINT32_MAX - 8), r, r, none,
                                     r, &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  /* a shape not made by kd_conv2d_shape_init */
  kd_conv2d_shape bad = s;
  bad.OH = 5;
  assert_int_equal(kd_conv2d_forward(dev, &bad, 1, r, r, r, none, r, &err), -1);
  assert_non_null(strstr(err.msg, "geometry"));
  bad = s;
  bad.KH = 9;
  assert_int_equal(kd_conv2d_backward(dev, &bad, 1, r, r, r, r, r, r, r, &err), -1);
  assert_non_null(strstr(err.msg, "larger than the padded input"));
  assert_int_equal(kd_conv2d_forward(dev, NULL, 1, r, r, r, none, r, &err), -1);
  clReleaseMemObject(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(conv_3x3_same),
      cmocka_unit_test(conv_stride2_pad0),
      cmocka_unit_test(conv_1x1),
      cmocka_unit_test(conv_3x2_kernel),
      cmocka_unit_test(conv_kernel_fills_padded_input),
      cmocka_unit_test(conv_fewer_images_than_batch),
      cmocka_unit_test(conv_no_bias_no_dx_no_db),
      cmocka_unit_test(conv_spans_gemm_tiles),
      cmocka_unit_test(conv_chunked_batches),
      cmocka_unit_test(conv_shape_refusals),
      cmocka_unit_test(conv_call_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
