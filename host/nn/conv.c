/* Launchers for conv2d (host/nn/conv.h): im2col + kd_gemm + reorder (kernels/conv.cl). Enqueue
 * only. */
#include "nn/conv.h"

#include <stdint.h>

#include "nn/gemm.h"

/* Tensors and the workspace stay below 2^31 elements, so every index the kernels form
 * (including signed pixel coordinates) fits 32 bits. */
#define CONV_LIMIT ((size_t)1 << 31)

/* a*b into *out unless it overflows or reaches CONV_LIMIT. */
static int mul_ok(size_t a, size_t b, size_t *out) {
  if (b != 0 && a > (CONV_LIMIT - 1) / b) return 0;
  *out = a * b;
  return 1;
}

static int mul3_ok(size_t a, size_t b, size_t c, size_t *out) {
  size_t t;
  return mul_ok(a, b, &t) && mul_ok(t, c, out);
}

static int mul4_ok(size_t a, size_t b, size_t c, size_t d, size_t *out) {
  size_t t;
  return mul_ok(a, b, &t) && mul3_ok(t, c, d, out);
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

int kd_conv2d_shape_init(kd_conv2d_shape *s, size_t B, size_t C, size_t H, size_t W, size_t O,
                         size_t KH, size_t KW, size_t stride, size_t pad, kd_error *err) {
  const char *op = "conv2d shape";
  if (!s) return kd_fail(err, "%s: no shape to fill", op);
  *s = (kd_conv2d_shape){0};
  if (!B || !C || !H || !W || !O || !KH || !KW || !stride)
    return kd_fail(err,
                   "%s: B=%zu C=%zu H=%zu W=%zu O=%zu kernel %zux%zu stride %zu: every size and "
                   "the stride must be at least 1",
                   op, B, C, H, W, O, KH, KW, stride);
  if (pad >= CONV_LIMIT / 4 || H >= CONV_LIMIT / 2 || W >= CONV_LIMIT / 2)
    return kd_fail(err, "%s: input %zux%zu with pad %zu exceeds the 2^31-element limit", op, H, W,
                   pad);
  const size_t PH = H + 2 * pad, PW = W + 2 * pad; /* < 2^31: no overflow */
  if (KH > PH || KW > PW)
    return kd_fail(err, "%s: kernel %zux%zu is larger than the padded input %zux%zu", op, KH, KW,
                   PH, PW);
  const size_t OH = (PH - KH) / stride + 1, OW = (PW - KW) / stride + 1;
  size_t plane, xn, yn, wn, cols, kk, coln, y2n;
  if (!mul_ok(PH, PW, &plane) || !mul4_ok(B, C, H, W, &xn) || !mul4_ok(B, O, OH, OW, &yn) ||
      !mul4_ok(O, C, KH, KW, &wn) || !mul3_ok(B, OH, OW, &cols) || !mul3_ok(C, KH, KW, &kk) ||
      !mul_ok(kk, cols, &coln) || !mul_ok(O, cols, &y2n) || round16(coln) + y2n >= CONV_LIMIT)
    return kd_fail(err,
                   "%s: B=%zu C=%zu %zux%zu -> O=%zu %zux%zu, kernel %zux%zu: a tensor or the "
                   "workspace reaches 2^31 elements",
                   op, B, C, H, W, O, OH, OW, KH, KW);
  *s = (kd_conv2d_shape){B, C, H, W, O, KH, KW, stride, pad, OH, OW};
  return 0;
}

size_t kd_conv2d_workspace_floats(const kd_conv2d_shape *s) {
  const size_t cols = s->B * s->OH * s->OW;
  return round16(s->C * s->KH * s->KW * cols) + s->O * cols;
}

/* Divisor d as the (mul, shift) pair kd_conv_div in kernels/conv.cl expects; 1 <= d < 2^32. */
typedef struct udiv {
  cl_uint mul, shift;
} udiv;

static udiv udiv_magic(size_t d) {
  unsigned l = 0;
  while (((uint64_t)1 << l) < d) l++;
  udiv m;
  m.mul = (cl_uint)((((uint64_t)1 << 32) * (((uint64_t)1 << l) - d)) / d + 1);
  m.shift = l ? 1u | (cl_uint)(l - 1) << 8 : 0u;
  return m;
}

#define KD_UDIV(m) KD_UINT((m).mul), KD_UINT((m).shift)

/* The kernels index with 32-bit uints: offset + extent must stay below 2^32. */
static int check_ref(const char *op, const char *what, kd_ref r, size_t n, kd_error *err) {
  if (!r.buf) return kd_fail(err, "%s: %s buffer is NULL", op, what);
  if (r.off > UINT32_MAX || n > UINT32_MAX - r.off)
    return kd_fail(err, "%s: %s (offset %zu + %zu elements) exceeds the 2^32-element limit of "
                   "the kernels", op, what, r.off, n);
  return 0;
}

/* s must be what kd_conv2d_shape_init makes (re-derived here, so a hand-edited shape cannot
 * reach the kernels), and 1 <= n <= s->B. */
static int check_shape(const char *op, const kd_conv2d_shape *s, size_t n, kd_error *err) {
  if (!s) return kd_fail(err, "%s: shape is NULL", op);
  kd_conv2d_shape t;
  if (kd_conv2d_shape_init(&t, s->B, s->C, s->H, s->W, s->O, s->KH, s->KW, s->stride, s->pad,
                           err))
    return kd_fail_context(err, "%s", op);
  if (t.OH != s->OH || t.OW != s->OW)
    return kd_fail(err, "%s: shape says output %zux%zu but the geometry gives %zux%zu", op,
                   s->OH, s->OW, t.OH, t.OW);
  if (n < 1 || n > s->B)
    return kd_fail(err, "%s: %zu images in a call; the shape allows 1 to %zu", op, n, s->B);
  return 0;
}

/* Workspace regions for n images: col [K, n*P] at the start, Y/D [O, n*P] after the batch-size
 * col region (both offsets fixed by s alone). */
typedef struct conv_ws {
  size_t K, P, N; /* C*KH*KW, OH*OW, n*P */
  kd_ref col, y2;
} conv_ws;

static int check_ws(const char *op, const kd_conv2d_shape *s, size_t n, kd_ref ws, conv_ws *out,
                    kd_error *err) {
  if (check_ref(op, "workspace", ws, kd_conv2d_workspace_floats(s), err)) return -1;
  out->K = s->C * s->KH * s->KW;
  out->P = s->OH * s->OW;
  out->N = n * out->P;
  out->col = ws;
  out->y2 = kd_at(ws.buf, ws.off + round16(out->K * s->B * out->P));
  return 0;
}

static int run_im2col(kd_device *dev, const kd_conv2d_shape *s, const conv_ws *ws, kd_ref x,
                      kd_error *err) {
  size_t g = ws->N, l = KD_WG;
  udiv dp = udiv_magic(ws->P), dow = udiv_magic(s->OW);
  return KD_RUN(dev, "kd_conv_im2col", 1, &g, &l, err, KD_MEM(ws->col.buf),
                KD_UINT(ws->col.off), KD_MEM(x.buf), KD_UINT(x.off), KD_UINT(ws->N),
                KD_UINT(s->C), KD_UINT(s->H), KD_UINT(s->W), KD_UINT(s->KH), KD_UINT(s->KW),
                KD_UINT(s->stride), KD_INT(s->pad), KD_UINT(ws->P), KD_UINT(s->OW), KD_UDIV(dp),
                KD_UDIV(dow));
}

int kd_conv2d_forward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref y, kd_ref x,
                      kd_ref w, kd_ref b, kd_ref workspace, kd_error *err) {
  const char *op = "conv2d forward";
  conv_ws ws;
  if (check_shape(op, s, n, err) || check_ws(op, s, n, workspace, &ws, err) ||
      check_ref(op, "y", y, n * s->O * ws.P, err) ||
      check_ref(op, "x", x, n * s->C * s->H * s->W, err) ||
      check_ref(op, "w", w, s->O * ws.K, err))
    return -1;
  if (b.buf && check_ref(op, "b", b, s->O, err)) return -1;
  if (run_im2col(dev, s, &ws, x, err)) return kd_fail_context(err, "%s", op);
  /* Y[O, N] = w[O, K] * col[K, N] */
  if (kd_gemm(dev, 0, 0, s->O, ws.N, ws.K, 1.0f, w.buf, w.off, ws.K, ws.col.buf, ws.col.off,
              ws.N, 0.0f, ws.y2.buf, ws.y2.off, ws.N, err))
    return kd_fail_context(err, "%s GEMM [%zu x %zu] x [%zu x %zu]", op, s->O, ws.K, ws.K, ws.N);
  size_t g = ws.N, l = KD_WG;
  udiv dp = udiv_magic(ws.P);
  return KD_RUN(dev, "kd_conv_cols_to_nchw", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(ws.y2.buf), KD_UINT(ws.y2.off), KD_MEM(b.buf ? b.buf : y.buf),
                KD_UINT(b.buf ? b.off : 0), KD_INT(b.buf != NULL), KD_UINT(ws.N),
                KD_UINT(s->O), KD_UINT(ws.P), KD_UDIV(dp));
}

int kd_conv2d_backward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref dx, kd_ref dw,
                       kd_ref db, kd_ref dy, kd_ref x, kd_ref w, kd_ref workspace,
                       kd_error *err) {
  const char *op = "conv2d backward";
  conv_ws ws;
  const size_t xn = n * s->C * s->H * s->W;
  if (check_shape(op, s, n, err) || check_ws(op, s, n, workspace, &ws, err) ||
      check_ref(op, "dw", dw, s->O * ws.K, err) || check_ref(op, "dy", dy, n * s->O * ws.P, err) ||
      check_ref(op, "x", x, xn, err))
    return -1;
  if (dx.buf && (check_ref(op, "dx", dx, xn, err) || check_ref(op, "w", w, s->O * ws.K, err)))
    return -1;
  if (db.buf && check_ref(op, "db", db, s->O, err)) return -1;
  size_t l = KD_WG, g = ws.N;
  udiv dp = udiv_magic(ws.P);
  /* col = im2col(x); D[O, N] = dy reordered */
  if (run_im2col(dev, s, &ws, x, err) ||
      KD_RUN(dev, "kd_conv_nchw_to_cols", 1, &g, &l, err, KD_MEM(ws.y2.buf), KD_UINT(ws.y2.off),
             KD_MEM(dy.buf), KD_UINT(dy.off), KD_UINT(ws.N), KD_UINT(s->O), KD_UINT(ws.P),
             KD_UDIV(dp)))
    return kd_fail_context(err, "%s", op);
  /* dw[O, K] = D[O, N] * col[K, N]^T */
  if (kd_gemm(dev, 0, 1, s->O, ws.K, ws.N, 1.0f, ws.y2.buf, ws.y2.off, ws.N, ws.col.buf,
              ws.col.off, ws.N, 0.0f, dw.buf, dw.off, ws.K, err))
    return kd_fail_context(err, "%s dw GEMM [%zu x %zu] x [%zu x %zu]", op, s->O, ws.N, ws.N,
                           ws.K);
  if (db.buf) {
    g = s->O * KD_WG;
    if (KD_RUN(dev, "kd_conv_bias_grad", 1, &g, &l, err, KD_MEM(db.buf), KD_UINT(db.off),
               KD_MEM(ws.y2.buf), KD_UINT(ws.y2.off), KD_UINT(ws.N)))
      return kd_fail_context(err, "%s", op);
  }
  if (!dx.buf) return 0;
  /* dcol[K, N] = w[O, K]^T * D[O, N], over col (the queue is in order: dw has read it) */
  if (kd_gemm(dev, 1, 0, ws.K, ws.N, s->O, 1.0f, w.buf, w.off, ws.K, ws.y2.buf, ws.y2.off, ws.N,
              0.0f, ws.col.buf, ws.col.off, ws.N, err))
    return kd_fail_context(err, "%s dx GEMM [%zu x %zu] x [%zu x %zu]", op, ws.K, s->O, s->O,
                           ws.N);
  g = n * s->H * s->W;
  udiv dhw = udiv_magic(s->H * s->W), dw_ = udiv_magic(s->W), ds = udiv_magic(s->stride);
  return KD_RUN(dev, "kd_conv_col2im", 1, &g, &l, err, KD_MEM(dx.buf), KD_UINT(dx.off),
                KD_MEM(ws.col.buf), KD_UINT(ws.col.off), KD_UINT(n), KD_UINT(s->C),
                KD_UINT(s->H), KD_UINT(s->W), KD_UINT(s->KH), KD_UINT(s->KW),
                KD_UINT(s->stride), KD_UINT(s->pad), KD_UINT(s->OH), KD_UINT(s->OW),
                KD_UINT(ws.N), KD_UDIV(dhw), KD_UDIV(dw_), KD_UDIV(ds));
}
