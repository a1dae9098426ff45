/* GEMM dispatch: CLBlast where it runs, the project's own kernel (kernels/gemm.cl) elsewhere. */
#include "nn/gemm.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
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

/* Tile and work-group shape of kernels/gemm.cl; the defaults there must match these. */
#ifndef KD_GEMM_TM
#define KD_GEMM_TM 8
#endif
#ifndef KD_GEMM_TN
#define KD_GEMM_TN 32
#endif
#ifndef KD_GEMM_DOT_TM
#define KD_GEMM_DOT_TM 4
#endif
#ifndef KD_GEMM_DOT_TN
#define KD_GEMM_DOT_TN 6
#endif
#ifndef KD_GEMM_WG_X
#define KD_GEMM_WG_X 8
#endif
#ifndef KD_GEMM_WG_Y
#define KD_GEMM_WG_Y 2
#endif
#ifndef KD_GEMM_BLK_WG_Y
#define KD_GEMM_BLK_WG_Y 16
#endif
/* When kd_gemm takes the blocked kernels (NN, TN, TT): k and the output rows at least these. */
#define KD_GEMM_BLK_MIN_K 1024
#define KD_GEMM_BLK_MIN_ROWS (KD_GEMM_BLK_WG_Y * KD_GEMM_TM)

/* The kernels index with 32-bit unsigned arithmetic and read without bounds checks, so every
 * element an operand's rows x cols view touches must lie inside its buffer and below 2^32. */
static int gemm_check_operand(const char *name, cl_mem buf, size_t off, size_t ld, size_t rows,
                              size_t cols, kd_error *err) {
  if (rows == 0 || cols == 0) return 0;
  if (ld < cols)
    return kd_fail(err, "GEMM: leading dimension of %s is %zu, less than its %zu columns", name,
                   ld, cols);
  if (off > SIZE_MAX - cols || rows - 1 > (SIZE_MAX - off - cols) / ld)
    return kd_fail(err, "GEMM: %s (%zu x %zu, ld %zu, offset %zu) overflows size_t", name, rows,
                   cols, ld, off);
  size_t end = off + (rows - 1) * ld + cols; /* one past the last element read or written */
  if (end > UINT_MAX)
    return kd_fail(err, "GEMM: %s spans %zu floats; the built-in GEMM indexes at most 2^32",
                   name, end);
  size_t bytes = 0;
  cl_int rc = clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
  if (rc != CL_SUCCESS) return kd_fail(err, "GEMM: %s: %s", name, kd_cl_errstr(rc));
  if (end > bytes / sizeof(float))
    return kd_fail(err,
                   "GEMM: %s (%zu x %zu, ld %zu, offset %zu) needs %zu floats; its buffer "
                   "holds %zu",
                   name, rows, cols, ld, off, end, bytes / sizeof(float));
  return 0;
}

/* Epilogue of the outer-product kernels (NN, TN): an activation gradient applied on the way out
 * (act >= 0, s laid out like C) and the row sums of op(A) (rowsum.buf). */
typedef struct gemm_ep {
  int act;
  kd_ref s;
  int s_is_output;
  kd_ref rowsum;
} gemm_ep;

static int gemm_builtin(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                        float alpha, cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off,
                        size_t ldb, float beta, cl_mem C, size_t c_off, size_t ldc,
                        const gemm_ep *ep, kd_error *err) {
  if (M > UINT_MAX || N > UINT_MAX || K > UINT_MAX)
    return kd_fail(err, "GEMM: M=%zu N=%zu K=%zu exceeds the built-in GEMM's 32-bit sizes", M,
                   N, K);
  if (gemm_check_operand("A", A, a_off, lda, trans_a ? K : M, trans_a ? M : K, err) ||
      gemm_check_operand("B", B, b_off, ldb, trans_b ? N : K, trans_b ? K : N, err) ||
      gemm_check_operand("C", C, c_off, ldc, M, N, err))
    return -1;
  if (ep && (trans_b || (ep->act >= 0 && gemm_check_operand("S", ep->s.buf, ep->s.off, ldc, M,
                                                            N, err)) ||
             (ep->rowsum.buf &&
              gemm_check_operand("rowsum", ep->rowsum.buf, ep->rowsum.off, M, 1, M, err))))
    return trans_b ? kd_fail(err, "GEMM: epilogues are for NN and TN only") : -1;
  /* Global size in work-items, one per output tile; TT computes C^T, so rows and columns swap. */
  static const char *const names[2][2] = {{"kd_gemm_nn", "kd_gemm_nt"},
                                          {"kd_gemm_tn", "kd_gemm_tt"}};
  size_t global[2];
  if (!trans_a && trans_b) {
    global[0] = (N + KD_GEMM_DOT_TN - 1) / KD_GEMM_DOT_TN;
    global[1] = (M + KD_GEMM_DOT_TM - 1) / KD_GEMM_DOT_TM;
  } else if (trans_a && trans_b) {
    global[0] = (M + KD_GEMM_TN - 1) / KD_GEMM_TN;
    global[1] = (N + KD_GEMM_TM - 1) / KD_GEMM_TM;
  } else {
    global[0] = (N + KD_GEMM_TN - 1) / KD_GEMM_TN;
    global[1] = (M + KD_GEMM_TM - 1) / KD_GEMM_TM;
  }
  size_t local[2] = {KD_GEMM_WG_X, KD_GEMM_WG_Y};
  const char *name = names[!!trans_a][!!trans_b];
  if (ep) name = trans_a ? "kd_gemm_tn_ep" : "kd_gemm_nn_ep";
  /* Long k with enough rows for a group of row tiles: the blocked kernels, which share each
   * block of B's column panel through local memory (kernels/gemm.cl). Measured on 2 cores
   * under PoCL: 2048^3 NN 146 -> 323 GFLOP/s, 128x1024x1024 325 -> 390; worse below these
   * sizes (the copies and barriers do not pay off). */
  size_t rows = trans_a && trans_b ? N : M, cols = trans_a && trans_b ? M : N;
  if ((trans_a || !trans_b) && K >= KD_GEMM_BLK_MIN_K && rows >= KD_GEMM_BLK_MIN_ROWS &&
      cols >= KD_GEMM_TN) {
    static const char *const blk[2][2] = {{"kd_gemm_nn_blk", NULL},
                                          {"kd_gemm_tn_blk", "kd_gemm_tt_blk"}};
    name = blk[!!trans_a][!!trans_b];
    if (ep) name = trans_a ? "kd_gemm_tn_blk_ep" : "kd_gemm_nn_blk_ep";
    local[0] = 1;
    local[1] = KD_GEMM_BLK_WG_Y;
  }
  kd_arg args[21] = {KD_UINT(M),     KD_UINT(N),   KD_UINT(K),   KD_FLOAT(alpha), KD_MEM(A),
                     KD_UINT(a_off), KD_UINT(lda), KD_MEM(B),    KD_UINT(b_off),  KD_UINT(ldb),
                     KD_FLOAT(beta), KD_MEM(C),    KD_UINT(c_off), KD_UINT(ldc)};
  int nargs = 14;
  cl_mem s_buf = ep && ep->act >= 0 ? ep->s.buf : C;
  cl_mem rs_buf = ep && ep->rowsum.buf ? ep->rowsum.buf : C;
  cl_uint s_off = ep && ep->act >= 0 ? (cl_uint)ep->s.off : 0;
  cl_uint rs_off = ep && ep->rowsum.buf ? (cl_uint)ep->rowsum.off : 0;
  cl_int act = ep ? ep->act : -1, s_is_output = ep ? ep->s_is_output : 0;
  cl_int has_rowsum = ep && ep->rowsum.buf;
  if (ep) {
    /* Unused buffer arguments still need a valid cl_mem; act < 0 and has_rowsum = 0 keep them
     * unread. */
    const kd_arg more[7] = {{sizeof act, &act},         {sizeof s_buf, &s_buf},
                            {sizeof s_off, &s_off},     {sizeof s_is_output, &s_is_output},
                            {sizeof rs_buf, &rs_buf},   {sizeof rs_off, &rs_off},
                            {sizeof has_rowsum, &has_rowsum}};
    memcpy(args + nargs, more, sizeof more);
    nargs += 7;
  }
  return kd_run(dev, name, 2, global, local, nargs, args, err);
}

int kd_gemm_fuses_epilogue(const kd_device *dev) { return dev->gemm_backend == KD_GEMM_BUILTIN; }

int kd_gemm_nt_epilogue(kd_device *dev, size_t M, size_t N, size_t K, cl_mem A, size_t a_off,
                        size_t lda, cl_mem B, size_t b_off, size_t ldb, cl_mem C, size_t c_off,
                        size_t ldc, kd_ref bias, int act, kd_ref pre, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  if (!kd_gemm_fuses_epilogue(dev))
    return kd_fail(err, "GEMM: the %s back end has no fused epilogue",
                   kd_gemm_backend_name(dev->gemm_backend));
  if (M > UINT_MAX || N > UINT_MAX || K > UINT_MAX)
    return kd_fail(err, "GEMM: M=%zu N=%zu K=%zu exceeds the built-in GEMM's 32-bit sizes", M,
                   N, K);
  if (gemm_check_operand("A", A, a_off, lda, M, K, err) ||
      gemm_check_operand("B", B, b_off, ldb, N, K, err) ||
      gemm_check_operand("C", C, c_off, ldc, M, N, err) ||
      (pre.buf && gemm_check_operand("P", pre.buf, pre.off, ldc, M, N, err)) ||
      (bias.buf && gemm_check_operand("bias", bias.buf, bias.off, N, 1, N, err)))
    return -1;
  size_t global[2] = {(N + KD_GEMM_DOT_TN - 1) / KD_GEMM_DOT_TN,
                      (M + KD_GEMM_DOT_TM - 1) / KD_GEMM_DOT_TM};
  const size_t local[2] = {KD_GEMM_WG_X, KD_GEMM_WG_Y};
  /* Unused buffer arguments still need a valid cl_mem; the flags keep them unread. */
  return KD_RUN(dev, "kd_gemm_nt_bias_act", 2, global, local, err, KD_UINT(M), KD_UINT(N),
                KD_UINT(K), KD_FLOAT(1.0f), KD_MEM(A), KD_UINT(a_off), KD_UINT(lda), KD_MEM(B),
                KD_UINT(b_off), KD_UINT(ldb), KD_FLOAT(0.0f), KD_MEM(C), KD_UINT(c_off),
                KD_UINT(ldc), KD_MEM(bias.buf ? bias.buf : C), KD_UINT(bias.buf ? bias.off : 0),
                KD_INT(bias.buf != NULL), KD_INT(act), KD_MEM(pre.buf ? pre.buf : C),
                KD_UINT(pre.buf ? pre.off : 0), KD_INT(pre.buf != NULL));
}

int kd_gemm_outer_epilogue(kd_device *dev, int trans_a, size_t M, size_t N, size_t K,
                           cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb,
                           cl_mem C, size_t c_off, size_t ldc, int act, kd_ref s, int s_is_output,
                           kd_ref rowsum, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  if (!kd_gemm_fuses_epilogue(dev))
    return kd_fail(err, "GEMM: the %s back end has no fused epilogue",
                   kd_gemm_backend_name(dev->gemm_backend));
  if (act >= 0 && !s.buf)
    return kd_fail(err, "GEMM: the activation epilogue needs its saved tensor");
  gemm_ep ep = {act, s, s_is_output, rowsum};
  return gemm_builtin(dev, trans_a, 0, M, N, K, 1.0f, A, a_off, lda, B, b_off, ldb, 0.0f, C, c_off,
                      ldc, &ep, err);
}

int kd_gemm(kd_device *dev, int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
            cl_mem A, size_t a_off, size_t lda, cl_mem B, size_t b_off, size_t ldb, float beta,
            cl_mem C, size_t c_off, size_t ldc, kd_error *err) {
  if (M == 0 || N == 0) return 0;
  /* CLBlast refuses K = 0 (kInvalidDimension); the built-in kernel scales C by beta. */
  if (dev->gemm_backend == KD_GEMM_CLBLAST && K > 0)
    return gemm_clblast(dev, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb,
                        beta, C, c_off, ldc, err);
  return gemm_builtin(dev, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb, beta,
                      C, c_off, ldc, NULL, err);
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
