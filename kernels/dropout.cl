/* Inverted dropout (host/nn/layers.c). The mask is recomputed, never stored: element i of a
 * call keeps its value when u(seed, stream, i) >= rate, u uniform in [0, 1) from Philox-4x32-10
 * (Salmon et al., SC'11) with key = seed and counter = (i / 4, 0, stream), lane i % 4. Same
 * (seed, stream, n) gives the same mask on every run and device; backward reuses it. */

#define KD_PHILOX_M0 0xD2511F53u
#define KD_PHILOX_M1 0xCD9E8D57u
#define KD_PHILOX_W0 0x9E3779B9u
#define KD_PHILOX_W1 0xBB67AE85u

/* Philox-4x32 with 10 rounds: 128 random bits from a 128-bit counter and a 64-bit key. */
uint4 kd_philox4x32_10(uint4 c, uint2 k) {
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k.x += KD_PHILOX_W0;
      k.y += KD_PHILOX_W1;
    }
    uint hi0 = mul_hi(KD_PHILOX_M0, c.x), lo0 = KD_PHILOX_M0 * c.x;
    uint hi1 = mul_hi(KD_PHILOX_M1, c.z), lo1 = KD_PHILOX_M1 * c.z;
    c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

/* Exported so tests can check the generator against the published known-answer vectors. */
__kernel KD_REQD_WG_1D void kd_philox4x32_10_test(__global uint *out, __global const uint *in,
                                                  uint count) {
  uint t = get_global_id(0);
  if (t >= count) return;
  uint4 r = kd_philox4x32_10(vload4(0, in + 6 * t), vload2(2, in + 6 * t));
  vstore4(r, t, out);
}

/* y[i] = x[i] * (keep_i ? scale : 0), four elements per work-item (one Philox block).
 * Multiplying by 0 (not selecting 0) lets NaN through, as PyTorch does. */
void kd_dropout_apply(__global float *y, uint y_off, __global const float *x, uint x_off,
                      uint n, float rate, float scale, uint seed_lo, uint seed_hi,
                      uint stream_lo, uint stream_hi) {
  uint g = get_global_id(0);
  if (g >= (n + 3u) / 4u) return;
  uint4 r = kd_philox4x32_10((uint4)(g, 0u, stream_lo, stream_hi), (uint2)(seed_lo, seed_hi));
  uint lanes[4] = {r.x, r.y, r.z, r.w};
  for (uint k = 0; k < 4u; k++) {
    uint i = 4u * g + k;
    if (i < n) {
      float u = (float)(lanes[k] >> 8) * 5.9604644775390625e-8f; /* 24 bits * 2^-24 */
      y[y_off + i] = x[x_off + i] * (u >= rate ? scale : 0.0f);
    }
  }
}

__kernel KD_REQD_WG_1D void kd_dropout_forward(__global float *y, uint y_off,
                                               __global const float *x, uint x_off, uint n,
                                               float rate, float scale, uint seed_lo,
                                               uint seed_hi, uint stream_lo, uint stream_hi) {
  kd_dropout_apply(y, y_off, x, x_off, n, rate, scale, seed_lo, seed_hi, stream_lo, stream_hi);
}

/* The same mask and scale applied to the incoming gradient. */
__kernel KD_REQD_WG_1D void kd_dropout_backward(__global float *dx, uint dx_off,
                                                __global const float *dy, uint dy_off, uint n,
                                                float rate, float scale, uint seed_lo,
                                                uint seed_hi, uint stream_lo, uint stream_hi) {
  kd_dropout_apply(dx, dx_off, dy, dy_off, n, rate, scale, seed_lo, seed_hi, stream_lo,
                   stream_hi);
}
