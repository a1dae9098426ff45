/* Conv2d (NCHW) helpers around the GEMM (host/nn/conv.c): im2col, col2im as a gather, the
 * reorders between the GEMM's [O, n*P] layout and NCHW (forward fused with the bias), and the
 * bias gradient. Notation: K = C*KH*KW rows of the column matrix, P = OH*OW output pixels per
 * image, N = n*P columns (column j = img*P + oh*OW + ow). Offsets are in floats.
 *
 * Indices are decomposed with kd_conv_div, never with `/` or `%`: CPUs have no vector integer
 * division, so one `/` per work-item would serialise PoCL's vectorised work-item loops. Each
 * divisor d arrives as a (mul, shift) pair computed on the host (kd_udiv_magic). */

/* n / d for every uint n (Granlund & Montgomery, "Division by invariant integers using
 * multiplication", fig. 4.1): mul = floor(2^32 * (2^l - d) / d) + 1 with l = ceil(log2 d);
 * shift = sh1 | sh2 << 8 with (sh1, sh2) = (1, l - 1), or (0, 0) for d = 1. */
inline uint kd_conv_div(uint n, uint mul, uint shift) {
  const uint t = mul_hi(n, mul);
  return (t + ((n - t) >> (shift & 0xffu))) >> (shift >> 8);
}

/* col[r, j] for r < K, j < N (row stride N) from x[n,C,H,W]: with r = (c*KH + kh)*KW + kw and
 * j = (img, oh, ow), col = x[img, c, oh*stride - pad + kh, ow*stride - pad + kw], 0 outside
 * the input. One work-item per column j walks the K rows: neighbouring work-items write
 * neighbouring addresses and, at stride 1, read neighbouring pixels. */
__kernel KD_REQD_WG_1D void kd_conv_im2col(__global float *col, uint col_off,
                                           __global const float *x, uint x_off, uint N, uint C,
                                           uint H, uint W, uint KH, uint KW, uint stride, int pad,
                                           uint P, uint OW, uint p_mul, uint p_sh, uint ow_mul,
                                           uint ow_sh) {
  const uint j = get_global_id(0);
  if (j >= N) return;
  const uint img = kd_conv_div(j, p_mul, p_sh), p = j - img * P;
  const uint oh = kd_conv_div(p, ow_mul, ow_sh), ow = p - oh * OW;
  const int ih0 = (int)(oh * stride) - pad, iw0 = (int)(ow * stride) - pad;
  const uint HW = H * W;
  __global const float *xc = x + x_off + img * C * HW;
  __global float *out = col + col_off + j;
  for (uint c = 0; c < C; c++, xc += HW) {
    for (uint kh = 0; kh < KH; kh++) {
      const int ih = ih0 + (int)kh;
      const int row_ok = ih >= 0 && ih < (int)H;
      for (uint kw = 0; kw < KW; kw++, out += N) {
        const int iw = iw0 + (int)kw;
        *out = row_ok && iw >= 0 && iw < (int)W ? xc[ih * (int)W + iw] : 0.0f;
      }
    }
  }
}

/* dx[img, c, h, w] = sum of dcol[r, j] over the (r, j) that im2col filled from that pixel:
 * kh = (h + pad) - oh*stride for each oh in [0, OH), likewise kw, taken in increasing kh then
 * kw (a fixed order: deterministic, no atomics). One work-item per pixel (img, h, w) walks the
 * C channels; dcol has row stride N. Overwrites dx. */
__kernel KD_REQD_WG_1D void kd_conv_col2im(__global float *dx, uint dx_off,
                                           __global const float *dcol, uint dcol_off, uint n,
                                           uint C, uint H, uint W, uint KH, uint KW, uint stride,
                                           uint pad, uint OH, uint OW, uint N, uint hw_mul,
                                           uint hw_sh, uint w_mul, uint w_sh, uint s_mul,
                                           uint s_sh) {
  const uint e = get_global_id(0);
  const uint HW = H * W;
  if (e >= n * HW) return;
  const uint img = kd_conv_div(e, hw_mul, hw_sh), hw = e - img * HW;
  const uint h = kd_conv_div(hw, w_mul, w_sh), w = hw - h * W;
  /* Windows covering row h: oh = qh - i with kh = rh + i*stride, i = 0, 1, ... */
  const uint qh = kd_conv_div(h + pad, s_mul, s_sh), rh = h + pad - qh * stride;
  const uint qw = kd_conv_div(w + pad, s_mul, s_sh), rw = w + pad - qw * stride;
  const uint KK = KH * KW, P = OH * OW;
  __global const float *dc = dcol + dcol_off + img * P;
  __global float *out = dx + dx_off + img * C * HW + hw;
  for (uint c = 0; c < C; c++, dc += KK * N, out += HW) {
    float acc = 0.0f;
    int oh = (int)qh;
    for (uint kh = rh; kh < KH && oh >= 0; kh += stride, oh--) {
      if (oh >= (int)OH) continue;
      int ow = (int)qw;
      for (uint kw = rw; kw < KW && ow >= 0; kw += stride, ow--) {
        if (ow >= (int)OW) continue;
        acc += dc[(kh * KW + kw) * N + (uint)oh * OW + (uint)ow];
      }
    }
    *out = acc;
  }
}

/* y[img, o, p] = Y[o, img*P + p] + b[o] (has_bias == 0: no bias; b is then not read).
 * One work-item per column j walks the O channels. */
__kernel KD_REQD_WG_1D void kd_conv_cols_to_nchw(__global float *y, uint y_off,
                                                 __global const float *Y, uint Y_off,
                                                 __global const float *b, uint b_off,
                                                 int has_bias, uint N, uint O, uint P,
                                                 uint p_mul, uint p_sh) {
  const uint j = get_global_id(0);
  if (j >= N) return;
  const uint img = kd_conv_div(j, p_mul, p_sh), p = j - img * P;
  __global const float *src = Y + Y_off + j;
  __global float *dst = y + y_off + img * O * P + p;
  for (uint o = 0; o < O; o++)
    dst[o * P] = src[o * N] + (has_bias ? b[b_off + o] : 0.0f);
}

/* D[o, img*P + p] = dy[img, o, p]: the inverse reorder, for the backward GEMMs. */
__kernel KD_REQD_WG_1D void kd_conv_nchw_to_cols(__global float *D, uint D_off,
                                                 __global const float *dy, uint dy_off, uint N,
                                                 uint O, uint P, uint p_mul, uint p_sh) {
  const uint j = get_global_id(0);
  if (j >= N) return;
  const uint img = kd_conv_div(j, p_mul, p_sh), p = j - img * P;
  __global const float *src = dy + dy_off + img * O * P + p;
  __global float *dst = D + D_off + j;
  for (uint o = 0; o < O; o++) dst[o * N] = src[o * P];
}

#if (KD_WG & (KD_WG - 1)) != 0
#error "kd_conv_bias_grad needs KD_WG to be a power of two"
#endif

/* db[o] = sum over j < N of D[o, j] (row stride N); overwrites. One work-group of KD_WG per
 * row: work-item t sums j = t, t + KD_WG, ... in order, then a fixed tree in local memory, so
 * the result is the same bits on every run. Launch O*KD_WG work-items in groups of KD_WG. */
__kernel KD_REQD_WG_1D void kd_conv_bias_grad(__global float *db, uint db_off,
                                              __global const float *D, uint D_off, uint N) {
  __local float part[KD_WG];
  const uint o = get_group_id(0), t = get_local_id(0);
  __global const float *row = D + D_off + o * N;
  float acc = 0.0f;
  for (uint j = t; j < N; j += KD_WG) acc += row[j];
  part[t] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint h = KD_WG / 2; h > 0; h >>= 1) {
    if (t < h) part[t] += part[t + h];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (t == 0) db[db_off + o] = part[0];
}
