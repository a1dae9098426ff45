/* Minibatch loading: the whole training set held on the device or in host memory when it
 * fits, else a prefetch thread. All HDF5 reads of a streamed set happen on that thread while it runs (the Debian
 * libhdf5 build is thread-safe, but one reader keeps the I/O simple). */
#include "train/loader.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"

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

/* Rows ahead whose cache lines are requested before they are copied: the rows are scattered
 * over the set, so each copy would otherwise wait on memory (10.5 us per 128-row batch of
 * Fashion-MNIST with teacher logits; 4.8 us with the lines requested 8 rows ahead). */
#define KD_GATHER_AHEAD 8

/* Copies the rows of b (b->rows, b->n) from the whole set in memory into the batch. */
static void gather(const kd_loader *l, kd_batch *b) {
  size_t rb = x_row_bytes(l->ds), tc = teacher_cols(l);
  unsigned char *x = b->x;
  for (size_t i = 0; i < b->n; i++) {
#if defined(__GNUC__)
    if (i + KD_GATHER_AHEAD < b->n) {
      size_t ra = (size_t)b->rows[i + KD_GATHER_AHEAD];
      for (size_t o = 0; o < rb; o += 64) __builtin_prefetch(l->all_x + ra * rb + o);
      __builtin_prefetch(l->all_y + ra);
      if (l->all_logits) __builtin_prefetch(l->all_logits + ra * tc);
      if (l->all_idx) {
        __builtin_prefetch(l->all_idx + ra * tc);
        __builtin_prefetch(l->all_logp + ra * tc);
      }
    }
#endif
    size_t r = (size_t)b->rows[i];
    memcpy(x + i * rb, l->all_x + r * rb, rb);
    b->y[i] = l->all_y[r];
    if (l->all_logits) memcpy(b->t_logits + i * tc, l->all_logits + r * tc, tc * sizeof(float));
    if (l->all_idx) {
      memcpy(b->t_idx + i * tc, l->all_idx + r * tc, tc * sizeof(int32_t));
      memcpy(b->t_logp + i * tc, l->all_logp + r * tc, tc * sizeof(float));
    }
  }
}

/* Reopens dataset *d (`name` in ds's file) with a chunk cache of `cache_bytes`, or, for 0, one
 * for reads in file order: four chunks, at least 1 MiB, when its chunks are filtered (a chunk
 * is decompressed whole, and the rows of one batch are read in file order, so neighbours share
 * it); none when they are not (HDF5 then reads only the selected rows). The cache a dataset
 * has is shared by every handle of it, so the old handle is closed first. A contiguous dataset
 * keeps its handle. *total_bytes (if given) gets the dataset's size as stored in the cache. */
static int reopen_with_cache(kd_dataset *ds, const char *name, hid_t *d, size_t cache_bytes,
                             uint64_t *total_bytes, kd_error *err) {
  if (total_bytes) *total_bytes = UINT64_MAX;
  if (*d < 0) return 0;
  hid_t dcpl = H5Dget_create_plist(*d);
  hid_t type = H5Dget_type(*d);
  hid_t space = H5Dget_space(*d);
  int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED;
  int filtered = chunked && H5Pget_nfilters(dcpl) > 0;
  size_t elem = type >= 0 ? H5Tget_size(type) : 0, chunk_bytes = elem;
  hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (total_bytes && points >= 0 && elem > 0 && (uint64_t)points <= UINT64_MAX / elem)
    *total_bytes = (uint64_t)points * elem;
  if (chunked) {
    hsize_t cd[32];
    int nd = H5Pget_chunk(dcpl, 32, cd);
    for (int i = 0; i < nd && chunk_bytes > 0; i++)
      chunk_bytes = cd[i] > SIZE_MAX / chunk_bytes ? SIZE_MAX : chunk_bytes * (size_t)cd[i];
  }
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (!chunked) return 0;
  const size_t max_bytes = (size_t)512 << 20;
  size_t nbytes = cache_bytes;
  if (nbytes == 0 && filtered) {
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

static void free_all_rows(kd_loader *l) {
  free(l->all_x);
  free(l->all_y);
  free(l->all_logits);
  free(l->all_idx);
  free(l->all_logp);
  l->all_x = NULL;
  l->all_y = NULL;
  l->all_logits = l->all_logp = NULL;
  l->all_idx = NULL;
}

/* The memory budget for a whole set, in bytes: KDCL_DATA_MEMORY MiB, or the default. */
static int resident_budget(uint64_t *bytes, kd_error *err) {
  const char *env = getenv("KDCL_DATA_MEMORY");
  uint64_t mib = KD_LOADER_RESIDENT_MIB;
  if (env && *env) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    if (errno || *end || env[0] == '-' || v > ((uint64_t)1 << 40))
      return kd_fail(err, "KDCL_DATA_MEMORY=%s: expected the MiB a training set may take in "
                     "memory, 0 to %llu (0: always stream it from the file)", env,
                     (unsigned long long)1 << 40);
    mib = v;
  }
  *bytes = mib << 20;
  return 0;
}

/* Whether the whole set fits `budget` bytes. */
static int fits_budget(const kd_loader *l, uint64_t budget) {
  const kd_dataset *ds = l->ds;
  size_t tc = teacher_cols(l);
  int topk = tc && ds->teacher_kind == KD_TEACHER_TOPK;
  size_t per_row = x_row_bytes(ds) + sizeof(int32_t) +
                   tc * (topk ? sizeof(int32_t) + sizeof(float) : sizeof(float));
  return ds->num_rows > 0 && (uint64_t)ds->num_rows <= budget / per_row;
}

/* Reads the whole set into host memory: returns 1 (resident), 0 (the memory was not to be
 * had: stream it), -1 (a read failed). */
static int read_all_rows(kd_loader *l, kd_error *err) {
  kd_dataset *ds = l->ds;
  size_t tc = teacher_cols(l);
  int topk = tc && ds->teacher_kind == KD_TEACHER_TOPK;
  size_t N = (size_t)ds->num_rows;
  l->all_x = malloc(N * x_row_bytes(ds));
  l->all_y = malloc(N * sizeof *l->all_y);
  if (tc && !topk) l->all_logits = malloc(N * tc * sizeof(float));
  if (topk) {
    l->all_idx = malloc(N * tc * sizeof(int32_t));
    l->all_logp = malloc(N * tc * sizeof(float));
  }
  if (!l->all_x || !l->all_y || (tc && !topk && !l->all_logits) ||
      (topk && (!l->all_idx || !l->all_logp))) {
    free_all_rows(l);
    return 0;
  }
  if (kd_dataset_read_all(ds, l->all_x, l->all_y, l->all_logits, l->all_idx, l->all_logp, err)) {
    free_all_rows(l);
    return -1;
  }
  return 1;
}

/* Whether a set that fits the budget is held on the device (a step then gathers its batch
 * there with one launch: no per-step copy over a GPU's bus) or in host memory (batches
 * gathered with memcpy and uploaded): on the device unless it is a CPU, where device memory
 * is host memory and PoCL's gather kernel costs more than the upload and normalisation it
 * replaces (README, Performance). KDCL_DATA_ON_DEVICE=1 or 0 decides instead. */
static int hold_on_device(const kd_device *dev, int *on_device, kd_error *err) {
  const char *env = getenv("KDCL_DATA_ON_DEVICE");
  *on_device = dev && !(dev->info.type & CL_DEVICE_TYPE_CPU);
  if (!env || !*env) return 0;
  if (strcmp(env, "0") && strcmp(env, "1"))
    return kd_fail(err, "KDCL_DATA_ON_DEVICE=%s: expected 1 (hold a training set that fits "
                   "KDCL_DATA_MEMORY on the device) or 0 (in host memory)", env);
  *on_device = dev && env[0] == '1';
  return 0;
}

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

int kd_loader_open(kd_loader *l, kd_dataset *ds, size_t batch, int with_teacher, kd_device *dev,
                   kd_error *err) {
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
  /* Caches for reads in file order: the whole-set read, or batches streamed. */
  uint64_t budget = 0, x_bytes = 0;
  int rc = 0;
  if (resident_budget(&budget, err) ||
      reopen_with_cache(ds, "/inputs/x", &ds->x, 0, &x_bytes, err) ||
      reopen_with_cache(ds, "/labels/y", &ds->y, 0, NULL, err) ||
      (dense && reopen_with_cache(ds, "/teacher/logits", &ds->t_logits, 0, NULL, err)) ||
      (topk && (reopen_with_cache(ds, "/teacher/topk_idx", &ds->t_idx, 0, NULL, err) ||
                reopen_with_cache(ds, "/teacher/topk_logp", &ds->t_logp, 0, NULL, err))))
    rc = -1;
  int on_device = 0;
  if (rc == 0 && hold_on_device(dev, &on_device, err)) rc = -1;
  if (rc == 0 && fits_budget(l, budget)) {
    int got = on_device ? kd_device_set_load(&l->set, dev, ds, l->with_teacher, err)
                        : read_all_rows(l, err);
    if (got < 0) rc = -1;
    l->on_device = on_device && got == 1;
    l->resident = !on_device && got == 1;
  }
  /* Streamed: the budget goes to /inputs/x's chunk cache when that holds at least half of it
   * (a shuffled epoch then finds at least every other row decompressed already); a cache that
   * holds less saves too few decompressions to be worth its memory. */
  if (rc == 0 && !l->on_device && !l->resident && budget > 0 && x_bytes / 2 <= budget &&
      reopen_with_cache(ds, "/inputs/x", &ds->x, (size_t)(x_bytes < budget ? x_bytes : budget),
                        NULL, err))
    rc = -1;
  if (rc < 0) {
    free_slots(l);
    return -1;
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (!l->on_device && !l->resident) {
    if (pthread_create(&l->thread, NULL, reader_main, l) != 0) {
      pthread_mutex_destroy(&l->mu);
      pthread_cond_destroy(&l->cv);
      free_slots(l);
      return kd_fail(err, "cannot start the data reader thread");
    }
    l->thread_started = 1;
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
  kd_error err = {{0}};
  if (l->on_device && kd_device_set_order(&l->set, order, len, &err)) {
    l->failed = 1;
    l->err = err;
  }
  /* the consumer takes the free slot that is not handed out */
  l->next_slot = (l->state[0] == 3) ? 1 : 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

int kd_loader_next(kd_loader *l, kd_batch **out, kd_error *err) {
  pthread_mutex_lock(&l->mu);
  *out = NULL;
  if (l->on_device || l->resident) {
    /* Held whole: on the device a batch is its place in the order; in host memory it is
     * gathered here (a thread hand-off would cost more than the copy). */
    int s = l->next_slot, rc = 0;
    if (l->failed) {
      if (err) *err = l->err;
      rc = -1;
    } else if (l->read_pos < l->order_len) {
      if (l->state[s] != 0) {
        rc = kd_fail(err, "data loader: both batches are still held (release one first)");
      } else {
        kd_batch *b = &l->slots[s];
        int64_t remaining = l->order_len - l->read_pos;
        b->n = (size_t)(remaining < (int64_t)l->batch ? remaining : (int64_t)l->batch);
        b->first = l->read_pos;
        memcpy(b->rows, l->order + l->read_pos, b->n * sizeof *b->rows);
        l->read_pos += (int64_t)b->n;
        for (size_t i = 0; i < b->n && rc == 0 && l->resident; i++)
          if (b->rows[i] < 0 || b->rows[i] >= l->ds->num_rows)
            rc = kd_fail(err, "%s: row %lld requested but /inputs/x has %lld rows", l->ds->path,
                         (long long)b->rows[i], (long long)l->ds->num_rows);
        if (rc == 0) {
          if (l->resident) gather(l, b);
          l->state[s] = 3;
          l->next_slot = 1 - s;
          *out = b;
        }
      }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
  }
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
  if (l->thread_started) pthread_join(l->thread, NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free_slots(l);
  if (l->on_device) kd_device_set_release(&l->set);
  free_all_rows(l);
  free(l->order);
  memset(l, 0, sizeof *l);
}
