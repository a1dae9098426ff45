/* The state of one training run, shared by the files that make up a run: run.c (setup and the
 * epoch loop), run_checkpoint.c (save and restore) and run_json.c (its JSON descriptions). */
#ifndef KD_RUN_STATE_H
#define KD_RUN_STATE_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "data/checkpoint.h"
#include "data/dataset.h"
#include "nn/model.h"
#include "train/evaluate.h"
#include "train/loader.h"
#include "train/run.h"
#include "train/trainer.h"

/* Everything a run holds, so one cleanup path releases it. */
typedef struct kd_run_state {
  const kd_train_options *o;
  kd_device dev;
  int dev_open;
  kd_model model;
  kd_dataset train, val;
  int train_open, val_open;
  kd_trainer trainer;
  int trainer_open;
  kd_teacher_source source; /* what the loss compares with */
  kd_inference teacher;     /* the online teacher (--teacher) */
  kd_loader loader;
  int loader_open;
  float *host_params, *host_buffers, *host_state;
  int64_t *order;
  FILE *log;
  int tty;
  kd_optim_config optim;
  uint64_t seed;
  int64_t step, epoch, cursor; /* steps done; current epoch (0-based); rows done in it */
  int64_t saved_step, saved_epoch, saved_cursor; /* the position --out holds (-1: none yet) */
  double best_val_accuracy;  /* of the run directory's best.h5 (-1: none yet) */
  kd_eval_result last_val;   /* the latest validation, for eval.json */
  int have_last_val;
  int64_t rows_trained;      /* rows stepped, and the seconds it took, over the whole run */
  double train_seconds;      /* (earlier processes' share from --resume's train_config) */
  /* The loss sums of the epoch in progress (rows, loss, ce, kd), saved with a mid-epoch
   * checkpoint so a resumed epoch's record equals the uninterrupted one. */
  double epoch_sums[4];
} kd_run_state;


/* Writes the run's position, weights, buffers and optimizer state to path (atomically, see
 * kd_checkpoint_write) and records the position as saved. */
int kd_run_save_checkpoint(kd_run_state *r, const char *path, kd_error *err);
/* Restores parameters, buffers, optimizer state and position from a checkpoint read earlier
 * (the model, trainer and host copies must exist). */
int kd_run_restore(kd_run_state *r, const kd_checkpoint *ck, kd_error *err);

/* /meta/train_config of a checkpoint: every setting of the run, keys with underscores. */
cJSON *kd_run_train_config(const kd_run_state *r);
/* A run directory's recipe.json: the effective settings as a --config recipe (keys are the
 * long options), the spec inline and the paths absolute, so it reruns the run from anywhere. */
cJSON *kd_run_effective_recipe(const kd_run_state *r);
/* A run directory's eval.json: what the run ended with. */
cJSON *kd_run_final_evaluation(const kd_run_state *r);

#endif
