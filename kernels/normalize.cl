/* Input normalisation onto the device as float, x = (raw * scale - mean) / std as one fused
 * multiply-add, fma(raw, a, b) with a = scale / std and b = -mean / std from the host
 * (kd_normalize_coefficients), from uint8 or float32 inputs: of a batch uploaded from the host
 * (host/nn/layers.c), or gathered from the training set held on the device
 * (host/train/device_set.c). One formula, so both feeds give the same bits. */

#define KD_NORMALIZE(raw, a, b) fma((raw), (a), (b))

__kernel KD_REQD_WG_1D void kd_normalize_inputs_u8(__global float *out, uint out_off,
                                                   __global const uchar *in, uint in_off,
                                                   uint n, float a, float b) {
  uint i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = KD_NORMALIZE((float)in[in_off + i], a, b);
}

__kernel KD_REQD_WG_1D void kd_normalize_inputs_f32(__global float *out, uint out_off,
                                                    __global const float *in, uint in_off,
                                                    uint n, float a, float b) {
  uint i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = KD_NORMALIZE(in[in_off + i], a, b);
}

/* One step's batch from the set on the device: batch row r is set row order[first + r].
 * One work-group of KD_WG work-items per batch row r; the row's inputs go 16 at a time, the
 * rest one by one:
 *   x_out[r, :]  = normalised x[row, :]   (x is uchar, or float when !x_is_u8)
 *   y_out[r]     = y[row]                 (with_labels)
 *   t_out[r, :]  = t[row, :]              (teacher_cols: dense logits or top-k log-probs)
 *   ti_out[r, :] = ti[row, :]             (topk: top-k classes)
 * Row offsets are 64-bit: a float set may pass 2^32 elements. */
__kernel KD_REQD_WG_1D void kd_gather_batch(
    __global float *x_out, uint x_out_off, __global const uchar *x, uint x_is_u8,
    __global const int *order, uint first, uint sample_size, float a, float b, uint with_labels, __global int *y_out, uint y_out_off, __global const int *y,
    uint teacher_cols, uint topk, __global float *t_out, uint t_out_off, __global const float *t,
    __global int *ti_out, uint ti_out_off, __global const int *ti) {
  uint r = get_global_id(1), lid = get_local_id(0);
  ulong row = (ulong)order[first + r];
  __global const uchar *x_u8 = x + row * sample_size;
  __global const float *x_f32 = (__global const float *)x + row * sample_size;
  __global float *x_to = x_out + x_out_off + r * sample_size;
  uint vecs = sample_size / 16;
  if (x_is_u8) {
    for (uint v = lid; v < vecs; v += KD_WG)
      vstore16(KD_NORMALIZE(convert_float16(vload16(v, x_u8)), a, b), v, x_to);
    for (uint j = vecs * 16 + lid; j < sample_size; j += KD_WG)
      x_to[j] = KD_NORMALIZE((float)x_u8[j], a, b);
  } else {
    for (uint v = lid; v < vecs; v += KD_WG)
      vstore16(KD_NORMALIZE(vload16(v, x_f32), a, b), v, x_to);
    for (uint j = vecs * 16 + lid; j < sample_size; j += KD_WG)
      x_to[j] = KD_NORMALIZE(x_f32[j], a, b);
  }
  if (with_labels && lid == 0) y_out[y_out_off + r] = y[row];
  for (uint j = lid; j < teacher_cols; j += KD_WG) {
    ulong at = row * teacher_cols + j;
    t_out[t_out_off + r * teacher_cols + j] = t[at];
    if (topk) ti_out[ti_out_off + r * teacher_cols + j] = ti[at];
  }
}
