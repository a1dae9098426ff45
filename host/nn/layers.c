/* Launchers for the MLP layers: dense (kd_gemm + kernels/dense.cl), activations
 * (kernels/activation.cl), dropout (kernels/dropout.cl) and input normalisation
 * (kernels/normalize.cl). Enqueue only. */
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#include "nn/gemm.h"

/* Kernels index with 32-bit uints: an extent must end below 2^32 elements. */
static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

static int check_ref(const char *op, const char *what, kd_ref r, size_t n, kd_error *err) {
  if (!r.buf) return kd_fail(err, "%s: %s buffer is NULL", op, what);
  if (!fits_u32(r.off, n))
    return kd_fail(err, "%s: %s (offset %zu + %zu elements) exceeds the 2^32-element limit of "
                   "the kernels", op, what, r.off, n);
  return 0;
}

/* rows*cols without overflow, and below 2^32. */
static int check_dims(const char *op, size_t rows, size_t cols, kd_error *err) {
  if (rows == 0 || cols == 0) return kd_fail(err, "%s: empty shape [%zu, %zu]", op, rows, cols);
  if (cols > UINT32_MAX / rows)
    return kd_fail(err, "%s: shape [%zu, %zu] exceeds the 2^32-element limit of the kernels", op,
                   rows, cols);
  return 0;
}

static const char *const act_names[] = {"relu", "gelu", "tanh", "sigmoid"};

int kd_activation_parse(const char *name, kd_activation *out) {
  for (int i = 0; i < 4; i++)
    if (name && !strcmp(name, act_names[i])) {
      *out = (kd_activation)i;
      return 0;
    }
  return -1;
}

const char *kd_activation_name(kd_activation act) {
  return (unsigned)act < 4 ? act_names[act] : "?";
}

static int check_act(const char *op, kd_activation act, kd_error *err) {
  if ((unsigned)act >= 4) return kd_fail(err, "%s: invalid activation %d", op, (int)act);
  return 0;
}

int kd_dense_forward(kd_device *dev, kd_ref y, kd_ref x, kd_ref w, kd_ref b, size_t B, size_t in,
                     size_t out, kd_error *err) {
  return kd_dense_forward_act(dev, y, kd_at(NULL, 0), x, w, b, B, in, out, -1, err);
}

int kd_dense_forward_act(kd_device *dev, kd_ref y, kd_ref pre, kd_ref x, kd_ref w, kd_ref b,
                         size_t B, size_t in, size_t out, int act, kd_error *err) {
  const char *op = "dense forward";
  if (check_dims(op, B, in, err) || check_dims(op, B, out, err) ||
      check_dims(op, out, in, err) || check_ref(op, "y", y, B * out, err) ||
      check_ref(op, "x", x, B * in, err) || check_ref(op, "w", w, out * in, err))
    return -1;
  if (b.buf && check_ref(op, "b", b, out, err)) return -1;
  if (act != -1 && check_act(op, (kd_activation)act, err)) return -1;
  if (pre.buf && check_ref(op, "pre-activation", pre, B * out, err)) return -1;
  if (act == -1) pre = kd_at(NULL, 0); /* nothing to keep: y is the value itself */
  /* y[B,out] = act(x[B,in] * w[out,in]^T + b): one launch where the GEMM takes the epilogue */
  if (kd_gemm_fuses_epilogue(dev)) {
    if (kd_gemm_nt_epilogue(dev, B, out, in, x.buf, x.off, in, w.buf, w.off, in, y.buf, y.off, out,
                            b, act, pre, err))
      return kd_fail_context(err, "%s [%zu x %zu] -> %zu", op, B, in, out);
    return 0;
  }
  /* Otherwise the GEMM writes where the value before the activation belongs, and one kernel
   * adds the bias and applies the activation. */
  kd_ref v = pre.buf ? pre : y;
  if (kd_gemm(dev, 0, 1, B, out, in, 1.0f, x.buf, x.off, in, w.buf, w.off, in, 0.0f, v.buf, v.off,
              out, err))
    return kd_fail_context(err, "%s [%zu x %zu] -> %zu", op, B, in, out);
  if (!b.buf && act == -1) return 0;
  size_t g = B * out, l = KD_WG;
  if (act == -1)
    return KD_RUN(dev, "kd_dense_bias_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                  KD_MEM(b.buf), KD_UINT(b.off), KD_UINT(B), KD_UINT(out));
  return KD_RUN(dev, "kd_dense_bias_act_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(pre.buf ? pre.buf : y.buf), KD_UINT(pre.buf ? pre.off : 0),
                KD_INT(pre.buf != NULL), KD_MEM(b.buf ? b.buf : y.buf),
                KD_UINT(b.buf ? b.off : 0), KD_INT(b.buf != NULL), KD_UINT(B), KD_UINT(out),
                KD_INT(act));
}

int kd_dense_backward(kd_device *dev, kd_ref dx, kd_ref dw, kd_ref db, kd_ref dy, kd_ref x,
                      kd_ref w, size_t B, size_t in, size_t out, kd_error *err) {
  return kd_dense_backward_act(dev, dx, -1, kd_at(NULL, 0), kd_at(NULL, 0), dw, db, dy, x, w, B,
                               in, out, err);
}

int kd_dense_backward_act(kd_device *dev, kd_ref dx, int act, kd_ref act_x, kd_ref act_y,
                          kd_ref dw, kd_ref db, kd_ref dy, kd_ref x, kd_ref w, size_t B,
                          size_t in, size_t out, kd_error *err) {
  const char *op = "dense backward";
  if (check_dims(op, B, in, err) || check_dims(op, B, out, err) ||
      check_dims(op, out, in, err) || check_ref(op, "dw", dw, out * in, err) ||
      check_ref(op, "dy", dy, B * out, err) || check_ref(op, "x", x, B * in, err))
    return -1;
  if (dx.buf && (check_ref(op, "dx", dx, B * in, err) || check_ref(op, "w", w, out * in, err)))
    return -1;
  if (db.buf && check_ref(op, "db", db, out, err)) return -1;
  /* The activation before the layer: its saved tensor (output, or input for gelu). */
  kd_ref s = kd_at(NULL, 0);
  int s_is_output = 0;
  if (act != -1 && dx.buf) {
    if (check_act(op, (kd_activation)act, err)) return -1;
    s_is_output = act != KD_ACT_GELU && act_y.buf != NULL;
    s = s_is_output ? act_y : act_x;
    if (!s.buf)
      return kd_fail(err, "%s through %s: the activation's input is needed and is NULL", op,
                     kd_activation_name((kd_activation)act));
    if (check_ref(op, s_is_output ? "activation output" : "activation input", s, B * in, err))
      return -1;
  } else {
    act = -1;
  }
  int fused = kd_gemm_fuses_epilogue(dev);
  /* dx[B,in] = dy[B,out] * w[out,in], through act' when given */
  if (dx.buf) {
    int rc = fused ? kd_gemm_outer_epilogue(dev, 0, B, in, out, dy.buf, dy.off, out, w.buf, w.off,
                                            in, dx.buf, dx.off, in, act, s, s_is_output,
                                            kd_at(NULL, 0), err)
                   : kd_gemm(dev, 0, 0, B, in, out, 1.0f, dy.buf, dy.off, out, w.buf, w.off, in,
                             0.0f, dx.buf, dx.off, in, err);
    if (rc == 0 && !fused && act != -1)
      rc = kd_activation_backward(dev, (kd_activation)act, dx, dx, act_x,
                                  s_is_output ? act_y : kd_at(NULL, 0), B * in, err);
    if (rc) return kd_fail_context(err, "%s dx [%zu x %zu]", op, B, in);
  }
  /* dw[out,in] = dy^T[out,B] * x[B,in], and db[out] = the row sums of dy^T alongside */
  if (fused) {
    if (kd_gemm_outer_epilogue(dev, 1, out, in, B, dy.buf, dy.off, out, x.buf, x.off, in, dw.buf,
                               dw.off, in, -1, kd_at(NULL, 0), 0, db, err))
      return kd_fail_context(err, "%s dw [%zu x %zu]", op, out, in);
    return 0;
  }
  if (kd_gemm(dev, 1, 0, out, in, B, 1.0f, dy.buf, dy.off, out, x.buf, x.off, in, 0.0f, dw.buf,
              dw.off, in, err))
    return kd_fail_context(err, "%s dw [%zu x %zu]", op, out, in);
  if (!db.buf) return 0;
  size_t g = out, l = KD_WG;
  return KD_RUN(dev, "kd_dense_bias_backward", 1, &g, &l, err, KD_MEM(db.buf), KD_UINT(db.off),
                KD_MEM(dy.buf), KD_UINT(dy.off), KD_UINT(B), KD_UINT(out));
}

int kd_activation_forward(kd_device *dev, kd_activation act, kd_ref y, kd_ref x, size_t n,
                          kd_error *err) {
  const char *op = "activation forward";
  if (check_act(op, act, err) || check_ref(op, "y", y, n, err) || check_ref(op, "x", x, n, err))
    return -1;
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, "kd_activation_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(x.buf), KD_UINT(x.off), KD_UINT(n), KD_INT(act));
}

int kd_activation_backward(kd_device *dev, kd_activation act, kd_ref dx, kd_ref dy, kd_ref x,
                           kd_ref y, size_t n, kd_error *err) {
  const char *op = "activation backward";
  if (check_act(op, act, err)) return -1;
  /* The cheaper saved tensor: the output for relu/tanh/sigmoid (no tanh/exp to redo); gelu's
   * derivative needs the input. */
  int use_output = act != KD_ACT_GELU && y.buf != NULL;
  kd_ref s = use_output ? y : x;
  if (!s.buf)
    return kd_fail(err, "%s (%s): the forward input x is needed and x.buf is NULL", op,
                   kd_activation_name(act));
  if (check_ref(op, "dx", dx, n, err) || check_ref(op, "dy", dy, n, err) ||
      check_ref(op, use_output ? "y" : "x", s, n, err))
    return -1;
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, "kd_activation_backward", 1, &g, &l, err, KD_MEM(dx.buf), KD_UINT(dx.off),
                KD_MEM(dy.buf), KD_UINT(dy.off), KD_MEM(s.buf), KD_UINT(s.off),
                KD_INT(use_output), KD_UINT(n), KD_INT(act));
}

static int dropout_run(kd_device *dev, const char *kernel, kd_ref y, kd_ref x, size_t n,
                       float rate, uint64_t seed, uint64_t stream, kd_error *err) {
  if (!(rate >= 0.0f && rate <= 1.0f))
    return kd_fail(err, "%s: dropout rate %g is outside [0, 1]", kernel, (double)rate);
  if (check_ref(kernel, "output", y, n, err) || check_ref(kernel, "input", x, n, err)) return -1;
  if (rate == 0.0f && y.buf == x.buf && y.off == x.off) return 0; /* identity in place */
  /* PyTorch: scale = 1/(1-p), and p = 1 zeroes (scale 0 avoids inf * 0). */
  float scale = rate < 1.0f ? (float)(1.0 / (1.0 - (double)rate)) : 0.0f;
  size_t g = n / 4 + (n % 4 != 0), l = KD_WG; /* four elements per work-item */
  return KD_RUN(dev, kernel, 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off), KD_MEM(x.buf),
                KD_UINT(x.off), KD_UINT(n), KD_FLOAT(rate), KD_FLOAT(scale),
                KD_UINT(seed & 0xffffffffu), KD_UINT(seed >> 32), KD_UINT(stream & 0xffffffffu),
                KD_UINT(stream >> 32));
}

int kd_dropout_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, float rate, uint64_t seed,
                       uint64_t stream, kd_error *err) {
  return dropout_run(dev, "kd_dropout_forward", y, x, n, rate, seed, stream, err);
}

int kd_dropout_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, float rate,
                        uint64_t seed, uint64_t stream, kd_error *err) {
  return dropout_run(dev, "kd_dropout_backward", dx, dy, n, rate, seed, stream, err);
}

int kd_normalize_coefficients(float scale, float mean, float std, float *a, float *b,
                              kd_error *err) {
  *a = (float)((double)scale / (double)std);
  *b = (float)(-(double)mean / (double)std);
  if (!(std != 0.0f && isfinite(std)) || !isfinite(scale) || !isfinite(mean) || !isfinite(*a) ||
      !isfinite(*b))
    return kd_fail(err, "input normalisation: scale %g, mean %g, std %g: std must be non-zero, "
                   "all finite, and scale/std and mean/std within float range",
                   (double)scale, (double)mean, (double)std);
  return 0;
}

int kd_normalize_inputs(kd_device *dev, kd_ref out, kd_ref in, int in_is_u8, size_t n,
                        float scale, float mean, float std, kd_error *err) {
  const char *op = "normalize inputs";
  float a, b;
  if (kd_normalize_coefficients(scale, mean, std, &a, &b, err) ||
      check_ref(op, "out", out, n, err) || check_ref(op, "in", in, n, err))
    return -1;
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, in_is_u8 ? "kd_normalize_inputs_u8" : "kd_normalize_inputs_f32", 1, &g, &l,
                err, KD_MEM(out.buf), KD_UINT(out.off), KD_MEM(in.buf), KD_UINT(in.off),
                KD_UINT(n), KD_FLOAT(a), KD_FLOAT(b));
}
