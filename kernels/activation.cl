/* Element-wise activations (host/nn/layers.c): relu, gelu (erf form, PyTorch's default), tanh,
 * sigmoid. `act` takes the kd_activation values of host/nn/layers.h. */
#define KD_ACT_RELU 0
#define KD_ACT_GELU 1
#define KD_ACT_TANH 2
#define KD_ACT_SIGMOID 3

/* y[y_off + i] = act(x[x_off + i]) for i < n. y may alias x. */
__kernel KD_REQD_WG_1D void kd_activation_forward(__global float *y, uint y_off,
                                                  __global const float *x, uint x_off, uint n,
                                                  int act) {
  uint i = get_global_id(0);
  if (i >= n) return;
  float v = x[x_off + i], r;
  if (act == KD_ACT_RELU) {
    r = v < 0.0f ? 0.0f : v; /* NaN passes through, as in torch.relu */
  } else if (act == KD_ACT_GELU) {
    r = 0.5f * v * (1.0f + erf(v * 0.70710678118654752f));
  } else if (act == KD_ACT_TANH) {
    r = tanh(v);
  } else {
    r = 1.0f / (1.0f + exp(-v));
  }
  y[y_off + i] = r;
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
  float g = dy[dy_off + i], a = s[s_off + i], d;
  if (act == KD_ACT_RELU) {
    d = a > 0.0f ? g : 0.0f; /* y > 0 exactly when x > 0 */
  } else if (act == KD_ACT_GELU) {
    /* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
    float cdf = 0.5f * (1.0f + erf(a * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * exp(-0.5f * a * a);
    d = g * (cdf + a * pdf);
  } else if (act == KD_ACT_TANH) {
    float t = s_is_output ? a : tanh(a);
    d = g * (1.0f - t * t);
  } else {
    float sg = s_is_output ? a : 1.0f / (1.0f + exp(-a));
    d = g * sg * (1.0f - sg);
  }
  dx[dx_off + i] = d;
}
