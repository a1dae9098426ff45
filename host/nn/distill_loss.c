/* Launchers for the fused distillation losses (kernels/distill_loss.cl) and their settings.
 * Enqueue only. */
#include "nn/distill_loss.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/loss.h"

static const char *const loss_names[] = {"kd", "rkl", "jsd", "skl", "tvd", "mse", "ce"};
#define NUM_LOSSES (sizeof loss_names / sizeof loss_names[0])

void kd_distill_config_defaults(kd_distill_config *c) {
  c->loss = KD_LOSS_KD;
  c->temperature = 4.0f;
  c->alpha = 0.5f;
  c->beta = 0.5f;
  c->skew = 0.1f;
  c->topk_missing = KD_TOPK_DROP;
}

int kd_distill_loss_parse(const char *name, kd_distill_loss *out) {
  if (!name) return -1;
  for (size_t i = 0; i < NUM_LOSSES; i++)
    if (!strcmp(name, loss_names[i])) {
      *out = (kd_distill_loss)i;
      return 0;
    }
  return -1;
}

const char *kd_distill_loss_name(kd_distill_loss l) {
  return (unsigned)l < NUM_LOSSES ? loss_names[l] : "?";
}

int kd_topk_missing_parse(const char *name, kd_topk_missing *out) {
  if (!name) return -1;
  if (!strcmp(name, "drop")) *out = KD_TOPK_DROP;
  else if (!strcmp(name, "uniform")) *out = KD_TOPK_UNIFORM;
  else return -1;
  return 0;
}

int kd_distill_config_check(const kd_distill_config *c, kd_error *err) {
  if ((unsigned)c->loss >= NUM_LOSSES)
    return kd_fail(err, "--loss: unknown loss %d (kd|rkl|jsd|skl|tvd|mse|ce)", (int)c->loss);
  if (c->topk_missing != KD_TOPK_DROP && c->topk_missing != KD_TOPK_UNIFORM)
    return kd_fail(err, "--topk-missing: unknown value %d (drop|uniform)", (int)c->topk_missing);
  if (!(c->temperature > 0.0f && isfinite(c->temperature)))
    return kd_fail(err, "--temperature must be a finite number > 0 (got %g)",
                   (double)c->temperature);
  if (!(c->alpha >= 0.0f && c->alpha <= 1.0f))
    return kd_fail(err, "--alpha must be in [0, 1] (got %g)", (double)c->alpha);
  if (!(c->beta > 0.0f && c->beta < 1.0f))
    return kd_fail(err, "--beta must be in (0, 1) (got %g)", (double)c->beta);
  if (!(c->skew >= 0.0f && c->skew < 1.0f))
    return kd_fail(err, "--skew must be in [0, 1) (got %g)", (double)c->skew);
  return 0;
}

static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

/* Checks shared by both launchers: config, sizes, required buffers, offsets. */
static int check_common(const char *op, const kd_distill_config *cfg, kd_ref ce_rows,
                        kd_ref kd_rows, kd_ref dlogits, kd_ref logits, kd_ref labels, size_t B,
                        size_t C, kd_error *err) {
  if (kd_distill_config_check(cfg, err)) return -1;
  if (B == 0 || C == 0) return kd_fail(err, "%s: empty logits [%zu, %zu]", op, B, C);
  if (C > UINT32_MAX / B)
    return kd_fail(err, "%s: logits [%zu, %zu] exceed the 2^32-element limit of the kernels", op,
                   B, C);
  if (!ce_rows.buf || !kd_rows.buf || !logits.buf || !labels.buf)
    return kd_fail(err, "%s: ce_rows, kd_rows, logits and labels buffers are required", op);
  if (!fits_u32(ce_rows.off, B) || !fits_u32(kd_rows.off, B) || !fits_u32(logits.off, B * C) ||
      !fits_u32(labels.off, B) || (dlogits.buf && !fits_u32(dlogits.off, B * C)))
    return kd_fail(err, "%s: an offset exceeds the 2^32-element limit of the kernels", op);
  return 0;
}

/* alpha as the kernels take it: 1 for loss ce (hard labels only). */
static float effective_alpha(const kd_distill_config *cfg) {
  return cfg->loss == KD_LOSS_CE ? 1.0f : cfg->alpha;
}

int kd_distill_forward_backward(kd_device *dev, const kd_distill_config *cfg, kd_ref ce_rows,
                                kd_ref kd_rows, kd_ref dlogits, kd_ref logits, kd_ref labels,
                                kd_ref teacher_logits, size_t B, size_t C, float grad_scale,
                                kd_error *err) {
  const char *op = "distillation loss";
  if (check_common(op, cfg, ce_rows, kd_rows, dlogits, logits, labels, B, C, err)) return -1;
  int has_t = cfg->loss != KD_LOSS_CE;
  if (has_t && !teacher_logits.buf)
    return kd_fail(err, "%s: --loss %s needs teacher logits", op, kd_distill_loss_name(cfg->loss));
  if (has_t && !fits_u32(teacher_logits.off, B * C))
    return kd_fail(err, "%s: an offset exceeds the 2^32-element limit of the kernels", op);
  int want_grad = dlogits.buf != NULL;
  /* Unused buffers still need a valid cl_mem: pass one the kernel will not touch. */
  kd_ref dl = want_grad ? dlogits : kd_at(ce_rows.buf, 0);
  kd_ref tl = has_t ? teacher_logits : kd_at(logits.buf, 0);
  /* One work-group per row, or 16 narrow rows per work-item on CPUs (host/nn/loss.h). */
  int rows = kd_loss_rows_path(dev, C);
  size_t g = rows ? (B + KD_LOSS_ROWS_V - 1) / KD_LOSS_ROWS_V : B * KD_WG;
  size_t l = rows ? KD_LOSS_ROWS_WG : KD_WG;
  const char *name =
      rows ? "kd_distill_dense_forward_backward_rows" : "kd_distill_dense_forward_backward";
  return KD_RUN(dev, name, 1, &g, &l, err, KD_MEM(ce_rows.buf), KD_UINT(ce_rows.off),
                KD_MEM(kd_rows.buf), KD_UINT(kd_rows.off), KD_MEM(dl.buf), KD_UINT(dl.off),
                KD_INT(want_grad), KD_MEM(logits.buf), KD_UINT(logits.off), KD_MEM(labels.buf),
                KD_UINT(labels.off), KD_MEM(tl.buf), KD_UINT(tl.off), KD_UINT(B), KD_UINT(C),
                KD_INT(cfg->loss), KD_FLOAT(cfg->temperature), KD_FLOAT(effective_alpha(cfg)),
                KD_FLOAT(cfg->beta), KD_FLOAT(cfg->skew), KD_FLOAT(grad_scale));
}

int kd_distill_topk_forward_backward(kd_device *dev, const kd_distill_config *cfg,
                                     kd_ref ce_rows, kd_ref kd_rows, kd_ref dlogits,
                                     kd_ref logits, kd_ref labels, kd_ref topk_idx,
                                     kd_ref topk_logp, size_t B, size_t C, size_t K,
                                     float grad_scale, kd_error *err) {
  const char *op = "distillation loss (top-k teacher)";
  if (check_common(op, cfg, ce_rows, kd_rows, dlogits, logits, labels, B, C, err)) return -1;
  if (cfg->loss == KD_LOSS_MSE && cfg->topk_missing == KD_TOPK_DROP)
    return kd_fail(err, "--loss mse needs dense teacher logits (or --topk-missing uniform)");
  if (K == 0 || K > C)
    return kd_fail(err, "%s: top-k of %zu entries for %zu classes (need 1 <= k <= classes)", op,
                   K, C);
  int has_t = cfg->loss != KD_LOSS_CE;
  if (has_t && (!topk_idx.buf || !topk_logp.buf))
    return kd_fail(err, "%s: --loss %s needs the top-k indices and log-probabilities", op,
                   kd_distill_loss_name(cfg->loss));
  if (has_t && (!fits_u32(topk_idx.off, B * K) || !fits_u32(topk_logp.off, B * K)))
    return kd_fail(err, "%s: an offset exceeds the 2^32-element limit of the kernels", op);
  int want_grad = dlogits.buf != NULL;
  kd_ref dl = want_grad ? dlogits : kd_at(ce_rows.buf, 0);
  kd_ref ti = has_t ? topk_idx : kd_at(labels.buf, 0);
  kd_ref tp = has_t ? topk_logp : kd_at(logits.buf, 0);
  size_t g = B * KD_WG, l = KD_WG;
  return KD_RUN(dev, "kd_distill_topk_forward_backward", 1, &g, &l, err, KD_MEM(ce_rows.buf),
                KD_UINT(ce_rows.off), KD_MEM(kd_rows.buf), KD_UINT(kd_rows.off), KD_MEM(dl.buf),
                KD_UINT(dl.off), KD_INT(want_grad), KD_MEM(logits.buf), KD_UINT(logits.off),
                KD_MEM(labels.buf), KD_UINT(labels.off), KD_MEM(ti.buf), KD_UINT(ti.off),
                KD_MEM(tp.buf), KD_UINT(tp.off), KD_UINT(B), KD_UINT(C), KD_UINT(K),
                KD_INT(cfg->topk_missing == KD_TOPK_UNIFORM), KD_INT(cfg->loss),
                KD_FLOAT(cfg->temperature), KD_FLOAT(effective_alpha(cfg)),
                KD_FLOAT(cfg->beta), KD_FLOAT(cfg->skew), KD_FLOAT(grad_scale));
}
