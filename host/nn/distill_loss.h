/* The distillation loss family, each fused with its gradient w.r.t. the student logits: one
 * kernel launch computes, per row, the plain cross-entropy, the distillation term and
 * d(loss)/d(logits) in one pass (kernels/distill_loss.cl). Enqueue only, no host sync; 0, or -1
 * with a message in err.
 *
 * Notation for one row: z_s student logits [C], z_t teacher logits [C], y the label,
 * T the temperature, s = softmax(z_s / T), t = softmax(z_t / T), natural logs:
 *   ce  = -log softmax(z_s)[y]                                   (always at T = 1)
 *   kd  : T^2 * KL(t || s)
 *   rkl : T^2 * KL(s || t)
 *   jsd : T^2 * [beta*KL(t || m) + (1-beta)*KL(s || m)],  m = beta*t + (1-beta)*s
 *   skl : T^2 * KL(t || skew*t + (1-skew)*s)
 *   tvd : T^2 * 0.5 * sum_j |t_j - s_j|   (subgradient: 0 for a class where t_j == s_j)
 *   mse : (1/C) * sum_j (z_s,j - z_t,j)^2  (no temperature)
 *   ce  : the distillation term is 0 and the gradient is that of ce alone
 * The training objective is a*ce + (1-a)*kd with a = alpha (a = 1 for loss ce).
 * Numerics: log-softmax throughout, 0*log 0 = 0, mixtures in the log domain; finite logits
 * (e.g. +-80 with T from 0.5 to 20) give finite values and gradients. */
#ifndef KD_DISTILL_LOSS_H
#define KD_DISTILL_LOSS_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* The kernels take the loss as this number: keep the order in step with KD_DL_* in
 * kernels/distill_loss.cl. */
typedef enum kd_distill_loss {
  KD_LOSS_KD,
  KD_LOSS_RKL,
  KD_LOSS_JSD,
  KD_LOSS_SKL,
  KD_LOSS_TVD,
  KD_LOSS_MSE,
  KD_LOSS_CE
} kd_distill_loss;

/* What a top-k teacher means for the classes outside its K (--topk-missing). */
typedef enum kd_topk_missing { KD_TOPK_DROP, KD_TOPK_UNIFORM } kd_topk_missing;

typedef struct kd_distill_config {
  kd_distill_loss loss;         /* --loss */
  float temperature;            /* --temperature T > 0 */
  float alpha;                  /* --alpha: weight of the hard-label CE, in [0, 1] */
  float beta;                   /* --beta: jsd mixture weight of the teacher, in (0, 1) */
  float skew;                   /* --skew: skl mixture weight of the teacher, in [0, 1) */
  kd_topk_missing topk_missing; /* --topk-missing */
} kd_distill_config;

/* loss kd, temperature 4, alpha 0.5, beta 0.5, skew 0.1, topk_missing drop. */
void kd_distill_config_defaults(kd_distill_config *c);

/* "kd", "rkl", "jsd", "skl", "tvd", "mse" or "ce" into *out: 0; anything else (or NULL): -1,
 * *out untouched. */
int kd_distill_loss_parse(const char *name, kd_distill_loss *out);
/* The --loss spelling of l; "?" for a value outside the enum. */
const char *kd_distill_loss_name(kd_distill_loss l);
/* "drop" or "uniform" into *out: 0; otherwise -1, *out untouched. */
int kd_topk_missing_parse(const char *name, kd_topk_missing *out);

/* Checks every field whatever the loss: loss and topk_missing are enum values, temperature is
 * finite and > 0, alpha in [0, 1], beta in (0, 1), skew in [0, 1) (NaN fails each). -1 with a
 * message naming the flag (--loss, --temperature, --alpha, --beta, --skew, --topk-missing) and
 * the value. Both forward_backward functions call it. */
int kd_distill_config_check(const kd_distill_config *c, kd_error *err);

/* Dense teacher. Per row i of student logits [B, C] (row-major, contiguous), teacher logits
 * teacher_logits [B, C] and int32 labels [B] (labels.off in int32 elements):
 *   ce_rows[i]    = ce of row i                          (B floats; nats)
 *   kd_rows[i]    = the distillation term of cfg->loss     (B floats; 0 for loss ce)
 *   dlogits[i, :] = grad_scale * d/dz_s [a*ce + (1-a)*kd]  ([B, C]; dlogits.buf NULL: forward
 *                   only, nothing written there)
 * grad_scale is usually 1/B for a batch mean. ce_rows and kd_rows are always written;
 * teacher_logits.buf may be NULL for loss ce (never read then). dlogits may alias logits (the
 * gradient overwrites them in place); nothing else may overlap an output. A label outside
 * [0, C) gives NaN in ce_rows[i] and in row i of dlogits; NaN inputs give NaN. One work-group
 * per row (16 rows per work-item for narrow rows on CPUs: host/nn/loss.h), one launch;
 * deterministic (same inputs and device: same bits).
 * Errors: a bad cfg (see kd_distill_config_check), B or C of 0, B*C >= 2^32 or an offset past
 * 2^32 elements, a missing buffer, or the launch failing. */
int kd_distill_forward_backward(kd_device *dev, const kd_distill_config *cfg, kd_ref ce_rows,
                                kd_ref kd_rows, kd_ref dlogits, kd_ref logits, kd_ref labels,
                                kd_ref teacher_logits, size_t B, size_t C, float grad_scale,
                                kd_error *err);

/* Top-k teacher, as an API gives it: topk_idx int32 [B, K] and topk_logp float [B, K], per row
 * the K most likely classes and their log-probabilities at T = 1 (natural log, normalised over
 * all C classes), sorted descending (the kernels do not rely on the order). 1 <= K <= C. The
 * teacher distribution t at temperature T depends on cfg->topk_missing:
 *   drop:    t over the K classes only, t_k = softmax over the K entries of logp / T; every
 *            distillation sum (kd, rkl, jsd, skl, tvd) runs over those K classes, with s the
 *            student's FULL softmax(z_s / T) at them (not renormalised over K); the gradient
 *            still reaches every class through s. mse is refused: "--loss mse needs dense
 *            teacher logits (or --topk-missing uniform)".
 *   uniform: a full teacher over C classes: p = exp(logp) at the K classes and the missing
 *            mass max(0, 1 - sum_k exp(logp_k)) spread evenly over the other C - K, each such
 *            probability floored at FLT_MIN (1.2e-38) so its log stays finite; then
 *            t = softmax(log p / T). All seven losses; mse compares z_s with log p.
 * With K == C both equal kd_distill_forward_backward with teacher logits logp. Outputs, grad
 * scale, aliasing, labels and errors as there (topk_idx/topk_logp may be NULL for loss ce;
 * B*K < 2^32 too). An index outside [0, C), or repeated within a row, gives NaN in kd_rows[i]
 * and in row i of dlogits. Cost per row: O(C) like the dense kernel plus O(K*(K/64 + 1)) per
 * work-item to match classes with their top-k entries (no memory of size C or K). */
int kd_distill_topk_forward_backward(kd_device *dev, const kd_distill_config *cfg,
                                     kd_ref ce_rows, kd_ref kd_rows, kd_ref dlogits,
                                     kd_ref logits, kd_ref labels, kd_ref topk_idx,
                                     kd_ref topk_logp, size_t B, size_t C, size_t K,
                                     float grad_scale, kd_error *err);

#endif
