/* Non-blocking read-back of per-row losses, with the divergence check. */
#include "train/loss_ring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/run.h"

int kd_loss_ring_init(kd_loss_ring *r, size_t batch, int has_kd, double alpha, kd_error *err) {
  memset(r, 0, sizeof *r);
  r->batch = batch;
  r->has_kd = has_kd;
  r->alpha = has_kd ? alpha : 1.0;
  r->last_loss = r->last_ce = r->last_kd = NAN;
  for (int s = 0; s < 2; s++) {
    r->host[s] = malloc(2 * batch * sizeof(float));
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

int kd_loss_ring_enqueue(kd_loss_ring *r, kd_trainer *t, int64_t step, size_t n, kd_error *err) {
  int slot = (int)(step % 2);
  cl_command_queue q = t->dev->queue;
  cl_event *ev = &r->ev[slot];
  KD_CL_CHECK(err, clEnqueueReadBuffer(q, t->work.buf, CL_FALSE, t->loss_rows * sizeof(float),
                                       n * sizeof(float), r->host[slot], 0, NULL,
                                       r->has_kd ? NULL : ev));
  if (r->has_kd)
    KD_CL_CHECK(err, clEnqueueReadBuffer(q, t->work.buf, CL_FALSE, t->kd_rows * sizeof(float),
                                         n * sizeof(float), r->host[slot] + r->batch, 0, NULL,
                                         ev));
  r->n[slot] = n;
  r->step[slot] = step;
  return 0;
}

int kd_loss_ring_drain(kd_loss_ring *r, int slot, kd_error *err) {
  if (!r->ev[slot]) return 0;
  cl_int rc = clWaitForEvents(1, &r->ev[slot]);
  clReleaseEvent(r->ev[slot]);
  r->ev[slot] = NULL;
  if (rc != CL_SUCCESS)
    return kd_fail(err, "reading the loss of step %lld back from the device failed: %s",
                   (long long)r->step[slot], kd_cl_errstr(rc));
  size_t n = r->n[slot];
  double ce = 0, kd = 0;
  for (size_t i = 0; i < n; i++) {
    ce += r->host[slot][i];
    if (r->has_kd) kd += r->host[slot][r->batch + i];
  }
  r->last_ce = ce / (double)n;
  r->last_kd = r->has_kd ? kd / (double)n : 0;
  r->last_loss = r->alpha * r->last_ce + (1 - r->alpha) * r->last_kd;
  if (!isfinite(r->last_loss))
    return kd_fail(err,
                   "the loss became %s at step %lld; stopping without writing a checkpoint of "
                   "the diverged state (try a lower --lr or --clip-grad-norm)",
                   isnan(r->last_loss) ? "NaN" : "Inf", (long long)r->step[slot]),
           KD_DIVERGED;
  r->sum_loss += r->last_loss * (double)n;
  r->sum_ce += r->last_ce * (double)n;
  r->sum_kd += r->last_kd * (double)n;
  r->rows += (int64_t)n;
  return 0;
}

int kd_loss_ring_drain_all(kd_loss_ring *r, kd_error *err) {
  int first = r->step[0] < r->step[1] ? 0 : 1;
  int rc = kd_loss_ring_drain(r, first, err);
  return rc ? rc : kd_loss_ring_drain(r, 1 - first, err);
}
