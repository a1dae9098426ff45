/* Per-row losses come back from the device without stalling the queue, and in few commands:
 * step s writes its CE and distillation rows into device slot s's place in a ring of
 * KD_LOSS_SPAN slots (kd_trainer_loss), and the rows of a whole span of steps come back with
 * one non-blocking read (each command costs PoCL ~5 us, a small model's step 150 us). The host
 * folds a span's rows into the sums when the span after next needs its host buffer, or when
 * asked (kd_loss_ring_drain_all), in step order: the sums do not depend on the span. */
#ifndef KD_LOSS_RING_H
#define KD_LOSS_RING_H

#include <stdint.h>

#include "train/trainer.h"

typedef struct kd_loss_ring {
  kd_trainer *t;
  float *host[2];      /* per span buffer: KD_LOSS_SPAN slots of t->loss_slot_floats */
  cl_event ev[2];      /* the read into host[i] (NULL: none pending) */
  int steps[2];        /* steps held by host[i] */
  int64_t step[2][KD_LOSS_SPAN]; /* their step numbers and rows */
  size_t n[2][KD_LOSS_SPAN];
  int cur;             /* the span buffer the steps being enqueued will be read into */
  int filled;          /* steps enqueued into the current span, not yet read */
  int has_kd;          /* distillation rows are read too */
  double alpha;        /* loss = alpha*CE + (1-alpha)*KD when has_kd */
  double last_loss, last_ce, last_kd; /* means of the latest drained step */
  double sum_loss, sum_ce, sum_kd;    /* sums over rows since kd_loss_ring_reset */
  int64_t rows;
} kd_loss_ring;

/* A ring for trainer t's steps. */
int kd_loss_ring_init(kd_loss_ring *r, kd_trainer *t, int has_kd, double alpha, kd_error *err);
/* Waits for reads still pending (without folding them) and frees the buffers. */
void kd_loss_ring_free(kd_loss_ring *r);
/* Zeroes the running sums (start of an epoch). */
void kd_loss_ring_reset(kd_loss_ring *r);
/* The device slot the next step's loss writes (kd_trainer_loss's slot). */
int kd_loss_ring_slot(const kd_loss_ring *r);
/* Records that step `step` (n rows) wrote slot kd_loss_ring_slot; at the end of a span,
 * enqueues its read, first folding the span whose host buffer it reuses. Returns as
 * kd_loss_ring_drain_all. */
int kd_loss_ring_enqueue(kd_loss_ring *r, int64_t step, size_t n, kd_error *err);
/* Reads the steps enqueued so far, waits for every read and folds them, oldest first. Returns
 * 0, -1, or KD_DIVERGED (run.h) with a message naming the step when the loss is NaN or Inf. */
int kd_loss_ring_drain_all(kd_loss_ring *r, kd_error *err);

#endif
