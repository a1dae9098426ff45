/* Learning-rate schedules, computed on the host each step and passed to the optimizer kernel. */
#ifndef KD_SCHEDULE_H
#define KD_SCHEDULE_H

#include <stdint.h>

typedef enum kd_lr_schedule { KD_LR_CONSTANT, KD_LR_STEP, KD_LR_COSINE } kd_lr_schedule;

typedef struct kd_schedule {
  kd_lr_schedule kind;
  double base_lr;
  int64_t warmup_steps;   /* linear warm-up from base_lr/warmup to base_lr over these steps */
  int64_t total_steps;    /* cosine decays to 0 at this step */
  int64_t steps_per_epoch;
  int64_t step_epochs;    /* step: multiply by gamma every step_epochs epochs */
  double gamma;
} kd_schedule;

int kd_lr_schedule_parse(const char *name, kd_lr_schedule *out); /* constant|step|cosine */
const char *kd_lr_schedule_name(kd_lr_schedule kind);

/* The learning rate of 1-based step `step`. */
double kd_schedule_lr(const kd_schedule *s, int64_t step);

#endif
