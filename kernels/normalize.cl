/* Input normalisation onto the device as float (host/nn/layers.c):
 * out[i] = (in[i] * scale - mean) / std, from uint8 or float32 inputs. */

__kernel KD_REQD_WG_1D void kd_normalize_inputs_u8(__global float *out, uint out_off,
                                                   __global const uchar *in, uint in_off,
                                                   uint n, float scale, float mean, float std) {
  uint i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = ((float)in[in_off + i] * scale - mean) / std;
}

__kernel KD_REQD_WG_1D void kd_normalize_inputs_f32(__global float *out, uint out_off,
                                                    __global const float *in, uint in_off,
                                                    uint n, float scale, float mean, float std) {
  uint i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = (in[in_off + i] * scale - mean) / std;
}
