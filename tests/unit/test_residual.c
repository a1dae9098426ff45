/* Residual helpers (host/nn/residual.c, kernels/residual.cl): add, accumulate and copy against
 * plain-C double references, at offsets that are not multiples of 4 or 16, with the aliasing
 * the header allows and refusal of the partial overlaps it does not. Sums of two floats are
 * exact in double and rounded once in float, so tolerances are one float rounding. */
#include <stdlib.h>
#include <string.h>

#include "nn/residual.h"
#include "testutil.h"

#define N 1037 /* not a multiple of the work-group size */
#define OFF 5
#define GARBAGE 1234.5f

/* Buffers of OFF + N + OFF floats: GARBAGE around `host` (or around GARBAGE) at OFF. */
static const kd_test_pad PAD = {OFF, OFF, GARBAGE, GARBAGE};

static cl_mem padded(const float *host) { return kd_test_padded(&PAD, N, host); }

/* Nothing outside [OFF, OFF + N) was written. */
static void assert_guard(cl_mem buf) { kd_test_assert_margins("residual", buf, &PAD, N); }

static void add_forward_with_offsets_and_aliasing(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  static float a[N], b[N], y[N];
  static double want[N];
  kd_test_fill_uniform(a, N, -3, 3, 1);
  kd_test_fill_uniform(b, N, -100, 100, 2);
  for (size_t i = 0; i < N; i++) want[i] = (double)a[i] + b[i];
  const double rtol = 6e-8; /* one float rounding */

  cl_mem ba = padded(a), bb = padded(b), by = padded(NULL);
  KD_OK(kd_add_forward(dev, kd_at(by, OFF), kd_at(ba, OFF), kd_at(bb, OFF), N, err));
  kd_test_read(by, OFF, N, y);
  kd_test_assert_close("add y = a + b", y, want, N, 0, rtol);
  assert_guard(by);
  /* Inputs untouched. */
  float check[N];
  kd_test_read(ba, OFF, N, check);
  assert_memory_equal(check, a, sizeof check);

  /* y is a; y is b. */
  KD_OK(kd_add_forward(dev, kd_at(ba, OFF), kd_at(ba, OFF), kd_at(bb, OFF), N, err));
  kd_test_read(ba, OFF, N, y);
  kd_test_assert_close("add a += b (y aliases a)", y, want, N, 0, rtol);
  assert_guard(ba);
  cl_mem ba2 = padded(a);
  KD_OK(kd_add_forward(dev, kd_at(bb, OFF), kd_at(ba2, OFF), kd_at(bb, OFF), N, err));
  kd_test_read(bb, OFF, N, y);
  kd_test_assert_close("add b = a + b (y aliases b)", y, want, N, 0, rtol);
  assert_guard(bb);

  /* a + a, both inputs the same place. */
  for (size_t i = 0; i < N; i++) want[i] = 2.0 * a[i];
  KD_OK(kd_add_forward(dev, kd_at(by, OFF), kd_at(ba2, OFF), kd_at(ba2, OFF), N, err));
  kd_test_read(by, OFF, N, y);
  kd_test_assert_close("add y = a + a", y, want, N, 0, 0);

  /* Three tensors at different offsets of one buffer (disjoint ranges). */
  cl_mem big = kd_test_buffer(3 * N + 7, NULL);
  KD_OK(kd_write_floats(dev, big, 1, N, a, err));
  KD_OK(kd_write_floats(dev, big, N + 4, N, b, err));
  KD_OK(kd_add_forward(dev, kd_at(big, 2 * N + 7), kd_at(big, 1), kd_at(big, N + 4), N, err));
  kd_test_read(big, 2 * N + 7, N, y);
  for (size_t i = 0; i < N; i++) want[i] = (double)a[i] + b[i];
  kd_test_assert_close("add within one buffer", y, want, N, 0, rtol);

  /* n = 0 does nothing. */
  KD_OK(kd_add_forward(dev, kd_at(by, OFF), kd_at(ba2, OFF), kd_at(bb, OFF), 0, err));
  clReleaseMemObject(ba), clReleaseMemObject(bb), clReleaseMemObject(by);
  clReleaseMemObject(ba2), clReleaseMemObject(big);
}

static void accumulate_with_offsets_and_aliasing(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  static float d[N], s[N], got[N];
  static double want[N];
  kd_test_fill_uniform(d, N, -1, 1, 3);
  kd_test_fill_uniform(s, N, -10, 10, 4);
  cl_mem bd = padded(d), bs = padded(s);
  KD_OK(kd_accumulate(dev, kd_at(bd, OFF), kd_at(bs, OFF), N, err));
  KD_OK(kd_accumulate(dev, kd_at(bd, OFF), kd_at(bs, OFF), N, err)); /* accumulates, twice */
  kd_test_read(bd, OFF, N, got);
  for (size_t i = 0; i < N; i++) want[i] = (double)d[i] + 2.0 * s[i];
  kd_test_assert_close("accumulate dst += src twice", got, want, N, 0, 2 * 6e-8 * 10);
  assert_guard(bd);
  kd_test_read(bs, OFF, N, got);
  assert_memory_equal(got, s, sizeof got); /* src untouched */
  /* src is dst: doubles (exact). */
  KD_OK(kd_accumulate(dev, kd_at(bs, OFF), kd_at(bs, OFF), N, err));
  kd_test_read(bs, OFF, N, got);
  for (size_t i = 0; i < N; i++) want[i] = 2.0 * s[i];
  kd_test_assert_close("accumulate dst += dst", got, want, N, 0, 0);
  assert_guard(bs);
  clReleaseMemObject(bd), clReleaseMemObject(bs);
}

static void copy_with_offsets(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  static float s[N], got[N];
  kd_test_fill_uniform(s, N, -5, 5, 5);
  cl_mem bs = padded(s), bd = padded(NULL);
  KD_OK(kd_copy(dev, kd_at(bd, OFF), kd_at(bs, OFF), N, err));
  kd_test_read(bd, OFF, N, got);
  assert_memory_equal(got, s, sizeof got);
  assert_guard(bd);
  /* Onto itself: nothing to do, no launch. */
  uint64_t launches = dev->launches;
  KD_OK(kd_copy(dev, kd_at(bs, OFF), kd_at(bs, OFF), N, err));
  assert_true(dev->launches == launches);
  kd_test_read(bs, OFF, N, got);
  assert_memory_equal(got, s, sizeof got);
  /* Between disjoint ranges of one buffer, at odd offsets. */
  cl_mem big = kd_test_buffer(2 * N + 3, NULL);
  KD_OK(kd_write_floats(dev, big, 1, N, s, err));
  KD_OK(kd_copy(dev, kd_at(big, N + 2), kd_at(big, 1), N, err));
  kd_test_read(big, N + 2, N, got);
  assert_memory_equal(got, s, sizeof got);
  clReleaseMemObject(bs), clReleaseMemObject(bd), clReleaseMemObject(big);
}

static void refuses_null_partial_overlap_and_huge(void **state) {
  (void)state;
  kd_device *dev = kd_test_device();
  cl_mem buf = kd_test_buffer(64, NULL);
  kd_error err = {{0}};
  assert_int_equal(kd_add_forward(dev, kd_at(buf, 0), kd_at(NULL, 0), kd_at(buf, 0), 4, &err),
                   -1);
  assert_non_null(strstr(err.msg, "a buffer is NULL"));
  assert_int_equal(kd_add_forward(dev, kd_at(buf, 1), kd_at(buf, 0), kd_at(buf, 32), 4, &err),
                   -1);
  assert_non_null(strstr(err.msg, "overlap"));
  assert_int_equal(kd_accumulate(dev, kd_at(buf, 0), kd_at(buf, 3), 4, &err), -1);
  assert_non_null(strstr(err.msg, "overlap"));
  assert_int_equal(kd_copy(dev, kd_at(buf, 10), kd_at(buf, 0), 11, &err), -1);
  assert_non_null(strstr(err.msg, "overlap"));
  KD_OK(kd_copy(dev, kd_at(buf, 10), kd_at(buf, 0), 10, err)); /* adjacent is fine */
  assert_int_equal(kd_copy(dev, kd_at(buf, 0), kd_at(buf, (size_t)UINT32_MAX), 2, &err), -1);
  assert_non_null(strstr(err.msg, "2^32"));
  KD_OK(kd_device_finish(dev, err));
  clReleaseMemObject(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(add_forward_with_offsets_and_aliasing),
      cmocka_unit_test(accumulate_with_offsets_and_aliasing),
      cmocka_unit_test(copy_with_offsets),
      cmocka_unit_test(refuses_null_partial_overlap_and_huge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
