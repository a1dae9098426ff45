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
