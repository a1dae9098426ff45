/* The one GEMM entry point every layer calls. Row-major, like the rest of kdcl:
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * op(A) = A (stored [M,K], row stride lda) or A^T (stored [K,M], row stride lda); likewise B.
 * Offsets and strides are in floats. Dispatches to CLBlast or to kernels/gemm.cl according to
 * dev->gemm_backend; with KD_GEMM_AUTO (the default) each shape goes to the back end measured
 * faster for it on this device (kd_gemm_choose). Enqueues only; no host synchronisation, except
 * the one time a new shape is measured (a few calls of each back end on scratch operands). */
#ifndef KD_GEMM_H
#define KD_GEMM_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

int kd_gemm(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
            cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb, float beta,
            cl_mem C, size_t c_off, size_t ldc, kd_error *err);

/* Whether the back end can fuse a dense layer's bias and activation into its GEMMs
 * (kd_gemm_nt_epilogue, kd_gemm_outer_epilogue): the built-in kernels can, CLBlast cannot.
 * KD_GEMM_AUTO says yes: where it picks CLBlast for a shape, the epilogue functions run the GEMM
 * there and the epilogue as the separate kernels a layer would (the same bits). */
int kd_gemm_fuses_epilogue(const kd_device *dev);

/* The built-in NT GEMM with a dense layer's epilogue, one launch:
 *   v = A[M,K] * B[N,K]^T (+ bias[N] when bias.buf);  C = act(v);  P = v when pre.buf
 * (P laid out like C, row stride ldc). act is a kd_activation or -1 for none. The same bits as
 * kd_gemm, a bias add and an activation kernel in turn. Fails on a back end without
 * kd_gemm_fuses_epilogue. */
int kd_gemm_nt_epilogue(kd_device *dev, size_t M, size_t N, size_t K, cl_mem A, size_t a_off,
                        size_t lda, cl_mem B, size_t b_off, size_t ldb, cl_mem C, size_t c_off,
                        size_t ldc, kd_ref bias, int act, kd_ref pre, kd_error *err);

/* The built-in NN (trans_a = 0) or TN (trans_a = 1) GEMM C = op(A) * B with the backward
 * epilogues of a dense layer, one launch:
 *   act >= 0: C = act'(s) * (op(A) * B), the gradient passed through the activation before
 *     the layer (s laid out like C: the activation's output when s_is_output, else its input);
 *   rowsum.buf: rowsum[i] = sum over k of op(A)[i, k], k in order (the bias gradient beside
 *     the weight gradient dy^T x).
 * alpha 1, beta 0. The same bits as kd_gemm followed by kd_activation_backward and the bias
 * sum of kd_dense_backward. Fails on a back end without kd_gemm_fuses_epilogue. */
int kd_gemm_outer_epilogue(kd_device *dev, int trans_a, size_t M, size_t N, size_t K,
                           cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb,
                           cl_mem C, size_t c_off, size_t ldc, int act, kd_ref s, int s_is_output,
                           kd_ref rowsum, kd_error *err);

/* Returns 1 when CLBlast runs a small SGEMM correctly on this device, 0 otherwise (the reason
 * in err). Blocking; used by `kdcl devices` and before honouring --gemm clblast. */
int kd_gemm_clblast_usable(kd_device *dev, kd_error *err);

/* The back end kd_gemm takes for the shape: dev->gemm_backend when forced; with KD_GEMM_AUTO,
 * the built-in kernel below 2^21 multiply-adds (launch overhead decides there), else the faster
 * of the two as measured once per device and shape: looked up in
 * <cache dir>/gemm-choice-<key>.json (gemm_cache.h), measured and added there when absent.
 * CLBlast must beat the built-in kernel by 10% (which fuses the dense layers' epilogues) and
 * agree with it within float rounding. Blocking only when it measures. */
int kd_gemm_choose(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                   kd_gemm_backend *out, kd_error *err);

/* The path of the device's choice file into buf (after applying any tuned CLBlast parameters,
 * which are part of its key); -1 when there is no cache dir. */
int kd_gemm_choice_path(kd_device *dev, char *buf, size_t len);

/* Parses "clblast", "builtin" or "auto"; returns -1 for anything else. */
int kd_gemm_backend_parse(const char *name, kd_gemm_backend *out);
const char *kd_gemm_backend_name(kd_gemm_backend backend);

#endif
