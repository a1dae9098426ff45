/* Launchers for conv2d (host/nn/conv.h): im2col + kd_gemm + reorder (kernels/conv.cl), over
 * the batch in chunks of images. Enqueue only. */
#include "nn/conv.h"

#include <stdint.h>

#include "nn/gemm.h"

/* Tensors and the workspace stay below 2^31 elements, so every index the kernels form fits
 * 32 bits with room to spare. */
#define CONV_LIMIT ((size_t)1 << 31)

/* Target size, in floats, of one chunk's column matrix: small enough that im2col's output is
 * still in cache when the GEMM reads it, large enough for GEMMs that fill the device. Measured
 * on 2 cores under PoCL with the built-in GEMM (n = 128; 3x3 pad 1 convs 1->32 at 28x28 and
 * 32->64 at 14x14): 2^19-2^21 within noise of each other, 2^17 and 2^23 (the whole batch)
 * 10-60% slower. */
#ifndef KD_CONV_CHUNK_FLOATS
#define KD_CONV_CHUNK_FLOATS ((size_t)1 << 20)
#endif

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

/* Workspace floats for chunks of g images: col [K, g*P] (rounded to 16), then Y/D [O, g*P]. */
static size_t workspace_for(const kd_conv2d_shape *s, size_t g) {
  const size_t cols = g * s->OH * s->OW;
  return round16(s->C * s->KH * s->KW * cols) + s->O * cols;
}

/* Images per chunk: as many as keep the column matrix near KD_CONV_CHUNK_FLOATS, at least 1,
 * at most B, and the workspace below 2^31 (true for 1 after kd_conv2d_shape_init). A function
 * of s alone, like the workspace size. */
static size_t chunk_images(const kd_conv2d_shape *s) {
  size_t g = KD_CONV_CHUNK_FLOATS / (s->C * s->KH * s->KW * s->OH * s->OW);
  if (g > s->B) g = s->B;
  while (g > 1 && workspace_for(s, g) >= CONV_LIMIT) g /= 2;
  return g < 1 ? 1 : g;
}

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
  /* The workspace of chunks of one image (the smallest chunk) must fit as well. */
  size_t plane, xn, yn, wn, kp, opn;
  if (!mul_ok(PH, PW, &plane) || !mul4_ok(B, C, H, W, &xn) || !mul4_ok(B, O, OH, OW, &yn) ||
      !mul4_ok(O, C, KH, KW, &wn) || !mul4_ok(C, KH, KW, OH * OW, &kp) ||
      !mul3_ok(O, OH, OW, &opn) || round16(kp) + opn >= CONV_LIMIT)
    return kd_fail(err,
                   "%s: B=%zu C=%zu %zux%zu -> O=%zu %zux%zu, kernel %zux%zu: a tensor or the "
                   "workspace reaches 2^31 elements (try a smaller --batch)",
                   op, B, C, H, W, O, OH, OW, KH, KW);
  *s = (kd_conv2d_shape){B, C, H, W, O, KH, KW, stride, pad, OH, OW};
  return 0;
}

size_t kd_conv2d_workspace_floats(const kd_conv2d_shape *s) {
  return workspace_for(s, chunk_images(s));
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

/* Per-call geometry: K = C*KH*KW, P = OH*OW, g images per chunk; the workspace holds col
 * [K, g*P] at its start and Y/D [O, g*P] after it (offsets fixed by s alone). */
typedef struct conv_plan {
  size_t K, KK, P, g;
  kd_ref col, y2;
} conv_plan;

static int plan(const char *op, const kd_conv2d_shape *s, size_t n, kd_ref ws, conv_plan *p,
                kd_error *err) {
  if (check_shape(op, s, n, err) ||
      check_ref(op, "workspace", ws, kd_conv2d_workspace_floats(s), err))
    return -1;
  p->KK = s->KH * s->KW;
  p->K = s->C * p->KK;
  p->P = s->OH * s->OW;
  p->g = chunk_images(s);
  p->col = ws;
  p->y2 = kd_at(ws.buf, ws.off + round16(p->K * p->g * p->P));
  return 0;
}

/* col [K, m*P] from images [i0, i0 + m) of x. */
static int run_im2col(kd_device *dev, const kd_conv2d_shape *s, const conv_plan *p, kd_ref x,
                      size_t i0, size_t m, kd_error *err) {
  size_t g = m * p->K, l = KD_WG;
  udiv dk = udiv_magic(p->K), dkk = udiv_magic(p->KK), dkw = udiv_magic(s->KW);
  return KD_RUN(dev, "kd_conv_im2col", 1, &g, &l, err, KD_MEM(p->col.buf), KD_UINT(p->col.off),
                KD_MEM(x.buf), KD_UINT(x.off + i0 * s->C * s->H * s->W), KD_UINT(g),
                KD_UINT(p->K), KD_UINT(m * p->P), KD_UINT(s->C), KD_UINT(s->H), KD_UINT(s->W),
                KD_UINT(p->KK), KD_UINT(s->KW), KD_UINT(s->stride), KD_UINT(s->pad),
                KD_UINT(s->OH), KD_UINT(s->OW), KD_UDIV(dk), KD_UDIV(dkk), KD_UDIV(dkw));
}

int kd_conv2d_forward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref y, kd_ref x,
                      kd_ref w, kd_ref b, kd_ref workspace, kd_error *err) {
  const char *op = "conv2d forward";
  conv_plan p;
  if (plan(op, s, n, workspace, &p, err) || check_ref(op, "y", y, n * s->O * p.P, err) ||
      check_ref(op, "x", x, n * s->C * s->H * s->W, err) ||
      check_ref(op, "w", w, s->O * p.K, err))
    return -1;
  if (b.buf && check_ref(op, "b", b, s->O, err)) return -1;
  udiv dO = udiv_magic(s->O);
  for (size_t i0 = 0; i0 < n; i0 += p.g) {
    const size_t m = n - i0 < p.g ? n - i0 : p.g, N = m * p.P;
    if (run_im2col(dev, s, &p, x, i0, m, err)) return kd_fail_context(err, "%s", op);
    /* Y[O, N] = w[O, K] * col[K, N] */
    if (kd_gemm(dev, 0, 0, s->O, N, p.K, 1.0f, w.buf, w.off, p.K, p.col.buf, p.col.off, N, 0.0f,
                p.y2.buf, p.y2.off, N, err))
      return kd_fail_context(err, "%s GEMM [%zu x %zu] x [%zu x %zu]", op, s->O, p.K, p.K, N);
    size_t g = m * s->O, l = KD_WG;
    if (KD_RUN(dev, "kd_conv_cols_to_nchw", 1, &g, &l, err, KD_MEM(y.buf),
               KD_UINT(y.off + i0 * s->O * p.P), KD_MEM(p.y2.buf), KD_UINT(p.y2.off),
               KD_MEM(b.buf ? b.buf : y.buf), KD_UINT(b.buf ? b.off : 0), KD_INT(b.buf != NULL),
               KD_UINT(g), KD_UINT(s->O), KD_UINT(p.P), KD_UINT(N), KD_UDIV(dO)))
      return kd_fail_context(err, "%s", op);
  }
  return 0;
}

int kd_conv2d_backward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref dx, kd_ref dw,
                       kd_ref db, kd_ref dy, kd_ref x, kd_ref w, kd_ref workspace,
                       kd_error *err) {
  const char *op = "conv2d backward";
  conv_plan p;
  const size_t xn = n * s->C * s->H * s->W;
  if (plan(op, s, n, workspace, &p, err) || check_ref(op, "dw", dw, s->O * p.K, err) ||
      check_ref(op, "dy", dy, n * s->O * p.P, err) || check_ref(op, "x", x, xn, err))
    return -1;
  if (dx.buf && (check_ref(op, "dx", dx, xn, err) || check_ref(op, "w", w, s->O * p.K, err)))
    return -1;
  if (db.buf && check_ref(op, "db", db, s->O, err)) return -1;
  size_t l = KD_WG;
  if (db.buf) {
    size_t g = s->O * KD_WG;
    if (KD_RUN(dev, "kd_conv_bias_grad", 1, &g, &l, err, KD_MEM(db.buf), KD_UINT(db.off),
               KD_MEM(dy.buf), KD_UINT(dy.off), KD_UINT(n), KD_UINT(s->O), KD_UINT(p.P)))
      return kd_fail_context(err, "%s", op);
  }
  udiv dO = udiv_magic(s->O), dH = udiv_magic(s->H), dC = udiv_magic(s->C),
       dS = udiv_magic(s->stride);
  for (size_t i0 = 0; i0 < n; i0 += p.g) {
    const size_t m = n - i0 < p.g ? n - i0 : p.g, N = m * p.P;
    /* D[O, N] = this chunk of dy, reordered; col = im2col(x) */
    size_t g = m * s->O;
    if (KD_RUN(dev, "kd_conv_nchw_to_cols", 1, &g, &l, err, KD_MEM(p.y2.buf), KD_UINT(p.y2.off),
               KD_MEM(dy.buf), KD_UINT(dy.off + i0 * s->O * p.P), KD_UINT(g), KD_UINT(s->O),
               KD_UINT(p.P), KD_UINT(N), KD_UDIV(dO)) ||
        run_im2col(dev, s, &p, x, i0, m, err))
      return kd_fail_context(err, "%s", op);
    /* dw[O, K] (+)= D[O, N] * col[K, N]^T: chunks summed in order, the first one overwrites */
    if (kd_gemm(dev, 0, 1, s->O, p.K, N, 1.0f, p.y2.buf, p.y2.off, N, p.col.buf, p.col.off, N,
                i0 ? 1.0f : 0.0f, dw.buf, dw.off, p.K, err))
      return kd_fail_context(err, "%s dw GEMM [%zu x %zu] x [%zu x %zu]", op, s->O, N, N, p.K);
    if (!dx.buf) continue;
    /* dcol[K, N] = w[O, K]^T * D[O, N], over col (the queue is in order: dw has read it) */
    if (kd_gemm(dev, 1, 0, p.K, N, s->O, 1.0f, w.buf, w.off, p.K, p.y2.buf, p.y2.off, N, 0.0f,
                p.col.buf, p.col.off, N, err))
      return kd_fail_context(err, "%s dx GEMM [%zu x %zu] x [%zu x %zu]", op, p.K, s->O, s->O,
                             N);
    g = m * s->C * s->H;
    if (KD_RUN(dev, "kd_conv_col2im", 1, &g, &l, err, KD_MEM(dx.buf),
               KD_UINT(dx.off + i0 * s->C * s->H * s->W), KD_MEM(p.col.buf),
               KD_UINT(p.col.off), KD_UINT(g), KD_UINT(s->C), KD_UINT(s->H), KD_UINT(s->W),
               KD_UINT(s->KH), KD_UINT(s->KW), KD_UINT(s->stride), KD_UINT(s->pad),
               KD_UINT(s->OH), KD_UINT(s->OW), KD_UINT(N), KD_UDIV(dH), KD_UDIV(dC), KD_UDIV(dS)))
      return kd_fail_context(err, "%s", op);
  }
  return 0;
}
