/* Shared helpers for unit tests. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static kd_device test_dev;
static int test_dev_open;

kd_device *kd_test_device(void) {
  if (!test_dev_open) {
    kd_error err = {{0}};
    if (kd_device_open(&test_dev, NULL, NULL, 0, &err)) fail_msg("device: %s", err.msg);
    test_dev_open = 1;
  }
  return &test_dev;
}

void kd_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
  }
}

cl_mem kd_test_buffer(size_t n, const float *host) {
  kd_device *dev = kd_test_device();
  cl_int rc;
  size_t bytes = (n ? n : 1) * sizeof(float);
  cl_mem buf = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, bytes, NULL, &rc);
  if (rc != CL_SUCCESS) fail_msg("clCreateBuffer: %s", kd_cl_errstr(rc));
  float *init = calloc(n ? n : 1, sizeof(float));
  if (host)
    for (size_t i = 0; i < n; i++) init[i] = host[i];
  rc = clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, 0, bytes, init, 0, NULL, NULL);
  free(init);
  if (rc != CL_SUCCESS) fail_msg("clEnqueueWriteBuffer: %s", kd_cl_errstr(rc));
  return buf;
}

void kd_test_read(cl_mem buf, size_t off, size_t n, float *host) {
  kd_error err = {{0}};
  if (kd_read_floats(kd_test_device(), buf, off, n, host, &err)) fail_msg("read: %s", err.msg);
}

void kd_test_assert_close(const char *what, const float *got, const double *want, size_t n,
                          double atol, double rtol) {
  for (size_t i = 0; i < n; i++) {
    double diff = fabs((double)got[i] - want[i]);
    if (!(diff <= atol + rtol * fabs(want[i])))
      fail_msg("%s[%zu]: got %.9g, want %.9g (|diff| %.3g > atol %.1g + rtol %.1g)", what, i,
               (double)got[i], want[i], diff, atol, rtol);
  }
}
