/* `kdcl bench`: the speed of one GEMM shape, and of one training step of a model on synthetic
 * data already on the device, with the profile that explains it; with a dataset file, the same
 * step fed from the file through the training loader against the batch already on the device. */
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
  const char *kernels_binary; /* program binary to run from (--kernels-binary), NULL: source */
  int gemm_set;
  kd_gemm_backend gemm;
  size_t batch;
  kd_distill_loss loss; /* KD_LOSS_CE: labels only; else against dense teacher logits */
  kd_distill_config dcfg;
  kd_optim_config optim;
  int steps;  /* timed steps */
  int warmup; /* untimed steps first */
  int upload; /* copy the batch from host memory every step, as training from a file does */
  int rounds; /* timed chunks of steps (0: 5); with data_path, rounds of alternating blocks */
  /* A dataset file (NULL: synthetic data only): its rows feed the step through the training
   * loader (host/train/loader.c: prefetch thread, shuffled epochs, non-blocking upload), timed
   * in blocks that alternate with blocks on one of its batches kept on the device and with
   * blocks that copy that batch from host memory every step. */
  const char *data_path;
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
  /* The step's built-in GEMM launches (kd_gemm_*, recorded from one step) replayed alone in
   * every round, timed as the steps are: ms per step (median over the rounds), launches per
   * step, and the median over the rounds of step time / GEMM time. 0 when no GEMM went through
   * kdcl's kernels (CLBlast). */
  double gemm_ms_per_step, step_over_gemm;
  int gemm_launches_per_step;
  /* From a second, profiled run (every launch waited for, so the kernel times carry no
   * overlap): the sum of every kdcl kernel's device time per step, and of the built-in GEMM
   * kernels' (0 with CLBlast, whose launches are not profiled). */
  double kernel_ms_per_step, profiled_gemm_ms_per_step;
  kd_bench_kernel kernels[KD_BENCH_MAX_KERNELS];
  int num_kernels; /* sorted by time, largest first */
  kd_bench_arena arenas[KD_BENCH_MAX_ARENAS];
  int num_arenas;
  size_t device_bytes;   /* all arenas and input buffers */
  long peak_rss_kib;     /* getrusage ru_maxrss at the end */
  /* With data_path: ms per step of each configuration (median over the rounds; each round runs
   * one block of steps of each, back to back, the queue drained after each block), and the
   * file's ratio to the resident batch: the median over the rounds of the ratio within each
   * round (adjacent blocks see the same machine load), and the ratio of the medians. */
  int with_data;
  int64_t data_rows;
  int data_x_is_u8;
  const char *data_teacher; /* "none", "logits" or "topk" */
  /* where the loader held the set: "device" (gathered there), "host" (gathered with memcpy
   * and uploaded) or "streamed" (read by the loader thread) */
  const char *data_held;
  int data_rounds, data_block_steps;
  double resident_step_ms, host_step_ms, file_step_ms;
  double file_over_resident, file_over_resident_of_medians, host_over_resident;
  int64_t data_epochs_started; /* epochs the loader began (the order reshuffled at each) */
} kd_bench_step_result;

/* Opens the device twice (timed, then profiled), builds the model's trainer for o->batch rows,
 * puts a synthetic batch (random inputs, labels and, when distilling, teacher logits) on the
 * device, and runs warm-up then timed steps: forward, loss, backward, one optimizer launch and
 * every KD_LOSS_SPAN steps the asynchronous read-back of their losses, exactly the training
 * loop's device work; in every round the step's GEMM launches, recorded from one step, are
 * also replayed alone and timed the same way (step_over_gemm). With
 * o->data_path the batch on the device is the file's first shuffled batch, and the timed run
 * alternates blocks of steps on it with blocks fed from the file as kdcl train/distill feed
 * them (see kd_bench_step_opts). */
int kd_bench_step(const kd_bench_step_opts *o, kd_bench_step_result *r, kd_error *err);

/* Peak resident set size of this process so far (KiB), from getrusage. */
long kd_peak_rss_kib(void);

#endif
