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
