/* Batch normalisation (host/nn/batchnorm.c) over x viewed as [n, C, S]: batchnorm1d is S = 1,
 * batchnorm2d S = H*W. Channel c owns the N = n*S values x[(i*C + c)*S + s]. Training mode
 * and backward run one work-group of KD_BN_WG work-items per channel: each work-item walks
 * every KD_BN_WG-th value of its channel in a fixed order and the group combines them with a
 * fixed binary tree in local memory, so results are the same bits on every run. */

#ifndef KD_BN_WG
#define KD_BN_WG 256 /* host/nn/batchnorm.c has the same default */
#endif
#if (KD_BN_WG & (KD_BN_WG - 1)) != 0
#error "KD_BN_WG must be a power of two (the channel reductions are binary trees)"
#endif
#ifdef KD_FPGA
#define KD_REQD_WG_BN __attribute__((reqd_work_group_size(KD_BN_WG, 1, 1)))
#else
#define KD_REQD_WG_BN
#endif

/* Sums of the .x and .y of one value per work-item over the work-group; every work-item gets
 * the result. All work-items of the group must call it (it has barriers). */
float2 kd_bn_group_sum2(float2 v, __local float2 *scratch) {
  uint lid = get_local_id(0);
  scratch[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint s = KD_BN_WG / 2; s > 0; s >>= 1) {
    if (lid < s) scratch[lid] += scratch[lid + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float2 r = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE); /* scratch is free for the next reduction */
  return r;
}

/* The walk over the values of channel c that one work-item owns: j = lid, lid + KD_BN_WG, ...
 * while j < N, as (i, s) = (j / S, j % S) stepped without a division per value, and
 * q = (i*C + c)*S + s, the value's index relative to a tensor's offset. */
typedef struct kd_bn_walk {
  uint i, s, q;
} kd_bn_walk;

kd_bn_walk kd_bn_walk_start(uint lid, uint c, uint C, uint S) {
  kd_bn_walk w;
  w.i = lid / S;
  w.s = lid % S;
  w.q = (w.i * C + c) * S + w.s;
  return w;
}

/* j += KD_BN_WG: i += KD_BN_WG / S, s += KD_BN_WG % S, carrying s into i. */
kd_bn_walk kd_bn_walk_next(kd_bn_walk w, uint C, uint S) {
  uint di = KD_BN_WG / S, ds = KD_BN_WG % S;
  w.i += di;
  w.s += ds;
  w.q += di * C * S + ds;
  if (w.s >= S) {
    w.s -= S;
    w.i += 1u;
    w.q += C * S - S;
  }
  return w;
}

#define KD_BN_FOR_CHANNEL(w) \
  for (kd_bn_walk w = kd_bn_walk_start(lid, c, C, S); w.i < n; w = kd_bn_walk_next(w, C, S))

/* Training-mode forward for channel c = group id:
 *   mean = (1/N) sum x,  var = (1/N) sum (x - mean)^2 (biased),  invstd = 1/sqrt(var + eps)
 *   y = (x - mean) * invstd * gamma[c] + beta[c]
 *   save_mean[c] = mean, save_invstd[c] = invstd
 *   running_mean[c] = (1 - momentum) running_mean[c] + momentum mean
 *   running_var[c]  = (1 - momentum) running_var[c]  + momentum var N/(N-1)   (N > 1: host)
 * Accuracy: pass 1 sums x - x0 (x0 the channel's first value, so large means do not eat the
 * float mantissa), pass 2 sums (x - mean)^2 with the corrected two-pass term
 * -(sum (x - mean))^2 / N that cancels the rounding of mean; pass 3 writes y. y may alias x
 * (each value is read and written by the same work-item after the statistics). */
__kernel KD_REQD_WG_BN void kd_batchnorm_forward_train(
    __global float *y, uint y_off, __global const float *x, uint x_off,
    __global const float *gamma, uint g_off, __global const float *beta, uint b_off,
    __global float *running_mean, uint rm_off, __global float *running_var, uint rv_off,
    __global float *save_mean, uint sm_off, __global float *save_invstd, uint si_off, uint n,
    uint C, uint S, float momentum, float eps) {
  __local float2 scratch[KD_BN_WG];
  uint c = get_group_id(0);
  if (c >= C) return; /* whole group leaves together */
  uint lid = get_local_id(0);
  __global const float *xc = x + x_off;
  float N = (float)(n * S);

  float x0 = xc[c * S];
  float acc = 0.0f;
  KD_BN_FOR_CHANNEL(w) acc += xc[w.q] - x0;
  float mean = x0 + kd_bn_group_sum2((float2)(acc, 0.0f), scratch).x / N;

  float2 acc2 = (float2)(0.0f, 0.0f);
  KD_BN_FOR_CHANNEL(w) {
    float d = xc[w.q] - mean;
    acc2 += (float2)(d, d * d);
  }
  float2 m = kd_bn_group_sum2(acc2, scratch);
  float var = fmax((m.y - m.x * m.x / N) / N, 0.0f);
  float invstd = 1.0f / sqrt(var + eps);

  float scale = invstd * gamma[g_off + c], shift = beta[b_off + c];
  KD_BN_FOR_CHANNEL(w) y[y_off + w.q] = (xc[w.q] - mean) * scale + shift;

  if (lid == 0) {
    save_mean[sm_off + c] = mean;
    save_invstd[si_off + c] = invstd;
    running_mean[rm_off + c] = (1.0f - momentum) * running_mean[rm_off + c] + momentum * mean;
    running_var[rv_off + c] =
        (1.0f - momentum) * running_var[rv_off + c] + momentum * (var * (N / (N - 1.0f)));
  }
}

/* Evaluation-mode forward, one work-item per element:
 * y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * gamma[c] + beta[c]. y may alias
 * x. */
__kernel KD_REQD_WG_1D void kd_batchnorm_forward_eval(
    __global float *y, uint y_off, __global const float *x, uint x_off,
    __global const float *gamma, uint g_off, __global const float *beta, uint b_off,
    __global const float *running_mean, uint rm_off, __global const float *running_var,
    uint rv_off, uint total, uint C, uint S, float eps) {
  uint j = get_global_id(0);
  if (j >= total) return;
  uint c = (j / S) % C;
  float invstd = 1.0f / sqrt(running_var[rv_off + c] + eps);
  y[y_off + j] = (x[x_off + j] - running_mean[rm_off + c]) * (invstd * gamma[g_off + c]) +
                 beta[b_off + c];
}

/* Backward of the training-mode forward for channel c = group id, with
 * xhat = (x - save_mean[c]) * save_invstd[c]:
 *   dbeta[c]  = sum dy
 *   dgamma[c] = sum dy * xhat
 *   dx = gamma[c] * invstd * (dy - dbeta[c]/N - xhat * dgamma[c]/N)      (when want_dx)
 * dx may alias dy (all of dy is summed before any dx is written, and each value is then read
 * and written by the same work-item). */
__kernel KD_REQD_WG_BN void kd_batchnorm_backward(
    __global float *dx, uint dx_off, int want_dx, __global float *dgamma, uint dg_off,
    __global float *dbeta, uint db_off, __global const float *dy, uint dy_off,
    __global const float *x, uint x_off, __global const float *gamma, uint g_off,
    __global const float *save_mean, uint sm_off, __global const float *save_invstd,
    uint si_off, uint n, uint C, uint S) {
  __local float2 scratch[KD_BN_WG];
  uint c = get_group_id(0);
  if (c >= C) return;
  uint lid = get_local_id(0);
  float N = (float)(n * S);
  float mean = save_mean[sm_off + c], invstd = save_invstd[si_off + c];

  float2 acc = (float2)(0.0f, 0.0f);
  KD_BN_FOR_CHANNEL(w) {
    float g = dy[dy_off + w.q];
    acc += (float2)(g, g * (x[x_off + w.q] - mean));
  }
  float2 sums = kd_bn_group_sum2(acc, scratch);
  float db = sums.x, dg = sums.y * invstd;
  if (lid == 0) {
    dbeta[db_off + c] = db;
    dgamma[dg_off + c] = dg;
  }
  if (!want_dx) return;
  float k = gamma[g_off + c] * invstd, mdb = db / N, mdg = dg / N;
  KD_BN_FOR_CHANNEL(w) {
    float xhat = (x[x_off + w.q] - mean) * invstd;
    dx[dx_off + w.q] = k * (dy[dy_off + w.q] - mdb - xhat * mdg);
  }
}
