/* Minibatch prefetch: a thread reads the next batch of rows from the HDF5 dataset into host
 * memory while the device computes the current one. Two slots; the caller releases a slot once
 * the device has finished copying from it. */
#ifndef KD_LOADER_H
#define KD_LOADER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

typedef struct kd_batch {
  int64_t *rows; /* dataset row of each sample */
  void *x;       /* n * sample_size elements of the stored type (uint8 or float) */
  int32_t *y;    /* n labels */
  float *t_logits;  /* [n, classes] dense teacher logits, when the loader reads the teacher */
  int32_t *t_idx;   /* [n, K] top-k teacher classes */
  float *t_logp;    /* [n, K] top-k teacher log-probabilities */
  size_t n;      /* rows in this batch (the last batch of an epoch may be short) */
  int64_t first; /* position of the batch's first row in the epoch order */
} kd_batch;

typedef struct kd_loader {
  kd_dataset *ds;
  size_t batch;
  int with_teacher; /* read ds's /teacher rows with every batch */
  int64_t *order; /* the loader's copy of the epoch order */
  int64_t order_len, order_cap;
  int64_t read_pos; /* next position in order for the thread to read */
  kd_batch slots[2];
  int state[2]; /* 0 free, 1 being filled, 2 ready, 3 handed out */
  int next_slot;     /* the slot the consumer gets next */
  int stop, failed;
  kd_error err;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} kd_loader;

/* Allocates two batch slots of `batch` rows and starts the reader thread. With with_teacher,
 * each batch also carries the dataset's /teacher rows (dense logits or top-k). */
int kd_loader_open(kd_loader *l, kd_dataset *ds, size_t batch, int with_teacher, kd_error *err);
/* Starts reading order[start..len) in batches (order is copied); batches read but not yet
 * handed out are dropped. An allocation failure surfaces from the next kd_loader_next. */
void kd_loader_start(kd_loader *l, const int64_t *order, int64_t len, int64_t start);
/* The next batch, blocking until it is read; *out = NULL at the end of the order. Fails with
 * the reader's error message if a read failed. */
int kd_loader_next(kd_loader *l, kd_batch **out, kd_error *err);
/* Gives a batch's slot back to the reader. */
void kd_loader_release(kd_loader *l, kd_batch *b);
void kd_loader_close(kd_loader *l);

#endif
