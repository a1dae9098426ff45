/* Launchers for 2-D pooling (kernels/pool.cl). Enqueue only. */
#include "nn/pool.h"

#include <stdint.h>

/* Kernels index with 32-bit uints: an extent must end below 2^32 elements. */
static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

static int check_ref(const char *op, const char *what, kd_ref r, size_t n, kd_error *err) {
  if (!r.buf) return kd_fail(err, "%s: %s buffer is NULL", op, what);
  if (!fits_u32(r.off, n))
    return kd_fail(err, "%s: %s (offset %zu + %zu elements) exceeds the 2^32-element limit of "
                   "the kernels", op, what, r.off, n);
  return 0;
}

/* (m, sh) such that kd_pool_udiv(x, m, sh) in kernels/pool.cl is x / d for every 32-bit x
 * (Granlund & Montgomery 1994, fig. 4.1): with l = ceil(log2 d), m = 2^32 (2^l - d) / d + 1
 * and x / d = (t + ((x - t) >> min(l, 1))) >> max(l - 1, 0), t = mul_hi(x, m). d in
 * [1, 2^32). */
typedef struct fastdiv {
  cl_uint m, sh;
} fastdiv;

static fastdiv fastdiv_make(size_t d) {
  unsigned l = 0;
  while (((uint64_t)1 << l) < (uint64_t)d) l++;
  fastdiv f;
  f.m = (cl_uint)(((((uint64_t)1 << 32) * (((uint64_t)1 << l) - d)) / d) + 1);
  f.sh = (l > 0 ? 1u : 0u) | ((l > 0 ? l - 1u : 0u) << 8);
  return f;
}

#define DIVISOR(f) KD_UINT((f).m), KD_UINT((f).sh)

/* a*b*c*d into *out when non-zero and below 2^32. */
static int check_numel(const char *op, size_t a, size_t b, size_t c, size_t d, size_t *out,
                       kd_error *err) {
  if (a == 0 || b == 0 || c == 0 || d == 0)
    return kd_fail(err, "%s: empty shape [%zu, %zu, %zu, %zu]", op, a, b, c, d);
  size_t p = a;
  const size_t f[3] = {b, c, d};
  for (int i = 0; i < 3; i++) {
    if (f[i] > UINT32_MAX / p)
      return kd_fail(err, "%s: shape [%zu, %zu, %zu, %zu] exceeds the 2^32-element limit of the "
                     "kernels", op, a, b, c, d);
    p *= f[i];
  }
  *out = p;
  return 0;
}

int kd_pool2d_out_size(size_t H, size_t W, size_t size, size_t stride, size_t pad, size_t *OH,
                       size_t *OW, kd_error *err) {
  if (H == 0 || W == 0 || size == 0 || stride == 0)
    return kd_fail(err, "pool2d: zero size (input %zu x %zu, window %zu, stride %zu)", H, W,
                   size, stride);
  if (pad > size / 2)
    return kd_fail(err, "pool2d: padding %zu is more than half the window size %zu", pad, size);
  /* Below INT32_MAX so the kernels' signed window arithmetic cannot overflow. */
  if (H > INT32_MAX / 4 || W > INT32_MAX / 4 || size > INT32_MAX / 4)
    return kd_fail(err, "pool2d: input %zu x %zu, window %zu too large", H, W, size);
  if (size > H + 2 * pad || size > W + 2 * pad)
    return kd_fail(err, "pool2d: window %zu is larger than the padded input %zu x %zu (pad %zu)",
                   size, H + 2 * pad, W + 2 * pad, pad);
  *OH = (H + 2 * pad - size) / stride + 1;
  *OW = (W + 2 * pad - size) / stride + 1;
  return 0;
}

/* The checks every 2-D pool launcher shares: the output size and the element counts of the
 * input and output (planes = n*C). */
typedef struct pool_shape {
  size_t OH, OW, planes, in_numel, out_numel;
} pool_shape;

static int pool_shape_of(const char *op, size_t n, size_t C, size_t H, size_t W, size_t size,
                         size_t stride, size_t pad, pool_shape *s, kd_error *err) {
  if (kd_pool2d_out_size(H, W, size, stride, pad, &s->OH, &s->OW, err))
    return kd_fail_context(err, "%s", op);
  if (check_numel(op, n, C, H, W, &s->in_numel, err) ||
      check_numel(op, n, C, s->OH, s->OW, &s->out_numel, err))
    return -1;
  s->planes = n * C;
  return 0;
}

int kd_maxpool2d_forward(kd_device *dev, kd_ref y, kd_ref argmax, kd_ref x, size_t n, size_t C,
                         size_t H, size_t W, size_t size, size_t stride, size_t pad,
                         kd_error *err) {
  const char *op = "maxpool2d forward";
  pool_shape s;
  if (pool_shape_of(op, n, C, H, W, size, stride, pad, &s, err) ||
      check_ref(op, "y", y, s.out_numel, err) ||
      check_ref(op, "argmax", argmax, s.out_numel, err) ||
      check_ref(op, "x", x, s.in_numel, err))
    return -1;
  size_t g = s.planes * s.OH, l = KD_WG; /* one work-item per output row */
  if (size == 2 && stride == 2 && pad == 0) /* the common case, branch-free */
    return KD_RUN(dev, "kd_maxpool2d_forward_2x2", 1, &g, &l, err, KD_MEM(y.buf),
                  KD_UINT(y.off), KD_MEM(argmax.buf), KD_UINT(argmax.off), KD_MEM(x.buf),
                  KD_UINT(x.off), KD_UINT(s.planes), KD_UINT(H), KD_UINT(W), KD_UINT(s.OH),
                  KD_UINT(s.OW));
  return KD_RUN(dev, "kd_maxpool2d_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(argmax.buf), KD_UINT(argmax.off), KD_MEM(x.buf), KD_UINT(x.off),
                KD_UINT(s.planes), KD_UINT(H), KD_UINT(W), KD_UINT(s.OH), KD_UINT(s.OW),
                KD_UINT(size), KD_UINT(stride), KD_UINT(pad));
}

int kd_maxpool2d_backward(kd_device *dev, kd_ref dx, kd_ref dy, kd_ref argmax, size_t n,
                          size_t C, size_t H, size_t W, size_t size, size_t stride, size_t pad,
                          kd_error *err) {
  const char *op = "maxpool2d backward";
  pool_shape s;
  if (pool_shape_of(op, n, C, H, W, size, stride, pad, &s, err) ||
      check_ref(op, "dx", dx, s.in_numel, err) || check_ref(op, "dy", dy, s.out_numel, err) ||
      check_ref(op, "argmax", argmax, s.out_numel, err))
    return -1;
  size_t g = s.planes * H, l = KD_WG; /* one work-item per input row */
  if (size == 2 && stride == 2 && pad == 0) /* the common case, branch-free */
    return KD_RUN(dev, "kd_maxpool2d_backward_2x2", 1, &g, &l, err, KD_MEM(dx.buf),
                  KD_UINT(dx.off), KD_MEM(dy.buf), KD_UINT(dy.off), KD_MEM(argmax.buf),
                  KD_UINT(argmax.off), KD_UINT(s.planes), KD_UINT(H), KD_UINT(W), KD_UINT(s.OH),
                  KD_UINT(s.OW));
  return KD_RUN(dev, "kd_maxpool2d_backward", 1, &g, &l, err, KD_MEM(dx.buf), KD_UINT(dx.off),
                KD_MEM(dy.buf), KD_UINT(dy.off), KD_MEM(argmax.buf), KD_UINT(argmax.off),
                KD_UINT(s.planes), KD_UINT(H), KD_UINT(W), KD_UINT(s.OH), KD_UINT(s.OW),
                KD_UINT(size), KD_UINT(stride), KD_UINT(pad));
}

int kd_avgpool2d_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, size_t C, size_t H,
                         size_t W, size_t size, size_t stride, size_t pad, kd_error *err) {
  const char *op = "avgpool2d forward";
  pool_shape s;
  if (pool_shape_of(op, n, C, H, W, size, stride, pad, &s, err) ||
      check_ref(op, "y", y, s.out_numel, err) || check_ref(op, "x", x, s.in_numel, err))
    return -1;
  size_t g = s.planes * s.OH, l = KD_WG; /* one work-item per output row */
  return KD_RUN(dev, "kd_avgpool2d_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(x.buf), KD_UINT(x.off), KD_UINT(s.planes), KD_UINT(H), KD_UINT(W),
                KD_UINT(s.OH), KD_UINT(s.OW), KD_UINT(size), KD_UINT(stride), KD_UINT(pad));
}

int kd_avgpool2d_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, size_t C, size_t H,
                          size_t W, size_t size, size_t stride, size_t pad, kd_error *err) {
  const char *op = "avgpool2d backward";
  pool_shape s;
  if (pool_shape_of(op, n, C, H, W, size, stride, pad, &s, err) ||
      check_ref(op, "dx", dx, s.in_numel, err) || check_ref(op, "dy", dy, s.out_numel, err))
    return -1;
  size_t g = s.planes * H, l = KD_WG; /* one work-item per input row */
  return KD_RUN(dev, "kd_avgpool2d_backward", 1, &g, &l, err, KD_MEM(dx.buf), KD_UINT(dx.off),
                KD_MEM(dy.buf), KD_UINT(dy.off), KD_UINT(s.planes), KD_UINT(H), KD_UINT(W),
                KD_UINT(s.OH), KD_UINT(s.OW), KD_UINT(size), KD_UINT(stride), KD_UINT(pad));
}

int kd_global_avgpool_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, size_t C, size_t HW,
                              kd_error *err) {
  const char *op = "global avgpool forward";
  size_t numel;
  if (check_numel(op, n, C, HW, 1, &numel, err) || check_ref(op, "y", y, n * C, err) ||
      check_ref(op, "x", x, numel, err))
    return -1;
  size_t g = n * C, l = KD_WG;
  return KD_RUN(dev, "kd_global_avgpool_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(x.buf), KD_UINT(x.off), KD_UINT(n * C), KD_UINT(HW));
}

int kd_global_avgpool_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, size_t C,
                               size_t HW, kd_error *err) {
  const char *op = "global avgpool backward";
  size_t numel;
  if (check_numel(op, n, C, HW, 1, &numel, err) || check_ref(op, "dx", dx, numel, err) ||
      check_ref(op, "dy", dy, n * C, err))
    return -1;
  size_t g = numel, l = KD_WG;
  return KD_RUN(dev, "kd_global_avgpool_backward", 1, &g, &l, err, KD_MEM(dx.buf),
                KD_UINT(dx.off), KD_MEM(dy.buf), KD_UINT(dy.off), KD_UINT(n * C), KD_UINT(HW),
                DIVISOR(fastdiv_make(HW)));
}
