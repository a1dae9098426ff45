/* GEMM dispatch: CLBlast where it runs, the project's own kernel (kernels/gemm.cl) elsewhere. */
#include "nn/gemm.h"

#include <math.h>
#include <string.h>

#include <clblast_c.h>

static int gemm_clblast(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                        float alpha, cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off,
                        size_t ldb, float beta, cl_mem C, size_t c_off, size_t ldc,
                        kd_error *err) {
  CLBlastStatusCode st = CLBlastSgemm(
      CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
      trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A, a_off, lda, B,
      b_off, ldb, beta, C, c_off, ldc, &dev->queue, NULL);
  if (st != CLBlastSuccess)
    return kd_fail(err, "CLBlastSgemm (M=%zu N=%zu K=%zu) failed with CLBlast status %d", M, N,
                   K, (int)st);
  dev->launches++;
  return 0;
}

int kd_gemm(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
            cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb, float beta,
            cl_mem C, size_t c_off, size_t ldc, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  if (dev->gemm_backend == KD_GEMM_CLBLAST)
    return gemm_clblast(dev, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb,
                        beta, C, c_off, ldc, err);
  return kd_fail(err, "the built-in GEMM is not written yet");
}

int kd_gemm_clblast_usable(kd_device *dev, kd_error *err) {
  /* [2x3] * [3x2]: small enough to check by hand, odd enough to catch layout mistakes. */
  const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
  const float want[4] = {58, 64, 139, 154};
  float c[4] = {0};
  cl_int rc;
  cl_mem buf = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, 16 * sizeof(float), NULL, &rc);
  if (rc != CL_SUCCESS) return kd_fail(err, "clCreateBuffer: %s", kd_cl_errstr(rc)), 0;
  int ok = 0;
  if (clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, 0, sizeof a, a, 0, NULL, NULL) == CL_SUCCESS &&
      clEnqueueWriteBuffer(dev->queue, buf, CL_TRUE, sizeof a, sizeof b, b, 0, NULL, NULL) ==
          CL_SUCCESS &&
      gemm_clblast(dev, 0, 0, 2, 2, 3, 1.0f, buf, 0, 3, buf, 6, 2, 0.0f, buf, 12, 2, err) == 0 &&
      clEnqueueReadBuffer(dev->queue, buf, CL_TRUE, 12 * sizeof(float), sizeof c, c, 0, NULL,
                          NULL) == CL_SUCCESS) {
    ok = 1;
    for (int i = 0; i < 4; i++)
      if (fabsf(c[i] - want[i]) > 1e-3f) ok = 0;
    if (!ok) kd_fail(err, "CLBlast returned a wrong result on this device");
  }
  clReleaseMemObject(buf);
  return ok;
}

int kd_gemm_backend_parse(const char *name, kd_gemm_backend *out) {
  if (!strcmp(name, "clblast")) *out = KD_GEMM_CLBLAST;
  else if (!strcmp(name, "builtin")) *out = KD_GEMM_BUILTIN;
  else return -1;
  return 0;
}

const char *kd_gemm_backend_name(kd_gemm_backend backend) {
  return backend == KD_GEMM_CLBLAST ? "clblast" : "builtin";
}
