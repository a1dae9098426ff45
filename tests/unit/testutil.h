/* Shared helpers for unit tests: one device per test process, random data, guarded device
 * buffers, comparisons. */
#ifndef KD_TESTUTIL_H
#define KD_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three headers above first. */
#include <cmocka.h>

#include "nn/arena.h"
#include "nn/gemm.h"
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

/* ---- host memory and random data ---- */

/* Arrays of n elements (at least one), failing the test when memory runs out: floats are
 * left uninitialised (malloc), doubles and int32s are zeroed (calloc). */
float *kd_test_floats(size_t n);
double *kd_test_doubles(size_t n);
int32_t *kd_test_ints(size_t n);

/* One xorshift64 step of *state (13, 7, 17); returns the new state. */
uint64_t kd_test_xorshift64(uint64_t *state);

/* Deterministic uniform floats in [lo, hi) from a seed. */
void kd_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* B labels in [0, C), uniform, from a seed. */
void kd_test_random_labels(int32_t *y, size_t B, size_t C, uint64_t seed);

/* ---- device buffers ---- */

/* A device buffer initialised from host data (n floats), or zeros when host is NULL. */
cl_mem kd_test_buffer(size_t n, const float *host);
void kd_test_read(cl_mem buf, size_t off, size_t n, float *host);
void kd_test_write(cl_mem buf, size_t off, size_t n, const float *host);

/* The layout of a guarded buffer: front + n + back floats, the tensor's n floats at offset
 * front, `guard` in the front and back margins (to prove nothing is written outside the
 * tensor, and that offsets are honoured), and `fill` in the tensor when it is made without
 * host data (to prove outputs are overwritten, not accumulated, or that nothing depends on
 * what a workspace held). */
typedef struct kd_test_pad {
  size_t front, back;
  float guard, fill;
} kd_test_pad;

/* A guarded buffer holding host's n floats (or pad->fill when host is NULL). */
cl_mem kd_test_padded(const kd_test_pad *pad, size_t n, const float *host);

/* Fails the test, naming `what`, when a float of the front or back margin around a tensor of
 * n floats no longer holds pad->guard. */
void kd_test_assert_margins(const char *what, cl_mem buf, const kd_test_pad *pad, size_t n);

/* An int32 buffer of front + n values: `guard` in the first front, then host's n values
 * (guard too when host is NULL). */
cl_mem kd_test_int_buffer(size_t front, size_t n, const int32_t *host, int32_t guard);
void kd_test_read_ints(cl_mem buf, size_t off, size_t n, int32_t *host);

/* ---- GEMM back ends ---- */

/* 1 when the device's program has a kernel of that name. */
int kd_test_has_kernel(const char *name);

/* The GEMM back ends available here: CLBlast when it runs, the built-in GEMM when
 * kernels/gemm.cl defines kd_gemm_nn. Returns how many were written into out; fails the test
 * when there is none. */
int kd_test_gemm_backends(kd_gemm_backend out[2]);

/* ---- comparisons ---- */

/* Asserts |got - want| <= atol + rtol*|want| elementwise, naming the first bad index. */
void kd_test_assert_close(const char *what, const float *got, const double *want, size_t n,
                          double atol, double rtol);

/* Asserts every x[i] is finite, naming the first that is not as what[i]. */
void kd_test_assert_finite(const char *what, const float *x, size_t n);

/* Asserts msg contains every one of the NULL-terminated needles. */
void kd_test_assert_msg_has(const char *msg, ...);

/* ---- files ---- */

/* Writes text to path (mode "w" or "a"), failing the test when it cannot. */
void kd_test_write_file(const char *path, const char *mode, const char *text);

/* The whole file, malloc'd; *size its length. */
unsigned char *kd_test_slurp(const char *path, size_t *size);

/* Fails the test when the file at path is no longer the nwant bytes of want. */
void kd_test_assert_same_bytes(const unsigned char *want, size_t nwant, const char *path);

/* 1 when path exists. */
int kd_test_exists(const char *path);

/* Cuts the file at path to half its size (a partial copy). */
void kd_test_truncate_to_half(const char *path);

#endif
