/* Portability header, prepended to every kernel source (see cmake/embed_kernels.cmake).
 * OpenCL C 1.2, float32 only. Work-group sizes are fixed by -D macros with the defaults below,
 * so an FPGA build can pin them with reqd_work_group_size. */
#ifndef KD_WG
#define KD_WG 64 /* 1-D element-wise kernels */
#endif
#ifdef KD_FPGA
#define KD_REQD_WG_1D __attribute__((reqd_work_group_size(KD_WG, 1, 1)))
#else
#define KD_REQD_WG_1D
#endif

/* ---- Work-group reductions ----
 * KD_DEFINE_GROUP_REDUCE(name, type, wg, combine) defines
 *   type name(type v, __local type *scratch)
 * which combines the v of the wg work-items of a 1-D work-group with combine(a, b) (a macro or
 * function of two `type`s) by a fixed binary tree in local memory: every work-item gets the
 * result, the same bits on every run. scratch holds wg values and is free again on return.
 * All work-items of the group must call it (it has barriers); wg must be a power of two. */
#define KD_ADD(a, b) ((a) + (b))
#define KD_DEFINE_GROUP_REDUCE(name, type, wg, combine)                       \
  type name(type v, __local type *scratch) {                                  \
    uint lid = get_local_id(0);                                               \
    scratch[lid] = v;                                                         \
    barrier(CLK_LOCAL_MEM_FENCE);                                             \
    for (uint s = (wg) / 2; s > 0; s >>= 1) {                                 \
      if (lid < s) scratch[lid] = combine(scratch[lid], scratch[lid + s]);    \
      barrier(CLK_LOCAL_MEM_FENCE);                                           \
    }                                                                         \
    type r = scratch[0];                                                      \
    barrier(CLK_LOCAL_MEM_FENCE);                                             \
    return r;                                                                 \
  }

#if (KD_WG & (KD_WG - 1)) != 0
#error "KD_WG must be a power of two (the work-group reductions are binary trees)"
#endif

/* Sum / max over a work-group of KD_WG work-items, of one float or one float4 (componentwise)
 * per work-item. */
KD_DEFINE_GROUP_REDUCE(kd_group_sum, float, KD_WG, KD_ADD)
KD_DEFINE_GROUP_REDUCE(kd_group_max, float, KD_WG, fmax)
KD_DEFINE_GROUP_REDUCE(kd_group_sum4, float4, KD_WG, KD_ADD)
KD_DEFINE_GROUP_REDUCE(kd_group_max4, float4, KD_WG, fmax)

/* ---- Activations (kernels/activation.cl, and fused into kernels/dense.cl and gemm.cl) ----
 * act takes the kd_activation values of host/nn/layers.h. One definition, so a fused kernel
 * gives the bits the separate activation kernels give. */
#define KD_ACT_NONE (-1)
#define KD_ACT_RELU 0
#define KD_ACT_GELU 1
#define KD_ACT_TANH 2
#define KD_ACT_SIGMOID 3

/* Always inlined: a call left in a loop (the gelu branch is over the inliner's threshold)
 * keeps PoCL from vectorizing it, and a constant act then folds to one formula. */
#define KD_ALWAYS_INLINE inline __attribute__((always_inline))

KD_ALWAYS_INLINE float kd_act(int act, float v) {
  if (act == KD_ACT_RELU) return v < 0.0f ? 0.0f : v; /* NaN passes through, as in torch.relu */
  if (act == KD_ACT_GELU) return 0.5f * v * (1.0f + erf(v * 0.70710678118654752f));
  if (act == KD_ACT_TANH) return tanh(v);
  if (act == KD_ACT_SIGMOID) return 1.0f / (1.0f + exp(-v));
  return v;
}

/* dy * act'(.) from one saved value a: the forward output (a_is_output = 1) or the forward
 * input (0). relu, tanh and sigmoid work from either; gelu needs the input. */
KD_ALWAYS_INLINE float kd_act_grad(int act, float g, float a, int a_is_output) {
  if (act == KD_ACT_RELU) return a > 0.0f ? g : 0.0f; /* y > 0 exactly when x > 0 */
  if (act == KD_ACT_GELU) {
    /* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
    float cdf = 0.5f * (1.0f + erf(a * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * exp(-0.5f * a * a);
    return g * (cdf + a * pdf);
  }
  if (act == KD_ACT_TANH) {
    float t = a_is_output ? a : tanh(a);
    return g * (1.0f - t * t);
  }
  float sg = a_is_output ? a : 1.0f / (1.0f + exp(-a));
  return g * sg * (1.0f - sg);
}

/* kd_act and kd_act_grad on 4 values: the same expressions lane by lane (relu, and tanh and
 * sigmoid from their outputs, in vector form; the rest element by element), so the same bits. */
KD_ALWAYS_INLINE float4 kd_act4(int act, float4 v) {
  if (act == KD_ACT_NONE) return v;
  if (act == KD_ACT_RELU) return select(v, (float4)(0.0f), isless(v, (float4)(0.0f)));
  return (float4)(kd_act(act, v.x), kd_act(act, v.y), kd_act(act, v.z), kd_act(act, v.w));
}

KD_ALWAYS_INLINE float4 kd_act_grad4(int act, float4 g, float4 a, int a_is_output) {
  if (act == KD_ACT_RELU) return select((float4)(0.0f), g, isgreater(a, (float4)(0.0f)));
  if (act == KD_ACT_TANH && a_is_output) return g * (1.0f - a * a);
  if (act == KD_ACT_SIGMOID && a_is_output) return g * a * (1.0f - a);
  return (float4)(kd_act_grad(act, g.x, a.x, a_is_output), kd_act_grad(act, g.y, a.y, a_is_output),
                  kd_act_grad(act, g.z, a.z, a_is_output), kd_act_grad(act, g.w, a.w, a_is_output));
}

/* ---- Narrow-row kernels on CPUs (kernels/loss.cl, distill_loss.cl): KD_ROWS_V rows per
 * work-item, one per lane of a float16. ---- */
#ifndef KD_ROWS_WG
#define KD_ROWS_WG 2 /* work-items per group: 2 x 16 rows, so a batch of 128 makes 4 groups */
#endif
#define KD_ROWS_V 16
#ifdef KD_FPGA
#define KD_REQD_WG_ROWS __attribute__((reqd_work_group_size(KD_ROWS_WG, 1, 1)))
#else
#define KD_REQD_WG_ROWS
#endif

/* p[off[l] + j] for the 16 lanes. */
inline float16 kd_rows_load(__global const float *p, const uint *off, uint j) {
  float t[KD_ROWS_V];
  for (int l = 0; l < KD_ROWS_V; l++) t[l] = p[off[l] + j];
  return vload16(0, t);
}

/* p[off[l] + j] = v[l] for the lanes whose row exists (l < n). */
inline void kd_rows_store(__global float *p, const uint *off, uint j, float16 v, uint n) {
  float t[KD_ROWS_V];
  vstore16(v, 0, t);
  for (uint l = 0; l < n; l++) p[off[l] + j] = t[l];
}

