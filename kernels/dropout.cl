/* Inverted dropout (host/nn/layers.c). The mask is recomputed, never stored: element i of a
 * call keeps its value when u(seed, stream, i) >= rate, u uniform in [0, 1) from Philox-4x32-10
 * (Salmon et al., SC'11) with key = seed and counter = (i / 4, 0, stream), lane i % 4. Same
 * (seed, stream, n) gives the same mask on every run and device; backward reuses it. */

#define KD_PHILOX_M0 0xD2511F53u
#define KD_PHILOX_M1 0xCD9E8D57u
#define KD_PHILOX_W0 0x9E3779B9u
#define KD_PHILOX_W1 0xBB67AE85u

/* Philox-4x32 with 10 rounds: 128 random bits from a 128-bit counter and a 64-bit key. The
 * rounds are unrolled and the key bumped before rounds 2..10, and each 32x32 -> 64-bit product
 * is one 64-bit multiply (hi and lo words) rather than mul_hi plus a multiply: straight-line
 * code the compiler vectorizes across work-items. (A loop with a branch on the round and
 * mul_hi ran 25x slower than an element-wise kernel.) */
#define KD_PHILOX_ROUND(c, k)                                                        \
  do {                                                                               \
    ulong p0_ = (ulong)KD_PHILOX_M0 * (c).x, p1_ = (ulong)KD_PHILOX_M1 * (c).z;       \
    (c) = (uint4)((uint)(p1_ >> 32) ^ (c).y ^ (k).x, (uint)p1_,                      \
                  (uint)(p0_ >> 32) ^ (c).w ^ (k).y, (uint)p0_);                     \
  } while (0)
#define KD_PHILOX_BUMP(k) ((k).x += KD_PHILOX_W0, (k).y += KD_PHILOX_W1)

uint4 kd_philox4x32_10(uint4 c, uint2 k) {
  KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
  KD_PHILOX_BUMP(k); KD_PHILOX_ROUND(c, k);
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
  float4 u = convert_float4(r >> 8u) * 5.9604644775390625e-8f; /* 24 bits * 2^-24, exact */
  float4 keep = select((float4)(0.0f), (float4)(scale), isgreaterequal(u, (float4)(rate)));
  uint i = 4u * g;
  if (i + 4u <= n) {
    vstore4(vload4(0, x + x_off + i) * keep, 0, y + y_off + i);
  } else { /* the last, partial block */
    float kv[4] = {keep.x, keep.y, keep.z, keep.w};
    for (uint k = 0; i + k < n; k++) y[y_off + i + k] = x[x_off + i + k] * kv[k];
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
