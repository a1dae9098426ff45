/* On --resume the run continues as it was: settings that decide the data order, the loss and
 * the optimizer's path come from the checkpoint's /meta/train_config. */
#ifndef KD_RESUME_SETTINGS_H
#define KD_RESUME_SETTINGS_H

#include <stddef.h>

#include "data/checkpoint.h"
#include "train/run.h"

/* Fills o's batch, shuffling, clipping, LR schedule and (kdcl distill) loss settings and online
 * teacher from ck's /meta/train_config (an older checkpoint without a key leaves the flag's
 * value). A flag given explicitly (o->*_set) with a different value, a command other than the
 * checkpoint's, or a stored value out of range fails naming the flag and o->resume_path. The
 * teacher path, when it comes from the checkpoint, is copied into teacher[teacher_cap] and
 * o->teacher_path points there. */
int kd_resume_settings(kd_train_options *o, const kd_checkpoint *ck, char *teacher,
                       size_t teacher_cap, kd_error *err);

/* Fails, naming path, unless ck's position is possible (step, epoch, row >= 0, epoch <= step)
 * and its optimizer is sgd or adamw with hyper-parameters in the ranges the CLI accepts (lr in
 * (0, 1e6], momentum and betas in [0, 1], ...). */
int kd_resume_check_optimizer(const kd_checkpoint *ck, const char *path, kd_error *err);

/* Fails, naming path and data_path, unless ck's step, epoch and row cursor are a position that
 * a run over num_rows rows in batches of `batch` reaches: step = epoch * ceil(num_rows / batch)
 * + ceil(cursor / batch), cursor below num_rows. Call after kd_resume_check_optimizer. */
int kd_resume_check_position(const kd_checkpoint *ck, const char *path, int64_t num_rows,
                             int64_t batch, const char *data_path, kd_error *err);

#endif
