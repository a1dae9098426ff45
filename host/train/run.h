/* One training run from the command line's settings: data, model, trainer, epochs, logging,
 * validation, checkpoints, resume. */
#ifndef KD_RUN_H
#define KD_RUN_H

#include <stdint.h>

#include "nn/distill_loss.h"
#include "nn/optim.h"
#include "runtime/device.h"
#include "train/schedule.h"

/* Returned by kd_train_run when the loss became NaN or Inf (the CLI exits 3). */
#define KD_DIVERGED (-3)

typedef struct kd_train_options {
  const char *model_path;  /* --model SPEC.json (may be omitted with --resume) */
  const char *model_json;  /* the spec itself (a recipe's inline "model"), if no model_path */
  const char *model_json_source; /* where model_json came from, for messages */
  const char *data_path;   /* --data TRAIN.h5 */
  const char *out_path;    /* --out CKPT.h5 */
  const char *val_path;    /* --val VAL.h5 */
  const char *init_path;   /* --init WEIGHTS.h5 */
  const char *resume_path; /* --resume CKPT.h5 */
  const char *log_path;    /* --log METRICS.jsonl */
  /* --run-dir DIR (see train/run_dir.h): out_path and log_path then point inside it. */
  const char *run_dir;
  int64_t keep; /* --keep N: epoch checkpoints kept in DIR/checkpoints */
  int force;    /* --force: replace the run an existing DIR holds */
  const char *device;      /* --device SEL */
  const char *kernels_binary;
  int gemm_set;
  kd_gemm_backend gemm;
  uint64_t seed;
  int64_t epochs;
  int64_t batch;
  int shuffle;
  int quiet;
  int profile;              /* --profile: per-kernel device times at the end */
  int64_t checkpoint_every; /* steps; 0: only at the end (and each epoch end) */
  int64_t log_every;        /* steps between step records in --log and progress updates */
  kd_optim_config optim;
  int optim_set; /* --optimizer given (on --resume the checkpoint's optimizer is used) */
  /* Flags given explicitly: on --resume they must agree with the checkpoint (its
   * /meta/train_config supplies the ones not given). */
  int batch_set, shuffle_set, seed_set, lr_set, epochs_set;
  int clip_set, schedule_set, warmup_set, step_epochs_set, gamma_set;
  int loss_set, temperature_set, alpha_set, beta_set, skew_set, topk_missing_set;
  kd_lr_schedule schedule;
  int64_t warmup_steps;
  int64_t lr_step_epochs;
  double lr_gamma;
  /* kdcl distill: the loss against a teacher, and where the teacher comes from: --teacher
   * CKPT.h5 runs it online; otherwise /teacher of the training data (offline). */
  int distill;
  kd_distill_config dcfg;
  const char *teacher_path;
} kd_train_options;

void kd_train_options_defaults(kd_train_options *o);

/* Runs training. Returns 0, -1 with a message in err, KD_DIVERGED, or 128 + the signal number
 * when SIGINT or SIGTERM stopped it after a step: the checkpoint holding that position (an
 * epoch's middle included, so --resume continues bit for bit) was written to out_path and err
 * holds the one line that says so. A second signal exits the process at once. */
int kd_train_run(const kd_train_options *o, kd_error *err);

#endif
