/* `kdcl bench`: the speed of one GEMM shape, and of one training step of a model on synthetic
 * data already on the device, with the profile that explains it. */
#ifndef KD_BENCH_H
#define KD_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "nn/distill_loss.h"
#include "nn/optim.h"
#include "runtime/device.h"

typedef struct kd_bench_gemm_opts {
  size_t m, n, k;
  int trans_a, trans_b;
  int repeat; /* timed samples; each sample runs enough calls back to back to last ~10 ms */
} kd_bench_gemm_opts;

typedef struct kd_bench_gemm_result {
  int calls_per_sample;
  double best_ms, median_ms;         /* per call, wall clock, queue drained after each sample */
  double best_gflops, median_gflops; /* 2*M*N*K / time */
  size_t checked;                    /* output elements compared with the double reference */
  double max_abs_err;
  /* max over the checked elements of |c - ref| / sum_k |a_ik * b_kj|: the error in units of
   * the magnitude the sum passed through (float rounding gives about K * 2^-24 at worst) */
  double max_rel_err;
} kd_bench_gemm_result;

/* Times kd_gemm (dev->gemm_backend) on random [-1, 1) operands and checks a sample of the
 * output against a double-precision reference. Blocking. */
int kd_bench_gemm(kd_device *dev, const kd_bench_gemm_opts *o, kd_bench_gemm_result *r,
                  kd_error *err);

typedef struct kd_bench_step_opts {
  const char *model_path;
  const char *device; /* selector, NULL: default */
  int gemm_set;
  kd_gemm_backend gemm;
  size_t batch;
  kd_distill_loss loss; /* KD_LOSS_CE: labels only; else against dense teacher logits */
  kd_distill_config dcfg;
  kd_optim_config optim;
  int steps;  /* timed steps */
  int warmup; /* untimed steps first */
  int upload; /* copy the batch from host memory every step, as training from a file does */
} kd_bench_step_opts;

#define KD_BENCH_MAX_KERNELS 64
#define KD_BENCH_MAX_ARENAS 10

typedef struct kd_bench_kernel {
  char name[64];
  double launches_per_step;
  double ms_per_step; /* device time from profiling events */
} kd_bench_kernel;

typedef struct kd_bench_arena {
  const char *name;
  size_t bytes;
} kd_bench_arena;

typedef struct kd_bench_step_result {
  char model_name[128];
  char device_name[256];
  kd_gemm_backend gemm;
  size_t params;               /* trainable parameters */
  double step_ms, best_step_ms; /* median and best over the timed chunks, unprofiled queue */
  double samples_per_s;        /* batch / step_ms */
  double launches_per_step;    /* kernel launches (a CLBlast call counts one) */
  /* From a second, profiled run (every launch waited for, so the kernel times carry no
   * overlap): the sum of every kdcl kernel's device time per step, and of the built-in GEMM
   * kernels' (kd_gemm_*; 0 with CLBlast, whose launches are not profiled). */
  double kernel_ms_per_step, gemm_ms_per_step;
  kd_bench_kernel kernels[KD_BENCH_MAX_KERNELS];
  int num_kernels; /* sorted by time, largest first */
  kd_bench_arena arenas[KD_BENCH_MAX_ARENAS];
  int num_arenas;
  size_t device_bytes;   /* all arenas and input buffers */
  long peak_rss_kib;     /* getrusage ru_maxrss at the end */
} kd_bench_step_result;

/* Opens the device twice (timed, then profiled), builds the model's trainer for o->batch rows,
 * puts a synthetic batch (random inputs, labels and, when distilling, teacher logits) on the
 * device, and runs warm-up then timed steps: forward, loss, backward, one optimizer launch and
 * the asynchronous loss read-back, exactly the training loop's device work. */
int kd_bench_step(const kd_bench_step_opts *o, kd_bench_step_result *r, kd_error *err);

/* Peak resident set size of this process so far (KiB), from getrusage. */
long kd_peak_rss_kib(void);

#endif
