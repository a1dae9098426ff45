/* 2-D pooling (host/nn/pool.c, kernels/pool.cl) against plain-C double references on NCHW data:
 * odd sizes, stride != size, padding (up to size/2), overlapping windows (size 3 stride 2),
 * windows that skip input elements (stride > size), and ties in max pooling. Max pooling must
 * match exactly (it copies values; argmax is an index); sums are compared with labelled
 * float tolerances. The analytic backward references are checked against central finite
 * differences of the double forward reference (h = 1e-4; for max pooling on data whose values
 * are at least 1e-2 apart, so no window changes its winner), and the kernels against them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/pool.h"
#include "testutil.h"

/* Padding in front of every tensor, so offsets are exercised (not a multiple of 4 or 16). */
#define OFF 3
/* Garbage written into outputs first, to prove they are overwritten, not accumulated. */
#define GARBAGE 1234.5f
#define GARBAGE_INDEX (-77)

typedef struct shape {
  size_t n, C, H, W, size, stride, pad, OH, OW;
} shape;

static const kd_test_pad PAD = {OFF, 0, GARBAGE, GARBAGE};

/* A buffer of OFF + n floats holding `host` (or GARBAGE when host is NULL) from offset OFF. */
static cl_mem padded(size_t n, const float *host) { return kd_test_padded(&PAD, n, host); }

/* An int32 buffer of OFF + n filled with GARBAGE_INDEX. */
static cl_mem int_buffer(size_t n) { return kd_test_int_buffer(OFF, n, NULL, GARBAGE_INDEX); }

/* The OFF floats in front of the tensor still hold GARBAGE. */
static void assert_front_untouched(cl_mem b) { kd_test_assert_margins("pool", b, &PAD, 0); }

static shape make_shape(size_t n, size_t C, size_t H, size_t W, size_t size, size_t stride,
                        size_t pad) {
  shape s = {n, C, H, W, size, stride, pad, 0, 0};
  KD_OK(kd_pool2d_out_size(H, W, size, stride, pad, &s.OH, &s.OW, err));
  return s;
}

/* ---- double references (PyTorch's definitions, written out directly) ---- */

/* Max pool on double x: y and argmax (first maximum in row-major window order; padding is
 * not a candidate). */
static void maxpool_ref(const shape *s, const double *x, double *y, int *am) {
  for (size_t p = 0; p < s->n * s->C; p++)
    for (size_t oh = 0; oh < s->OH; oh++)
      for (size_t ow = 0; ow < s->OW; ow++) {
        long h0 = (long)(oh * s->stride) - (long)s->pad, w0 = (long)(ow * s->stride) - (long)s->pad;
        double best = -INFINITY;
        long bi = -1;
        for (long h = h0; h < h0 + (long)s->size; h++)
          for (long w = w0; w < w0 + (long)s->size; w++) {
            if (h < 0 || w < 0 || h >= (long)s->H || w >= (long)s->W) continue;
            double v = x[p * s->H * s->W + (size_t)h * s->W + (size_t)w];
            if (bi < 0 || v > best) {
              best = v;
              bi = h * (long)s->W + w;
            }
          }
        size_t o = (p * s->OH + oh) * s->OW + ow;
        y[o] = best;
        am[o] = (int)bi;
      }
}

/* Avg pool with count_include_pad: the window's real elements summed, over size*size. */
static void avgpool_ref(const shape *s, const double *x, double *y) {
  for (size_t p = 0; p < s->n * s->C; p++)
    for (size_t oh = 0; oh < s->OH; oh++)
      for (size_t ow = 0; ow < s->OW; ow++) {
        long h0 = (long)(oh * s->stride) - (long)s->pad, w0 = (long)(ow * s->stride) - (long)s->pad;
        double acc = 0;
        for (long h = h0; h < h0 + (long)s->size; h++)
          for (long w = w0; w < w0 + (long)s->size; w++)
            if (h >= 0 && w >= 0 && h < (long)s->H && w < (long)s->W)
              acc += x[p * s->H * s->W + (size_t)h * s->W + (size_t)w];
        y[(p * s->OH + oh) * s->OW + ow] = acc / (double)(s->size * s->size);
      }
}

/* Backward references as scatters (the kernels gather): max sends dy to the argmax, avg
 * spreads dy/(size*size) over the window's real elements. */
static void maxpool_backward_ref(const shape *s, const float *dy, const int *am, double *dx) {
  memset(dx, 0, s->n * s->C * s->H * s->W * sizeof(double));
  for (size_t p = 0; p < s->n * s->C; p++)
    for (size_t o = 0; o < s->OH * s->OW; o++)
      dx[p * s->H * s->W + (size_t)am[p * s->OH * s->OW + o]] += dy[p * s->OH * s->OW + o];
}

static void avgpool_backward_ref(const shape *s, const float *dy, double *dx) {
  memset(dx, 0, s->n * s->C * s->H * s->W * sizeof(double));
  for (size_t p = 0; p < s->n * s->C; p++)
    for (size_t oh = 0; oh < s->OH; oh++)
      for (size_t ow = 0; ow < s->OW; ow++) {
        long h0 = (long)(oh * s->stride) - (long)s->pad, w0 = (long)(ow * s->stride) - (long)s->pad;
        double g = dy[(p * s->OH + oh) * s->OW + ow] / (double)(s->size * s->size);
        for (long h = h0; h < h0 + (long)s->size; h++)
          for (long w = w0; w < w0 + (long)s->size; w++)
            if (h >= 0 && w >= 0 && h < (long)s->H && w < (long)s->W)
              dx[p * s->H * s->W + (size_t)h * s->W + (size_t)w] += g;
      }
}

/* L = sum(dy * pool(x)) in double. */
static double pool_loss(int is_max, const shape *s, const double *x, const float *dy,
                        double *y_tmp, int *am_tmp) {
  if (is_max) maxpool_ref(s, x, y_tmp, am_tmp);
  else avgpool_ref(s, x, y_tmp);
  double L = 0;
  for (size_t o = 0; o < s->n * s->C * s->OH * s->OW; o++) L += dy[o] * y_tmp[o];
  return L;
}

/* The analytic reference dx against central differences of the double forward, at every
 * input element. */
static void check_reference_by_fd(int is_max, const shape *s, const float *xf, const float *dy,
                                  const double *dx_ref) {
  size_t nin = s->n * s->C * s->H * s->W, nout = s->n * s->C * s->OH * s->OW;
  double *x = kd_test_doubles(nin), *y = kd_test_doubles(nout);
  int *am = kd_test_ints(nout);
  for (size_t i = 0; i < nin; i++) x[i] = xf[i];
  const double h = 1e-4;
  for (size_t i = 0; i < nin; i++) {
    double keep = x[i];
    x[i] = keep + h;
    double Lp = pool_loss(is_max, s, x, dy, y, am);
    x[i] = keep - h;
    double Lm = pool_loss(is_max, s, x, dy, y, am);
    x[i] = keep;
    double fd = (Lp - Lm) / (2 * h);
    if (fabs(fd - dx_ref[i]) > 1e-9 * (1 + fabs(fd)))
      fail_msg("%s reference dx[%zu] = %.12g vs double FD %.12g", is_max ? "maxpool" : "avgpool",
               i, dx_ref[i], fd);
  }
  free(x), free(y), free(am);
}

/* ---- output size ---- */

static void out_size_and_refusals(void **state) {
  (void)state;
  size_t OH = 0, OW = 0;
  KD_OK(kd_pool2d_out_size(28, 28, 2, 2, 0, &OH, &OW, err));
  assert_true(OH == 14 && OW == 14);
  KD_OK(kd_pool2d_out_size(7, 9, 3, 2, 1, &OH, &OW, err)); /* (7+2-3)/2+1, (9+2-3)/2+1 */
  assert_true(OH == 4 && OW == 5);
  KD_OK(kd_pool2d_out_size(7, 6, 3, 3, 0, &OH, &OW, err)); /* floor: the last column dropped */
  assert_true(OH == 2 && OW == 2);
  KD_OK(kd_pool2d_out_size(5, 5, 5, 1, 2, &OH, &OW, err));
  assert_true(OH == 5 && OW == 5);
  KD_OK(kd_pool2d_out_size(1, 1, 2, 1, 1, &OH, &OW, err)); /* window fits the padded 3 x 3 */
  assert_true(OH == 2 && OW == 2);
  kd_error err = {{0}};
  assert_int_equal(kd_pool2d_out_size(4, 4, 3, 1, 2, &OH, &OW, &err), -1); /* pad > 3/2 */
  assert_non_null(strstr(err.msg, "half"));
  assert_int_equal(kd_pool2d_out_size(4, 4, 2, 2, 2, &OH, &OW, &err), -1); /* pad > 2/2 */
  assert_non_null(strstr(err.msg, "half"));
  assert_int_equal(kd_pool2d_out_size(4, 2, 3, 1, 0, &OH, &OW, &err), -1);
  assert_non_null(strstr(err.msg, "larger"));
  assert_int_equal(kd_pool2d_out_size(0, 4, 1, 1, 0, &OH, &OW, &err), -1);
  assert_non_null(strstr(err.msg, "zero"));
  assert_int_equal(kd_pool2d_out_size(4, 4, 0, 1, 0, &OH, &OW, &err), -1);
  assert_int_equal(kd_pool2d_out_size(4, 4, 2, 0, 0, &OH, &OW, &err), -1);
  assert_non_null(strstr(err.msg, "zero"));
}

/* ---- max / avg pool, forward and backward ---- */

typedef enum data_kind { DATA_DISTINCT, DATA_TIES, DATA_NEG_INF } data_kind;

/* Fills x: DISTINCT = a shuffled ramp with steps of 1e-2 (negative, so zero padding would win
 * if it were a candidate); TIES = values from {-2, -1, -0.5} (many equal maxima, all below the
 * padding's 0); NEG_INF = TIES with -inf sprinkled in and one plane all -inf. */
static void fill_x(float *x, const shape *s, data_kind kind, uint64_t seed) {
  size_t nin = s->n * s->C * s->H * s->W;
  float *u = kd_test_floats(nin);
  kd_test_fill_uniform(u, nin, 0, 1, seed);
  if (kind == DATA_DISTINCT) {
    for (size_t i = 0; i < nin; i++) x[i] = -0.01f * (float)(i + 1);
    for (size_t i = nin - 1; i > 0; i--) { /* Fisher-Yates with the uniform draws */
      size_t j = (size_t)(u[i] * (float)(i + 1));
      if (j > i) j = i;
      float t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
  } else {
    const float levels[3] = {-2.0f, -1.0f, -0.5f};
    for (size_t i = 0; i < nin; i++) x[i] = levels[(int)(u[i] * 3) % 3];
    if (kind == DATA_NEG_INF) {
      for (size_t i = 0; i < nin; i += 3) x[i] = -INFINITY;
      for (size_t i = 0; i < s->H * s->W; i++) x[i] = -INFINITY; /* plane 0 */
    }
  }
  free(u);
}

static void pool_case(int is_max, size_t n, size_t C, size_t H, size_t W, size_t size,
                      size_t stride, size_t pad, data_kind kind) {
  kd_device *dev = kd_test_device();
  shape s = make_shape(n, C, H, W, size, stride, pad);
  size_t nin = n * C * H * W, nout = n * C * s.OH * s.OW;
  float *x = kd_test_floats(nin), *dy = kd_test_floats(nout), *y = kd_test_floats(nout),
        *dx = kd_test_floats(nin);
  double *xd = kd_test_doubles(nin), *want_y = kd_test_doubles(nout),
         *want_dx = kd_test_doubles(nin);
  int *want_am = kd_test_ints(nout), *am = kd_test_ints(nout);
  fill_x(x, &s, kind, 100 + size * 10 + stride);
  kd_test_fill_uniform(dy, nout, -1, 1, 7 + n);
  for (size_t i = 0; i < nin; i++) xd[i] = x[i];
  char what[160];
  snprintf(what, sizeof what, "%s [%zu,%zu,%zu,%zu] size %zu stride %zu pad %zu data %d",
           is_max ? "maxpool" : "avgpool", n, C, H, W, size, stride, pad, (int)kind);

  if (is_max) maxpool_ref(&s, xd, want_y, want_am);
  else avgpool_ref(&s, xd, want_y);
  cl_mem bx = padded(nin, x), by = padded(nout, NULL), bam = int_buffer(nout),
         bdy = padded(nout, dy), bdx = padded(nin, NULL);
  if (is_max)
    KD_OK(kd_maxpool2d_forward(dev, kd_at(by, OFF), kd_at(bam, OFF), kd_at(bx, OFF), n, C, H, W,
                               size, stride, pad, err));
  else
    KD_OK(kd_avgpool2d_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), n, C, H, W, size, stride,
                               pad, err));
  kd_test_read(by, OFF, nout, y);
  assert_front_untouched(by);
  if (is_max) {
    /* Max copies a value: exact, -inf included. */
    for (size_t o = 0; o < nout; o++)
      if (!(y[o] == want_y[o])) fail_msg("%s y[%zu] = %g, want %g", what, o, y[o], want_y[o]);
    kd_test_read_ints(bam, OFF, nout, am);
    for (size_t o = 0; o < nout; o++)
      if (am[o] != want_am[o]) fail_msg("%s argmax[%zu] = %d, want %d", what, o, am[o], want_am[o]);
    int front[OFF];
    kd_test_read_ints(bam, 0, OFF, front);
    for (int i = 0; i < OFF; i++) assert_int_equal(front[i], GARBAGE_INDEX);
  } else {
    /* A float sum of size*size terms of |x| <= 2^something small, then one division. */
    kd_test_assert_close(what, y, want_y, nout, 1e-6, 1e-6);
  }

  /* Backward: reference, its FD check (distinct data only: ties/inf make max non-smooth and
   * inf breaks differences), then the kernel. */
  if (is_max) maxpool_backward_ref(&s, dy, want_am, want_dx);
  else avgpool_backward_ref(&s, dy, want_dx);
  if (kind == DATA_DISTINCT) check_reference_by_fd(is_max, &s, x, dy, want_dx);
  if (is_max)
    KD_OK(kd_maxpool2d_backward(dev, kd_at(bdx, OFF), kd_at(bdy, OFF), kd_at(bam, OFF), n, C, H,
                                W, size, stride, pad, err));
  else
    KD_OK(kd_avgpool2d_backward(dev, kd_at(bdx, OFF), kd_at(bdy, OFF), n, C, H, W, size, stride,
                                pad, err));
  kd_test_read(bdx, OFF, nin, dx);
  assert_front_untouched(bdx);
  size_t cover = (size + stride - 1) / stride; /* windows per axis an element can be in */
  snprintf(what + strlen(what), sizeof what - strlen(what), " dx");
  /* A float sum of up to cover^2 terms |dy| <= 1. */
  kd_test_assert_close(what, dx, want_dx, nin, 1e-7 * (double)(cover * cover), 1e-6);

  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bam);
  clReleaseMemObject(bdy), clReleaseMemObject(bdx);
  free(x), free(dy), free(y), free(dx), free(xd), free(want_y), free(want_dx), free(want_am),
      free(am);
}

/* The shapes both pools run: (n, C, H, W, size, stride, pad). */
static const size_t pool_cases[][7] = {
    {2, 3, 7, 9, 3, 2, 1},   /* overlapping windows, size 3 stride 2, padding */
    {2, 2, 8, 6, 2, 2, 0},   /* the classic 2x2 / 2 */
    {1, 3, 7, 5, 3, 1, 1},   /* stride 1: every element in up to 9 windows */
    {2, 2, 9, 7, 3, 3, 0},   /* stride = size, odd; 7 columns: the last one dropped */
    {1, 2, 6, 10, 2, 3, 1},  /* stride > size: some elements in no window */
    {1, 1, 5, 5, 5, 1, 2},   /* one big padded window per position */
    {3, 2, 4, 4, 1, 1, 0},   /* size 1 */
    {1, 2, 11, 13, 4, 3, 2}, /* even size, pad = size/2 */
    {1, 1, 1, 1, 2, 1, 1},   /* a 1x1 plane inside padding */
};

static void maxpool_matches_reference(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof pool_cases / sizeof pool_cases[0]; k++) {
    const size_t *c = pool_cases[k];
    for (int kind = DATA_DISTINCT; kind <= DATA_NEG_INF; kind++)
      pool_case(1, c[0], c[1], c[2], c[3], c[4], c[5], c[6], (data_kind)kind);
  }
}

static void avgpool_matches_reference(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof pool_cases / sizeof pool_cases[0]; k++) {
    const size_t *c = pool_cases[k];
    pool_case(0, c[0], c[1], c[2], c[3], c[4], c[5], c[6], DATA_DISTINCT);
    pool_case(0, c[0], c[1], c[2], c[3], c[4], c[5], c[6], DATA_TIES);
  }
}

/* Ties, by hand: a 4x4 plane of ones, size 3 stride 1 pad 1: every window's first real
 * element wins; padding (zeros if it were a candidate) never does, even against -1s. */
static void maxpool_ties_take_first_in_window(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  float x[2 * 16];
  for (int i = 0; i < 16; i++) x[i] = 1.0f, x[16 + i] = -1.0f;
  cl_mem bx = padded(32, x), by = padded(32, NULL), bam = int_buffer(32);
  KD_OK(kd_maxpool2d_forward(dev, kd_at(by, OFF), kd_at(bam, OFF), kd_at(bx, OFF), 1, 2, 4, 4, 3,
                             1, 1, err));
  float y[32];
  int am[32];
  kd_test_read(by, OFF, 32, y);
  kd_test_read_ints(bam, OFF, 32, am);
  for (int p = 0; p < 2; p++)
    for (int oh = 0; oh < 4; oh++)
      for (int ow = 0; ow < 4; ow++) {
        int o = p * 16 + oh * 4 + ow;
        int want = (oh > 0 ? oh - 1 : 0) * 4 + (ow > 0 ? ow - 1 : 0);
        assert_true(y[o] == (p ? -1.0f : 1.0f));
        assert_int_equal(am[o], want);
      }
  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bam);
}

/* ---- global average pool ---- */

static void global_avgpool_case(size_t n, size_t C, size_t HW) {
  kd_device *dev = kd_test_device();
  size_t nin = n * C * HW, nout = n * C;
  float *x = kd_test_floats(nin), *dy = kd_test_floats(nout), *y = kd_test_floats(nout),
        *dx = kd_test_floats(nin);
  double *want_y = kd_test_doubles(nout), *want_dx = kd_test_doubles(nin);
  kd_test_fill_uniform(x, nin, -2, 3, 40 + HW);
  kd_test_fill_uniform(dy, nout, -1, 1, 41 + HW);
  for (size_t p = 0; p < nout; p++) {
    double acc = 0;
    for (size_t j = 0; j < HW; j++) acc += x[p * HW + j];
    want_y[p] = acc / (double)HW;
    for (size_t j = 0; j < HW; j++) want_dx[p * HW + j] = dy[p] / (double)HW;
  }
  /* The reference dx against central differences of L = sum(dy * mean(x)) (linear: exact up
   * to rounding), at a few elements. */
  for (size_t i = 0; i < nin; i += 1 + nin / 11) {
    const double h = 1e-4;
    size_t p = i / HW;
    double Lp = 0, Lm = 0;
    for (size_t j = 0; j < HW; j++) {
      double v = x[p * HW + j];
      Lp += (p * HW + j == i ? v + h : v);
      Lm += (p * HW + j == i ? v - h : v);
    }
    double fd = dy[p] * (Lp - Lm) / (double)HW / (2 * h);
    if (fabs(fd - want_dx[i]) > 1e-9) fail_msg("global avgpool reference dx[%zu] vs FD", i);
  }
  cl_mem bx = padded(nin, x), by = padded(nout, NULL), bdy = padded(nout, dy),
         bdx = padded(nin, NULL);
  KD_OK(kd_global_avgpool_forward(dev, kd_at(by, OFF), kd_at(bx, OFF), n, C, HW, err));
  KD_OK(kd_global_avgpool_backward(dev, kd_at(bdx, OFF), kd_at(bdy, OFF), n, C, HW, err));
  kd_test_read(by, OFF, nout, y);
  kd_test_read(bdx, OFF, nin, dx);
  assert_front_untouched(by), assert_front_untouched(bdx);
  char what[96];
  snprintf(what, sizeof what, "global avgpool y [%zu,%zu,%zu]", n, C, HW);
  /* A sequential float sum of HW terms |x| <= 3: about HW * 6e-8 * 3 / HW relative to the mean */
  kd_test_assert_close(what, y, want_y, nout, 3e-7 * (1 + sqrt((double)HW)), 1e-6);
  snprintf(what, sizeof what, "global avgpool dx [%zu,%zu,%zu]", n, C, HW);
  kd_test_assert_close(what, dx, want_dx, nin, 0, 1.2e-7); /* one division */
  clReleaseMemObject(bx), clReleaseMemObject(by), clReleaseMemObject(bdy),
      clReleaseMemObject(bdx);
  free(x), free(dy), free(y), free(dx), free(want_y), free(want_dx);
}

static void global_avgpool_matches_reference(void **state) {
  (void)state;
  global_avgpool_case(3, 5, 49);
  global_avgpool_case(2, 3, 1);
  global_avgpool_case(1, 4, 1000);
  global_avgpool_case(67, 3, 16); /* more planes than one work-group */
}

static void pool_launchers_refuse_bad_arguments(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem buf = kd_test_buffer(256, NULL);
  kd_error err = {{0}};
  assert_int_equal(kd_maxpool2d_forward(dev, kd_at(buf, 0), kd_at(buf, 0), kd_at(buf, 0), 0, 1,
                                        4, 4, 2, 2, 0, &err), -1);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(kd_maxpool2d_forward(dev, kd_at(buf, 0), kd_at(NULL, 0), kd_at(buf, 0), 1, 1,
                                        4, 4, 2, 2, 0, &err), -1);
  assert_non_null(strstr(err.msg, "argmax buffer is NULL"));
  assert_int_equal(kd_avgpool2d_forward(dev, kd_at(buf, 0), kd_at(buf, 0), 1, 1, 4, 4, 2, 2, 2,
                                        &err), -1);
  assert_non_null(strstr(err.msg, "avgpool2d forward"));
  assert_non_null(strstr(err.msg, "half"));
  assert_int_equal(kd_avgpool2d_backward(dev, kd_at(buf, 0), kd_at(buf, 0), 1, 1, 2, 2, 3, 1, 0,
                                         &err), -1);
  assert_non_null(strstr(err.msg, "larger"));
  assert_int_equal(kd_maxpool2d_backward(dev, kd_at(buf, (size_t)UINT32_MAX - 3),
                                         kd_at(buf, 0), kd_at(buf, 0), 1, 1, 4, 4, 2, 2, 0,
                                         &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  assert_int_equal(kd_global_avgpool_forward(dev, kd_at(buf, 0), kd_at(buf, 0), 2, 3, 0, &err),
                   -1);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(kd_global_avgpool_backward(dev, kd_at(buf, 0), kd_at(buf, 0), 1 << 16,
                                              1 << 16, 2, &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  clReleaseMemObject(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(out_size_and_refusals),
      cmocka_unit_test(maxpool_matches_reference),
      cmocka_unit_test(maxpool_ties_take_first_in_window),
      cmocka_unit_test(avgpool_matches_reference),
      cmocka_unit_test(global_avgpool_matches_reference),
      cmocka_unit_test(pool_launchers_refuse_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
