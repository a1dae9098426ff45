/* 2-D pooling on NCHW planes (host/nn/pool.c), PyTorch semantics: max (argmax kept for
 * backward), average with count_include_pad=True, and global average. A "plane" is one (n, c)
 * H x W image; windows start at oh*stride - pad and are clipped to the plane (the host
 * guarantees every window holds at least one real element). Forward passes: one work-item per
 * output row. Backward passes: one work-item per input row, which gathers from the windows
 * overlapping its row, in row-major window order, into that row only (no other work-item
 * writes it: deterministic, no atomics); each element thus sums its windows in row-major
 * order. Rows rather than elements keep integer division (no SIMD form on CPUs) out of the
 * per-element work. */

/* x / d for an invariant divisor d passed as (m, sh) from the host (Granlund & Montgomery's
 * multiply-and-shift, exact for every 32-bit x; fastdiv in host/nn/pool.c). */
uint kd_pool_udiv(uint x, uint m, uint sh) {
  uint t = mul_hi(x, m);
  return (t + ((x - t) >> (sh & 255u))) >> (sh >> 8);
}

/* The output rows [*lo, *hi) whose windows contain input row h (the same for columns):
 * oh*stride - pad <= h < oh*stride - pad + size, clipped to [0, O). */
void kd_pool_window_range(uint h, uint pad, uint size, uint stride, uint O, uint *lo,
                          uint *hi) {
  uint hp = h + pad;
  *lo = hp < size ? 0u : (hp - size) / stride + 1u;
  *hi = min(hp / stride + 1u, O);
}

/* The window of output position o along an axis of n inputs, clipped to the axis: inputs
 * [*start, *end), the unclipped window starting at o*stride - pad. */
void kd_pool_window(uint o, uint stride, uint pad, uint size, uint n, int *start, int *end) {
  int s0 = (int)(o * stride) - (int)pad;
  *start = max(s0, 0);
  *end = min(s0 + (int)size, (int)n);
}

/* y[p, oh, ow] = max of x[p] over the window (padding never wins: it acts as -inf);
 * argmax[p, oh, ow] = h*W + w of that element. Ties keep the first element in row-major window
 * order; a NaN wins over numbers (the last NaN seen), both as on PyTorch's CPU. One work-item
 * per output row (p, oh). */
__kernel KD_REQD_WG_1D void kd_maxpool2d_forward(__global float *y, uint y_off,
                                                 __global int *argmax, uint am_off,
                                                 __global const float *x, uint x_off,
                                                 uint planes, uint H, uint W, uint OH, uint OW,
                                                 uint size, uint stride, uint pad) {
  uint ro = get_global_id(0);
  if (ro >= planes * OH) return;
  uint p = ro / OH, oh = ro - p * OH;
  int hs, he;
  kd_pool_window(oh, stride, pad, size, H, &hs, &he);
  __global const float *xp = x + x_off + p * H * W;
  __global float *yr = y + y_off + ro * OW;
  __global int *ar = argmax + am_off + ro * OW;
  for (uint ow = 0; ow < OW; ow++) {
    int ws, we;
    kd_pool_window(ow, stride, pad, size, W, &ws, &we);
    float best = -INFINITY;
    int bi = hs * (int)W + ws;
    for (int h = hs; h < he; h++)
      for (int w = ws; w < we; w++) {
        int idx = h * (int)W + w;
        float v = xp[idx];
        if (v > best || isnan(v)) {
          best = v;
          bi = idx;
        }
      }
    yr[ow] = best;
    ar[ow] = bi;
  }
}

/* kd_maxpool2d_forward for size 2, stride 2, no padding (the common case). Four windows at a
 * time: their elements come from two float8 loads (one per input row) and are compared as
 * float4s with selects, in the same row-major order and with the same rule as the general
 * kernel (greater, or NaN, replaces), so the same results; the rest of the row one window at a
 * time. Branch-free: which element wins is data, and after a relu half the values tie at 0,
 * so branches on it mispredict. */
#define KD_POOL_TAKE(best, bi, v, idx)                  \
  {                                                     \
    int take_ = (v) > (best) || isnan(v);               \
    (best) = take_ ? (v) : (best);                      \
    (bi) = take_ ? (idx) : (bi);                        \
  }
#define KD_POOL_TAKE4(best, bi, v, idx)                 \
  {                                                     \
    int4 take_ = isgreater((v), (best)) | isnan(v);     \
    (best) = select((best), (v), take_);                \
    (bi) = select((bi), (idx), take_);                  \
  }
__kernel KD_REQD_WG_1D void kd_maxpool2d_forward_2x2(__global float *y, uint y_off,
                                                     __global int *argmax, uint am_off,
                                                     __global const float *x, uint x_off,
                                                     uint planes, uint H, uint W, uint OH,
                                                     uint OW) {
  uint ro = get_global_id(0);
  if (ro >= planes * OH) return;
  uint p = ro / OH, oh = ro - p * OH;
  int r0 = (int)(2 * oh * W); /* index of the window row's first element in the plane */
  __global const float *x0 = x + x_off + p * H * W + (uint)r0, *x1 = x0 + W;
  __global float *yr = y + y_off + ro * OW;
  __global int *ar = argmax + am_off + ro * OW;
  uint ow = 0;
  for (; ow + 4 <= OW; ow += 4) {
    float8 u = vload8(0, x0 + 2 * ow), d = vload8(0, x1 + 2 * ow);
    int4 col = (int4)(0, 2, 4, 6) + (int)(2 * ow) + r0;
    /* the first element always wins against the initial -inf (or ties it at -inf) */
    float4 best = u.even;
    int4 bi = col;
    KD_POOL_TAKE4(best, bi, u.odd, col + 1)
    KD_POOL_TAKE4(best, bi, d.even, col + (int)W)
    KD_POOL_TAKE4(best, bi, d.odd, col + (int)W + 1)
    vstore4(best, 0, yr + ow);
    vstore4(bi, 0, ar + ow);
  }
  for (; ow < OW; ow++) {
    uint w = 2 * ow;
    int i = r0 + (int)w;
    float best = x0[w];
    int bi = i;
    KD_POOL_TAKE(best, bi, x0[w + 1], i + 1)
    KD_POOL_TAKE(best, bi, x1[w], i + (int)W)
    KD_POOL_TAKE(best, bi, x1[w + 1], i + (int)W + 1)
    yr[ow] = best;
    ar[ow] = bi;
  }
}

/* kd_maxpool2d_backward for size 2, stride 2, no padding: windows do not overlap, so each input
 * element gets its window's dy when it is the argmax, else 0 (0 + dy, as the general kernel
 * sums it: the same bits, -0 included). One work-item per input row, four windows at a time,
 * branch-free. */
__kernel KD_REQD_WG_1D void kd_maxpool2d_backward_2x2(__global float *dx, uint dx_off,
                                                      __global const float *dy, uint dy_off,
                                                      __global const int *argmax, uint am_off,
                                                      uint planes, uint H, uint W, uint OH,
                                                      uint OW) {
  uint ri = get_global_id(0);
  if (ri >= planes * H) return;
  uint p = ri / H, h = ri - p * H, oh = h / 2;
  __global float *dr = dx + dx_off + ri * W;
  uint w = 0;
  if (oh < OH) {
    __global const int *am = argmax + am_off + (p * OH + oh) * OW;
    __global const float *g = dy + dy_off + (p * OH + oh) * OW;
    int row0 = (int)(h * W);
    uint ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
      int4 col = vload4(0, am + ow) - row0 - ((int4)(0, 2, 4, 6) + (int)(2 * ow));
      float4 gv = 0.0f + vload4(0, g + ow);
      float4 even = select((float4)(0.0f), gv, col == 0), odd = select((float4)(0.0f), gv, col == 1);
      vstore8(shuffle2(even, odd, (uint8)(0, 4, 1, 5, 2, 6, 3, 7)), 0, dr + 2 * ow);
    }
    for (; ow < OW; ow++) {
      int col = am[ow] - row0 - (int)(2 * ow);
      float gv = 0.0f + g[ow];
      dr[2 * ow] = col == 0 ? gv : 0.0f;
      dr[2 * ow + 1] = col == 1 ? gv : 0.0f;
    }
    w = 2 * OW;
  }
  for (; w < W; w++) dr[w] = 0.0f; /* an odd last column or row outside every window */
}

/* dx[p, h, w] = sum of dy[p, oh, ow] over the windows containing (h, w) whose argmax is
 * h*W + w (overwrites). One work-item per input row (p, h): it zeroes its row, then walks the
 * windows that overlap the row in row-major order and adds each one's dy where its argmax
 * falls in the row. Every element thus sums its windows in row-major order, the same as a
 * gather per element, with no write outside the work-item's own row. */
__kernel KD_REQD_WG_1D void kd_maxpool2d_backward(__global float *dx, uint dx_off,
                                                  __global const float *dy, uint dy_off,
                                                  __global const int *argmax, uint am_off,
                                                  uint planes, uint H, uint W, uint OH, uint OW,
                                                  uint size, uint stride, uint pad) {
  uint ri = get_global_id(0);
  if (ri >= planes * H) return;
  uint p = ri / H, h = ri - p * H;
  uint oh_lo, oh_hi;
  kd_pool_window_range(h, pad, size, stride, OH, &oh_lo, &oh_hi);
  __global const int *am = argmax + am_off + p * OH * OW;
  __global const float *g = dy + dy_off + p * OH * OW;
  __global float *dr = dx + dx_off + ri * W;
  for (uint w = 0; w < W; w++) dr[w] = 0.0f;
  int row0 = (int)(h * W);
  for (uint oh = oh_lo; oh < oh_hi; oh++)
    for (uint ow = 0; ow < OW; ow++) {
      uint col = (uint)(am[oh * OW + ow] - row0); /* >= W when the argmax is in another row */
      if (col < W) dr[col] += g[oh * OW + ow];
    }
}

/* y[p, oh, ow] = (sum of x[p] over the window's real elements) / (size*size): padding counts
 * as zeros (count_include_pad=True). One work-item per output row (p, oh). */
__kernel KD_REQD_WG_1D void kd_avgpool2d_forward(__global float *y, uint y_off,
                                                 __global const float *x, uint x_off,
                                                 uint planes, uint H, uint W, uint OH, uint OW,
                                                 uint size, uint stride, uint pad) {
  uint ro = get_global_id(0);
  if (ro >= planes * OH) return;
  uint p = ro / OH, oh = ro - p * OH;
  int hs, he;
  kd_pool_window(oh, stride, pad, size, H, &hs, &he);
  __global const float *xp = x + x_off + p * H * W;
  __global float *yr = y + y_off + ro * OW;
  float div = (float)(size * size);
  for (uint ow = 0; ow < OW; ow++) {
    int ws, we;
    kd_pool_window(ow, stride, pad, size, W, &ws, &we);
    float acc = 0.0f;
    for (int h = hs; h < he; h++)
      for (int w = ws; w < we; w++) acc += xp[h * (int)W + w];
    yr[ow] = acc / div;
  }
}

/* dx[p, h, w] = (sum of dy[p, oh, ow] over the windows containing (h, w)) / (size*size). One
 * work-item per input row (p, h), walking the windows that overlap its row in row-major order
 * as in kd_maxpool2d_backward, then dividing the row. */
__kernel KD_REQD_WG_1D void kd_avgpool2d_backward(__global float *dx, uint dx_off,
                                                  __global const float *dy, uint dy_off,
                                                  uint planes, uint H, uint W, uint OH, uint OW,
                                                  uint size, uint stride, uint pad) {
  uint ri = get_global_id(0);
  if (ri >= planes * H) return;
  uint p = ri / H, h = ri - p * H;
  uint oh_lo, oh_hi;
  kd_pool_window_range(h, pad, size, stride, OH, &oh_lo, &oh_hi);
  __global const float *g = dy + dy_off + p * OH * OW;
  __global float *dr = dx + dx_off + ri * W;
  for (uint w = 0; w < W; w++) dr[w] = 0.0f;
  for (uint oh = oh_lo; oh < oh_hi; oh++)
    for (uint ow = 0; ow < OW; ow++) {
      int ws, we;
      kd_pool_window(ow, stride, pad, size, W, &ws, &we);
      float v = g[oh * OW + ow];
      for (int w = ws; w < we; w++) dr[w] += v;
    }
  float div = (float)(size * size);
  for (uint w = 0; w < W; w++) dr[w] = dr[w] / div;
}

/* y[p] = (sum of x[p, 0..HW)) / HW: one work-item per plane, summed in order. */
__kernel KD_REQD_WG_1D void kd_global_avgpool_forward(__global float *y, uint y_off,
                                                      __global const float *x, uint x_off,
                                                      uint planes, uint HW) {
  uint p = get_global_id(0);
  if (p >= planes) return;
  __global const float *xp = x + x_off + p * HW;
  float acc = 0.0f;
  for (uint j = 0; j < HW; j++) acc += xp[j];
  y[y_off + p] = acc / (float)HW;
}

/* dx[p, j] = dy[p] / HW; (d_hw_m, d_hw_s) divide by HW. */
__kernel KD_REQD_WG_1D void kd_global_avgpool_backward(__global float *dx, uint dx_off,
                                                       __global const float *dy, uint dy_off,
                                                       uint planes, uint HW, uint d_hw_m,
                                                       uint d_hw_s) {
  uint i = get_global_id(0);
  if (i >= planes * HW) return;
  dx[dx_off + i] = dy[dy_off + kd_pool_udiv(i, d_hw_m, d_hw_s)] / (float)HW;
}
