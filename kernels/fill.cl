/* Fills n floats of x (from offset off) with value. */
__kernel KD_REQD_WG_1D void kd_fill(__global float *x, uint off, uint n, float value) {
  uint i = get_global_id(0);
  if (i < n) x[off + i] = value;
}
