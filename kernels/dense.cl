/* Dense layer helpers around the GEMM (host/nn/layers.c): bias add and the bias gradient. */

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
