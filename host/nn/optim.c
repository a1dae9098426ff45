/* Optimizer launchers (kernels/optim.cl): global gradient norm, SGD and AdamW steps with
 * torch.optim semantics over the flat parameter arena. Enqueue only. */
#include "nn/optim.h"

#include <math.h>
#include <string.h>

/* Pass 1 of the norm runs at most this many work-groups; the workspace holds one float each. */
#define KD_GRAD_NORM_MAX_GROUPS 256

static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

void kd_optim_config_defaults(kd_optim_config *c, kd_optimizer_type t) {
  memset(c, 0, sizeof *c);
  c->type = t;
  c->beta1 = 0.9f;
  c->beta2 = 0.999f;
  c->eps = 1e-8f;
  if (t == KD_OPT_ADAMW) {
    c->lr = 1e-3f;
    c->weight_decay = 1e-2f;
  } else {
    c->lr = 0.01f;
  }
}

int kd_optimizer_parse(const char *name, kd_optimizer_type *out) {
  if (name && !strcmp(name, "sgd")) *out = KD_OPT_SGD;
  else if (name && !strcmp(name, "adamw")) *out = KD_OPT_ADAMW;
  else return -1;
  return 0;
}

const char *kd_optimizer_name(kd_optimizer_type t) {
  return t == KD_OPT_SGD ? "sgd" : t == KD_OPT_ADAMW ? "adamw" : "?";
}

int kd_optim_config_check(const kd_optim_config *c, kd_error *err) {
  /* !(x >= 0) also rejects NaN. */
  if (c->type != KD_OPT_SGD && c->type != KD_OPT_ADAMW)
    return kd_fail(err, "optimizer: unknown type %d", (int)c->type);
  if (!(c->lr >= 0.0f) || isinf(c->lr)) return kd_fail(err, "optimizer: invalid lr %g", (double)c->lr);
  if (!(c->weight_decay >= 0.0f))
    return kd_fail(err, "optimizer: invalid weight_decay %g", (double)c->weight_decay);
  if (!(c->clip_grad_norm >= 0.0f))
    return kd_fail(err, "optimizer: invalid clip_grad_norm %g (0 turns clipping off)",
                   (double)c->clip_grad_norm);
  if (c->type == KD_OPT_SGD) {
    if (!(c->momentum >= 0.0f))
      return kd_fail(err, "optimizer: invalid momentum %g", (double)c->momentum);
    if (!isfinite(c->dampening))
      return kd_fail(err, "optimizer: invalid dampening %g", (double)c->dampening);
    if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
      return kd_fail(err, "optimizer: nesterov momentum requires a momentum and zero dampening");
  } else {
    if (!(c->eps >= 0.0f)) return kd_fail(err, "optimizer: invalid eps %g", (double)c->eps);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
      return kd_fail(err, "optimizer: invalid beta1 %g (must be in [0, 1))", (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
      return kd_fail(err, "optimizer: invalid beta2 %g (must be in [0, 1))", (double)c->beta2);
  }
  return 0;
}

static size_t grad_norm_groups(size_t n) {
  size_t groups = n / KD_WG + (n % KD_WG != 0);
  if (groups > KD_GRAD_NORM_MAX_GROUPS) groups = KD_GRAD_NORM_MAX_GROUPS;
  return groups;
}

size_t kd_grad_norm_workspace_floats(size_t n) {
  size_t groups = grad_norm_groups(n);
  return groups ? groups : 1;
}

int kd_grad_norm(kd_device *dev, kd_ref norm_out, kd_ref grads, size_t n, kd_ref workspace,
                 kd_error *err) {
  if (!norm_out.buf || !grads.buf || !workspace.buf)
    return kd_fail(err, "gradient norm: norm_out, grads and workspace buffers are required");
  size_t groups = grad_norm_groups(n);
  if (!fits_u32(norm_out.off, 1) || !fits_u32(grads.off, n) ||
      !fits_u32(workspace.off, kd_grad_norm_workspace_floats(n)))
    return kd_fail(err, "gradient norm: %zu floats at offset %zu exceed the 2^32-element limit "
                   "of the kernels", n, grads.off);
  size_t l = KD_WG, g1 = groups * KD_WG, g2 = KD_WG;
  if (groups && KD_RUN(dev, "kd_grad_norm_partial", 1, &g1, &l, err, KD_MEM(workspace.buf),
                       KD_UINT(workspace.off), KD_MEM(grads.buf), KD_UINT(grads.off),
                       KD_UINT(n)))
    return -1;
  return KD_RUN(dev, "kd_grad_norm_final", 1, &g2, &l, err, KD_MEM(norm_out.buf),
                KD_UINT(norm_out.off), KD_MEM(workspace.buf), KD_UINT(workspace.off),
                KD_UINT(groups));
}

int kd_optimizer_step(kd_device *dev, const kd_optim_config *cfg, kd_ref params, kd_ref grads,
                      kd_ref state1, kd_ref state2, size_t n, float lr, int64_t step,
                      kd_ref grad_norm, kd_error *err) {
  kd_optim_config c = *cfg;
  c.lr = lr; /* the schedule's rate is the one checked and used */
  if (kd_optim_config_check(&c, err)) return -1;
  if (step < 1) return kd_fail(err, "optimizer: step %lld is not 1-based", (long long)step);
  if (!params.buf || !grads.buf)
    return kd_fail(err, "optimizer: params and grads buffers are required");
  int sgd = c.type == KD_OPT_SGD;
  int need1 = !sgd || c.momentum != 0.0f, need2 = !sgd;
  if ((need1 && !state1.buf) || (need2 && !state2.buf))
    return kd_fail(err, "optimizer %s: its state buffer%s missing", kd_optimizer_name(c.type),
                   need2 ? "s (exp_avg, exp_avg_sq) are" : " (momentum) is");
  if (!fits_u32(params.off, n) || !fits_u32(grads.off, n) ||
      (need1 && !fits_u32(state1.off, n)) || (need2 && !fits_u32(state2.off, n)) ||
      (grad_norm.buf && !fits_u32(grad_norm.off, 1)))
    return kd_fail(err, "optimizer: %zu parameters exceed the 2^32-element limit of the kernels",
                   n);
  /* Unused buffer arguments still need a valid cl_mem; clip = 0 means the norm is not read. */
  int clip_on = grad_norm.buf != NULL && c.clip_grad_norm > 0.0f;
  cl_mem norm_buf = clip_on ? grad_norm.buf : params.buf;
  size_t norm_off = clip_on ? grad_norm.off : 0;
  float clip = clip_on ? c.clip_grad_norm : 0.0f;
  cl_mem s1 = need1 ? state1.buf : params.buf, s2 = need2 ? state2.buf : params.buf;
  size_t s1_off = need1 ? state1.off : 0, s2_off = need2 ? state2.off : 0;
  size_t g = n, l = KD_WG;
  if (sgd)
    return KD_RUN(dev, "kd_sgd_step", 1, &g, &l, err, KD_MEM(params.buf), KD_UINT(params.off),
                  KD_MEM(grads.buf), KD_UINT(grads.off), KD_MEM(s1), KD_UINT(s1_off), KD_UINT(n),
                  KD_FLOAT(lr), KD_FLOAT(c.momentum), KD_FLOAT(c.dampening),
                  KD_FLOAT(c.weight_decay), KD_INT(c.nesterov != 0), KD_INT(step == 1),
                  KD_MEM(norm_buf), KD_UINT(norm_off), KD_FLOAT(clip));
  /* torch: step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) + eps; decay in
   * double then rounded, as torch multiplies by the Python float 1 - lr*wd. */
  double t = (double)step;
  double bc1 = 1.0 - pow((double)c.beta1, t), bc2 = 1.0 - pow((double)c.beta2, t);
  float step_size = (float)((double)lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  float decay = (float)(1.0 - (double)lr * (double)c.weight_decay);
  g = (n + 15) / 16; /* 16 elements per work-item */
  return KD_RUN(dev, "kd_adamw_step", 1, &g, &l, err, KD_MEM(params.buf), KD_UINT(params.off),
                KD_MEM(grads.buf), KD_UINT(grads.off), KD_MEM(s1), KD_UINT(s1_off), KD_MEM(s2),
                KD_UINT(s2_off), KD_UINT(n), KD_FLOAT(decay), KD_FLOAT(c.beta1),
                KD_FLOAT(c.beta2), KD_FLOAT(c.eps), KD_FLOAT(step_size), KD_FLOAT(bc2_sqrt),
                KD_MEM(norm_buf), KD_UINT(norm_off), KD_FLOAT(clip));
}
