/* Optimizers (torch.optim.SGD and AdamW) as one kernel launch over the whole flat parameter
 * arena, and the global gradient norm for clip_grad_norm_. Enqueue only, no host sync. */
#ifndef KD_OPTIM_H
#define KD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "nn/arena.h"
#include "runtime/device.h"

typedef enum kd_optimizer_type { KD_OPT_SGD, KD_OPT_ADAMW } kd_optimizer_type;

typedef struct kd_optim_config {
  kd_optimizer_type type;
  float lr, momentum, dampening, weight_decay, beta1, beta2, eps;
  int nesterov;
  float clip_grad_norm; /* max global L2 norm of the gradients; 0: off */
} kd_optim_config;

/* torch.optim defaults. SGD: lr 0.01, momentum 0, dampening 0, weight_decay 0, nesterov 0.
 * AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. Clipping off. Fields the
 * type does not use are set to the other type's defaults (harmless). */
void kd_optim_config_defaults(kd_optim_config *c, kd_optimizer_type t);

/* "sgd" or "adamw" into *out; -1 otherwise. */
int kd_optimizer_parse(const char *name, kd_optimizer_type *out);
const char *kd_optimizer_name(kd_optimizer_type t);

/* Checks hyper-parameters as torch.optim does (lr, momentum, weight_decay, eps >= 0; betas in
 * [0, 1); nesterov needs momentum > 0 and dampening 0; clip_grad_norm >= 0). -1 with a
 * message naming the field. kd_optimizer_step calls it too. */
int kd_optim_config_check(const kd_optim_config *c, kd_error *err);

/* Floats of workspace kd_grad_norm needs for n gradients (at least 1; at most 256). */
size_t kd_grad_norm_workspace_floats(size_t n);

/* norm_out[0] = sqrt(sum of grads[i]^2, i < n), the global L2 norm over the whole gradient
 * arena. Two launches with a fixed reduction tree (no atomics), so the same inputs give the
 * same bits; the summation order depends on n only. workspace holds
 * kd_grad_norm_workspace_floats(n) floats. n = 0 gives 0. */
int kd_grad_norm(kd_device *dev, kd_ref norm_out, kd_ref grads, size_t n, kd_ref workspace,
                 kd_error *err);

/* One optimizer step over params[0..n) with grads[0..n), exactly torch.optim's formulas, one
 * launch. lr is this step's rate (from the schedule; cfg->lr is not read); step is 1-based
 * (the step being taken, so 1 on the first). State: state1 = momentum buffer (SGD, unused and
 * may be NULL when momentum is 0) or exp_avg (AdamW); state2 = exp_avg_sq (AdamW only; NULL
 * for SGD). State starts zeroed; SGD's first step (step == 1) initialises its buffer from the
 * gradient, as torch does.
 * Clipping: when grad_norm.buf is non-NULL and cfg->clip_grad_norm > 0, grads are scaled by
 * min(1, clip / (norm + 1e-6)) inside the kernel, the norm (from kd_grad_norm) read on the
 * device; the grads buffer itself is left unscaled.
 *   SGD:   g = coef*grad + wd*p; buf = (step == 1) ? g : momentum*buf + (1-dampening)*g;
 *          g = nesterov ? g + momentum*buf : buf (momentum != 0); p -= lr*g
 *   AdamW: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *          p -= (lr/(1-b1^step)) * m / (sqrt(v)/sqrt(1-b2^step) + eps)
 *          (bias corrections computed on the host in double). */
int kd_optimizer_step(kd_device *dev, const kd_optim_config *cfg, kd_ref params, kd_ref grads,
                      kd_ref state1, kd_ref state2, size_t n, float lr, int64_t step,
                      kd_ref grad_norm, kd_error *err);

#endif
