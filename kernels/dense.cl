/* Dense layer helpers around the GEMM (host/nn/layers.c): bias add, bias + activation, and the
 * bias gradient, for GEMM back ends that cannot take them as epilogues (CLBlast). */

/* y[r, c] += b[c] for a row-major y[rows, cols]; one work-item per element. */
__kernel KD_REQD_WG_1D void kd_dense_bias_forward(__global float *y, uint y_off,
                                                  __global const float *b, uint b_off,
                                                  uint rows, uint cols) {
  uint i = get_global_id(0);
  if (i >= rows * cols) return;
  y[y_off + i] += b[b_off + i % cols];
}

/* db[c] = sum over r of dy[r, c] (overwrites). One work-item per column, rows summed in order,
 * so the result is the same bits on every run; neighbouring work-items read neighbouring
 * addresses. */
__kernel KD_REQD_WG_1D void kd_dense_bias_backward(__global float *db, uint db_off,
                                                   __global const float *dy, uint dy_off,
                                                   uint rows, uint cols) {
  uint c = get_global_id(0);
  if (c >= cols) return;
  __global const float *p = dy + dy_off + c;
  float acc = 0.0f;
  for (uint r = 0; r < rows; r++) acc += p[r * cols];
  db[db_off + c] = acc;
}

/* y = act(y + b) in place, one work-item per element (after a GEMM that cannot take the
 * epilogue itself, e.g. CLBlast's). pre non-NULL (store_pre): the GEMM wrote into pre, which
 * gets pre + b, and y gets act of that. Same bits as kd_dense_bias_forward then
 * kd_activation_forward. */
__kernel KD_REQD_WG_1D void kd_dense_bias_act_forward(__global float *y, uint y_off,
                                                      __global float *pre, uint pre_off,
                                                      int store_pre, __global const float *b,
                                                      uint b_off, int has_bias, uint rows,
                                                      uint cols, int act) {
  uint i = get_global_id(0);
  if (i >= rows * cols) return;
  float v = store_pre ? pre[pre_off + i] : y[y_off + i];
  if (has_bias) v = v + b[b_off + i % cols];
  if (store_pre) pre[pre_off + i] = v;
  y[y_off + i] = kd_act(act, v);
}
