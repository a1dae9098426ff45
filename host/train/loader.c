/* Minibatch prefetch thread. All HDF5 reads of the training set happen on this thread while
 * it runs (the Debian libhdf5 build is thread-safe, but one reader keeps the I/O simple). */
#include "train/loader.h"

#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"

static void *reader_main(void *arg) {
  kd_loader *l = arg;
  kd_h5_init(); /* HDF5 error printing is switched off per thread */
  pthread_mutex_lock(&l->mu);
  for (;;) {
    int slot = -1;
    while (!l->stop && !l->failed) {
      slot = -1;
      if (l->read_pos < l->order_len) {
        /* fill the slots in consumption order: next_slot first, then the other */
        for (int k = 0; k < 2 && slot < 0; k++) {
          int s = (l->next_slot + k) % 2;
          if (l->state[s] == 0) slot = s;
          else if (l->state[s] != 2 && l->state[s] != 3) break;
        }
      }
      if (slot >= 0) break;
      pthread_cond_wait(&l->cv, &l->mu);
    }
    if (l->stop || l->failed) break;
    kd_batch *b = &l->slots[slot];
    int64_t remaining = l->order_len - l->read_pos;
    b->n = (size_t)(remaining < (int64_t)l->batch ? remaining : (int64_t)l->batch);
    b->first = l->read_pos;
    memcpy(b->rows, l->order + l->read_pos, b->n * sizeof *b->rows);
    l->read_pos += (int64_t)b->n;
    l->state[slot] = 1;
    pthread_mutex_unlock(&l->mu);
    kd_error err = {{0}};
    int rc = kd_dataset_read_rows(l->ds, b->rows, b->n, b->x, b->y, &err);
    if (rc == 0 && l->with_teacher)
      rc = kd_dataset_read_teacher_rows(l->ds, b->rows, b->n, b->t_logits, b->t_idx, b->t_logp,
                                        &err);
    pthread_mutex_lock(&l->mu);
    if (rc) {
      l->failed = 1;
      l->err = err;
    }
    l->state[slot] = 2;
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static void free_slots(kd_loader *l) {
  for (int s = 0; s < 2; s++) {
    kd_batch *b = &l->slots[s];
    free(b->rows);
    free(b->x);
    free(b->y);
    free(b->t_logits);
    free(b->t_idx);
    free(b->t_logp);
  }
}

int kd_loader_open(kd_loader *l, kd_dataset *ds, size_t batch, int with_teacher, kd_error *err) {
  memset(l, 0, sizeof *l);
  l->ds = ds;
  l->batch = batch;
  l->with_teacher = with_teacher && ds->teacher_kind != KD_TEACHER_NONE;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  int dense = l->with_teacher && ds->teacher_kind == KD_TEACHER_LOGITS;
  int topk = l->with_teacher && ds->teacher_kind == KD_TEACHER_TOPK;
  int ok = 1;
  for (int s = 0; s < 2; s++) {
    kd_batch *b = &l->slots[s];
    b->rows = malloc(batch * sizeof(int64_t));
    b->x = malloc(batch * ds->sample_size * elem);
    b->y = malloc(batch * sizeof(int32_t));
    if (dense) b->t_logits = malloc(batch * (size_t)ds->teacher_classes * sizeof(float));
    if (topk) {
      b->t_idx = malloc(batch * (size_t)ds->teacher_k * sizeof(int32_t));
      b->t_logp = malloc(batch * (size_t)ds->teacher_k * sizeof(float));
    }
    ok &= b->rows && b->x && b->y && (!dense || b->t_logits) && (!topk || (b->t_idx && b->t_logp));
  }
  if (!ok) {
    free_slots(l);
    return kd_fail(err, "out of host memory for two batches of %zu rows", batch);
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pthread_create(&l->thread, NULL, reader_main, l) != 0) {
    free_slots(l);
    return kd_fail(err, "cannot start the data reader thread");
  }
  return 0;
}

void kd_loader_start(kd_loader *l, const int64_t *order, int64_t len, int64_t start) {
  pthread_mutex_lock(&l->mu);
  /* Wait for a read in progress so its slot is not handed out under the new order. */
  while (l->state[0] == 1 || l->state[1] == 1) pthread_cond_wait(&l->cv, &l->mu);
  for (int s = 0; s < 2; s++)
    if (l->state[s] == 2) l->state[s] = 0;
  if (len > l->order_cap) {
    int64_t *grown = realloc(l->order, (size_t)len * sizeof *grown);
    if (!grown) {
      l->failed = 1;
      kd_fail(&l->err, "out of host memory for the epoch order of %lld rows", (long long)len);
      pthread_mutex_unlock(&l->mu);
      return;
    }
    l->order = grown;
    l->order_cap = len;
  }
  memcpy(l->order, order, (size_t)len * sizeof *order);
  l->order_len = len;
  l->read_pos = start;
  /* the consumer takes the free slot that is not handed out */
  l->next_slot = (l->state[0] == 3) ? 1 : 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

int kd_loader_next(kd_loader *l, kd_batch **out, kd_error *err) {
  pthread_mutex_lock(&l->mu);
  *out = NULL;
  for (;;) {
    int s = l->next_slot;
    if (l->failed) {
      if (err) *err = l->err;
      pthread_mutex_unlock(&l->mu);
      return -1;
    }
    if (l->state[s] == 2) {
      l->state[s] = 3;
      l->next_slot = 1 - s;
      *out = &l->slots[s];
      break;
    }
    int other_pending = l->state[1 - s] == 1 || l->state[1 - s] == 2;
    if (l->state[s] != 1 && !other_pending && l->read_pos >= l->order_len) break; /* end */
    pthread_cond_wait(&l->cv, &l->mu);
  }
  pthread_mutex_unlock(&l->mu);
  return 0;
}

void kd_loader_release(kd_loader *l, kd_batch *b) {
  pthread_mutex_lock(&l->mu);
  for (int s = 0; s < 2; s++)
    if (&l->slots[s] == b) l->state[s] = 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

void kd_loader_close(kd_loader *l) {
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free_slots(l);
  free(l->order);
  memset(l, 0, sizeof *l);
}
