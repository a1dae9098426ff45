/* Shared helpers for unit tests: one device per test process, random data, comparisons. */
#ifndef KD_TESTUTIL_H
#define KD_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three headers above first. */
#include <cmocka.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* Opens the device named by $KDCL_DEVICE (default: device 0) once; fails the test on error. */
kd_device *kd_test_device(void);

/* Fails the current test with err's message when rc != 0. */
#define KD_OK(call)                                                \
  do {                                                             \
    kd_error kd_test_err_ = {{0}};                                 \
    kd_error *err = &kd_test_err_;                                 \
    if ((call) != 0) fail_msg("%s: %s", #call, kd_test_err_.msg);  \
    (void)err;                                                     \
  } while (0)

/* Deterministic uniform floats in [lo, hi) from a seed. */
void kd_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* A device buffer initialised from host data (n floats), or zeros when host is NULL. */
cl_mem kd_test_buffer(size_t n, const float *host);
void kd_test_read(cl_mem buf, size_t off, size_t n, float *host);

/* Asserts |got - want| <= atol + rtol*|want| elementwise, naming the first bad index. */
void kd_test_assert_close(const char *what, const float *got, const double *want, size_t n,
                          double atol, double rtol);

#endif
