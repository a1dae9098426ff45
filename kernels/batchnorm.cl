/* Batch normalisation (host/nn/batchnorm.c) over x viewed as [n, C, S]: batchnorm1d is S = 1,
 * batchnorm2d S = H*W. Channel c owns the N = n*S values x[(i*C + c)*S + s]. Every kernel
 * runs one work-group of KD_BN_WG work-items per channel: each work-item walks its share of
 * the channel's segments (below) in a fixed order and the group combines the work-items'
 * partials with a fixed binary tree in local memory, so results are the same bits on every
 * run. Segments are contiguous and processed four floats at a time, which is what makes this
 * fast on CPUs (PoCL runs a work-item's loop as plain SIMD code). */

#ifndef KD_BN_WG
#define KD_BN_WG 256 /* host/nn/batchnorm.h has the same default */
#endif
#if (KD_BN_WG & (KD_BN_WG - 1)) != 0
#error "KD_BN_WG must be a power of two (the channel reductions are binary trees)"
#endif
#ifdef KD_FPGA
#define KD_REQD_WG_BN __attribute__((reqd_work_group_size(KD_BN_WG, 1, 1)))
#else
#define KD_REQD_WG_BN
#endif

/* Componentwise sums of one float4 per work-item over the work-group (kernels/common.h). */
KD_DEFINE_GROUP_REDUCE(kd_bn_group_sum4, float4, KD_BN_WG, KD_ADD)

/* Chan et al.'s merge of two partial statistics (count, mean, M2 = sum of squared deviations
 * from the mean) held in .x, .y, .z. */
float4 kd_bn_merge(float4 a, float4 b) {
  if (b.x == 0.0f) return a;
  if (a.x == 0.0f) return b;
  float n = a.x + b.x, d = b.y - a.y, f = b.x / n;
  return (float4)(n, a.y + d * f, a.z + b.z + d * d * a.x * f, 0.0f);
}

/* The merged statistics of one per work-item over the work-group, by the fixed binary tree of
 * kernels/common.h; every work-item gets the result. */
KD_DEFINE_GROUP_REDUCE(kd_bn_group_merge, float4, KD_BN_WG, kd_bn_merge)

/* Channel c's N values lie in n rows of S contiguous floats, row i at (i*C + c)*S. Each row is
 * cut into U = ceil(S / L) segments of L floats (the last one shorter), and work-item lid
 * takes segments u = lid, lid + KD_BN_WG, ... of the n*U, as (i, g) = (u / U, u % U) stepped
 * without a division per segment; q is the segment's first index relative to a tensor's
 * offset and len its length. Within a segment, values go four at a time (vload4), so a CPU
 * runs SIMD over contiguous memory. */
typedef struct kd_bn_seg {
  uint i, g, q, len;
} kd_bn_seg;

kd_bn_seg kd_bn_seg_at(kd_bn_seg w, uint S, uint L) {
  w.len = min(L, S - w.g * L);
  return w;
}

kd_bn_seg kd_bn_seg_start(uint lid, uint c, uint C, uint S, uint L, uint U) {
  kd_bn_seg w;
  w.i = lid / U;
  w.g = lid % U;
  w.q = (w.i * C + c) * S + w.g * L;
  return kd_bn_seg_at(w, S, L);
}

/* u += KD_BN_WG: i += KD_BN_WG / U, g += KD_BN_WG % U, carrying g into i. */
kd_bn_seg kd_bn_seg_next(kd_bn_seg w, uint C, uint S, uint L, uint U) {
  uint di = KD_BN_WG / U, dg = KD_BN_WG % U;
  w.i += di;
  w.g += dg;
  w.q += di * C * S + dg * L;
  if (w.g >= U) {
    w.g -= U;
    w.i += 1u;
    w.q += C * S - U * L;
  }
  return kd_bn_seg_at(w, S, L);
}

#define KD_BN_FOR_SEGMENTS(w)                                                    \
  for (kd_bn_seg w = kd_bn_seg_start(get_local_id(0), c, C, S, L, U); w.i < n; \
       w = kd_bn_seg_next(w, C, S, L, U))

/* Sum of p[0..len) in a fixed order: four lanes, then the lanes and the tail. */
float kd_bn_sum(__global const float *p, uint len) {
  float4 a = (float4)(0.0f);
  uint t = 0;
  for (; t + 4 <= len; t += 4) a += vload4(0, p + t);
  float s = (a.x + a.y) + (a.z + a.w);
  for (; t < len; t++) s += p[t];
  return s;
}

/* Sum of (p[t] - m)^2 over [0, len), same order. */
float kd_bn_sum_sq(__global const float *p, uint len, float m) {
  float4 a = (float4)(0.0f);
  uint t = 0;
  for (; t + 4 <= len; t += 4) {
    float4 d = vload4(0, p + t) - m;
    a += d * d;
  }
  float s = (a.x + a.y) + (a.z + a.w);
  for (; t < len; t++) {
    float d = p[t] - m;
    s += d * d;
  }
  return s;
}

/* Training-mode forward for channel c = group id, with L floats per segment (host's choice):
 *   mean = (1/N) sum x,  var = (1/N) sum (x - mean)^2 (biased),  invstd = 1/sqrt(var + eps)
 *   y = (x - mean) * invstd * gamma[c] + beta[c]
 *   save_mean[c] = mean, save_invstd[c] = invstd
 *   running_mean[c] = (1 - momentum) running_mean[c] + momentum mean
 *   running_var[c]  = (1 - momentum) running_var[c]  + momentum var N/(N-1)   (N > 1: host)
 * Statistics in one read of x: each segment's mean and M2 = sum (x - segment mean)^2 by two
 * passes over the segment (the second from cache), combined with Chan et al.'s pairwise
 * merge in a fixed order (per work-item, then the group tree). Deviations are always taken
 * from a nearby mean, so a large mean costs no accuracy. A second read of x writes y. y may
 * alias x (each value is read and written by the same work-item after the statistics).
 * act != KD_ACT_NONE: y = act(that value), the activation after the layer in the same pass
 * (the bits of the activation kernel run on the output). */
__kernel KD_REQD_WG_BN void kd_batchnorm_forward_train(
    __global float *y, uint y_off, __global const float *x, uint x_off,
    __global const float *gamma, uint g_off, __global const float *beta, uint b_off,
    __global float *running_mean, uint rm_off, __global float *running_var, uint rv_off,
    __global float *save_mean, uint sm_off, __global float *save_invstd, uint si_off, uint n,
    uint C, uint S, uint L, float momentum, float eps, int act) {
  __local float4 scratch[KD_BN_WG];
  uint c = get_group_id(0);
  if (c >= C) return; /* whole group leaves together */
  uint U = (S + L - 1) / L;
  __global const float *xc = x + x_off;

  float4 st = (float4)(0.0f);
  KD_BN_FOR_SEGMENTS(w) {
    float cnt = (float)w.len;
    float m = kd_bn_sum(xc + w.q, w.len) / cnt;
    st = kd_bn_merge(st, (float4)(cnt, m, kd_bn_sum_sq(xc + w.q, w.len, m), 0.0f));
  }
  st = kd_bn_group_merge(st, scratch);
  float N = (float)(n * S), mean = st.y, var = st.z / N; /* st.x is N as a float sum */
  float invstd = 1.0f / sqrt(var + eps);

  float scale = invstd * gamma[g_off + c], shift = beta[b_off + c];
  KD_BN_FOR_SEGMENTS(w) {
    __global const float *p = xc + w.q;
    __global float *o = y + y_off + w.q;
    uint t = 0;
    for (; t + 4 <= w.len; t += 4)
      vstore4(kd_act4(act, (vload4(0, p + t) - mean) * scale + shift), 0, o + t);
    for (; t < w.len; t++) o[t] = kd_act(act, (p[t] - mean) * scale + shift);
  }

  if (get_local_id(0) == 0) {
    save_mean[sm_off + c] = mean;
    save_invstd[si_off + c] = invstd;
    running_mean[rm_off + c] = (1.0f - momentum) * running_mean[rm_off + c] + momentum * mean;
    running_var[rv_off + c] =
        (1.0f - momentum) * running_var[rv_off + c] + momentum * (var * (N / (N - 1.0f)));
  }
}

/* Evaluation-mode forward for channel c = group id, over the same segments as the training
 * forward: y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * gamma[c] + beta[c], then
 * act() as in the training forward. y may alias x. */
__kernel KD_REQD_WG_BN void kd_batchnorm_forward_eval(
    __global float *y, uint y_off, __global const float *x, uint x_off,
    __global const float *gamma, uint g_off, __global const float *beta, uint b_off,
    __global const float *running_mean, uint rm_off, __global const float *running_var,
    uint rv_off, uint n, uint C, uint S, uint L, float eps, int act) {
  uint c = get_group_id(0);
  if (c >= C) return;
  uint U = (S + L - 1) / L;
  float mean = running_mean[rm_off + c];
  float scale = (1.0f / sqrt(running_var[rv_off + c] + eps)) * gamma[g_off + c];
  float shift = beta[b_off + c];
  KD_BN_FOR_SEGMENTS(w) {
    __global const float *p = x + x_off + w.q;
    __global float *o = y + y_off + w.q;
    uint t = 0;
    for (; t + 4 <= w.len; t += 4)
      vstore4(kd_act4(act, (vload4(0, p + t) - mean) * scale + shift), 0, o + t);
    for (; t < w.len; t++) o[t] = kd_act(act, (p[t] - mean) * scale + shift);
  }
}

/* Backward of the training-mode forward for channel c = group id, with
 * xhat = (x - save_mean[c]) * save_invstd[c]:
 *   dbeta[c]  = sum dy
 *   dgamma[c] = sum dy * xhat
 *   dx = gamma[c] * invstd * (dy - dbeta[c]/N - xhat * dgamma[c]/N)      (when want_dx)
 * Same segments as the forward. dx may alias dy (all of dy is summed before any dx is
 * written, and each value is then read and written by the same work-item). act !=
 * KD_ACT_NONE: dy is the gradient of the activation after the layer, taken through it on the
 * fly from that activation's saved tensor sv (its output when sv_is_output), so the
 * activation's backward pass is not run (the bits of that kernel's output used as dy). */
__kernel KD_REQD_WG_BN void kd_batchnorm_backward(
    __global float *dx, uint dx_off, int want_dx, __global float *dgamma, uint dg_off,
    __global float *dbeta, uint db_off, __global const float *dy, uint dy_off,
    __global const float *x, uint x_off, __global const float *gamma, uint g_off,
    __global const float *save_mean, uint sm_off, __global const float *save_invstd,
    uint si_off, uint n, uint C, uint S, uint L, int act, __global const float *sv, uint sv_off,
    int sv_is_output) {
  __local float4 scratch[KD_BN_WG];
  uint c = get_group_id(0);
  if (c >= C) return;
  uint U = (S + L - 1) / L;
  float N = (float)(n * S);
  float mean = save_mean[sm_off + c], invstd = save_invstd[si_off + c];
  __global const float *xc = x + x_off, *gc = dy + dy_off, *sc = sv + sv_off;
  /* dy, or dy taken through the activation after the layer (its saved tensor sc) */
#define KD_BN_DY4(t) \
  (act == KD_ACT_NONE ? vload4(0, pg + (t)) \
                      : kd_act_grad4(act, vload4(0, pg + (t)), vload4(0, ps + (t)), sv_is_output))
#define KD_BN_DY1(t) \
  (act == KD_ACT_NONE ? pg[t] : kd_act_grad(act, pg[t], ps[t], sv_is_output))

  float2 acc = (float2)(0.0f);
  KD_BN_FOR_SEGMENTS(w) {
    __global const float *px = xc + w.q, *pg = gc + w.q, *ps = sc + w.q;
    float4 a = (float4)(0.0f), b = (float4)(0.0f);
    uint t = 0;
    for (; t + 4 <= w.len; t += 4) {
      float4 g = KD_BN_DY4(t);
      a += g;
      b += g * (vload4(0, px + t) - mean);
    }
    float2 s = (float2)((a.x + a.y) + (a.z + a.w), (b.x + b.y) + (b.z + b.w));
    for (; t < w.len; t++) {
      float g = KD_BN_DY1(t);
      s += (float2)(g, g * (px[t] - mean));
    }
    acc += s;
  }
  float2 sums = kd_bn_group_sum4((float4)(acc, 0.0f, 0.0f), scratch).xy;
  float db = sums.x, dg = sums.y * invstd;
  if (get_local_id(0) == 0) {
    dbeta[db_off + c] = db;
    dgamma[dg_off + c] = dg;
  }
  if (!want_dx) return;
  float k = gamma[g_off + c] * invstd, mdb = db / N, mdg = dg / N;
  KD_BN_FOR_SEGMENTS(w) {
    __global const float *px = xc + w.q, *pg = gc + w.q, *ps = sc + w.q;
    __global float *o = dx + dx_off + w.q;
    uint t = 0;
    for (; t + 4 <= w.len; t += 4) {
      float4 xhat = (vload4(0, px + t) - mean) * invstd;
      vstore4(k * (KD_BN_DY4(t) - mdb - xhat * mdg), 0, o + t);
    }
    for (; t < w.len; t++) o[t] = k * (KD_BN_DY1(t) - mdb - (px[t] - mean) * invstd * mdg);
  }
#undef KD_BN_DY4
#undef KD_BN_DY1
}
