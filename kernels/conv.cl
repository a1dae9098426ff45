/* Conv2d (NCHW) helpers around the GEMM (host/nn/conv.c): im2col, col2im as a gather, the
 * reorders between the GEMM's [O, g*P] layout and NCHW (forward fused with the bias), and the
 * bias gradient. The host walks the batch in chunks of g images; every kernel here but the
 * bias gradient covers one chunk, with x/y/dx/dy offsets pointing at its first image.
 * Notation: K = C*KH*KW rows of the column matrix, P = OH*OW output pixels per image,
 * N = g*P columns (column j = img*P + oh*OW + ow). Offsets are in floats.
 *
 * Each work-item copies or sums a contiguous run (a row or a plane), so the inner loops run
 * along memory and LLVM vectorises them on CPUs; measured under PoCL, this beats one
 * work-item per element by 2-6x (gathers, and work-item loops that do not vectorise). On GPUs
 * these per-work-item runs do not coalesce (not measured there). Index decomposition uses
 * kd_conv_div rather than `/` (no hardware division in the index math). */

/* n / d for every uint n (Granlund & Montgomery, "Division by invariant integers using
 * multiplication", fig. 4.1): mul = floor(2^32 * (2^l - d) / d) + 1 with l = ceil(log2 d);
 * shift = sh1 | sh2 << 8 with (sh1, sh2) = (1, l - 1), or (0, 0) for d = 1. The host computes
 * (mul, shift) per divisor (udiv_magic in host/nn/conv.c). */
inline uint kd_conv_div(uint n, uint mul, uint shift) {
  const uint t = (uint)(((ulong)n * mul) >> 32); /* mul_hi, in a form LLVM vectorises */
  return (t + ((n - t) >> (shift & 0xffu))) >> (shift >> 8);
}

/* col[r, img*P + oh*OW + ow] = x[img, c, oh*stride + kh - pad, ow*stride + kw - pad] (0 in the
 * padding), r = (c*KH + kh)*KW + kw, for img < g and r < K; col has row stride N = g*P. One
 * work-item per (img, r) writes that row's P contiguous columns; q = img*K + r, so neighbouring
 * work-items read the same input plane. Global: g*K. Coordinates are unsigned: a negative one
 * wraps past H or W and counts as padding. */
__kernel KD_REQD_WG_1D void kd_conv_im2col(__global float *col, uint col_off,
                                           __global const float *x, uint x_off, uint gK, uint K,
                                           uint N, uint C, uint H, uint W, uint KK, uint KW,
                                           uint stride, uint pad, uint OH, uint OW, uint k_mul,
                                           uint k_sh,
                                           uint kk_mul, uint kk_sh, uint kw_mul, uint kw_sh) {
  const uint q = get_global_id(0);
  if (q >= gK) return;
  const uint img = kd_conv_div(q, k_mul, k_sh), r = q - img * K;
  const uint c = kd_conv_div(r, kk_mul, kk_sh), k = r - c * KK;
  const uint kh = kd_conv_div(k, kw_mul, kw_sh), kw = k - kh * KW;
  __global const float *xp = x + x_off + (img * C + c) * H * W;
  __global float *out = col + col_off + r * N + img * OH * OW;
  /* Stride 1: the columns ow in [lo, hi) read x (iw = ow + kw - pad in [0, W)), the rest are
   * padding; splitting the row so leaves a plain copy the compiler vectorizes. */
  const uint lo = min(kw < pad ? pad - kw : 0u, OW);
  const uint hi = max(lo, W + pad > kw ? min(OW, W + pad - kw) : 0u);
  for (uint oh = 0; oh < OH; oh++, out += OW) {
    const uint ih = oh * stride + kh - pad;
    if (ih >= H) {
      for (uint ow = 0; ow < OW; ow++) out[ow] = 0.0f;
    } else if (stride == 1) {
      __global const float *xr = xp + ih * W;
      uint ow = 0;
      for (; ow < lo; ow++) out[ow] = 0.0f;
      for (; ow < hi; ow++) out[ow] = xr[ow + kw - pad]; /* >= 0 here: no wrap */
      for (; ow < OW; ow++) out[ow] = 0.0f;
    } else {
      __global const float *xr = xp + ih * W;
      for (uint ow = 0; ow < OW; ow++) {
        const uint iw = ow * stride + kw - pad;
        out[ow] = iw < W ? xr[iw] : 0.0f;
      }
    }
  }
}

/* dx[img, c, h, :] = sum over the (kh, kw, oh, ow) with h = oh*stride + kh - pad and
 * w = ow*stride + kw - pad of dcol[(c*KH + kh)*KW + kw, img*P + oh*OW + ow]: the gather that
 * inverts im2col. One work-item per dx row q = (img*C + c)*H + h, for q < rows = g*C*H; it
 * zeroes its row, then adds the contributions in increasing (kh, kw, ow), so every pixel sums
 * its terms in a fixed order (deterministic, no atomics). dcol has row stride N. */
__kernel KD_REQD_WG_1D void kd_conv_col2im(__global float *dx, uint dx_off,
                                           __global const float *dcol, uint dcol_off, uint rows,
                                           uint C, uint H, uint W, uint KH, uint KW, uint stride,
                                           uint pad, uint OH, uint OW, uint N, uint h_mul,
                                           uint h_sh, uint c_mul, uint c_sh, uint s_mul,
                                           uint s_sh) {
  const uint q = get_global_id(0);
  if (q >= rows) return;
  const uint plane = kd_conv_div(q, h_mul, h_sh), h = q - plane * H;
  const uint img = kd_conv_div(plane, c_mul, c_sh), c = plane - img * C;
  __global float *out = dx + dx_off + q * W;
  for (uint w = 0; w < W; w++) out[w] = 0.0f;
  __global const float *dc = dcol + dcol_off + c * KH * KW * N + img * OH * OW;
  for (uint kh = 0; kh < KH; kh++) {
    const uint t = h + pad - kh; /* oh*stride when window row oh covers h; wraps when < 0 */
    const uint oh = kd_conv_div(t, s_mul, s_sh);
    if (t >= OH * stride || t != oh * stride) continue;
    for (uint kw = 0; kw < KW; kw++) {
      __global const float *src = dc + (kh * KW + kw) * N + oh * OW;
      if (stride == 1) { /* w = ow + kw - pad is in [0, W) for ow in [lo, hi): no test inside */
        const uint lo = min(kw < pad ? pad - kw : 0u, OW);
        const uint hi = max(lo, W + pad > kw ? min(OW, W + pad - kw) : 0u);
        for (uint ow = lo; ow < hi; ow++) out[ow + kw - pad] += src[ow];
      } else {
        for (uint ow = 0; ow < OW; ow++) {
          const uint w = ow * stride + kw - pad;
          if (w < W) out[w] += src[ow];
        }
      }
    }
  }
}

/* y[img, o, :] = Y[o, img*P .. img*P + P) + b[o] for img < g, o < O (has_bias == 0: no bias,
 * b not read). One work-item per (img, o), q = img*O + o, copies P contiguous floats; Y has
 * row stride N. Global: g*O. */
__kernel KD_REQD_WG_1D void kd_conv_cols_to_nchw(__global float *y, uint y_off,
                                                 __global const float *Y, uint Y_off,
                                                 __global const float *b, uint b_off,
                                                 int has_bias, uint gO, uint O, uint P, uint N,
                                                 uint o_mul, uint o_sh) {
  const uint q = get_global_id(0);
  if (q >= gO) return;
  const uint img = kd_conv_div(q, o_mul, o_sh), o = q - img * O;
  const float bias = has_bias ? b[b_off + o] : 0.0f;
  __global const float *src = Y + Y_off + o * N + img * P;
  __global float *dst = y + y_off + q * P;
  for (uint p = 0; p < P; p++) dst[p] = src[p] + bias;
}

/* D[o, img*P .. img*P + P) = dy[img, o, :]: the inverse reorder, for the backward GEMMs.
 * Global: g*O. */
__kernel KD_REQD_WG_1D void kd_conv_nchw_to_cols(__global float *D, uint D_off,
                                                 __global const float *dy, uint dy_off, uint gO,
                                                 uint O, uint P, uint N, uint o_mul, uint o_sh) {
  const uint q = get_global_id(0);
  if (q >= gO) return;
  const uint img = kd_conv_div(q, o_mul, o_sh), o = q - img * O;
  __global const float *src = dy + dy_off + q * P;
  __global float *dst = D + D_off + o * N + img * P;
  for (uint p = 0; p < P; p++) dst[p] = src[p];
}

/* db[o] = sum over img < n and p < P of dy[img, o, p] (overwrites), straight from NCHW. One
 * work-group of KD_WG per channel: work-item t sums images t, t + KD_WG, ... in order, each a
 * contiguous run of P in 16 running lanes; then the lanes and the work-items are added in a
 * fixed tree (kd_group_sum), so the result is the same bits on every run. Global: O*KD_WG. */
__kernel KD_REQD_WG_1D void kd_conv_bias_grad(__global float *db, uint db_off,
                                              __global const float *dy, uint dy_off, uint n,
                                              uint O, uint P) {
  __local float part[KD_WG];
  const uint o = get_group_id(0), t = get_local_id(0);
  float16 acc = (float16)(0.0f);
  float tail = 0.0f;
  const uint P16 = P & ~15u;
  for (uint img = t; img < n; img += KD_WG) {
    __global const float *row = dy + dy_off + (img * O + o) * P;
    for (uint p = 0; p < P16; p += 16) acc += vload16(0, row + p);
    for (uint p = P16; p < P; p++) tail += row[p];
  }
  const float8 a8 = acc.lo + acc.hi;
  const float4 a4 = a8.lo + a8.hi;
  const float2 a2 = a4.lo + a4.hi;
  const float sum = kd_group_sum((a2.x + a2.y) + tail, part);
  if (t == 0) db[db_off + o] = sum;
}
