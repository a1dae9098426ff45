/* Minibatch loading: the whole training set held on the device or in host memory when it
 * fits, else streamed through two windows by a reader thread. All HDF5 reads of a streamed set
 * happen on that thread while it runs (the Debian libhdf5 build is thread-safe, but one reader
 * keeps the I/O simple). */
#include "train/loader.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"
#include "runtime/env.h"

/* Bytes per row of the stored inputs, and columns of the teacher rows the loader reads (0:
 * none). */
static size_t x_row_bytes(const kd_dataset *ds) {
  return ds->sample_size * (ds->x_is_u8 ? 1 : sizeof(float));
}
static size_t teacher_cols(const kd_loader *l) {
  if (!l->with_teacher) return 0;
  return (size_t)(l->ds->teacher_kind == KD_TEACHER_TOPK ? l->ds->teacher_k
                                                           : l->ds->teacher_classes);
}
static int topk(const kd_loader *l) {
  return l->with_teacher && l->ds->teacher_kind == KD_TEACHER_TOPK;
}

/* Host bytes of one row of a rowset. */
static size_t row_bytes(const kd_loader *l) {
  size_t tc = teacher_cols(l);
  return x_row_bytes(l->ds) + sizeof(int32_t) +
         tc * (topk(l) ? sizeof(int32_t) + sizeof(float) : sizeof(float));
}

static void rowset_free(kd_rowset *r) {
  free(r->x);
  free(r->y);
  free(r->logits);
  free(r->idx);
  free(r->logp);
  memset(r, 0, sizeof *r);
}

/* Allocates room for `rows` rows; -1 when the memory cannot be had. */
static int rowset_alloc(const kd_loader *l, kd_rowset *r, size_t rows) {
  size_t tc = teacher_cols(l);
  memset(r, 0, sizeof *r);
  r->x = malloc(rows * x_row_bytes(l->ds));
  r->y = malloc(rows * sizeof *r->y);
  if (tc && !topk(l)) r->logits = malloc(rows * tc * sizeof(float));
  if (topk(l)) {
    r->idx = malloc(rows * tc * sizeof(int32_t));
    r->logp = malloc(rows * tc * sizeof(float));
  }
  if (!r->x || !r->y || (tc && !topk(l) && !r->logits) || (topk(l) && (!r->idx || !r->logp))) {
    rowset_free(r);
    return -1;
  }
  return 0;
}

/* Reads dataset rows rows[0..n) into r's first n rows (any order; HDF5 reads them sorted). */
static int rowset_read(kd_loader *l, kd_rowset *r, const int64_t *rows, size_t n, kd_error *err) {
  if (kd_dataset_read_rows(l->ds, rows, n, r->x, r->y, err)) return -1;
  return l->with_teacher
             ? kd_dataset_read_teacher_rows(l->ds, rows, n, r->logits, r->idx, r->logp, err)
             : 0;
}

/* Rows ahead whose cache lines are requested before they are copied: the rows are scattered
 * over the set, so each copy would otherwise wait on memory (10.5 us per 128-row batch of
 * Fashion-MNIST with teacher logits; 4.8 us with the lines requested 8 rows ahead). */
#define KD_GATHER_AHEAD 8

/* Copies b->n rows into the batch: batch row i from row at[i] of src. */
static void gather(const kd_loader *l, const kd_rowset *src, const int64_t *at, kd_batch *b) {
  size_t rb = x_row_bytes(l->ds), tc = teacher_cols(l);
  unsigned char *x = b->x;
  for (size_t i = 0; i < b->n; i++) {
#if defined(__GNUC__)
    if (i + KD_GATHER_AHEAD < b->n) {
      size_t ra = (size_t)at[i + KD_GATHER_AHEAD];
      for (size_t o = 0; o < rb; o += 64) __builtin_prefetch(src->x + ra * rb + o);
      __builtin_prefetch(src->y + ra);
      if (src->logits) __builtin_prefetch(src->logits + ra * tc);
      if (src->idx) {
        __builtin_prefetch(src->idx + ra * tc);
        __builtin_prefetch(src->logp + ra * tc);
      }
    }
#endif
    size_t r = (size_t)at[i];
    memcpy(x + i * rb, src->x + r * rb, rb);
    b->y[i] = src->y[r];
    if (src->logits) memcpy(b->t_logits + i * tc, src->logits + r * tc, tc * sizeof(float));
    if (src->idx) {
      memcpy(b->t_idx + i * tc, src->idx + r * tc, tc * sizeof(int32_t));
      memcpy(b->t_logp + i * tc, src->logp + r * tc, tc * sizeof(float));
    }
  }
}

/* Reopens dataset *d (`name` in ds's file) with a chunk cache for reads in sorted order: four
 * chunks, at least 1 MiB, when its chunks are filtered (a chunk is decompressed whole, and the
 * rows of one read come sorted, so neighbours share it); none when they are not (HDF5 then
 * reads only the selected rows). The cache a dataset has is shared by every handle of it, so
 * the old handle is closed first. A contiguous dataset keeps its handle. *filtered_out (may be
 * NULL) says whether its chunks are filtered (compressed). */
static int reopen_with_cache(kd_dataset *ds, const char *name, hid_t *d, int *filtered_out,
                             kd_error *err) {
  if (filtered_out) *filtered_out = 0;
  if (*d < 0) return 0;
  hid_t dcpl = H5Dget_create_plist(*d);
  hid_t type = H5Dget_type(*d);
  int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED;
  int filtered = chunked && H5Pget_nfilters(dcpl) > 0;
  size_t chunk_bytes = type >= 0 ? H5Tget_size(type) : 0;
  if (chunked) {
    hsize_t cd[32];
    int nd = H5Pget_chunk(dcpl, 32, cd);
    for (int i = 0; i < nd && chunk_bytes > 0; i++)
      chunk_bytes = cd[i] > SIZE_MAX / chunk_bytes ? SIZE_MAX : chunk_bytes * (size_t)cd[i];
  }
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (filtered_out) *filtered_out = filtered;
  if (!chunked) return 0;
  const size_t max_bytes = (size_t)512 << 20;
  size_t nbytes = 0;
  if (filtered) {
    nbytes = chunk_bytes > max_bytes / 4 ? max_bytes : 4 * chunk_bytes;
    if (nbytes < ((size_t)1 << 20)) nbytes = (size_t)1 << 20;
  }
  hid_t dapl = kd_h5_dapl_chunk_cache(nbytes, chunk_bytes);
  if (dapl < 0) return kd_h5_fail(err, "%s: setting the chunk cache of %s", ds->path, name);
  H5Dclose(*d);
  *d = H5Dopen2(ds->file, name, dapl);
  H5Pclose(dapl);
  if (*d < 0) return kd_h5_fail(err, "%s: reopening %s", ds->path, name);
  return 0;
}

/* The memory budget for a whole set, in bytes: KDCL_DATA_MEMORY MiB, or the default. */
static int resident_budget(uint64_t *bytes, kd_error *err) {
  uint64_t mib = KD_LOADER_RESIDENT_MIB;
  int set;
  if (kd_env_uint("KDCL_DATA_MEMORY", (uint64_t)1 << 40,
                  "the MiB a training set may take in memory; 0: always stream it", &mib, &set,
                  err))
    return -1;
  *bytes = mib << 20;
  return 0;
}

/* Whether the whole set fits `budget` bytes. */
static int fits_budget(const kd_loader *l, uint64_t budget) {
  return l->ds->num_rows > 0 && (uint64_t)l->ds->num_rows <= budget / row_bytes(l);
}

/* Whether a set that fits the budget is held on the device (a step then gathers its batch
 * there with one launch: no per-step copy over a GPU's bus) or in host memory (batches
 * gathered with memcpy and uploaded): on the device unless it is a CPU, where device memory
 * is host memory and PoCL's gather kernel costs more than the upload and normalisation it
 * replaces (README, Performance). KDCL_DATA_ON_DEVICE=1 or 0 decides instead. */
static int hold_on_device(const kd_device *dev, int *on_device, kd_error *err) {
  uint64_t v = 0;
  int set;
  if (kd_env_uint("KDCL_DATA_ON_DEVICE", 1,
                  "1: hold a training set that fits KDCL_DATA_MEMORY on the device, 0: in host "
                  "memory", &v, &set, err))
    return -1;
  *on_device = dev && (set ? v == 1 : !(dev->info.type & CL_DEVICE_TYPE_CPU));
  return 0;
}

/* (dataset row, position) pairs, sorted by row then position. */
typedef struct row_at {
  int64_t row, pos;
} row_at;
static int by_row(const void *a, const void *b) {
  const row_at *x = a, *y = b;
  if (x->row != y->row) return x->row < y->row ? -1 : 1;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Reads window w's rows (order[0..w->count): the rows of its positions) in file order, each
 * distinct row once, straight into w->rows; w->slot maps each position to its row there.
 * pairs has room for w->count. */
static int read_window(kd_loader *l, kd_window *w, const int64_t *order, row_at *pairs,
                       kd_error *err) {
  size_t count = (size_t)w->count, distinct = 0;
  for (size_t i = 0; i < count; i++) pairs[i] = (row_at){order[i], (int64_t)i};
  qsort(pairs, count, sizeof *pairs, by_row);
  for (size_t i = 0; i < count; i++) {
    if (i == 0 || pairs[i].row != pairs[i - 1].row) w->file_rows[distinct++] = pairs[i].row;
    w->slot[pairs[i].pos] = (int64_t)distinct - 1;
  }
  return rowset_read(l, &w->rows, w->file_rows, distinct, err);
}

/* The reader thread of a streamed set: fills a free window with the rows of the next
 * window_rows positions of the order, until the order is read or the loader stops. */
static void *reader_main(void *arg) {
  kd_loader *l = arg;
  kd_h5_init(); /* HDF5 error printing is switched off per thread */
  row_at *pairs = malloc(l->window_rows * sizeof *pairs);
  int64_t *order = malloc(l->window_rows * sizeof *order);
  pthread_mutex_lock(&l->mu);
  if (!pairs || !order) {
    l->failed = 1;
    kd_fail(&l->err, "out of host memory for a window of %zu rows", l->window_rows);
    pthread_cond_broadcast(&l->cv);
  }
  for (;;) {
    kd_window *w = NULL;
    while (!l->stop && !l->failed) {
      for (int k = 0; k < 2 && !w && l->fill_pos < l->order_len; k++)
        if (l->win[k].state == 0) w = &l->win[k];
      if (w) break;
      pthread_cond_wait(&l->cv, &l->mu);
    }
    if (l->stop || l->failed) break;
    int64_t remaining = l->order_len - l->fill_pos;
    w->first = l->fill_pos;
    w->count = remaining < (int64_t)l->window_rows ? remaining : (int64_t)l->window_rows;
    memcpy(order, l->order + w->first, (size_t)w->count * sizeof *order);
    l->fill_pos += w->count;
    w->state = 1;
    pthread_mutex_unlock(&l->mu);
    kd_error err = {{0}};
    int rc = read_window(l, w, order, pairs, &err);
    pthread_mutex_lock(&l->mu);
    if (rc) {
      l->failed = 1;
      l->err = err;
    }
    w->state = 2;
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  free(pairs);
  free(order);
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

static void free_windows(kd_loader *l) {
  for (int k = 0; k < 2; k++) {
    rowset_free(&l->win[k].rows);
    free(l->win[k].file_rows);
    free(l->win[k].slot);
    l->win[k].file_rows = l->win[k].slot = NULL;
  }
}

/* Host bytes per row of a window besides the row itself: its file_rows and slot entries, and
 * the thread's order copy and sorting pair (shared by both windows). */
#define KD_WINDOW_ROW_OVERHEAD (2 * sizeof(int64_t) + 3 * sizeof(int64_t) / 2)

/* Two windows of an eighth of the budget each, a whole number of batches (at least one, and no
 * more than the set's rows need). Bigger windows read a compressed file's chunks fewer times
 * (Fashion-MNIST tiled to 600,000 rows: 47 s an epoch with windows of a quarter, 73 s with an
 * eighth, 131 s a batch at a time), but an eighth keeps a streamed run's peak memory below that
 * of a run that holds a set of most of the budget (1.02x against 1.10x). */
static int alloc_windows(kd_loader *l, uint64_t budget, kd_error *err) {
  uint64_t rows = budget / 8 / (row_bytes(l) + KD_WINDOW_ROW_OVERHEAD);
  uint64_t set_rows = ((uint64_t)l->ds->num_rows + l->batch - 1) / l->batch * l->batch;
  if (rows > set_rows) rows = set_rows;
  rows = rows / l->batch * l->batch;
  if (rows < l->batch) rows = l->batch;
  l->window_rows = (size_t)rows;
  for (int k = 0; k < 2; k++) {
    l->win[k].file_rows = malloc(l->window_rows * sizeof(int64_t));
    l->win[k].slot = malloc(l->window_rows * sizeof(int64_t));
    if (!l->win[k].file_rows || !l->win[k].slot ||
        rowset_alloc(l, &l->win[k].rows, l->window_rows)) {
      free_windows(l);
      return kd_fail(err, "out of host memory for two windows of %zu rows of %s (%.1f MiB; "
                     "KDCL_DATA_MEMORY sets the budget)", l->window_rows, l->ds->path,
                     2.0 * (double)l->window_rows * (double)row_bytes(l) / 1048576.0);
    }
  }
  return 0;
}

int kd_loader_open(kd_loader *l, kd_dataset *ds, size_t batch, int with_teacher, kd_device *dev,
                   kd_error *err) {
  memset(l, 0, sizeof *l);
  l->ds = ds;
  l->batch = batch;
  l->with_teacher = with_teacher && ds->teacher_kind != KD_TEACHER_NONE;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  int dense = l->with_teacher && ds->teacher_kind == KD_TEACHER_LOGITS;
  int ok = 1;
  for (int s = 0; s < 2; s++) {
    kd_batch *b = &l->slots[s];
    b->rows = malloc(batch * sizeof(int64_t));
    b->x = malloc(batch * ds->sample_size * elem);
    b->y = malloc(batch * sizeof(int32_t));
    if (dense) b->t_logits = malloc(batch * (size_t)ds->teacher_classes * sizeof(float));
    if (topk(l)) {
      b->t_idx = malloc(batch * (size_t)ds->teacher_k * sizeof(int32_t));
      b->t_logp = malloc(batch * (size_t)ds->teacher_k * sizeof(float));
    }
    ok &= b->rows && b->x && b->y && (!dense || b->t_logits) &&
          (!topk(l) || (b->t_idx && b->t_logp));
  }
  if (!ok) {
    free_slots(l);
    return kd_fail(err, "out of host memory for two batches of %zu rows", batch);
  }
  /* Caches for reads in sorted order: the whole-set read, or windows. */
  uint64_t budget = 0;
  int rc = 0, on_device = 0;
  if (resident_budget(&budget, err) || hold_on_device(dev, &on_device, err) ||
      reopen_with_cache(ds, "/inputs/x", &ds->x, &l->x_filtered, err) ||
      reopen_with_cache(ds, "/labels/y", &ds->y, NULL, err) ||
      (dense && reopen_with_cache(ds, "/teacher/logits", &ds->t_logits, NULL, err)) ||
      (topk(l) && (reopen_with_cache(ds, "/teacher/topk_idx", &ds->t_idx, NULL, err) ||
                   reopen_with_cache(ds, "/teacher/topk_logp", &ds->t_logp, NULL, err))))
    rc = -1;
  if (rc == 0 && fits_budget(l, budget)) {
    int got;
    if (on_device) {
      got = kd_device_set_load(&l->set, dev, ds, l->with_teacher, err);
    } else {
      got = rowset_alloc(l, &l->all, (size_t)ds->num_rows) ? 0 : 1;
      if (got && kd_dataset_read_all(ds, l->all.x, l->all.y, l->all.logits, l->all.idx,
                                     l->all.logp, err)) {
        rowset_free(&l->all);
        got = -1;
      }
    }
    if (got < 0) rc = -1;
    l->on_device = on_device && got == 1;
    l->resident = !on_device && got == 1;
  }
  if (rc == 0 && !l->on_device && !l->resident &&
      alloc_windows(l, budget, err))
    rc = -1;
  if (rc < 0) {
    free_windows(l);
    free_slots(l);
    return -1;
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (!l->on_device && !l->resident) {
    if (pthread_create(&l->thread, NULL, reader_main, l) != 0) {
      pthread_mutex_destroy(&l->mu);
      pthread_cond_destroy(&l->cv);
      free_windows(l);
      free_slots(l);
      return kd_fail(err, "cannot start the data reader thread");
    }
    l->thread_started = 1;
  }
  return 0;
}

void kd_loader_start(kd_loader *l, const int64_t *order, int64_t len, int64_t start) {
  pthread_mutex_lock(&l->mu);
  /* Wait for a window being read so it is not handed out under the new order. */
  while (l->win[0].state == 1 || l->win[1].state == 1) pthread_cond_wait(&l->cv, &l->mu);
  l->win[0].state = l->win[1].state = 0;
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
  l->read_pos = l->fill_pos = start;
  kd_error err = {{0}};
  if (l->on_device && kd_device_set_order(&l->set, order, len, &err)) {
    l->failed = 1;
    l->err = err;
  }
  /* the consumer takes the slot that is not handed out */
  l->next_slot = (l->state[0] == 3) ? 1 : 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

/* The ready window holding position pos, or NULL. */
static kd_window *window_at(kd_loader *l, int64_t pos) {
  for (int k = 0; k < 2; k++) {
    kd_window *w = &l->win[k];
    if (w->state == 2 && w->first <= pos && pos < w->first + w->count) return w;
  }
  return NULL;
}

int kd_loader_next(kd_loader *l, kd_batch **out, kd_error *err) {
  pthread_mutex_lock(&l->mu);
  *out = NULL;
  int rc = 0;
  kd_window *w = NULL;
  for (;;) {
    if (l->failed) {
      if (err) *err = l->err;
      rc = -1;
      break;
    }
    if (l->read_pos >= l->order_len) break; /* the end of the order */
    if (l->on_device || l->resident || (w = window_at(l, l->read_pos)) != NULL) break;
    pthread_cond_wait(&l->cv, &l->mu);
  }
  if (rc == 0 && l->read_pos < l->order_len) {
    int s = l->next_slot;
    if (l->state[s] != 0) {
      rc = kd_fail(err, "data loader: both batches are still held (release one first)");
    } else {
      kd_batch *b = &l->slots[s];
      int64_t remaining = l->order_len - l->read_pos;
      b->n = (size_t)(remaining < (int64_t)l->batch ? remaining : (int64_t)l->batch);
      b->first = l->read_pos;
      memcpy(b->rows, l->order + l->read_pos, b->n * sizeof *b->rows);
      for (size_t i = 0; i < b->n && rc == 0 && l->resident; i++)
        if (b->rows[i] < 0 || b->rows[i] >= l->ds->num_rows)
          rc = kd_fail(err, "%s: row %lld requested but /inputs/x has %lld rows", l->ds->path,
                       (long long)b->rows[i], (long long)l->ds->num_rows);
      if (rc == 0) {
        if (l->resident) gather(l, &l->all, b->rows, b);
        if (w) {
          /* windows hold whole batches: the batch lies inside w */
          gather(l, &w->rows, w->slot + (l->read_pos - w->first), b);
          if (l->read_pos + (int64_t)b->n >= w->first + w->count) {
            w->state = 0; /* used up: the thread may read the next window into it */
            pthread_cond_broadcast(&l->cv);
          }
        }
        l->read_pos += (int64_t)b->n;
        l->state[s] = 3;
        l->next_slot = 1 - s;
        *out = b;
      }
    }
  }
  pthread_mutex_unlock(&l->mu);
  return rc;
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
  if (l->thread_started) pthread_join(l->thread, NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free_slots(l);
  free_windows(l);
  if (l->on_device) kd_device_set_release(&l->set);
  rowset_free(&l->all);
  free(l->order);
  memset(l, 0, sizeof *l);
}
