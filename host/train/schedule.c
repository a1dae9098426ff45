/* Learning-rate schedules: constant, step decay by epochs, cosine; all with linear warm-up. */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

int kd_lr_schedule_parse(const char *name, kd_lr_schedule *out) {
  if (!strcmp(name, "constant")) *out = KD_LR_CONSTANT;
  else if (!strcmp(name, "step")) *out = KD_LR_STEP;
  else if (!strcmp(name, "cosine")) *out = KD_LR_COSINE;
  else return -1;
  return 0;
}

const char *kd_lr_schedule_name(kd_lr_schedule kind) {
  return kind == KD_LR_STEP ? "step" : kind == KD_LR_COSINE ? "cosine" : "constant";
}

double kd_schedule_lr(const kd_schedule *s, int64_t step) {
  if (s->warmup_steps > 0 && step <= s->warmup_steps)
    return s->base_lr * (double)step / (double)s->warmup_steps;
  switch (s->kind) {
    case KD_LR_STEP: {
      int64_t epoch = (step - 1) / (s->steps_per_epoch > 0 ? s->steps_per_epoch : 1);
      return s->base_lr * pow(s->gamma, (double)(epoch / (s->step_epochs > 0 ? s->step_epochs : 1)));
    }
    case KD_LR_COSINE: {
      int64_t span = s->total_steps - s->warmup_steps;
      if (span <= 0) return s->base_lr;
      double progress = (double)(step - s->warmup_steps) / (double)span;
      if (progress > 1) progress = 1;
      return s->base_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    }
    default:
      return s->base_lr;
  }
}
