/* Optimizers over the whole flat parameter arena (host/nn/optim.c): the global gradient L2
 * norm (two fixed-tree passes, no atomics) and one-launch SGD and AdamW steps with
 * torch.optim semantics, clipping by a norm read from the device. */

/* Pass 1: partial[group] = sum of g[i]^2 over i = gid, gid + T, gid + 2T, ... (T = all
 * work-items). The grid depends on n alone, so the summation order is fixed. */
__kernel KD_REQD_WG_1D void kd_grad_norm_partial(__global float *partial, uint p_off,
                                                 __global const float *g, uint g_off,
                                                 uint n) {
  __local float scratch[KD_WG];
  uint t = get_global_id(0), stride = get_global_size(0);
  float acc = 0.0f;
  for (uint i = t; i < n; i += stride) {
    float v = g[g_off + i];
    acc += v * v;
  }
  acc = kd_group_sum(acc, scratch);
  if (get_local_id(0) == 0) partial[p_off + get_group_id(0)] = acc;
}

/* Pass 2, one work-group: norm = sqrt(sum of the `groups` partials). */
__kernel KD_REQD_WG_1D void kd_grad_norm_final(__global float *norm, uint norm_off,
                                               __global const float *partial, uint p_off,
                                               uint groups) {
  __local float scratch[KD_WG];
  float acc = 0.0f;
  for (uint j = get_local_id(0); j < groups; j += KD_WG) acc += partial[p_off + j];
  acc = kd_group_sum(acc, scratch);
  if (get_local_id(0) == 0) norm[norm_off] = sqrt(acc);
}

/* torch.nn.utils.clip_grad_norm_: coef = min(1, clip / (norm + 1e-6)); a NaN norm gives a NaN
 * coefficient (as torch's clamp does), so a broken step is not silently clipped to 1. */
float kd_clip_coef(__global const float *norm, uint norm_off, float clip) {
  if (clip <= 0.0f) return 1.0f;
  float c = clip / (norm[norm_off] + 1e-6f);
  return c > 1.0f ? 1.0f : c;
}

/* torch.optim.SGD, one element per work-item:
 *   g = coef*grad + wd*p; buf = first ? g : momentum*buf + (1-dampening)*g (momentum != 0);
 *   g = nesterov ? g + momentum*buf : buf; p -= lr*g.
 * clip > 0 turns clipping on (norm then holds the global gradient norm). */
__kernel KD_REQD_WG_1D void kd_sgd_step(__global float *p, uint p_off, __global const float *grad,
                                        uint g_off, __global float *buf, uint b_off, uint n,
                                        float lr, float momentum, float dampening, float wd,
                                        int nesterov, int first, __global const float *norm,
                                        uint norm_off, float clip) {
  uint i = get_global_id(0);
  if (i >= n) return;
  float coef = kd_clip_coef(norm, norm_off, clip);
  float w = p[p_off + i];
  float g = grad[g_off + i];
  if (clip > 0.0f) g *= coef;
  if (wd != 0.0f) g += wd * w;
  if (momentum != 0.0f) {
    float b = first ? g : momentum * buf[b_off + i] + (1.0f - dampening) * g;
    buf[b_off + i] = b;
    g = nesterov ? g + momentum * b : b;
  }
  p[p_off + i] = w - lr * g;
}

/* torch.optim.AdamW (amsgrad off), 16 consecutive elements per work-item (explicit vectors:
 * a quarter of the time of one element per work-item under PoCL):
 *   p *= decay (= 1 - lr*wd); m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
 * with step_size = lr / (1 - b1^step) and bc2_sqrt = sqrt(1 - b2^step) from the host. */
__kernel KD_REQD_WG_1D void kd_adamw_step(__global float *p, uint p_off,
                                          __global const float *grad, uint g_off,
                                          __global float *m, uint m_off, __global float *v,
                                          uint v_off, uint n, float decay, float beta1,
                                          float beta2, float eps, float step_size,
                                          float bc2_sqrt, __global const float *norm,
                                          uint norm_off, float clip) {
  uint i = get_global_id(0) * 16u;
  if (i >= n) return;
  float coef = kd_clip_coef(norm, norm_off, clip);
  /* The formulas once, for a float16 of elements or a single one: the same operations lane by
   * lane (sqrt and division are correctly rounded either way), so the same bits. */
#define KD_ADAMW(T, LOAD, STORE)                                                              \
  {                                                                                           \
    T g = LOAD(grad, g_off);                                                                  \
    if (clip > 0.0f) g *= coef;                                                               \
    T w = LOAD(p, p_off) * decay;                                                             \
    T mi = LOAD(m, m_off);                                                                    \
    mi += (1.0f - beta1) * (g - mi); /* torch: exp_avg.lerp_(grad, 1 - beta1) */              \
    T vi = beta2 * LOAD(v, v_off) + (1.0f - beta2) * g * g;                                   \
    STORE(mi, m, m_off);                                                                      \
    STORE(vi, v, v_off);                                                                      \
    STORE(w - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps)), p, p_off);                      \
  }
#define KD_LOAD16(buf, off) vload16(0, (buf) + (off) + i)
#define KD_STORE16(x, buf, off) vstore16((x), 0, (buf) + (off) + i)
#define KD_LOAD1(buf, off) (buf)[(off) + e]
#define KD_STORE1(x, buf, off) ((buf)[(off) + e] = (x))
  if (i + 16u <= n) {
    KD_ADAMW(float16, KD_LOAD16, KD_STORE16)
  } else {
    for (uint e = i; e < n; e++) KD_ADAMW(float, KD_LOAD1, KD_STORE1)
  }
#undef KD_ADAMW
#undef KD_LOAD16
#undef KD_STORE16
#undef KD_LOAD1
#undef KD_STORE1
}
