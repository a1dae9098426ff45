/* Element-wise helpers for residual blocks (host/nn/residual.c): one work-item per float. */

/* y[i] = a[i] + b[i] for i < n. y may be a or b (same offset). */
__kernel KD_REQD_WG_1D void kd_add_forward(__global float *y, uint y_off,
                                           __global const float *a, uint a_off,
                                           __global const float *b, uint b_off, uint n) {
  uint i = get_global_id(0);
  if (i >= n) return;
  y[y_off + i] = a[a_off + i] + b[b_off + i];
}

/* dst[i] += src[i] for i < n. src may be dst (same offset: doubles it). */
__kernel KD_REQD_WG_1D void kd_accumulate(__global float *dst, uint dst_off,
                                          __global const float *src, uint src_off, uint n) {
  uint i = get_global_id(0);
  if (i >= n) return;
  dst[dst_off + i] += src[src_off + i];
}

/* dst[i] = src[i] for i < n (the ranges do not overlap: the host checks). */
__kernel KD_REQD_WG_1D void kd_copy(__global float *dst, uint dst_off,
                                    __global const float *src, uint src_off, uint n) {
  uint i = get_global_id(0);
  if (i >= n) return;
  dst[dst_off + i] = src[src_off + i];
}
