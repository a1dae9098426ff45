/* Row-wise losses fused with their gradients (host/nn/loss.c). One work-group of KD_WG
 * work-items per row of logits, so a row of any width (10 classes or a 50k vocabulary, one row
 * per sample or per token) is one group; reductions over the row are fixed trees in local
 * memory (kd_group_sum / kd_group_max in kernels/common.h), so results are the same bits on
 * every run. */

/* Softmax cross-entropy and its gradient for rows [B, C] of logits (row-major, contiguous):
 *   loss_rows[r] = logsumexp(z_r) - z_r[y_r]
 *   dlogits[r, :] = (softmax(z_r) - onehot(y_r)) * grad_scale      (when want_grad)
 * with the row max subtracted before exp, so logits of any size stay finite. A label outside
 * [0, C) gives NaN in loss_rows[r] and in the row of dlogits. dlogits may alias logits. */
__kernel KD_REQD_WG_1D void kd_softmax_ce_forward_backward(
    __global float *loss_rows, uint loss_off, __global float *dlogits, uint dl_off,
    int want_grad, __global const float *logits, uint z_off, __global const int *labels,
    uint lab_off, uint B, uint C, float grad_scale) {
  __local float scratch[KD_WG];
  uint row = get_group_id(0), lid = get_local_id(0);
  if (row >= B) return; /* whole group leaves together */
  __global const float *z = logits + z_off + row * C;

  float m = -INFINITY;
  for (uint j = lid; j < C; j += KD_WG) m = fmax(m, z[j]);
  m = kd_group_max(m, scratch);
  /* Read before the next barrier: when dlogits aliases logits, z is overwritten below. */
  int y = labels[lab_off + row];
  int valid = y >= 0 && (uint)y < C;
  float zy = (lid == 0 && valid) ? z[y] : 0.0f;
  float s = 0.0f;
  for (uint j = lid; j < C; j += KD_WG) s += exp(z[j] - m); /* NaN logits reach s here */
  s = kd_group_sum(s, scratch);

  if (lid == 0) /* log(s) - (z_y - m): no cancellation against a large m */
    loss_rows[loss_off + row] = valid ? log(s) - (zy - m) : NAN;
  if (want_grad) {
    float inv = grad_scale / s;
    float hot = valid ? grad_scale : NAN;
    __global float *d = dlogits + dl_off + row * C;
    for (uint j = lid; j < C; j += KD_WG) {
      float g = exp(z[j] - m) * inv;
      d[j] = ((int)j == y || !valid) ? g - hot : g;
    }
  }
}
