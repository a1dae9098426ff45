/* Per-row losses come back from the device without stalling the queue: step s reads its CE and
 * distillation rows into ring slot s % 2, and the host waits for that read two steps later,
 * while the step in between is still queued. */
#ifndef KD_LOSS_RING_H
#define KD_LOSS_RING_H

#include <stdint.h>

#include "train/trainer.h"

typedef struct kd_loss_ring {
  float *host[2]; /* per slot: [B] CE rows, then [B] distillation rows */
  cl_event ev[2];
  size_t n[2];
  int64_t step[2];
  size_t batch;
  int has_kd;   /* distillation rows are read too */
  double alpha; /* loss = alpha*CE + (1-alpha)*KD when has_kd */
  double last_loss, last_ce, last_kd;          /* means of the latest drained step */
  double sum_loss, sum_ce, sum_kd;             /* sums over rows since kd_loss_ring_reset */
  int64_t rows;
} kd_loss_ring;

int kd_loss_ring_init(kd_loss_ring *r, size_t batch, int has_kd, double alpha, kd_error *err);
void kd_loss_ring_free(kd_loss_ring *r);
/* Zeroes the running sums (start of an epoch). */
void kd_loss_ring_reset(kd_loss_ring *r);
/* Enqueues the reads of step `step` (n rows) from the trainer's loss rows into its slot. */
int kd_loss_ring_enqueue(kd_loss_ring *r, kd_trainer *t, int64_t step, size_t n, kd_error *err);
/* Waits for slot's read (if any) and folds it into the sums. Returns 0, -1, or KD_DIVERGED
 * (run.h) with a message naming the step when the loss is NaN or Inf. */
int kd_loss_ring_drain(kd_loss_ring *r, int slot, kd_error *err);
/* Drains both slots, oldest first. */
int kd_loss_ring_drain_all(kd_loss_ring *r, kd_error *err);

#endif
