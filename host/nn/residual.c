/* Launchers for the residual helpers (kernels/residual.cl). Enqueue only. */
#include "nn/residual.h"

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

/* An output may be exactly an input (same place) but not overlap it partially: work-items would
 * read values other work-items already wrote. */
static int check_overlap(const char *op, const char *out_name, kd_ref out, const char *in_name,
                         kd_ref in, size_t n, kd_error *err) {
  if (out.buf != in.buf || out.off == in.off) return 0;
  size_t lo = out.off < in.off ? out.off : in.off, hi = out.off < in.off ? in.off : out.off;
  if (hi - lo < n)
    return kd_fail(err, "%s: %s (offset %zu) and %s (offset %zu) overlap partially over %zu "
                   "floats", op, out_name, out.off, in_name, in.off, n);
  return 0;
}

int kd_add_forward(kd_device *dev, kd_ref y, kd_ref a, kd_ref b, size_t n, kd_error *err) {
  const char *op = "add forward";
  if (check_ref(op, "y", y, n, err) || check_ref(op, "a", a, n, err) ||
      check_ref(op, "b", b, n, err) || check_overlap(op, "y", y, "a", a, n, err) ||
      check_overlap(op, "y", y, "b", b, n, err))
    return -1;
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, "kd_add_forward", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(a.buf), KD_UINT(a.off), KD_MEM(b.buf), KD_UINT(b.off), KD_UINT(n));
}

int kd_accumulate(kd_device *dev, kd_ref dst, kd_ref src, size_t n, kd_error *err) {
  const char *op = "accumulate";
  if (check_ref(op, "dst", dst, n, err) || check_ref(op, "src", src, n, err) ||
      check_overlap(op, "dst", dst, "src", src, n, err))
    return -1;
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, "kd_accumulate", 1, &g, &l, err, KD_MEM(dst.buf), KD_UINT(dst.off),
                KD_MEM(src.buf), KD_UINT(src.off), KD_UINT(n));
}

int kd_copy(kd_device *dev, kd_ref dst, kd_ref src, size_t n, kd_error *err) {
  const char *op = "copy";
  if (check_ref(op, "dst", dst, n, err) || check_ref(op, "src", src, n, err) ||
      check_overlap(op, "dst", dst, "src", src, n, err))
    return -1;
  if (dst.buf == src.buf && dst.off == src.off) return 0; /* already there */
  size_t g = n, l = KD_WG;
  return KD_RUN(dev, "kd_copy", 1, &g, &l, err, KD_MEM(dst.buf), KD_UINT(dst.off),
                KD_MEM(src.buf), KD_UINT(src.off), KD_UINT(n));
}
