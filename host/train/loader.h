/* Minibatch loading. A training set that fits KD_LOADER_RESIDENT_MIB is read once, in file
 * order: into device memory (train/device_set.h), where a batch is then only its place in the
 * epoch order and the step gathers its rows there (train/feed.h); or, on CPU devices, into
 * host memory, from where each batch is gathered with memcpy and uploaded. Random rows read
 * through HDF5 cost microseconds each, a whole step's worth of a small model's device time. A
 * larger set is streamed: a thread reads the rows of the next window of the epoch order (an
 * eighth of the budget) while batches are copied out of the current one. Every way, the steps see the
 * same bytes. Two batch slots; the caller releases a slot once the device has finished copying
 * from it. */
#ifndef KD_LOADER_H
#define KD_LOADER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "train/device_set.h"

/* A batch: its rows, and for a streamed set their contents in host memory. */
typedef struct kd_batch {
  int64_t *rows; /* dataset row of each sample */
  void *x;       /* n * sample_size elements of the stored type (uint8 or float) */
  int32_t *y;    /* n labels */
  float *t_logits;  /* [n, classes] dense teacher logits, when the loader reads the teacher */
  int32_t *t_idx;   /* [n, K] top-k teacher classes */
  float *t_logp;    /* [n, K] top-k teacher log-probabilities */
  /* x, y and the teacher rows are filled unless the set is on the device */
  size_t n;      /* rows in this batch (the last batch of an epoch may be short) */
  int64_t first; /* position of the batch's first row in the epoch order */
} kd_batch;

/* The memory, in MiB, a training set's rows (inputs, labels and the teacher rows the loader
 * reads) may take to be held whole; a set that does not fit is streamed through two windows
 * of an eighth of it each, so a run's data memory stays within it however many rows the set
 * has.
 * The environment variable KDCL_DATA_MEMORY (MiB; 0: always stream, a batch at a time)
 * replaces it. */
#define KD_LOADER_RESIDENT_MIB 64

/* Rows in host memory: inputs of the stored type, labels, and the teacher rows the loader
 * reads (dense logits, or top-k classes and log-probabilities). */
typedef struct kd_rowset {
  unsigned char *x;
  int32_t *y;
  float *logits, *logp;
  int32_t *idx;
} kd_rowset;

/* A streamed set's window: the rows of positions [first, first + count) of the epoch order,
 * read by the thread in one call in file order (each chunk of the file is then read and
 * decompressed once per window rather than once per row), straight into rows. */
typedef struct kd_window {
  kd_rowset rows;      /* the window's distinct dataset rows, in file order */
  int64_t *file_rows;  /* [count] which dataset rows those are (sorted, distinct) */
  int64_t *slot;       /* [count] position first + i of the order is rows' row slot[i] */
  int64_t first, count;
  int state; /* 0 free, 1 being read, 2 ready */
} kd_window;

typedef struct kd_loader {
  kd_dataset *ds;
  size_t batch;
  int with_teacher; /* read ds's /teacher rows with every batch */
  int x_filtered;   /* /inputs/x is stored compressed (filtered chunks) */
  /* how the set is held: on the device (batches are positions in the order), in host memory
   * (all, indexed by dataset row; batches gathered on the spot), or streamed (windows read by
   * the thread) */
  int on_device;
  kd_device_set set;
  int resident;
  kd_rowset all;
  kd_window win[2];
  size_t window_rows; /* a whole number of batches */
  int64_t fill_pos;   /* next position of the order the thread reads into a window */
  int thread_started;
  int64_t *order; /* the loader's copy of the epoch order */
  int64_t order_len, order_cap;
  int64_t read_pos; /* next position of the order to hand out */
  kd_batch slots[2];
  int state[2];  /* 0 free, 3 handed out */
  int next_slot; /* the slot the consumer gets next */
  int stop, failed;
  kd_error err;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} kd_loader;

/* Allocates two batch slots of `batch` rows; reads the whole set, when it fits
 * KD_LOADER_RESIDENT_MIB, onto dev (unless it is a CPU; KDCL_DATA_ON_DEVICE=1/0 decides
 * instead; dev NULL: never) or into host memory; if the memory cannot be had there, or the set
 * does not fit, allocates two windows and starts the reader thread. The datasets the loader
 * reads are reopened (ds's handles replaced) with chunk caches for reads in sorted order: a
 * few chunks (none for uncompressed ones, which HDF5 then reads row by row). With
 * with_teacher, each batch also carries the dataset's /teacher rows (dense logits or top-k). */
int kd_loader_open(kd_loader *l, kd_dataset *ds, size_t batch, int with_teacher, kd_device *dev,
                   kd_error *err);
/* Starts reading order[start..len) in batches (order is copied; on the device, without
 * blocking); batches read but not yet handed out are dropped. A failure (memory, a row out of
 * range, the copy to the device) surfaces from the next kd_loader_next. */
void kd_loader_start(kd_loader *l, const int64_t *order, int64_t len, int64_t start);
/* The next batch, blocking until it is read; *out = NULL at the end of the order. Fails with
 * the reader's error message if a read failed. */
int kd_loader_next(kd_loader *l, kd_batch **out, kd_error *err);
/* Gives a batch's slot back to the reader. */
void kd_loader_release(kd_loader *l, kd_batch *b);
void kd_loader_close(kd_loader *l);

#endif
