/* 2-D pooling on NCHW planes (host/nn/pool.c), PyTorch semantics: max (argmax kept for
 * backward), average with count_include_pad=True, and global average. A "plane" is one (n, c)
 * H x W image; windows start at oh*stride - pad and are clipped to the plane (the host
 * guarantees every window holds at least one real element). Forward passes: one work-item per
 * output element; backward passes are gathers, one work-item per input element, summing the
 * windows it belongs to in row-major output order (deterministic, no atomics). */

/* The output rows [*lo, *hi) whose windows contain input row h (same for columns):
 * oh*stride - pad <= h < oh*stride - pad + size, clipped to [0, O). */
void kd_pool_window_range(uint h, uint pad, uint size, uint stride, uint O, uint *lo,
                          uint *hi) {
  uint hp = h + pad;
  *lo = hp < size ? 0u : (hp - size) / stride + 1u;
  *hi = min(hp / stride + 1u, O);
}

/* y[p, oh, ow] = max of x[p] over the window (padding never wins: it acts as -inf);
 * argmax[p, oh, ow] = h*W + w of that element. Ties keep the first element in row-major window
 * order; a NaN wins over numbers (the last NaN seen), both as on PyTorch's CPU. */
__kernel KD_REQD_WG_1D void kd_maxpool2d_forward(__global float *y, uint y_off,
                                                 __global int *argmax, uint am_off,
                                                 __global const float *x, uint x_off,
                                                 uint planes, uint H, uint W, uint OH, uint OW,
                                                 uint size, uint stride, uint pad) {
  uint o = get_global_id(0);
  uint OHW = OH * OW;
  if (o >= planes * OHW) return;
  uint p = o / OHW, r = o - p * OHW, oh = r / OW, ow = r - oh * OW;
  int h0 = (int)(oh * stride) - (int)pad, w0 = (int)(ow * stride) - (int)pad;
  int hs = max(h0, 0), he = min(h0 + (int)size, (int)H);
  int ws = max(w0, 0), we = min(w0 + (int)size, (int)W);
  __global const float *xp = x + x_off + p * H * W;
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
  y[y_off + o] = best;
  argmax[am_off + o] = bi;
}

/* dx[p, h, w] = sum of dy[p, oh, ow] over the windows containing (h, w) whose argmax is
 * h*W + w (overwrites). */
__kernel KD_REQD_WG_1D void kd_maxpool2d_backward(__global float *dx, uint dx_off,
                                                  __global const float *dy, uint dy_off,
                                                  __global const int *argmax, uint am_off,
                                                  uint planes, uint H, uint W, uint OH, uint OW,
                                                  uint size, uint stride, uint pad) {
  uint i = get_global_id(0);
  uint HW = H * W;
  if (i >= planes * HW) return;
  uint p = i / HW, r = i - p * HW, h = r / W, w = r - h * W;
  uint oh_lo, oh_hi, ow_lo, ow_hi;
  kd_pool_window_range(h, pad, size, stride, OH, &oh_lo, &oh_hi);
  kd_pool_window_range(w, pad, size, stride, OW, &ow_lo, &ow_hi);
  uint base = p * OH * OW;
  __global const int *am = argmax + am_off + base;
  __global const float *g = dy + dy_off + base;
  float acc = 0.0f;
  for (uint oh = oh_lo; oh < oh_hi; oh++)
    for (uint ow = ow_lo; ow < ow_hi; ow++)
      if (am[oh * OW + ow] == (int)r) acc += g[oh * OW + ow];
  dx[dx_off + i] = acc;
}

/* y[p, oh, ow] = (sum of x[p] over the window's real elements) / (size*size): padding counts
 * as zeros (count_include_pad=True). */
__kernel KD_REQD_WG_1D void kd_avgpool2d_forward(__global float *y, uint y_off,
                                                 __global const float *x, uint x_off,
                                                 uint planes, uint H, uint W, uint OH, uint OW,
                                                 uint size, uint stride, uint pad) {
  uint o = get_global_id(0);
  uint OHW = OH * OW;
  if (o >= planes * OHW) return;
  uint p = o / OHW, r = o - p * OHW, oh = r / OW, ow = r - oh * OW;
  int h0 = (int)(oh * stride) - (int)pad, w0 = (int)(ow * stride) - (int)pad;
  int hs = max(h0, 0), he = min(h0 + (int)size, (int)H);
  int ws = max(w0, 0), we = min(w0 + (int)size, (int)W);
  __global const float *xp = x + x_off + p * H * W;
  float acc = 0.0f;
  for (int h = hs; h < he; h++)
    for (int w = ws; w < we; w++) acc += xp[h * (int)W + w];
  y[y_off + o] = acc / (float)(size * size);
}

/* dx[p, h, w] = (sum of dy[p, oh, ow] over the windows containing (h, w)) / (size*size). */
__kernel KD_REQD_WG_1D void kd_avgpool2d_backward(__global float *dx, uint dx_off,
                                                  __global const float *dy, uint dy_off,
                                                  uint planes, uint H, uint W, uint OH, uint OW,
                                                  uint size, uint stride, uint pad) {
  uint i = get_global_id(0);
  uint HW = H * W;
  if (i >= planes * HW) return;
  uint p = i / HW, r = i - p * HW, h = r / W, w = r - h * W;
  uint oh_lo, oh_hi, ow_lo, ow_hi;
  kd_pool_window_range(h, pad, size, stride, OH, &oh_lo, &oh_hi);
  kd_pool_window_range(w, pad, size, stride, OW, &ow_lo, &ow_hi);
  __global const float *g = dy + dy_off + p * OH * OW;
  float acc = 0.0f;
  for (uint oh = oh_lo; oh < oh_hi; oh++)
    for (uint ow = ow_lo; ow < ow_hi; ow++) acc += g[oh * OW + ow];
  dx[dx_off + i] = acc / (float)(size * size);
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

/* dx[p, j] = dy[p] / HW. */
__kernel KD_REQD_WG_1D void kd_global_avgpool_backward(__global float *dx, uint dx_off,
                                                       __global const float *dy, uint dy_off,
                                                       uint planes, uint HW) {
  uint i = get_global_id(0);
  if (i >= planes * HW) return;
  dx[dx_off + i] = dy[dy_off + i / HW] / (float)HW;
}
