/* Launchers for batch normalisation (kernels/batchnorm.cl). Enqueue only. */
#include "nn/batchnorm.h"

#include <math.h>
#include <stdint.h>

#include "nn/layers.h"

/* Kernels index with 32-bit uints: an extent must end below 2^32 elements. */
static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

static int check_ref(const char *op, const char *what, kd_ref r, size_t n, kd_error *err) {
  if (!r.buf) return kd_fail(err, "%s: %s buffer is NULL", op, what);
  if (!fits_u32(r.off, n))
    return kd_fail(err, "%s: %s (offset %zu + %zu elements) exceeds the 2^32-element limit of "
                   "the kernels", op, what, r.off, n);
  return 0;
}

/* n*C*S into *numel when non-zero and below 2^32. */
static int check_shape(const char *op, size_t n, size_t C, size_t S, size_t *numel,
                       kd_error *err) {
  if (n == 0 || C == 0 || S == 0)
    return kd_fail(err, "%s: empty shape [n %zu, C %zu, S %zu]", op, n, C, S);
  if (C > UINT32_MAX / n || S > UINT32_MAX / (n * C))
    return kd_fail(err, "%s: shape [n %zu, C %zu, S %zu] exceeds the 2^32-element limit of the "
                   "kernels", op, n, C, S);
  *numel = n * C * S;
  return 0;
}

static int check_eps(const char *op, float eps, kd_error *err) {
  if (!(eps >= 0.0f && isfinite(eps)))
    return kd_fail(err, "%s: eps %g must be finite and >= 0", op, (double)eps);
  return 0;
}

/* Floats per segment in the kernels (see kernels/batchnorm.cl): whole rows up to 256 floats,
 * else 128-float pieces (measured on PoCL: [128, 64, 196] and [128, 32, 784] are fastest so;
 * the choice depends on S only, so results do not depend on n or on the call). */
static size_t segment_length(size_t S) { return S <= 256 ? S : 128; }

/* gamma, beta and the other per-channel vectors. */
static int check_channel_refs(const char *op, const char *const *names, const kd_ref *refs,
                              int count, size_t C, kd_error *err) {
  for (int i = 0; i < count; i++)
    if (check_ref(op, names[i], refs[i], C, err)) return -1;
  return 0;
}

/* act: -1 (none) or a kd_activation whose backward works from its output (not gelu). */
static int check_fused_act(const char *op, int act, kd_error *err) {
  if (act == -1 || act == KD_ACT_RELU || act == KD_ACT_TANH || act == KD_ACT_SIGMOID) return 0;
  return kd_fail(err, "%s: activation %d cannot be fused (relu, tanh or sigmoid)", op, act);
}

int kd_batchnorm_forward_train(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                               kd_ref running_mean, kd_ref running_var, kd_ref save_mean,
                               kd_ref save_invstd, size_t n, size_t C, size_t S, float momentum,
                               float eps, kd_error *err) {
  return kd_batchnorm_forward_train_act(dev, y, x, gamma, beta, running_mean, running_var,
                                        save_mean, save_invstd, n, C, S, momentum, eps, -1, err);
}

int kd_batchnorm_forward_train_act(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                                   kd_ref running_mean, kd_ref running_var, kd_ref save_mean,
                                   kd_ref save_invstd, size_t n, size_t C, size_t S,
                                   float momentum, float eps, int act, kd_error *err) {
  const char *op = "batch norm forward (train)";
  if (check_fused_act(op, act, err)) return -1;
  size_t numel;
  if (check_shape(op, n, C, S, &numel, err) || check_eps(op, eps, err)) return -1;
  if (n * S == 1)
    return kd_fail(err, "%s: batch norm needs more than one value per channel (n %zu x S %zu "
                   "values per channel)", op, n, S);
  if (!isfinite(momentum))
    return kd_fail(err, "%s: momentum %g must be finite", op, (double)momentum);
  const char *names[6] = {"gamma", "beta", "running_mean", "running_var", "save_mean",
                          "save_invstd"};
  const kd_ref refs[6] = {gamma, beta, running_mean, running_var, save_mean, save_invstd};
  if (check_ref(op, "y", y, numel, err) || check_ref(op, "x", x, numel, err) ||
      check_channel_refs(op, names, refs, 6, C, err))
    return -1;
  size_t l = KD_BN_WG, g = C * l;
  return KD_RUN(dev, "kd_batchnorm_forward_train", 1, &g, &l, err, KD_MEM(y.buf),
                KD_UINT(y.off), KD_MEM(x.buf), KD_UINT(x.off), KD_MEM(gamma.buf),
                KD_UINT(gamma.off), KD_MEM(beta.buf), KD_UINT(beta.off),
                KD_MEM(running_mean.buf), KD_UINT(running_mean.off), KD_MEM(running_var.buf),
                KD_UINT(running_var.off), KD_MEM(save_mean.buf), KD_UINT(save_mean.off),
                KD_MEM(save_invstd.buf), KD_UINT(save_invstd.off), KD_UINT(n), KD_UINT(C),
                KD_UINT(S), KD_UINT(segment_length(S)), KD_FLOAT(momentum), KD_FLOAT(eps),
                KD_INT(act));
}

int kd_batchnorm_forward_eval(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                              kd_ref running_mean, kd_ref running_var, size_t n, size_t C,
                              size_t S, float eps, kd_error *err) {
  return kd_batchnorm_forward_eval_act(dev, y, x, gamma, beta, running_mean, running_var, n, C, S,
                                       eps, -1, err);
}

int kd_batchnorm_forward_eval_act(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                                  kd_ref running_mean, kd_ref running_var, size_t n, size_t C,
                                  size_t S, float eps, int act, kd_error *err) {
  const char *op = "batch norm forward (eval)";
  if (check_fused_act(op, act, err)) return -1;
  size_t numel;
  if (check_shape(op, n, C, S, &numel, err) || check_eps(op, eps, err)) return -1;
  const char *names[4] = {"gamma", "beta", "running_mean", "running_var"};
  const kd_ref refs[4] = {gamma, beta, running_mean, running_var};
  if (check_ref(op, "y", y, numel, err) || check_ref(op, "x", x, numel, err) ||
      check_channel_refs(op, names, refs, 4, C, err))
    return -1;
  size_t l = KD_BN_WG, g = C * l;
  return KD_RUN(dev, "kd_batchnorm_forward_eval", 1, &g, &l, err, KD_MEM(y.buf), KD_UINT(y.off),
                KD_MEM(x.buf), KD_UINT(x.off), KD_MEM(gamma.buf), KD_UINT(gamma.off),
                KD_MEM(beta.buf), KD_UINT(beta.off), KD_MEM(running_mean.buf),
                KD_UINT(running_mean.off), KD_MEM(running_var.buf), KD_UINT(running_var.off),
                KD_UINT(n), KD_UINT(C), KD_UINT(S), KD_UINT(segment_length(S)), KD_FLOAT(eps),
                KD_INT(act));
}

int kd_batchnorm_backward(kd_device *dev, kd_ref dx, kd_ref dgamma, kd_ref dbeta, kd_ref dy,
                          kd_ref x, kd_ref gamma, kd_ref save_mean, kd_ref save_invstd,
                          size_t n, size_t C, size_t S, kd_error *err) {
  return kd_batchnorm_backward_act(dev, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd,
                                   n, C, S, -1, kd_at(NULL, 0), err);
}

int kd_batchnorm_backward_act(kd_device *dev, kd_ref dx, kd_ref dgamma, kd_ref dbeta, kd_ref dy,
                              kd_ref x, kd_ref gamma, kd_ref save_mean, kd_ref save_invstd,
                              size_t n, size_t C, size_t S, int act, kd_ref act_y,
                              kd_error *err) {
  const char *op = "batch norm backward";
  if (check_fused_act(op, act, err)) return -1;
  size_t numel;
  if (check_shape(op, n, C, S, &numel, err)) return -1;
  const char *names[5] = {"dgamma", "dbeta", "gamma", "save_mean", "save_invstd"};
  const kd_ref refs[5] = {dgamma, dbeta, gamma, save_mean, save_invstd};
  if (check_ref(op, "dy", dy, numel, err) || check_ref(op, "x", x, numel, err) ||
      check_channel_refs(op, names, refs, 5, C, err))
    return -1;
  if (dx.buf && check_ref(op, "dx", dx, numel, err)) return -1;
  if (act != -1 && check_ref(op, "activation output", act_y, numel, err)) return -1;
  kd_ref dxr = dx.buf ? dx : dy; /* a valid cl_mem for the unused argument */
  kd_ref sv = act != -1 ? act_y : dy;
  size_t l = KD_BN_WG, g = C * l;
  return KD_RUN(dev, "kd_batchnorm_backward", 1, &g, &l, err, KD_MEM(dxr.buf), KD_UINT(dxr.off),
                KD_INT(dx.buf != NULL), KD_MEM(dgamma.buf), KD_UINT(dgamma.off),
                KD_MEM(dbeta.buf), KD_UINT(dbeta.off), KD_MEM(dy.buf), KD_UINT(dy.off),
                KD_MEM(x.buf), KD_UINT(x.off), KD_MEM(gamma.buf), KD_UINT(gamma.off),
                KD_MEM(save_mean.buf), KD_UINT(save_mean.off), KD_MEM(save_invstd.buf),
                KD_UINT(save_invstd.off), KD_UINT(n), KD_UINT(C), KD_UINT(S),
                KD_UINT(segment_length(S)), KD_INT(act), KD_MEM(sv.buf), KD_UINT(sv.off),
                KD_INT(1));
}
