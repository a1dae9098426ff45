/* The built-in SGEMM (host/nn/gemm.c): row-major C = alpha*op(A)*op(B) + beta*C, one kernel per
 * transpose pair, register-tiled with no local memory (what CPUs under PoCL run fastest). */

/* Outer-product tile: each work-item owns KD_GEMM_TM rows x KD_GEMM_TN columns of the output,
 * held in float16 accumulators (TM*TN/16 of them; 8x32 leaves room in a 32-register AVX-512
 * file for the two B vectors and a broadcast). TN must be a multiple of 16. */
#ifndef KD_GEMM_TM
#define KD_GEMM_TM 8
#endif
#ifndef KD_GEMM_TN
#define KD_GEMM_TN 32
#endif
/* Dot-product tile for NT, where both operands run contiguously along k: each work-item owns
 * DOT_TM x DOT_TN outputs, each a float16 partial sum over k reduced at the end. */
#ifndef KD_GEMM_DOT_TM
#define KD_GEMM_DOT_TM 4
#endif
#ifndef KD_GEMM_DOT_TN
#define KD_GEMM_DOT_TN 6
#endif
/* Work-items per group along output columns (x) and rows (y); host/nn/gemm.c uses the same.
 * PoCL runs a group's work-items back to back on one core, x fastest, so 8 x 2 reuses each
 * row block of A across 8 column tiles while it is still in cache (best of those measured). */
#ifndef KD_GEMM_WG_X
#define KD_GEMM_WG_X 8
#endif
#ifndef KD_GEMM_WG_Y
#define KD_GEMM_WG_Y 2
#endif
#ifdef KD_FPGA
#define KD_REQD_WG_GEMM __attribute__((reqd_work_group_size(KD_GEMM_WG_X, KD_GEMM_WG_Y, 1)))
#else
#define KD_REQD_WG_GEMM
#endif

#define KD_GEMM_NV (KD_GEMM_TN / 16)

/* One output element; beta == 0 must not read C, which may hold NaN. */
inline void kd_gemm_store1(__global float *c, float alpha, float acc, float beta) {
  *c = beta == 0.0f ? alpha * acc : fma(alpha, acc, beta * *c);
}

inline float kd_gemm_hsum16(float16 v) {
  float8 a = v.lo + v.hi;
  float4 b = a.lo + a.hi;
  float2 d = b.lo + b.hi;
  return d.x + d.y;
}

/* out[i, j] for i < rows, j < cols: sum_k R[i*r_rs + k*r_ks] * V[k*v_ks + j], stored at
 * C[i*c_rs + j*c_cs]. R supplies one broadcast scalar per row, V a contiguous run of columns.
 * NN, TN and (computing C^T) TT are all this shape; strides of 1 are constants after inlining.
 * Rows past the edge read the last row (clamped, always in bounds) and are not stored. Columns
 * cannot be clamped that way (a vector load would run past the row), so a tile that sticks out
 * is shifted left to end at the last column and stores only the columns it owns; only
 * matrices narrower than one tile take the gathering path. */
inline void kd_gemm_outer(uint rows, uint cols, uint K, float alpha, const __global float *R,
                          uint r_rs, uint r_ks, const __global float *V, uint v_ks, float beta,
                          __global float *C, uint c_rs, uint c_cs) {
  const uint i0 = get_global_id(1) * KD_GEMM_TM;
  const uint j_own = get_global_id(0) * KD_GEMM_TN;
  if (i0 >= rows || j_own >= cols) return;
  const int wide = cols >= KD_GEMM_TN;
  const uint j0 = wide ? min(j_own, cols - KD_GEMM_TN) : j_own;

  uint roff[KD_GEMM_TM];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) roff[r] = min(i0 + r, rows - 1) * r_rs;
  float16 acc[KD_GEMM_TM][KD_GEMM_NV];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++)
#pragma unroll
    for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = (float16)(0.0f);

  const __global float *rk = R;
  const __global float *vk = V + j0;
  if (wide) {
    for (uint k = 0; k < K; k++, rk += r_ks, vk += v_ks) {
      float16 b[KD_GEMM_NV];
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) b[c] = vload16(c, vk);
#pragma unroll
      for (int r = 0; r < KD_GEMM_TM; r++) {
        const float a = rk[roff[r]];
#pragma unroll
        for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = fma((float16)(a), b[c], acc[r][c]);
      }
    }
  } else {
    uint jc[KD_GEMM_TN];
#pragma unroll
    for (int x = 0; x < KD_GEMM_TN; x++) jc[x] = min((uint)x, cols - 1 - j0);
    for (uint k = 0; k < K; k++, rk += r_ks, vk += v_ks) {
      float bs[KD_GEMM_TN];
#pragma unroll
      for (int x = 0; x < KD_GEMM_TN; x++) bs[x] = vk[jc[x]];
      float16 b[KD_GEMM_NV];
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) b[c] = vload16(c, bs);
#pragma unroll
      for (int r = 0; r < KD_GEMM_TM; r++) {
        const float a = rk[roff[r]];
#pragma unroll
        for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = fma((float16)(a), b[c], acc[r][c]);
      }
    }
  }

  const int fast = c_cs == 1 && j0 == j_own && j0 + KD_GEMM_TN <= cols;
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) {
    const uint i = i0 + r;
    if (i >= rows) break;
    __global float *ci = C + i * c_rs;
    if (fast) {
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) {
        float16 out = alpha * acc[r][c];
        if (beta != 0.0f) out = fma((float16)(beta), vload16(c, ci + j0), out);
        vstore16(out, c, ci + j0);
      }
    } else {
      float tmp[KD_GEMM_TN];
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) vstore16(acc[r][c], c, tmp);
      for (uint x = j_own - j0; x < KD_GEMM_TN && j0 + x < cols; x++)
        kd_gemm_store1(ci + (j0 + x) * c_cs, alpha, tmp[x], beta);
    }
  }
}

/* NT: out[i, j] = sum_k A[i*lda + k] * B[j*ldb + k]. Both operands are rows along k, so each
 * work-item keeps 16-wide partial sums over k; edge rows of A and B are clamped (in bounds) and
 * their outputs not stored. */
inline void kd_gemm_dot(uint M, uint N, uint K, float alpha, const __global float *A, uint lda,
                        const __global float *B, uint ldb, float beta, __global float *C,
                        uint ldc) {
  const uint i0 = get_global_id(1) * KD_GEMM_DOT_TM;
  const uint j0 = get_global_id(0) * KD_GEMM_DOT_TN;
  if (i0 >= M || j0 >= N) return;
  const __global float *pa[KD_GEMM_DOT_TM];
  const __global float *pb[KD_GEMM_DOT_TN];
#pragma unroll
  for (int r = 0; r < KD_GEMM_DOT_TM; r++) pa[r] = A + min(i0 + r, M - 1) * lda;
#pragma unroll
  for (int c = 0; c < KD_GEMM_DOT_TN; c++) pb[c] = B + min(j0 + c, N - 1) * ldb;

  float16 acc[KD_GEMM_DOT_TM][KD_GEMM_DOT_TN];
#pragma unroll
  for (int r = 0; r < KD_GEMM_DOT_TM; r++)
#pragma unroll
    for (int c = 0; c < KD_GEMM_DOT_TN; c++) acc[r][c] = (float16)(0.0f);
  const uint K16 = K & ~15u;
  for (uint k = 0; k < K16; k += 16) {
    float16 a[KD_GEMM_DOT_TM];
#pragma unroll
    for (int r = 0; r < KD_GEMM_DOT_TM; r++) a[r] = vload16(0, pa[r] + k);
#pragma unroll
    for (int c = 0; c < KD_GEMM_DOT_TN; c++) {
      const float16 b = vload16(0, pb[c] + k);
#pragma unroll
      for (int r = 0; r < KD_GEMM_DOT_TM; r++) acc[r][c] = fma(a[r], b, acc[r][c]);
    }
  }
  float s[KD_GEMM_DOT_TM][KD_GEMM_DOT_TN];
#pragma unroll
  for (int r = 0; r < KD_GEMM_DOT_TM; r++)
#pragma unroll
    for (int c = 0; c < KD_GEMM_DOT_TN; c++) s[r][c] = kd_gemm_hsum16(acc[r][c]);
  for (uint k = K16; k < K; k++) {
#pragma unroll
    for (int r = 0; r < KD_GEMM_DOT_TM; r++)
#pragma unroll
      for (int c = 0; c < KD_GEMM_DOT_TN; c++) s[r][c] = fma(pa[r][k], pb[c][k], s[r][c]);
  }

#pragma unroll
  for (int r = 0; r < KD_GEMM_DOT_TM; r++) {
    if (i0 + r >= M) break;
#pragma unroll
    for (int c = 0; c < KD_GEMM_DOT_TN; c++)
      if (j0 + c < N) kd_gemm_store1(C + (i0 + r) * ldc + j0 + c, alpha, s[r][c], beta);
  }
}

/* All four share one argument list so the host sets them alike; offsets and strides in floats.
 * Global size: (ceil(N/TN), ceil(M/TM)) work-items, DOT_TN/DOT_TM for NT, and for TT
 * (ceil(M/TN), ceil(N/TM)) since it computes C^T. */
#define KD_GEMM_ARGS                                                                          \
  uint M, uint N, uint K, float alpha, const __global float *A, uint a_off, uint lda,         \
      const __global float *B, uint b_off, uint ldb, float beta, __global float *C,           \
      uint c_off, uint ldc

__kernel KD_REQD_WG_GEMM void kd_gemm_nn(KD_GEMM_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, lda, 1, B + b_off, ldb, beta, C + c_off, ldc, 1);
}

__kernel KD_REQD_WG_GEMM void kd_gemm_tn(KD_GEMM_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, 1, lda, B + b_off, ldb, beta, C + c_off, ldc, 1);
}

/* C^T[j, i] = sum_k B[j*ldb + k] * A[k*lda + i]: the NN shape with the operands swapped. */
__kernel KD_REQD_WG_GEMM void kd_gemm_tt(KD_GEMM_ARGS) {
  kd_gemm_outer(N, M, K, alpha, B + b_off, ldb, 1, A + a_off, lda, beta, C + c_off, 1, ldc);
}

__kernel KD_REQD_WG_GEMM void kd_gemm_nt(KD_GEMM_ARGS) {
  kd_gemm_dot(M, N, K, alpha, A + a_off, lda, B + b_off, ldb, beta, C + c_off, ldc);
}
