/* Shared helpers for unit tests. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- host memory and random data ---- */

float *kd_test_floats(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  assert_non_null(p);
  return p;
}

double *kd_test_doubles(size_t n) {
  double *p = calloc(n ? n : 1, sizeof(double));
  assert_non_null(p);
  return p;
}

int32_t *kd_test_ints(size_t n) {
  int32_t *p = calloc(n ? n : 1, sizeof(int32_t));
  assert_non_null(p);
  return p;
}

uint64_t kd_test_xorshift64(uint64_t *state) {
  uint64_t s = *state;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return *state = s;
}

void kd_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * (float)((kd_test_xorshift64(&s) >> 40) * (1.0 / 16777216.0));
}

void kd_test_random_labels(int32_t *y, size_t B, size_t C, uint64_t seed) {
  float *u = kd_test_floats(B);
  kd_test_fill_uniform(u, B, 0, (float)C, seed);
  for (size_t i = 0; i < B; i++) y[i] = (int32_t)u[i] < (int32_t)C ? (int32_t)u[i] : (int32_t)C - 1;
  free(u);
}

/* ---- device buffers ---- */

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

void kd_test_write(cl_mem buf, size_t off, size_t n, const float *host) {
  KD_OK(kd_write_floats(kd_test_device(), buf, off, n, host, err));
}

cl_mem kd_test_padded(const kd_test_pad *pad, size_t n, const float *host) {
  size_t total = pad->front + n + pad->back;
  float *tmp = kd_test_floats(total);
  for (size_t i = 0; i < total; i++) tmp[i] = pad->guard;
  for (size_t i = 0; i < n; i++) tmp[pad->front + i] = host ? host[i] : pad->fill;
  cl_mem b = kd_test_buffer(total, tmp);
  free(tmp);
  return b;
}

void kd_test_assert_margins(const char *what, cl_mem buf, const kd_test_pad *pad, size_t n) {
  size_t nm = pad->front + pad->back;
  float *m = kd_test_floats(nm);
  kd_test_read(buf, 0, pad->front, m);
  kd_test_read(buf, pad->front + n, pad->back, m + pad->front);
  for (size_t i = 0; i < nm; i++)
    if (m[i] != pad->guard) {
      float v = m[i];
      free(m);
      fail_msg("%s: written outside its extent (%s margin, float %zu: %g)", what,
               i < pad->front ? "front" : "back", i < pad->front ? i : i - pad->front, (double)v);
    }
  free(m);
}

cl_mem kd_test_int_buffer(size_t front, size_t n, const int32_t *host, int32_t guard) {
  int32_t *tmp = kd_test_ints(front + n);
  for (size_t i = 0; i < front + n; i++) tmp[i] = guard;
  if (host) memcpy(tmp + front, host, n * sizeof(int32_t));
  cl_int rc;
  cl_mem b = clCreateBuffer(kd_test_device()->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                            (front + n ? front + n : 1) * sizeof(int32_t), tmp, &rc);
  free(tmp);
  assert_int_equal(rc, CL_SUCCESS);
  return b;
}

void kd_test_read_ints(cl_mem buf, size_t off, size_t n, int32_t *host) {
  kd_device *dev = kd_test_device();
  assert_int_equal(clEnqueueReadBuffer(dev->queue, buf, CL_TRUE, off * sizeof(int32_t),
                                       n * sizeof(int32_t), host, 0, NULL, NULL),
                   CL_SUCCESS);
}

/* ---- GEMM back ends ---- */

int kd_test_has_kernel(const char *name) {
  kd_device *dev = kd_test_device();
  for (int i = 0; i < dev->num_kernels; i++)
    if (!strcmp(dev->kernels[i].name, name)) return 1;
  return 0;
}

int kd_test_gemm_backends(kd_gemm_backend out[2]) {
  kd_device *dev = kd_test_device();
  int k = 0;
  kd_error err = {{0}};
  if (kd_gemm_clblast_usable(dev, &err)) out[k++] = KD_GEMM_CLBLAST;
  else print_message("CLBlast not usable here (%s); skipping it\n", err.msg);
  if (kd_test_has_kernel("kd_gemm_nn")) out[k++] = KD_GEMM_BUILTIN;
  else print_message("kernels/gemm.cl has no kd_gemm_nn yet; built-in GEMM not tested\n");
  if (k == 0) fail_msg("no GEMM back end to test");
  return k;
}

/* ---- comparisons ---- */

void kd_test_assert_close(const char *what, const float *got, const double *want, size_t n,
                          double atol, double rtol) {
  for (size_t i = 0; i < n; i++) {
    double diff = fabs((double)got[i] - want[i]);
    if (!(diff <= atol + rtol * fabs(want[i])))
      fail_msg("%s[%zu]: got %.9g, want %.9g (|diff| %.3g > atol %.1g + rtol %.1g)", what, i,
               (double)got[i], want[i], diff, atol, rtol);
  }
}

void kd_test_assert_finite(const char *what, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) fail_msg("%s[%zu] = %g is not finite", what, i, (double)x[i]);
}

void kd_test_assert_msg_has(const char *msg, ...) {
  va_list ap;
  va_start(ap, msg);
  for (const char *s; (s = va_arg(ap, const char *));)
    if (!strstr(msg, s)) fail_msg("message \"%s\" lacks \"%s\"", msg, s);
  va_end(ap);
}

/* ---- files ---- */

void kd_test_write_file(const char *path, const char *mode, const char *text) {
  FILE *f = fopen(path, mode);
  if (!f) fail_msg("cannot open %s", path);
  fputs(text, f);
  fclose(f);
}

unsigned char *kd_test_slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return b;
}

void kd_test_assert_same_bytes(const unsigned char *want, size_t nwant, const char *path) {
  size_t n;
  unsigned char *got = kd_test_slurp(path, &n);
  if (n != nwant || memcmp(got, want, n)) fail_msg("%s changed", path);
  free(got);
}

int kd_test_exists(const char *path) { return access(path, F_OK) == 0; }

void kd_test_truncate_to_half(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size / 2), 0);
}
