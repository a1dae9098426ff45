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

/* kd_act_grad on 16 values: the same expressions lane by lane (relu, and tanh and sigmoid from
 * their outputs, in vector form; the rest element by element), so the same bits. */
KD_ALWAYS_INLINE float16 kd_act_grad16(int act, float16 g, float16 a, int a_is_output) {
  if (act == KD_ACT_RELU) return select((float16)(0.0f), g, isgreater(a, (float16)(0.0f)));
  if (act == KD_ACT_TANH && a_is_output) return g * (1.0f - a * a);
  if (act == KD_ACT_SIGMOID && a_is_output) return g * a * (1.0f - a);
  float o[16], av[16];
  vstore16(g, 0, o);
  vstore16(a, 0, av);
  for (int x = 0; x < 16; x++) o[x] = kd_act_grad(act, o[x], av[x], a_is_output);
  return vload16(0, o);
}

/* The store of an outer-product tile (kd_gemm_outer and its blocked twin): rows past the edge
 * are skipped, and a tile shifted left stores only the columns it owns. act != KD_ACT_NONE
 * applies the gradient of an activation to each value on its way out, the value then being a
 * gradient dy and S (laid out like C) the activation's saved output (s_is_output) or input:
 * the backward GEMM of a dense layer that takes the activation before it along. The values are
 * those the plain store writes, so the result has the bits of the plain GEMM followed by
 * kd_activation_backward. */
inline void kd_gemm_outer_store(float16 acc[KD_GEMM_TM][KD_GEMM_NV], uint i0, uint j0, uint j_own,
                                uint rows, uint cols, float alpha, float beta, __global float *C,
                                uint c_rs, uint c_cs, int act, const __global float *S,
                                int s_is_output) {
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
        if (act != KD_ACT_NONE) out = kd_act_grad16(act, out, vload16(c, S + i * c_rs + j0),
                                                     s_is_output);
        vstore16(out, c, ci + j0);
      }
    } else {
      float tmp[KD_GEMM_TN];
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) vstore16(acc[r][c], c, tmp);
      for (uint x = j_own - j0; x < KD_GEMM_TN && j0 + x < cols; x++) {
        __global float *cx = ci + (j0 + x) * c_cs;
        kd_gemm_store1(cx, alpha, tmp[x], beta);
        if (act != KD_ACT_NONE)
          *cx = kd_act_grad(act, *cx, S[i * c_rs + (j0 + x) * c_cs], s_is_output);
      }
    }
  }
}

/* The k loop of an outer-product tile: acc[r][.] += R[row r, k] * V[k, columns], k ascending.
 * RS: also sum R's entries of each row over k, in order, into rs[r] (a dense layer's bias
 * gradient, the row sums of dy^T, alongside its weight gradient dy^T x). */
#define KD_GEMM_OUTER_K_LOOP(RS, LOAD_B)                                                    \
  for (uint k = 0; k < K; k++, rk += r_ks, vk += v_ks) {                                  \
    float16 b[KD_GEMM_NV];                                                                \
    LOAD_B                                                                                \
    _Pragma("unroll") for (int r = 0; r < KD_GEMM_TM; r++) {                              \
      const float a = rk[roff[r]];                                                        \
      if (RS) rs[r] += a;                                                                 \
      _Pragma("unroll") for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] =                  \
          fma((float16)(a), b[c], acc[r][c]);                                             \
    }                                                                                     \
  }
#define KD_GEMM_LOAD_B_WIDE                                                                 \
  _Pragma("unroll") for (int c = 0; c < KD_GEMM_NV; c++) b[c] = vload16(c, vk);
#define KD_GEMM_LOAD_B_NARROW                                                               \
  {                                                                                         \
    float bs[KD_GEMM_TN];                                                                   \
    _Pragma("unroll") for (int x = 0; x < KD_GEMM_TN; x++) bs[x] = vk[jc[x]];              \
    _Pragma("unroll") for (int c = 0; c < KD_GEMM_NV; c++) b[c] = vload16(c, bs);          \
  }

/* out[i, j] for i < rows, j < cols: sum_k R[i*r_rs + k*r_ks] * V[k*v_ks + j], stored at
 * C[i*c_rs + j*c_cs]. R supplies one broadcast scalar per row, V a contiguous run of columns.
 * NN, TN and (computing C^T) TT are all this shape; strides of 1 are constants after inlining.
 * Rows past the edge read the last row (clamped, always in bounds) and are not stored. Columns
 * cannot be clamped that way (a vector load would run past the row), so a tile that sticks out
 * is shifted left to end at the last column and stores only the columns it owns; only
 * matrices narrower than one tile take the gathering path. Epilogues: act/S/s_is_output as in
 * kd_gemm_outer_store; rowsum non-NULL: the tiles of the first column also write
 * rowsum[i] = sum_k R[i, k] (k ascending from 0.0f: the bits of kd_dense_bias_backward). */
inline void kd_gemm_outer(uint rows, uint cols, uint K, float alpha, const __global float *R,
                          uint r_rs, uint r_ks, const __global float *V, uint v_ks, float beta,
                          __global float *C, uint c_rs, uint c_cs, int act,
                          const __global float *S, int s_is_output, __global float *rowsum) {
  const uint i0 = get_global_id(1) * KD_GEMM_TM;
  const uint j_own = get_global_id(0) * KD_GEMM_TN;
  if (i0 >= rows || j_own >= cols) return;
  const int wide = cols >= KD_GEMM_TN;
  const uint j0 = wide ? min(j_own, cols - KD_GEMM_TN) : j_own;

  uint roff[KD_GEMM_TM];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) roff[r] = min(i0 + r, rows - 1) * r_rs;
  float16 acc[KD_GEMM_TM][KD_GEMM_NV];
  float rs[KD_GEMM_TM];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) {
    rs[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = (float16)(0.0f);
  }

  const __global float *rk = R;
  const __global float *vk = V + j0;
  const int sums = rowsum && j_own == 0;
  if (wide) {
    if (sums) {
      KD_GEMM_OUTER_K_LOOP(1, KD_GEMM_LOAD_B_WIDE)
    } else {
      KD_GEMM_OUTER_K_LOOP(0, KD_GEMM_LOAD_B_WIDE)
    }
  } else {
    uint jc[KD_GEMM_TN];
#pragma unroll
    for (int x = 0; x < KD_GEMM_TN; x++) jc[x] = min((uint)x, cols - 1 - j0);
    if (sums) {
      KD_GEMM_OUTER_K_LOOP(1, KD_GEMM_LOAD_B_NARROW)
    } else {
      KD_GEMM_OUTER_K_LOOP(0, KD_GEMM_LOAD_B_NARROW)
    }
  }
  if (sums)
#pragma unroll
    for (int r = 0; r < KD_GEMM_TM; r++)
      if (i0 + r < rows) rowsum[i0 + r] = rs[r];
  kd_gemm_outer_store(acc, i0, j0, j_own, rows, cols, alpha, beta, C, c_rs, c_cs, act, S,
                      s_is_output);
}

/* Blocked twin of kd_gemm_outer for long k: the work-group is one column of KD_GEMM_BLK_WG_Y
 * tiles (the same KD_GEMM_TN columns, consecutive row tiles), and it copies each block of
 * KD_GEMM_KC rows of V's column panel into local memory before its work-items use it. V's rows
 * are v_ks apart; when that is a multiple of a few KB (a 1024- or 2048-wide matrix) they share
 * cache sets, so the panel cannot stay in cache between work-items and every tile would
 * stream it from memory again; the local copy is contiguous and is read once per block by the
 * whole group. The same products are summed in the same order, and the epilogues are the same:
 * the same bits as kd_gemm_outer. Needs cols >= KD_GEMM_TN (the host checks). */
#ifndef KD_GEMM_KC
#define KD_GEMM_KC 128
#endif
#ifndef KD_GEMM_BLK_WG_Y
#define KD_GEMM_BLK_WG_Y 16
#endif
#ifdef KD_FPGA
#define KD_REQD_WG_GEMM_BLK __attribute__((reqd_work_group_size(1, KD_GEMM_BLK_WG_Y, 1)))
#else
#define KD_REQD_WG_GEMM_BLK
#endif

inline void kd_gemm_outer_blk(uint rows, uint cols, uint K, float alpha, const __global float *R,
                              uint r_rs, uint r_ks, const __global float *V, uint v_ks,
                              float beta, __global float *C, uint c_rs, uint c_cs, int act,
                              const __global float *S, int s_is_output, __global float *rowsum,
                              __local float *panel) {
  const uint i0 = get_global_id(1) * KD_GEMM_TM;
  const uint j_own = get_global_id(0) * KD_GEMM_TN;
  const uint ly = get_local_id(1);
  /* Every work-item takes part in the copies and barriers; only those inside store. */
  const uint j0 = min(j_own, cols - KD_GEMM_TN);
  uint roff[KD_GEMM_TM];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) roff[r] = min(i0 + r, rows - 1) * r_rs;
  float16 acc[KD_GEMM_TM][KD_GEMM_NV];
  float rs[KD_GEMM_TM];
#pragma unroll
  for (int r = 0; r < KD_GEMM_TM; r++) {
    rs[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = (float16)(0.0f);
  }
  const int sums = rowsum && j_own == 0;

  for (uint k0 = 0; k0 < K; k0 += KD_GEMM_KC) {
    const uint kc = min((uint)KD_GEMM_KC, K - k0);
    for (uint kk = ly; kk < kc; kk += KD_GEMM_BLK_WG_Y) {
      const __global float *src = V + (k0 + kk) * v_ks + j0;
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) vstore16(vload16(c, src), c, panel + kk * KD_GEMM_TN);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const __global float *rk = R + k0 * r_ks;
    for (uint kk = 0; kk < kc; kk++, rk += r_ks) {
      float16 b[KD_GEMM_NV];
#pragma unroll
      for (int c = 0; c < KD_GEMM_NV; c++) b[c] = vload16(c, panel + kk * KD_GEMM_TN);
#pragma unroll
      for (int r = 0; r < KD_GEMM_TM; r++) {
        const float a = rk[roff[r]];
        if (sums) rs[r] += a;
#pragma unroll
        for (int c = 0; c < KD_GEMM_NV; c++) acc[r][c] = fma((float16)(a), b[c], acc[r][c]);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }

  if (i0 >= rows || j_own >= cols) return;
  if (sums)
#pragma unroll
    for (int r = 0; r < KD_GEMM_TM; r++)
      if (i0 + r < rows) rowsum[i0 + r] = rs[r];
  kd_gemm_outer_store(acc, i0, j0, j_own, rows, cols, alpha, beta, C, c_rs, c_cs, act, S,
                      s_is_output);
}

/* NT: out[i, j] = sum_k A[i*lda + k] * B[j*ldb + k]. Both operands are rows along k, so each
 * work-item keeps 16-wide partial sums over k; edge rows of A and B are clamped (in bounds) and
 * their outputs not stored. The epilogue can add bias[j] (bias non-NULL), keep that value in P
 * (P non-NULL, row stride ldc) and store act() of it in C: a dense layer with its bias and
 * activation in one launch, the same bits as the GEMM, bias and activation kernels in turn. */
inline void kd_gemm_dot(uint M, uint N, uint K, float alpha, const __global float *A, uint lda,
                        const __global float *B, uint ldb, float beta, __global float *C,
                        uint ldc, const __global float *bias, int act, __global float *P) {
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
    for (int c = 0; c < KD_GEMM_DOT_TN; c++) {
      if (j0 + c >= N) continue;
      __global float *cp = C + (i0 + r) * ldc + j0 + c;
      if (!bias && !P && act == KD_ACT_NONE) {
        kd_gemm_store1(cp, alpha, s[r][c], beta);
        continue;
      }
      float v = beta == 0.0f ? alpha * s[r][c] : fma(alpha, s[r][c], beta * *cp);
      if (bias) v = v + bias[j0 + c]; /* its own statement: never contracted into an fma */
      if (P) P[(i0 + r) * ldc + j0 + c] = v;
      *cp = kd_act(act, v);
    }
  }
}

/* All share one argument list so the host sets them alike; offsets and strides in floats.
 * Global size: (ceil(N/TN), ceil(M/TM)) work-items, DOT_TN/DOT_TM for NT, and for TT
 * (ceil(M/TN), ceil(N/TM)) since it computes C^T. Local size (KD_GEMM_WG_X, KD_GEMM_WG_Y), and
 * (1, KD_GEMM_BLK_WG_Y) for the blocked *_blk kernels. */
#define KD_GEMM_ARGS                                                                          \
  uint M, uint N, uint K, float alpha, const __global float *A, uint a_off, uint lda,         \
      const __global float *B, uint b_off, uint ldb, float beta, __global float *C,           \
      uint c_off, uint ldc
/* The epilogue arguments of the *_ep kernels: the activation gradient applied on the way out
 * (NN: a dense layer's input gradient through the activation before it; S laid out like C) and
 * the row sums of op(A) (TN: the bias gradient beside the weight gradient). */
#define KD_GEMM_EP_ARGS                                                                       \
  int act, const __global float *S, uint s_off, int s_is_output, __global float *rowsum,      \
      uint rs_off, int has_rowsum
#define KD_GEMM_EP_S (act != KD_ACT_NONE ? S + s_off : 0)
#define KD_GEMM_EP_RS (has_rowsum ? rowsum + rs_off : 0)
#define KD_GEMM_NO_EP KD_ACT_NONE, 0, 0, 0

__kernel KD_REQD_WG_GEMM void kd_gemm_nn(KD_GEMM_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, lda, 1, B + b_off, ldb, beta, C + c_off, ldc, 1,
                KD_GEMM_NO_EP);
}

__kernel KD_REQD_WG_GEMM void kd_gemm_tn(KD_GEMM_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, 1, lda, B + b_off, ldb, beta, C + c_off, ldc, 1,
                KD_GEMM_NO_EP);
}

/* C^T[j, i] = sum_k B[j*ldb + k] * A[k*lda + i]: the NN shape with the operands swapped. */
__kernel KD_REQD_WG_GEMM void kd_gemm_tt(KD_GEMM_ARGS) {
  kd_gemm_outer(N, M, K, alpha, B + b_off, ldb, 1, A + a_off, lda, beta, C + c_off, 1, ldc,
                KD_GEMM_NO_EP);
}

__kernel KD_REQD_WG_GEMM void kd_gemm_nt(KD_GEMM_ARGS) {
  kd_gemm_dot(M, N, K, alpha, A + a_off, lda, B + b_off, ldb, beta, C + c_off, ldc, 0, KD_ACT_NONE,
              0);
}

/* NT with the dense-layer epilogue (host/nn/gemm.c kd_gemm_nt_epilogue): C = act(op + bias),
 * and P = op + bias when store_pre. */
__kernel KD_REQD_WG_GEMM void kd_gemm_nt_bias_act(KD_GEMM_ARGS, const __global float *bias,
                                                  uint bias_off, int has_bias, int act,
                                                  __global float *P, uint p_off, int store_pre) {
  kd_gemm_dot(M, N, K, alpha, A + a_off, lda, B + b_off, ldb, beta, C + c_off, ldc,
              has_bias ? bias + bias_off : 0, act, store_pre ? P + p_off : 0);
}

/* NN and TN with the epilogues (host/nn/gemm.c kd_gemm_outer_epilogue). */
__kernel KD_REQD_WG_GEMM void kd_gemm_nn_ep(KD_GEMM_ARGS, KD_GEMM_EP_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, lda, 1, B + b_off, ldb, beta, C + c_off, ldc, 1, act,
                KD_GEMM_EP_S, s_is_output, KD_GEMM_EP_RS);
}

__kernel KD_REQD_WG_GEMM void kd_gemm_tn_ep(KD_GEMM_ARGS, KD_GEMM_EP_ARGS) {
  kd_gemm_outer(M, N, K, alpha, A + a_off, 1, lda, B + b_off, ldb, beta, C + c_off, ldc, 1, act,
                KD_GEMM_EP_S, s_is_output, KD_GEMM_EP_RS);
}

/* The blocked twins (kd_gemm_outer_blk), for long k. */
__kernel KD_REQD_WG_GEMM_BLK void kd_gemm_nn_blk(KD_GEMM_ARGS) {
  __local float panel[KD_GEMM_KC * KD_GEMM_TN];
  kd_gemm_outer_blk(M, N, K, alpha, A + a_off, lda, 1, B + b_off, ldb, beta, C + c_off, ldc, 1,
                    KD_GEMM_NO_EP, panel);
}

__kernel KD_REQD_WG_GEMM_BLK void kd_gemm_tn_blk(KD_GEMM_ARGS) {
  __local float panel[KD_GEMM_KC * KD_GEMM_TN];
  kd_gemm_outer_blk(M, N, K, alpha, A + a_off, 1, lda, B + b_off, ldb, beta, C + c_off, ldc, 1,
                    KD_GEMM_NO_EP, panel);
}

__kernel KD_REQD_WG_GEMM_BLK void kd_gemm_tt_blk(KD_GEMM_ARGS) {
  __local float panel[KD_GEMM_KC * KD_GEMM_TN];
  kd_gemm_outer_blk(N, M, K, alpha, B + b_off, ldb, 1, A + a_off, lda, beta, C + c_off, 1, ldc,
                    KD_GEMM_NO_EP, panel);
}

__kernel KD_REQD_WG_GEMM_BLK void kd_gemm_nn_blk_ep(KD_GEMM_ARGS, KD_GEMM_EP_ARGS) {
  __local float panel[KD_GEMM_KC * KD_GEMM_TN];
  kd_gemm_outer_blk(M, N, K, alpha, A + a_off, lda, 1, B + b_off, ldb, beta, C + c_off, ldc, 1,
                    act, KD_GEMM_EP_S, s_is_output, KD_GEMM_EP_RS, panel);
}

__kernel KD_REQD_WG_GEMM_BLK void kd_gemm_tn_blk_ep(KD_GEMM_ARGS, KD_GEMM_EP_ARGS) {
  __local float panel[KD_GEMM_KC * KD_GEMM_TN];
  kd_gemm_outer_blk(M, N, K, alpha, A + a_off, 1, lda, B + b_off, ldb, beta, C + c_off, ldc, 1,
                    act, KD_GEMM_EP_S, s_is_output, KD_GEMM_EP_RS, panel);
}
