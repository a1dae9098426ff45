/* Element-wise activations (host/nn/layers.c): relu, gelu (erf form, PyTorch's default), tanh,
 * sigmoid. `act` takes the kd_activation values of host/nn/layers.h; the functions themselves
 * (kd_act, kd_act_grad) live in kernels/common.h, shared with the fused dense kernels. */

/* y[y_off + i] = act(x[x_off + i]) for i < n. y may alias x. */
__kernel KD_REQD_WG_1D void kd_activation_forward(__global float *y, uint y_off,
                                                  __global const float *x, uint x_off, uint n,
                                                  int act) {
  uint i = get_global_id(0);
  if (i >= n) return;
  y[y_off + i] = kd_act(act, x[x_off + i]);
}

/* dx = dy * act'(.) from one saved tensor s: the forward output (s_is_output = 1) or the
 * forward input (0). relu, tanh and sigmoid work from either; gelu needs the input (the host
 * checks). dx may alias dy. */
__kernel KD_REQD_WG_1D void kd_activation_backward(__global float *dx, uint dx_off,
                                                   __global const float *dy, uint dy_off,
                                                   __global const float *s, uint s_off,
                                                   int s_is_output, uint n, int act) {
  uint i = get_global_id(0);
  if (i >= n) return;
  dx[dx_off + i] = kd_act_grad(act, dy[dy_off + i], s[s_off + i], s_is_output);
}
