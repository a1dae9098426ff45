/* Row-wise losses fused with their gradients (host/nn/loss.c). A row of any width (10 classes or
 * a 50k vocabulary, one row per sample or per token) is split into KD_WG lanes whose partial
 * results are combined by fixed trees (kernels/common.h), so results are the same bits on every
 * run: one work-group per row (lanes in parallel, trees in local memory). On CPUs, narrow rows
 * run 16 to a work-item instead, one per vector lane (no barriers; see below). */

/* The passes over one lane of a row (the classes lid, lid + KD_WG, ...); work-item lid of the
 * row's group runs lane lid, and kd_group_* combines the lanes. */
float kd_ce_lane_max(__global const float *z, uint C, uint lid) {
  float m = -INFINITY;
  for (uint j = lid; j < C; j += KD_WG) m = fmax(m, z[j]);
  return m;
}

float kd_ce_lane_sum(__global const float *z, uint C, uint lid, float m) {
  float s = 0.0f;
  for (uint j = lid; j < C; j += KD_WG) s += exp(z[j] - m); /* NaN logits reach s here */
  return s;
}

void kd_ce_lane_grad(__global float *d, __global const float *z, uint C, uint lid, float m,
                     float s, int y, int valid, float grad_scale) {
  float inv = grad_scale / s;
  float hot = valid ? grad_scale : NAN;
  for (uint j = lid; j < C; j += KD_WG) {
    float g = exp(z[j] - m) * inv;
    d[j] = ((int)j == y || !valid) ? g - hot : g;
  }
}

/* Softmax cross-entropy and its gradient for rows [B, C] of logits (row-major, contiguous):
 *   loss_rows[r] = logsumexp(z_r) - z_r[y_r]
 *   dlogits[r, :] = (softmax(z_r) - onehot(y_r)) * grad_scale      (when want_grad)
 * with the row max subtracted before exp, so logits of any size stay finite. A label outside
 * [0, C) gives NaN in loss_rows[r] and in the row of dlogits. dlogits may alias logits.
 * One work-group per row; kd_softmax_ce_forward_backward_rows below is the same computation
 * for narrow rows on CPUs. */
__kernel KD_REQD_WG_1D void kd_softmax_ce_forward_backward(
    __global float *loss_rows, uint loss_off, __global float *dlogits, uint dl_off,
    int want_grad, __global const float *logits, uint z_off, __global const int *labels,
    uint lab_off, uint B, uint C, float grad_scale) {
  __local float scratch[KD_WG];
  uint row = get_group_id(0), lid = get_local_id(0);
  if (row >= B) return; /* whole group leaves together */
  __global const float *z = logits + z_off + row * C;

  float m = kd_group_max(kd_ce_lane_max(z, C, lid), scratch);
  /* Read before the next barrier: when dlogits aliases logits, z is overwritten below. */
  int y = labels[lab_off + row];
  int valid = y >= 0 && (uint)y < C;
  float zy = (lid == 0 && valid) ? z[y] : 0.0f;
  float s = kd_group_sum(kd_ce_lane_sum(z, C, lid, m), scratch);

  if (lid == 0) /* log(s) - (z_y - m): no cancellation against a large m */
    loss_rows[loss_off + row] = valid ? log(s) - (zy - m) : NAN;
  if (want_grad) kd_ce_lane_grad(dlogits + dl_off + row * C, z, C, lid, m, s, y, valid, grad_scale);
}

/* ---- Narrow rows on CPUs: KD_ROWS_V rows per work-item, one per vector lane ----
 * The passes of a row run as loops over its classes with each row in its own lane of a
 * float16, so the exps and logs of 16 rows go through the vector units together. Sums run over
 * the classes in order (not the work-group kernel's tree), so results match it to float
 * rounding, not bit for bit; they are deterministic all the same. Helpers in common.h. */
__kernel KD_REQD_WG_ROWS void kd_softmax_ce_forward_backward_rows(
    __global float *loss_rows, uint loss_off, __global float *dlogits, uint dl_off,
    int want_grad, __global const float *logits, uint z_off, __global const int *labels,
    uint lab_off, uint B, uint C, float grad_scale) {
  const uint r0 = get_global_id(0) * KD_ROWS_V;
  if (r0 >= B) return;
  const uint n = min((uint)KD_ROWS_V, B - r0); /* rows of this work-item; the rest repeat row B-1 */
  uint zo[KD_ROWS_V], dlo[KD_ROWS_V];
  int yv[KD_ROWS_V];
  float zyv[KD_ROWS_V];
  for (uint l = 0; l < KD_ROWS_V; l++) {
    uint row = min(r0 + l, B - 1);
    zo[l] = z_off + row * C;
    dlo[l] = dl_off + row * C;
    yv[l] = labels[lab_off + row];
  }
  int16 y = vload16(0, yv);
  int16 valid = (y >= 0) & (y < (int)C);
  float16 m = (float16)(-INFINITY);
  for (uint j = 0; j < C; j++) m = fmax(m, kd_rows_load(logits, zo, j));
  /* Read before any write: when dlogits aliases logits, z is overwritten below. */
  for (uint l = 0; l < KD_ROWS_V; l++)
    zyv[l] = yv[l] >= 0 && (uint)yv[l] < C ? logits[zo[l] + (uint)yv[l]] : 0.0f;
  float16 zy = vload16(0, zyv);
  float16 s = (float16)(0.0f);
  for (uint j = 0; j < C; j++) s += exp(kd_rows_load(logits, zo, j) - m);
  float16 loss = select((float16)(NAN), log(s) - (zy - m), valid);
  float lt[KD_ROWS_V];
  vstore16(loss, 0, lt);
  for (uint l = 0; l < n; l++) loss_rows[loss_off + r0 + l] = lt[l];
  if (want_grad) {
    float16 inv = grad_scale / s;
    float16 hot = select((float16)(NAN), (float16)(grad_scale), valid);
    for (uint j = 0; j < C; j++) {
      float16 g = exp(kd_rows_load(logits, zo, j) - m) * inv;
      g = select(g, g - hot, (y == (int)j) | ~valid);
      kd_rows_store(dlogits, dlo, j, g, n);
    }
  }
}
