/* Non-blocking read-back of per-row losses, a span of steps per read, with the divergence
 * check. */
#include "train/loss_ring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/run.h"

int kd_loss_ring_init(kd_loss_ring *r, kd_trainer *t, int has_kd, double alpha, kd_error *err) {
  memset(r, 0, sizeof *r);
  r->t = t;
  r->has_kd = has_kd;
  r->alpha = has_kd ? alpha : 1.0;
  r->last_loss = r->last_ce = r->last_kd = NAN;
  for (int s = 0; s < 2; s++) {
    r->host[s] = malloc(KD_LOSS_SPAN * t->loss_slot_floats * sizeof(float));
    if (!r->host[s]) {
      kd_loss_ring_free(r);
      return kd_fail(err, "out of host memory");
    }
  }
  return 0;
}

void kd_loss_ring_free(kd_loss_ring *r) {
  for (int s = 0; s < 2; s++) {
    if (r->ev[s]) {
      clWaitForEvents(1, &r->ev[s]);
      clReleaseEvent(r->ev[s]);
    }
    free(r->host[s]);
  }
  memset(r, 0, sizeof *r);
}

void kd_loss_ring_reset(kd_loss_ring *r) {
  r->sum_loss = r->sum_ce = r->sum_kd = 0;
  r->rows = 0;
}

int kd_loss_ring_slot(const kd_loss_ring *r) { return r->filled; }

/* Folds one step's rows (slot i of span buffer s) into the sums. */
static int fold_step(kd_loss_ring *r, int s, int i, kd_error *err) {
  const float *ce_rows = r->host[s] + (size_t)i * r->t->loss_slot_floats;
  const float *kd_rows = ce_rows + r->t->loss_slot_floats / 2;
  size_t n = r->n[s][i];
  double ce = 0, kd = 0;
  for (size_t k = 0; k < n; k++) {
    ce += ce_rows[k];
    if (r->has_kd) kd += kd_rows[k];
  }
  r->last_ce = ce / (double)n;
  r->last_kd = r->has_kd ? kd / (double)n : 0;
  r->last_loss = r->alpha * r->last_ce + (1 - r->alpha) * r->last_kd;
  if (!isfinite(r->last_loss))
    return kd_fail(err,
                   "the loss became %s at step %lld; stopping without writing a checkpoint of "
                   "the diverged state (try a lower --lr or --clip-grad-norm)",
                   isnan(r->last_loss) ? "NaN" : "Inf", (long long)r->step[s][i]),
           KD_DIVERGED;
  r->sum_loss += r->last_loss * (double)n;
  r->sum_ce += r->last_ce * (double)n;
  r->sum_kd += r->last_kd * (double)n;
  r->rows += (int64_t)n;
  return 0;
}

/* Waits for span buffer s's read, if one is pending, and folds its steps in order. */
static int drain_span(kd_loss_ring *r, int s, kd_error *err) {
  if (!r->ev[s]) return 0;
  cl_int rc = clWaitForEvents(1, &r->ev[s]);
  clReleaseEvent(r->ev[s]);
  r->ev[s] = NULL;
  if (rc != CL_SUCCESS)
    return kd_fail(err, "reading the losses of steps %lld..%lld back from the device failed: %s",
                   (long long)r->step[s][0], (long long)r->step[s][r->steps[s] - 1],
                   kd_cl_errstr(rc));
  for (int i = 0; i < r->steps[s]; i++) {
    int f = fold_step(r, s, i, err);
    if (f) return f;
  }
  return 0;
}

/* Enqueues the read of the current span's steps into its host buffer and moves on to the
 * other buffer. The buffer held the span before last, older than the other buffer's: it is
 * folded first (the host runs at most two spans ahead of the device). */
static int read_span(kd_loss_ring *r, kd_error *err) {
  if (r->filled == 0) return 0;
  int s = r->cur;
  int rc = drain_span(r, s, err);
  if (rc) return rc;
  kd_trainer *t = r->t;
  KD_CL_CHECK(err, clEnqueueReadBuffer(t->dev->queue, t->work.buf, CL_FALSE,
                                       t->loss_rows * sizeof(float),
                                       (size_t)r->filled * t->loss_slot_floats * sizeof(float),
                                       r->host[s], 0, NULL, &r->ev[s]));
  r->steps[s] = r->filled;
  r->filled = 0;
  r->cur = 1 - s;
  return 0;
}

int kd_loss_ring_enqueue(kd_loss_ring *r, int64_t step, size_t n, kd_error *err) {
  int s = r->cur;
  r->step[s][r->filled] = step;
  r->n[s][r->filled] = n;
  r->filled++;
  return r->filled == KD_LOSS_SPAN ? read_span(r, err) : 0;
}

int kd_loss_ring_drain_all(kd_loss_ring *r, kd_error *err) {
  int rc = read_span(r, err);
  /* The newest read is in the buffer before cur; the older one, if any, in cur's. */
  if (rc == 0) rc = drain_span(r, r->cur, err);
  return rc ? rc : drain_span(r, 1 - r->cur, err);
}
