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

#endif
