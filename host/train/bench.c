/* kdcl bench: GEMM throughput against a double reference, and the training step on synthetic
 * data with its kernel profile, arena sizes and peak RSS. */
#include "train/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/gemm.h"
#include "nn/model.h"
#include "train/loss_ring.h"
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
  if (M > SIZE_MAX / 4 / K || N > SIZE_MAX / 4 / K || M > SIZE_MAX / 4 / N)
    return kd_fail(err, "bench gemm: M=%zu N=%zu K=%zu overflows", M, N, K);
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

typedef struct step_bench {
  const kd_bench_step_opts *o;
  kd_device dev;
  int dev_open;
  kd_model model;
  int model_open;
  kd_trainer t;
  int trainer_open;
  uint8_t *x;
  int32_t *y;
  float *teacher, *host_params, *host_buffers;
  kd_loss_ring ring;
  int ring_open;
  int64_t step;
} step_bench;

static void step_bench_close(step_bench *b) {
  if (b->ring_open) kd_loss_ring_free(&b->ring);
  if (b->trainer_open) kd_trainer_release(&b->t);
  if (b->dev_open) kd_device_close(&b->dev);
  b->ring_open = b->trainer_open = b->dev_open = 0;
}

static const float k_scale = 1.0f / 255.0f, k_mean = 0.2860f, k_std = 0.3530f;

static int upload_batch(step_bench *b, kd_error *err) {
  size_t B = b->o->batch;
  cl_event ev = NULL;
  if (kd_trainer_upload(&b->t, b->x, 1, b->y, B, k_scale, k_mean, k_std, &ev, err)) return -1;
  clReleaseEvent(ev);
  if (b->o->loss != KD_LOSS_CE) {
    if (kd_trainer_upload_teacher(&b->t, b->teacher, NULL, NULL, B, &ev, err)) return -1;
    clReleaseEvent(ev);
  }
  return 0;
}

/* Opens the device (profiling or not), plans the trainer and puts the batch and the same
 * initial weights on it. */
static int step_bench_open(step_bench *b, int profiling, kd_error *err) {
  const kd_bench_step_opts *o = b->o;
  if (kd_device_open(&b->dev, o->device, NULL, profiling, err)) return -1;
  b->dev_open = 1;
  if (o->gemm_set) {
    b->dev.gemm_backend = o->gemm;
    if (o->gemm == KD_GEMM_CLBLAST && !kd_gemm_clblast_usable(&b->dev, err))
      return kd_fail_context(err, "--gemm clblast on '%s'", b->dev.info.name);
  }
  if (kd_trainer_create(&b->t, &b->dev, &b->model, o->batch, 0, err)) return -1;
  b->trainer_open = 1;
  if (kd_trainer_write_params(&b->t, b->host_params, b->model.num_bn ? b->host_buffers : NULL,
                              err) ||
      upload_batch(b, err) || kd_device_finish(&b->dev, err))
    return -1;
  int has_kd = o->loss != KD_LOSS_CE;
  if (kd_loss_ring_init(&b->ring, o->batch, has_kd, has_kd ? o->dcfg.alpha : 1.0, err)) return -1;
  b->ring_open = 1;
  b->step = 0;
  return 0;
}

/* One training step as the training loop enqueues it (host/train/run.c): [upload], forward,
 * loss, backward, optimizer, the loss read-back of this step, and a wait for the read-back of
 * two steps ago. */
static int step_once(step_bench *b, kd_error *err) {
  const kd_bench_step_opts *o = b->o;
  kd_trainer *t = &b->t;
  size_t B = o->batch;
  int64_t step = ++b->step;
  int distill = o->loss != KD_LOSS_CE;
  if (kd_loss_ring_drain(&b->ring, (int)(step % 2), err)) return -1;
  if (o->upload && upload_batch(b, err)) return -1;
  if (kd_trainer_forward(t, B, 1, 1, step, err) ||
      kd_trainer_loss(t, B, distill ? &o->dcfg : NULL,
                      distill ? KD_SOURCE_DENSE_OFFLINE : KD_SOURCE_LABELS, kd_at(NULL, 0), err) ||
      kd_trainer_backward(t, B, 1, step, err) ||
      kd_trainer_optimizer_step(t, &o->optim, o->optim.lr, step, err) ||
      kd_loss_ring_enqueue(&b->ring, t, step, B, err))
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

int kd_bench_step(const kd_bench_step_opts *o, kd_bench_step_result *r, kd_error *err) {
  memset(r, 0, sizeof *r);
  if (o->batch == 0) return kd_fail(err, "bench step: --batch must be positive");
  if (o->steps < 1) return kd_fail(err, "bench step: --steps must be positive");
  step_bench b;
  memset(&b, 0, sizeof b);
  b.o = o;
  int rc = -1;
  if (kd_model_load(&b.model, o->model_path, err)) return -1;
  b.model_open = 1;
  const kd_model *m = &b.model;
  size_t B = o->batch;
  if (m->input_size > SIZE_MAX / B) {
    kd_fail(err, "bench step: --batch %zu times %zu inputs overflows", B, m->input_size);
    goto done;
  }
  b.x = malloc(B * m->input_size);
  b.y = malloc(B * sizeof *b.y);
  b.teacher = malloc(B * m->num_classes * sizeof *b.teacher);
  b.host_params = malloc((m->param_floats + 1) * sizeof(float));
  b.host_buffers = malloc((m->buffer_floats + 1) * sizeof(float));
  if (!b.x || !b.y || !b.teacher || !b.host_params || !b.host_buffers) {
    kd_fail(err, "out of host memory for --batch %zu", B);
    goto done;
  }
  uint64_t s = 0xD1B54A32D192ED03ULL;
  for (size_t i = 0; i < B * m->input_size; i++) b.x[i] = (uint8_t)(next_u64(&s) >> 56);
  for (size_t i = 0; i < B; i++) b.y[i] = (int32_t)(next_u64(&s) % m->num_classes);
  for (size_t i = 0; i < B * m->num_classes; i++) b.teacher[i] = 3.0f * uniform_pm1(&s);
  kd_model_init_params(m, b.host_params, b.host_buffers, 1);

  /* Timed run: an unprofiled queue, as training runs. Steps are timed in chunks (the queue
   * drained at the end of each) and the median chunk is the figure. */
  if (step_bench_open(&b, 0, err)) goto done;
  snprintf(r->model_name, sizeof r->model_name, "%s", m->name);
  snprintf(r->device_name, sizeof r->device_name, "%s", b.dev.info.name);
  r->gemm = b.dev.gemm_backend;
  r->params = kd_model_count_params(m);
  for (int i = 0; i < o->warmup; i++)
    if (step_once(&b, err)) goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  int chunks = o->steps >= 5 ? 5 : o->steps;
  double chunk_ms[5];
  uint64_t launches0 = b.dev.launches;
  int done_steps = 0;
  for (int c = 0; c < chunks; c++) {
    int n = o->steps / chunks + (c < o->steps % chunks);
    double t0 = now_ms();
    for (int i = 0; i < n; i++)
      if (step_once(&b, err)) goto done;
    if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
    chunk_ms[c] = (now_ms() - t0) / n;
    done_steps += n;
  }
  r->launches_per_step = (double)(b.dev.launches - launches0) / done_steps;
  r->best_step_ms = chunk_ms[0];
  for (int c = 1; c < chunks; c++)
    if (chunk_ms[c] < r->best_step_ms) r->best_step_ms = chunk_ms[c];
  r->step_ms = median(chunk_ms, chunks);
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
    if (step_once(&b, err)) goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  for (int i = 0; i < b.dev.num_kernels; i++) {
    b.dev.kernels[i].launches = 0;
    b.dev.kernels[i].profiled_ms = 0;
  }
  int psteps = o->steps < 20 ? o->steps : 20;
  for (int i = 0; i < psteps; i++)
    if (step_once(&b, err)) goto done;
  if (kd_loss_ring_drain_all(&b.ring, err) || kd_device_finish(&b.dev, err)) goto done;
  for (int i = 0; i < b.dev.num_kernels; i++) {
    const kd_kernel_entry *e = &b.dev.kernels[i];
    if (!e->launches) continue;
    double ms = e->profiled_ms / psteps;
    r->kernel_ms_per_step += ms;
    if (!strncmp(e->name, "kd_gemm_", 8)) r->gemm_ms_per_step += ms;
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
  step_bench_close(&b);
  if (b.model_open) kd_model_free(&b.model);
  free(b.x);
  free(b.y);
  free(b.teacher);
  free(b.host_params);
  free(b.host_buffers);
  r->peak_rss_kib = kd_peak_rss_kib();
  return rc;
}
