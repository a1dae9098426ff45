/* Losses fused with their gradient: one kernel launch computes the per-row loss values and
 * d(loss)/d(logits) in one pass over each row. Enqueue only; 0, or -1 with a message. */
#ifndef KD_LOSS_H
#define KD_LOSS_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* Softmax cross-entropy over rows of logits [B, C] (row-major; a row is a sample or, later, a
 * token), numerically stable (row max subtracted, log-sum-exp):
 *   loss_rows[i]   = -log softmax(z_i)[y_i]                        (loss_rows: B floats)
 *   dlogits[i, :]  = (softmax(z_i) - onehot(y_i)) * grad_scale      (dlogits.buf NULL: none)
 * labels are int32 [B] (labels.off in int32 elements). A label outside [0, C) gives NaN in
 * loss_rows[i] and in row i of dlogits (callers validate labels first). grad_scale is usually
 * 1/B for a mean loss. dlogits may alias logits. One launch;
 * deterministic. B, C > 0 and B*C < 2^32. */
/* On CPU devices, rows of at most this many classes run KD_LOSS_ROWS_V to a work-item, one per
 * vector lane (kernels named *_rows), which is several times faster there than a work-group
 * per row with its barriers; they agree with the work-group kernels to float rounding. Work-group
 * size KD_LOSS_ROWS_WG (kernels/common.h KD_ROWS_WG). */
#define KD_LOSS_ROWS_MAX_CLASSES 256
#define KD_LOSS_ROWS_V 16
#define KD_LOSS_ROWS_WG 2

/* Whether rows of C classes take the *_rows kernels on this device. */
int kd_loss_rows_path(const kd_device *dev, size_t C);

int kd_softmax_ce_forward_backward(kd_device *dev, kd_ref loss_rows, kd_ref dlogits,
                                   kd_ref logits, kd_ref labels, size_t B, size_t C,
                                   float grad_scale, kd_error *err);

#endif
