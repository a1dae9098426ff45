/* kdcl bench: GEMM throughput against a double reference, and the training step on synthetic
 * data with its kernel profile, arena sizes and peak RSS; with --data, the step fed from a file
 * through the training loader against the batch already on the device. */
#include "train/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "data/dataset.h"
#include "nn/gemm.h"
#include "nn/model.h"
#include "runtime/launch_log.h"
#include "train/feed.h"
#include "train/loader.h"
#include "train/loss_ring.h"
#include "train/rng.h"
#include "train/trainer.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

long kd_peak_rss_kib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss; /* KiB on Linux */
}

/* xorshift64*: reproducible inputs without touching the training RNG. */
static uint64_t next_u64(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}
static float uniform_pm1(uint64_t *s) { return (float)((next_u64(s) >> 40) * 0x1p-23) - 1.0f; }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static cl_mem make_buffer(kd_device *dev, size_t floats, const float *init, kd_error *err) {
  cl_int rc;
  cl_mem m = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, (floats ? floats : 1) * sizeof(float),
                            NULL, &rc);
  if (rc != CL_SUCCESS) {
    kd_fail(err, "allocating %zu floats on the device failed: %s", floats, kd_cl_errstr(rc));
    return NULL;
  }
  if (init && floats &&
      (rc = clEnqueueWriteBuffer(dev->queue, m, CL_TRUE, 0, floats * sizeof(float), init, 0, NULL,
                                 NULL)) != CL_SUCCESS) {
    clReleaseMemObject(m);
    kd_fail(err, "writing %zu floats to the device failed: %s", floats, kd_cl_errstr(rc));
    return NULL;
  }
  return m;
}

/* ---- GEMM ---- */

int kd_bench_gemm(kd_device *dev, const kd_bench_gemm_opts *o, kd_bench_gemm_result *r,
                  kd_error *err) {
  memset(r, 0, sizeof *r);
  size_t M = o->m, N = o->n, K = o->k;
  if (!M || !N || !K) return kd_fail(err, "bench gemm: M, N and K must be positive");
  const uint64_t max_elems = (uint64_t)1 << 28; /* 1 GiB of floats per matrix */
  if ((uint64_t)M * K > max_elems || (uint64_t)K * N > max_elems || (uint64_t)M * N > max_elems)
    return kd_fail(err, "bench gemm: M=%zu N=%zu K=%zu: a matrix of more than 2^28 elements "
                   "(M*K, K*N and M*N must each be at most 268435456)", M, N, K);
  size_t lda = o->trans_a ? M : K, ldb = o->trans_b ? K : N, ldc = N;
  size_t rows_a = o->trans_a ? K : M, rows_b = o->trans_b ? N : K;
  size_t na = rows_a * lda, nb = rows_b * ldb, nc = M * ldc;
  float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
  double *times = malloc((size_t)(o->repeat > 0 ? o->repeat : 1) * sizeof *times);
  cl_mem da = NULL, db = NULL, dc = NULL;
  int rc = -1;
  if (!a || !b || !c || !times) {
    kd_fail(err, "out of host memory for M=%zu N=%zu K=%zu", M, N, K);
    goto done;
  }
  uint64_t s = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < na; i++) a[i] = uniform_pm1(&s);
  for (size_t i = 0; i < nb; i++) b[i] = uniform_pm1(&s);
  if (!(da = make_buffer(dev, na, a, err)) || !(db = make_buffer(dev, nb, b, err)) ||
      !(dc = make_buffer(dev, nc, NULL, err)))
    goto done;

#define CALL()                                                                               \
  kd_gemm(dev, o->trans_a, o->trans_b, M, N, K, 1.0f, da, 0, lda, db, 0, ldb, 0.0f, dc, 0, ldc, \
          err)
  /* The first call builds kernels (CLBlast compiles on first use); then one timed call sizes a
   * sample to ~10 ms, so launch overhead is averaged the way a step's queue averages it. */
  if (CALL() || kd_device_finish(dev, err)) goto done;
  double t0 = now_ms();
  if (CALL() || kd_device_finish(dev, err)) goto done;
  double once = now_ms() - t0;
  int calls = once >= 10.0 ? 1 : (int)(10.0 / (once > 1e-3 ? once : 1e-3)) + 1;
  if (calls > 10000) calls = 10000;
  r->calls_per_sample = calls;
  int reps = o->repeat > 0 ? o->repeat : 1;
  for (int i = 0; i < reps; i++) {
    t0 = now_ms();
    for (int j = 0; j < calls; j++)
      if (CALL()) goto done;
    if (kd_device_finish(dev, err)) goto done;
    times[i] = (now_ms() - t0) / calls;
  }
#undef CALL
  r->best_ms = times[0];
  for (int i = 1; i < reps; i++)
    if (times[i] < r->best_ms) r->best_ms = times[i];
  r->median_ms = median(times, reps);
  double flop = 2.0 * (double)M * (double)N * (double)K;
  r->best_gflops = flop / (r->best_ms * 1e6);
  r->median_gflops = flop / (r->median_ms * 1e6);

  KD_CL_CHECK(err, clEnqueueReadBuffer(dev->queue, dc, CL_TRUE, 0, nc * sizeof(float), c, 0,
                                       NULL, NULL));
  /* The four corners, and random elements up to 1024 (all of them when fewer). */
  size_t total = M * N, want = total < 1024 ? total : 1024;
  for (size_t e = 0; e < want; e++) {
    size_t i, j;
    if (want == total) {
      i = e / N;
      j = e % N;
    } else if (e < 4) {
      i = e & 1 ? M - 1 : 0;
      j = e & 2 ? N - 1 : 0;
    } else {
      i = (size_t)(next_u64(&s) % M);
      j = (size_t)(next_u64(&s) % N);
    }
    double ref = 0, mag = 0;
    for (size_t k = 0; k < K; k++) {
      double p = (double)(o->trans_a ? a[k * lda + i] : a[i * lda + k]) *
                 (double)(o->trans_b ? b[j * ldb + k] : b[k * ldb + j]);
      ref += p;
      mag += fabs(p);
    }
    double d = fabs((double)c[i * ldc + j] - ref);
    if (!(d <= r->max_abs_err)) r->max_abs_err = d; /* NaN sticks */
    double rel = mag > 0 ? d / mag : d;
    if (!(rel <= r->max_rel_err)) r->max_rel_err = rel;
  }
  r->checked = want;
  rc = 0;
done:
  if (da) clReleaseMemObject(da);
  if (db) clReleaseMemObject(db);
  if (dc) clReleaseMemObject(dc);
  free(a);
  free(b);
  free(c);
  free(times);
  return rc;
}

/* ---- training step ---- */

/* Where a timed step's batch comes from. */
typedef enum step_feed {
  FEED_RESIDENT, /* the batch uploaded once, before timing: already on the device */
  FEED_HOST,     /* the same host batch copied (and normalised) every step */
  FEED_FILE,     /* the dataset's rows through the training loader, as kdcl train/distill */
} step_feed;

typedef struct step_bench {
  const kd_bench_step_opts *o;
  kd_device dev;
  int dev_open;
  kd_model model;
  int model_open;
  kd_trainer t;
  int trainer_open;
  /* the host batch: inputs of the stored type, labels, teacher rows (dense or top-k) */
  void *x;
  int x_is_u8;
  float scale, mean, std;
  int32_t *y;
  float *teacher, *host_params, *host_buffers;
  int32_t *t_idx;
  float *t_logp;
  size_t topk_k;
  kd_teacher_source source;
  kd_loss_ring ring;
  int ring_open;
  int64_t step;
  /* --data: the file, the loader and the position in its epochs, as host/train/run.c holds
   * them; prev is the batch whose upload (prev_upload) may still read its slot */
  kd_dataset ds;
  int ds_open;
  kd_loader loader;
  int loader_open;
  int64_t *order, epoch, epochs_started;
  kd_batch *prev;
  cl_event prev_upload;
} step_bench;

/* The training loop's hand-back of a batch: once the device has copied it, its slot goes back
 * to the reader. */
static void feed_release_prev(step_bench *b) {
  kd_feed_release(&b->loader, b->prev, &b->prev_upload);
  b->prev = NULL;
}

static void step_bench_close(step_bench *b) {
  if (b->loader_open) {
    if (b->dev_open) clFinish(b->dev.queue); /* no upload may still read a slot */
    feed_release_prev(b);
    kd_loader_close(&b->loader);
    b->loader_open = 0;
  }
  if (b->ring_open) kd_loss_ring_free(&b->ring);
  if (b->trainer_open) kd_trainer_release(&b->t);
  if (b->dev_open) kd_device_close(&b->dev);
  b->ring_open = b->trainer_open = b->dev_open = 0;
}

static const float k_scale = 1.0f / 255.0f, k_mean = 0.2860f, k_std = 0.3530f;

static int with_teacher(const step_bench *b) {
  return b->source == KD_SOURCE_DENSE_OFFLINE || b->source == KD_SOURCE_TOPK;
}

static int upload_batch(step_bench *b, kd_error *err) {
  size_t B = b->o->batch;
  cl_event ev = NULL;
  if (kd_trainer_upload(&b->t, b->x, b->x_is_u8, b->y, B, b->scale, b->mean, b->std, &ev, err))
    return -1;
  clReleaseEvent(ev);
  if (with_teacher(b)) {
    if (kd_trainer_upload_teacher(&b->t, b->source == KD_SOURCE_TOPK ? NULL : b->teacher,
                                  b->t_idx, b->t_logp, B, &ev, err))
      return -1;
    clReleaseEvent(ev);
  }
  return 0;
}

/* Opens the device (profiling or not), plans the trainer and puts the batch and the same
 * initial weights on it. */
static int step_bench_open(step_bench *b, int profiling, kd_error *err) {
  const kd_bench_step_opts *o = b->o;
  if (kd_device_open(&b->dev, o->device, o->kernels_binary, profiling, err)) return -1;
  b->dev_open = 1;
  if (o->gemm_set) {
    b->dev.gemm_backend = o->gemm;
    if (o->gemm == KD_GEMM_CLBLAST && !kd_gemm_clblast_usable(&b->dev, err))
      return kd_fail_context(err, "--gemm clblast on '%s'", b->dev.info.name);
  }
  if (kd_trainer_create(&b->t, &b->dev, &b->model, o->batch, b->topk_k, err)) return -1;
  b->trainer_open = 1;
  if (kd_trainer_write_params(&b->t, b->host_params, b->model.num_bn ? b->host_buffers : NULL,
                              err) ||
      upload_batch(b, err) || kd_device_finish(&b->dev, err))
    return -1;
  int has_kd = o->loss != KD_LOSS_CE;
  if (kd_loss_ring_init(&b->ring, &b->t, has_kd, has_kd ? o->dcfg.alpha : 1.0, err)) return -1;
  b->ring_open = 1;
  b->step = 0;
  return 0;
}

/* The next batch from the loader, as run_epochs takes it: the previous batch's slot is given
 * back once its upload is done, and at the end of an epoch the next one starts in its own
 * shuffled order (validation and checkpoints, which training does there, are not timed). */
static int feed_next(step_bench *b, kd_batch **out, kd_error *err) {
  for (;;) {
    kd_batch *nb;
    if (kd_loader_next(&b->loader, &nb, err)) return -1;
    feed_release_prev(b);
    if (nb) {
      *out = nb;
      return 0;
    }
    b->epoch++;
    b->epochs_started++;
    kd_epoch_order(b->order, b->ds.num_rows, 1, b->epoch, 1);
    kd_loader_start(&b->loader, b->order, b->ds.num_rows, 0);
  }
}

/* One training step as the training loop enqueues it (host/train/run.c): [upload], forward,
 * loss, backward, optimizer, and at the end of every KD_LOSS_SPAN steps the read-back of their
 * losses (after a wait for the span before that). */
static int step_once(step_bench *b, step_feed feed, kd_error *err) {
  const kd_bench_step_opts *o = b->o;
  kd_trainer *t = &b->t;
  size_t n = o->batch;
  kd_batch *fb = NULL;
  if (feed == FEED_FILE) {
    if (feed_next(b, &fb, err)) return -1;
    n = fb->n;
  }
  int64_t step = ++b->step;
  int distill = o->loss != KD_LOSS_CE;
  if (feed == FEED_HOST && upload_batch(b, err)) return -1;
  if (feed == FEED_FILE) { /* as host/train/run.c enqueue_step */
    b->prev = fb;
    if (kd_feed_batch(&b->loader, fb, t, NULL, &b->prev_upload, err)) return -1;
  }
  if (kd_trainer_forward(t, n, 1, 1, step, err) ||
      kd_trainer_loss(t, n, distill ? &o->dcfg : NULL, b->source, kd_at(NULL, 0),
                      kd_loss_ring_slot(&b->ring), err) ||
      kd_trainer_backward(t, n, 1, step, err) ||
      kd_trainer_optimizer_step(t, &o->optim, o->optim.lr, step, err) ||
      kd_loss_ring_enqueue(&b->ring, step, n, err))
    return -1;
  return 0;
}

static int by_time_desc(const void *a, const void *b) {
  double x = ((const kd_bench_kernel *)a)->ms_per_step;
  double y = ((const kd_bench_kernel *)b)->ms_per_step;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void record_arena(kd_bench_step_result *r, const char *name, size_t bytes) {
  if (r->num_arenas >= KD_BENCH_MAX_ARENAS) return;
  r->arenas[r->num_arenas].name = name;
  r->arenas[r->num_arenas].bytes = bytes;
  r->num_arenas++;
  r->device_bytes += bytes;
}

/* --data: opens the file, checks it fits the model and the loss, and reads the first batch of
 * the first epoch's order into the host batch (the one kept on the device). */
static int open_data(step_bench *b, kd_bench_step_result *r, kd_error *err) {
  const kd_bench_step_opts *o = b->o;
  const kd_model *m = &b->model;
  kd_dataset *ds = &b->ds;
  size_t B = o->batch;
  if (kd_dataset_open(ds, o->data_path, err)) return -1;
  b->ds_open = 1;
  if (ds->sample_size != m->input_size)
    return kd_fail(err, "--data %s: /inputs/x rows have %zu values but model '%s' takes %zu",
                   o->data_path, ds->sample_size, m->name, m->input_size);
  if ((size_t)ds->num_classes != m->num_classes)
    return kd_fail(err, "--data %s: /labels/y has num_classes %d but model '%s' outputs %zu",
                   o->data_path, ds->num_classes, m->name, m->num_classes);
  if (ds->num_rows < (int64_t)B)
    return kd_fail(err, "--data %s has %lld row%s, fewer than --batch %zu (the step is timed "
                   "on full batches; training takes a smaller set as one short batch)",
                   o->data_path, (long long)ds->num_rows, ds->num_rows == 1 ? "" : "s", B);
  if (kd_dataset_check_labels(ds, err) || kd_dataset_check_inputs(ds, err)) return -1;
  b->source = KD_SOURCE_LABELS;
  if (o->loss != KD_LOSS_CE) {
    if (ds->teacher_kind == KD_TEACHER_NONE)
      return kd_fail(err, "--data %s has no /teacher, which --loss %s needs (write one with "
                     "'kdcl label'), or use --loss ce", o->data_path,
                     kd_distill_loss_name(o->loss));
    if (ds->teacher_kind == KD_TEACHER_TOPK &&
        (o->loss == KD_LOSS_MSE || o->loss == KD_LOSS_RKL))
      return kd_fail(err, "--loss %s needs dense teacher logits, but %s holds a top-k teacher",
                     kd_distill_loss_name(o->loss), o->data_path);
    b->source = ds->teacher_kind == KD_TEACHER_TOPK ? KD_SOURCE_TOPK : KD_SOURCE_DENSE_OFFLINE;
    if (ds->teacher_kind == KD_TEACHER_TOPK) b->topk_k = (size_t)ds->teacher_k;
  }
  b->x_is_u8 = ds->x_is_u8;
  b->scale = ds->scale;
  b->mean = ds->mean;
  b->std = ds->std;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  b->x = malloc(B * m->input_size * elem);
  b->order = malloc((size_t)ds->num_rows * sizeof *b->order);
  if (b->topk_k) {
    b->t_idx = malloc(B * b->topk_k * sizeof *b->t_idx);
    b->t_logp = malloc(B * b->topk_k * sizeof *b->t_logp);
  }
  if (!b->x || !b->order || (b->topk_k && (!b->t_idx || !b->t_logp)))
    return kd_fail(err, "out of host memory for --data %s", o->data_path);
  kd_epoch_order(b->order, ds->num_rows, 1, 0, 1);
  if (kd_dataset_read_rows(ds, b->order, B, b->x, b->y, err) ||
      (with_teacher(b) &&
       kd_dataset_read_teacher_rows(ds, b->order, B, b->topk_k ? NULL : b->teacher, b->t_idx,
                                    b->t_logp, err)))
    return -1;
  r->with_data = 1;
  r->data_rows = ds->num_rows;
  r->data_x_is_u8 = ds->x_is_u8;
  r->data_teacher = ds->teacher_kind == KD_TEACHER_LOGITS ? "logits"
                    : ds->teacher_kind == KD_TEACHER_TOPK ? "topk"
                                                          : "none";
  return 0;
}

/* Times `steps` replays of the recorded step's GEMM launches alone, the queue drained at the
 * end: ms per step. *launches gets the GEMM launches per step (0: none went through kd_run,
 * as with CLBlast, and nothing is timed). */
static int time_gemm_block(step_bench *b, const kd_launch_log *step_log, int steps, double *ms,
                           int *launches, kd_error *err) {
  double t0 = now_ms();
  for (int i = 0; i < steps; i++)
    if (kd_launch_log_replay(&b->dev, step_log, "kd_gemm_", launches, err)) return -1;
  if (kd_device_finish(&b->dev, err)) return -1;
  *ms = (now_ms() - t0) / steps;
  return 0;
}

/* Times `steps` steps fed by `feed`, the queue drained at the end: ms per step. */
static int time_block(step_bench *b, step_feed feed, int steps, double *ms, kd_error *err) {
  double t0 = now_ms();
  for (int i = 0; i < steps; i++)
    if (step_once(b, feed, err)) return -1;
  if (kd_loss_ring_drain_all(&b->ring, err) || kd_device_finish(&b->dev, err)) return -1;
  *ms = (now_ms() - t0) / steps;
  return 0;
}

int kd_bench_step(const kd_bench_step_opts *o, kd_bench_step_result *r, kd_error *err) {
  memset(r, 0, sizeof *r);
  if (o->batch == 0) return kd_fail(err, "bench step: --batch must be positive");
  if (o->steps < 1) return kd_fail(err, "bench step: --steps must be positive");
  step_bench b;
  memset(&b, 0, sizeof b);
  b.o = o;
  int rc = -1;
  double *blocks = NULL;
  kd_launch_log step_log = {0};
  if (kd_model_load(&b.model, o->model_path, err)) return -1;
  b.model_open = 1;
  const kd_model *m = &b.model;
  size_t B = o->batch;
  if (m->input_size > SIZE_MAX / sizeof(float) / B) {
    kd_fail(err, "bench step: --batch %zu times %zu inputs overflows", B, m->input_size);
    goto done;
  }
  b.y = malloc(B * sizeof *b.y);
  b.teacher = malloc(B * m->num_classes * sizeof *b.teacher);
  b.host_params = malloc((m->param_floats + 1) * sizeof(float));
  b.host_buffers = malloc((m->buffer_floats + 1) * sizeof(float));
  if (!b.y || !b.teacher || !b.host_params || !b.host_buffers) {
    kd_fail(err, "out of host memory for --batch %zu", B);
    goto done;
  }
  if (o->data_path) {
    if (open_data(&b, r, err)) goto done;
  } else {
    b.x_is_u8 = 1;
    b.scale = k_scale, b.mean = k_mean, b.std = k_std;
    b.source = o->loss != KD_LOSS_CE ? KD_SOURCE_DENSE_OFFLINE : KD_SOURCE_LABELS;
    uint8_t *x = b.x = malloc(B * m->input_size);
    if (!x) {
      kd_fail(err, "out of host memory for --batch %zu", B);
      goto done;
    }
    uint64_t s = 0xD1B54A32D192ED03ULL;
    for (size_t i = 0; i < B * m->input_size; i++) x[i] = (uint8_t)(next_u64(&s) >> 56);
    for (size_t i = 0; i < B; i++) b.y[i] = (int32_t)(next_u64(&s) % m->num_classes);
    for (size_t i = 0; i < B * m->num_classes; i++) b.teacher[i] = 3.0f * uniform_pm1(&s);
  }
  kd_model_init_params(m, b.host_params, b.host_buffers, 1);

  /* Timed run: an unprofiled queue, as training runs. Steps are timed in chunks (the queue
   * drained at the end of each) and the median chunk is the figure. */
  if (step_bench_open(&b, 0, err)) goto done;
  snprintf(r->model_name, sizeof r->model_name, "%s", m->name);
  snprintf(r->device_name, sizeof r->device_name, "%s", b.dev.info.name);
  r->gemm = b.dev.gemm_backend;
  r->params = kd_model_count_params(m);
  step_feed main_feed = o->upload ? FEED_HOST : FEED_RESIDENT;
  if (o->data_path) {
    main_feed = FEED_RESIDENT;
    if (kd_loader_open(&b.loader, &b.ds, B, with_teacher(&b), &b.dev, err)) goto done;
    b.loader_open = 1;
    kd_loader_start(&b.loader, b.order, b.ds.num_rows, 0);
    b.epochs_started = 1;
  }
  for (int i = 0; i < o->warmup; i++)
    if (step_once(&b, main_feed, err) ||
        (o->data_path && (step_once(&b, FEED_HOST, err) || step_once(&b, FEED_FILE, err))))
      goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  /* One step recorded: its GEMM launches are replayed alone in every round. */
  b.dev.launch_log = &step_log;
  int recorded = step_once(&b, main_feed, err);
  b.dev.launch_log = NULL;
  if (recorded || kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err))
    goto done;
  int chunks = o->rounds > 0 ? o->rounds : 5;
  if (chunks > o->steps) chunks = o->steps;
  blocks = malloc(8 * (size_t)chunks * sizeof *blocks);
  if (!blocks) {
    kd_fail(err, "out of host memory");
    goto done;
  }
  double *res = blocks, *host = blocks + chunks, *file = blocks + 2 * chunks;
  double *ratio = blocks + 3 * chunks, *host_ratio = blocks + 4 * chunks;
  double *gemm = blocks + 5 * chunks, *gemm_ratio = blocks + 6 * chunks;
  uint64_t launches = 0;
  int done_steps = 0, gemm_launches = 0;
  for (int c = 0; c < chunks; c++) {
    int n = o->steps / chunks + (c < o->steps % chunks);
    /* The step's GEMMs alone, before the steps in even rounds and after them in odd ones. */
    if (c % 2 == 0 && time_gemm_block(&b, &step_log, n, &gemm[c], &gemm_launches, err)) goto done;
    if (!o->data_path) {
      uint64_t l0 = b.dev.launches;
      if (time_block(&b, main_feed, n, &res[c], err)) goto done;
      launches += b.dev.launches - l0;
      done_steps += n;
    }
    /* One block of each feed, in turn; every other round in the reverse order, so neither
     * feed always follows the other. */
    static const step_feed fwd[3] = {FEED_RESIDENT, FEED_HOST, FEED_FILE};
    for (int k = 0; k < 3 && o->data_path; k++) {
      step_feed f = fwd[c % 2 ? 2 - k : k];
      uint64_t l0 = b.dev.launches;
      double *slot = f == FEED_RESIDENT ? &res[c] : f == FEED_HOST ? &host[c] : &file[c];
      if (time_block(&b, f, n, slot, err)) goto done;
      if (f == FEED_RESIDENT) {
        launches += b.dev.launches - l0;
        done_steps += n;
      }
    }
    if (c % 2 == 1 && time_gemm_block(&b, &step_log, n, &gemm[c], &gemm_launches, err)) goto done;
    gemm_ratio[c] = res[c] / gemm[c];
    if (o->data_path) {
      ratio[c] = file[c] / res[c];
      host_ratio[c] = host[c] / res[c];
    }
  }
  if (gemm_launches > 0) {
    r->gemm_launches_per_step = gemm_launches;
    r->gemm_ms_per_step = median(gemm, chunks);
    r->step_over_gemm = median(gemm_ratio, chunks);
  }
  r->launches_per_step = (double)launches / done_steps;
  r->best_step_ms = res[0];
  for (int c = 1; c < chunks; c++)
    if (res[c] < r->best_step_ms) r->best_step_ms = res[c];
  if (o->data_path) {
    r->data_rounds = chunks;
    r->data_block_steps = o->steps / chunks;
    r->file_over_resident = median(ratio, chunks);
    r->host_over_resident = median(host_ratio, chunks);
    r->host_step_ms = median(host, chunks);
    r->file_step_ms = median(file, chunks);
    r->data_epochs_started = b.epochs_started;
    r->data_held = b.loader.on_device ? "device" : b.loader.resident ? "host" : "streamed";
  }
  r->step_ms = median(res, chunks);
  r->resident_step_ms = r->step_ms;
  if (o->data_path) r->file_over_resident_of_medians = r->file_step_ms / r->resident_step_ms;
  r->samples_per_s = (double)B / (r->step_ms * 1e-3);
  record_arena(r, b.t.params.name, b.t.params.used * sizeof(float));
  record_arena(r, b.t.grads.name, b.t.grads.used * sizeof(float));
  record_arena(r, b.t.opt_state.name, b.t.opt_state.used * sizeof(float));
  record_arena(r, b.t.buffers.name, b.t.buffers.used * sizeof(float));
  record_arena(r, b.t.acts.name, b.t.acts.used * sizeof(float));
  record_arena(r, b.t.dacts.name, b.t.dacts.used * sizeof(float));
  record_arena(r, b.t.work.name, b.t.work.used * sizeof(float));
  record_arena(r, "inputs", B * m->input_size * sizeof(float) + B * sizeof(int32_t));
  step_bench_close(&b);

  /* Profiled run: every launch timed by its event (and the queue drained around each layer),
   * so kernel times add up without overlap. Fewer steps suffice. */
  if (step_bench_open(&b, 1, err)) goto done;
  int warm = o->warmup < 2 ? o->warmup : 2;
  for (int i = 0; i < warm; i++)
    if (step_once(&b, main_feed, err)) goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  for (int i = 0; i < b.dev.num_kernels; i++) {
    b.dev.kernels[i].launches = 0;
    b.dev.kernels[i].profiled_ms = 0;
  }
  int psteps = o->steps < 20 ? o->steps : 20;
  for (int i = 0; i < psteps; i++)
    if (step_once(&b, main_feed, err)) goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  for (int i = 0; i < b.dev.num_kernels; i++) {
    const kd_kernel_entry *e = &b.dev.kernels[i];
    if (!e->launches) continue;
    double ms = e->profiled_ms / psteps;
    r->kernel_ms_per_step += ms;
    if (!strncmp(e->name, "kd_gemm_", 8)) r->profiled_gemm_ms_per_step += ms;
    if (r->num_kernels < KD_BENCH_MAX_KERNELS) {
      kd_bench_kernel *k = &r->kernels[r->num_kernels++];
      snprintf(k->name, sizeof k->name, "%s", e->name);
      k->launches_per_step = (double)e->launches / psteps;
      k->ms_per_step = ms;
    }
  }
  qsort(r->kernels, (size_t)r->num_kernels, sizeof r->kernels[0], by_time_desc);
  rc = 0;
done:
  kd_launch_log_free(&step_log);
  step_bench_close(&b);
  if (b.ds_open) kd_dataset_close(&b.ds);
  if (b.model_open) kd_model_free(&b.model);
  free(blocks);
  free(b.x);
  free(b.y);
  free(b.teacher);
  free(b.t_idx);
  free(b.t_logp);
  free(b.order);
  free(b.host_params);
  free(b.host_buffers);
  r->peak_rss_kib = kd_peak_rss_kib();
  return rc;
}
