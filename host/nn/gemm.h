/* The one GEMM entry point every layer calls. Row-major, like the rest of kdcl:
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * op(A) = A (stored [M,K], row stride lda) or A^T (stored [K,M], row stride lda); likewise B.
 * Offsets and strides are in floats. Dispatches to CLBlast or to kernels/gemm.cl according to
 * dev->gemm_backend. Enqueues only; no host synchronisation. */
#ifndef KD_GEMM_H
#define KD_GEMM_H

#include <stddef.h>

#include "runtime/device.h"

int kd_gemm(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
            cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb, float beta,
            cl_mem C, size_t c_off, size_t ldc, kd_error *err);

/* Returns 1 when CLBlast runs a small SGEMM correctly on this device, 0 otherwise (the reason
 * in err). Blocking; used by `kdcl devices` and before honouring --gemm clblast. */
int kd_gemm_clblast_usable(kd_device *dev, kd_error *err);

/* Parses "clblast" or "builtin"; returns -1 for anything else. */
int kd_gemm_backend_parse(const char *name, kd_gemm_backend *out);
const char *kd_gemm_backend_name(kd_gemm_backend backend);

#endif
