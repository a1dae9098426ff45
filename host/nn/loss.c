/* Launchers for the fused loss kernels (kernels/loss.cl). Enqueue only. */
#include "nn/loss.h"

#include <stdint.h>

static int fits_u32(size_t off, size_t n) { return off <= UINT32_MAX && n <= UINT32_MAX - off; }

int kd_loss_rows_path(const kd_device *dev, size_t C) {
  return (dev->info.type & CL_DEVICE_TYPE_CPU) && C <= KD_LOSS_ROWS_MAX_CLASSES;
}

int kd_softmax_ce_forward_backward(kd_device *dev, kd_ref loss_rows, kd_ref dlogits,
                                   kd_ref logits, kd_ref labels, size_t B, size_t C,
                                   float grad_scale, kd_error *err) {
  const char *op = "softmax cross-entropy";
  if (B == 0 || C == 0) return kd_fail(err, "%s: empty logits [%zu, %zu]", op, B, C);
  if (C > UINT32_MAX / B)
    return kd_fail(err, "%s: logits [%zu, %zu] exceed the 2^32-element limit of the kernels", op,
                   B, C);
  if (!loss_rows.buf || !logits.buf || !labels.buf)
    return kd_fail(err, "%s: loss_rows, logits and labels buffers are required", op);
  if (!fits_u32(loss_rows.off, B) || !fits_u32(logits.off, B * C) || !fits_u32(labels.off, B) ||
      (dlogits.buf && !fits_u32(dlogits.off, B * C)))
    return kd_fail(err, "%s: an offset exceeds the 2^32-element limit of the kernels", op);
  int want_grad = dlogits.buf != NULL;
  /* One work-group per row (global = B groups of KD_WG), or 16 narrow rows per work-item. */
  int rows = kd_loss_rows_path(dev, C);
  size_t g = rows ? (B + KD_LOSS_ROWS_V - 1) / KD_LOSS_ROWS_V : B * KD_WG;
  size_t l = rows ? KD_LOSS_ROWS_WG : KD_WG;
  const char *name =
      rows ? "kd_softmax_ce_forward_backward_rows" : "kd_softmax_ce_forward_backward";
  return KD_RUN(dev, name, 1, &g, &l, err, KD_MEM(loss_rows.buf),
                KD_UINT(loss_rows.off), KD_MEM(want_grad ? dlogits.buf : loss_rows.buf),
                KD_UINT(want_grad ? dlogits.off : 0), KD_INT(want_grad), KD_MEM(logits.buf),
                KD_UINT(logits.off), KD_MEM(labels.buf), KD_UINT(labels.off), KD_UINT(B),
                KD_UINT(C), KD_FLOAT(grad_scale));
}
