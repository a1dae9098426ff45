/* The settings a resumed run keeps from its checkpoint. */
#include "train/resume_settings.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

/* On --resume the run continues as it was: settings that decide the data order, the loss and
 * the optimizer's path come from the checkpoint's /meta/train_config, and a flag that asks for
 * a different value is refused rather than silently ignored. */
static int keep_number(const cJSON *cfg, const char *key, const char *flag, int given,
                       double lo, double hi, double *value, const char *resume_path,
                       kd_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  if (!cJSON_IsNumber(v)) return 0; /* an older checkpoint without it: the flag decides */
  if (!(v->valuedouble >= lo && v->valuedouble <= hi))
    return kd_fail(err, "--resume %s: /meta/train_config has %s %g, outside [%g, %g]",
                   resume_path, key, v->valuedouble, lo, hi);
  /* Values were stored from floats: compare as float, so 0.3 given equals 0.300000011920929. */
  if (given && (float)*value != (float)v->valuedouble)
    return kd_fail(err, "%s %g differs from the %g of --resume %s (a resumed run keeps its "
                   "settings)", flag, *value, v->valuedouble, resume_path);
  *value = v->valuedouble;
  return 0;
}

static int keep_name(const cJSON *cfg, const char *key, const char *flag, int given,
                     const char *current, char *out, size_t cap, const char *resume_path,
                     kd_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  out[0] = '\0';
  if (!cJSON_IsString(v)) return 0;
  if (given && strcmp(current, v->valuestring))
    return kd_fail(err, "%s %s differs from the %s of --resume %s (a resumed run keeps its "
                   "settings)", flag, current, v->valuestring, resume_path);
  snprintf(out, cap, "%s", v->valuestring);
  return 0;
}

int kd_resume_settings(kd_train_options *o, const kd_checkpoint *ck, char *teacher,
                           size_t teacher_cap, kd_error *err) {
  cJSON *cfg = ck->train_config ? cJSON_Parse(ck->train_config) : NULL;
  if (ck->train_config && !cJSON_IsObject(cfg)) {
    cJSON_Delete(cfg);
    return kd_fail(err, "--resume %s: /meta/train_config is not a JSON object (a damaged "
                   "checkpoint?)", o->resume_path);
  }
  const cJSON *batch = cJSON_GetObjectItemCaseSensitive(cfg, "batch");
  const cJSON *shuffle = cJSON_GetObjectItemCaseSensitive(cfg, "shuffle");
  const cJSON *command = cJSON_GetObjectItemCaseSensitive(cfg, "command");
  const char *rp = o->resume_path;
  int rc = 0;
  if (cJSON_IsString(command) && strcmp(command->valuestring, o->distill ? "distill" : "train"))
    rc = kd_fail(err, "--resume %s was written by 'kdcl %s'; resume it with 'kdcl %s' (or start "
                 "a new run from its weights with --init)", rp, command->valuestring,
                 command->valuestring);
  if (rc == 0 && cJSON_IsNumber(batch) &&
      !(batch->valuedouble >= 1 && batch->valuedouble <= (double)(1 << 24)))
    rc = kd_fail(err, "--resume %s: /meta/train_config has batch %g, not a batch size", rp,
                 batch->valuedouble);
  if (rc == 0 && cJSON_IsNumber(batch)) {
    if (o->batch_set && o->batch != (int64_t)batch->valuedouble)
      rc = kd_fail(err, "--batch %lld differs from the %lld of --resume %s (a resumed run keeps its "
                   "settings)", (long long)o->batch, (long long)batch->valuedouble, rp);
    o->batch = (int64_t)batch->valuedouble;
  }
  if (rc == 0 && cJSON_IsBool(shuffle)) {
    if (o->shuffle_set && o->shuffle != cJSON_IsTrue(shuffle))
      rc = kd_fail(err, "--no-shuffle differs from --resume %s, which shuffled (a resumed run "
                   "keeps its settings)", rp);
    o->shuffle = cJSON_IsTrue(shuffle);
  }
  /* --epochs is the run's total and may grow; without it the run keeps its own. */
  const cJSON *epochs = cJSON_GetObjectItemCaseSensitive(cfg, "epochs");
  if (rc == 0 && !o->epochs_set && cJSON_IsNumber(epochs) && epochs->valuedouble >= 1 &&
      epochs->valuedouble <= 1e6)
    o->epochs = (int64_t)epochs->valuedouble;
  if (rc == 0 && o->epochs < ck->epoch)
    rc = kd_fail(err, "--epochs %lld is below the %lld epochs --resume %s has done (--epochs is "
                 "the run's total)", (long long)o->epochs, (long long)ck->epoch, rp);
  if (rc == 0 && o->seed_set && o->seed != ck->seed)
    rc = kd_fail(err, "--seed %llu differs from the seed %llu of --resume %s (a resumed run keeps "
                 "its settings)", (unsigned long long)o->seed, (unsigned long long)ck->seed, rp);
  if (rc == 0 && o->lr_set && fabs(o->optim.lr - ck->lr) > 1e-6 * fabs(ck->lr))
    rc = kd_fail(err, "--lr %g differs from the %g of --resume %s (a resumed run keeps its "
                 "settings)", o->optim.lr, ck->lr, rp);
  /* The learning-rate schedule and clipping. */
  char name[64];
  double clip = o->optim.clip_grad_norm, warmup = (double)o->warmup_steps,
         step_epochs = (double)o->lr_step_epochs, gamma = o->lr_gamma;
  if (rc == 0)
    rc = keep_number(cfg, "clip_grad_norm", "--clip-grad-norm", o->clip_set, 0, 1e12, &clip, rp,
                     err) ||
         keep_number(cfg, "warmup_steps", "--warmup-steps", o->warmup_set, 0, 1e18, &warmup, rp,
                     err) ||
         keep_number(cfg, "lr_step_epochs", "--lr-step-epochs", o->step_epochs_set, 0, 1e6,
                     &step_epochs, rp, err) ||
         keep_number(cfg, "lr_gamma", "--lr-gamma", o->gamma_set, 1e-30, 1, &gamma, rp, err) ||
         keep_name(cfg, "lr_schedule", "--lr-schedule", o->schedule_set,
                   kd_lr_schedule_name(o->schedule), name, sizeof name, rp, err);
  if (rc == 0 && name[0] && kd_lr_schedule_parse(name, &o->schedule))
    rc = kd_fail(err, "--resume %s: /meta/train_config has an unknown lr_schedule '%s'", rp, name);
  o->optim.clip_grad_norm = (float)clip;
  o->warmup_steps = (int64_t)warmup;
  o->lr_step_epochs = (int64_t)step_epochs;
  o->lr_gamma = gamma;
  /* The distillation loss and its teacher. */
  if (rc == 0 && o->distill) {
    kd_distill_config *d = &o->dcfg;
    double t = d->temperature, a = d->alpha, b = d->beta, sk = d->skew;
    char missing[64] = "";
    rc = keep_name(cfg, "loss", "--loss", o->loss_set, kd_distill_loss_name(d->loss), name,
                   sizeof name, rp, err) ||
         keep_number(cfg, "temperature", "--temperature", o->temperature_set, 1e-30, 1e4, &t, rp,
                     err) ||
         keep_number(cfg, "alpha", "--alpha", o->alpha_set, 0, 1, &a, rp, err) ||
         keep_number(cfg, "beta", "--beta", o->beta_set, 0, 1, &b, rp, err) ||
         keep_number(cfg, "skew", "--skew", o->skew_set, 0, 1, &sk, rp, err) ||
         keep_name(cfg, "topk_missing", "--topk-missing", o->topk_missing_set,
                   d->topk_missing == KD_TOPK_DROP ? "drop" : "uniform", missing, sizeof missing,
                   rp, err);
    if (rc == 0 && name[0] && kd_distill_loss_parse(name, &d->loss))
      rc = kd_fail(err, "--resume %s: /meta/train_config has an unknown loss '%s'", rp, name);
    if (rc == 0 && missing[0] && kd_topk_missing_parse(missing, &d->topk_missing))
      rc = kd_fail(err, "--resume %s: /meta/train_config has an unknown topk_missing '%s'", rp,
                   missing);
    d->temperature = (float)t;
    d->alpha = (float)a;
    d->beta = (float)b;
    d->skew = (float)sk;
    /* The teacher: an online one (a path) is run again unless --teacher names one now; an
     * offline run stays offline. */
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(cfg, "teacher");
    if (rc == 0 && cJSON_IsString(tj)) {
      if (!strcmp(tj->valuestring, "offline")) {
        if (o->teacher_path)
          rc = kd_fail(err, "--teacher %s: --resume %s was distilled from its data's /teacher "
                       "(a resumed run keeps its settings)", o->teacher_path, rp);
      } else if (!o->teacher_path) {
        if (snprintf(teacher, teacher_cap, "%s", tj->valuestring) >= (int)teacher_cap)
          rc = kd_fail(err, "--resume %s: the teacher path in /meta/train_config is too long", rp);
        o->teacher_path = teacher;
      }
    }
  }
  cJSON_Delete(cfg);
  return rc;
}

int kd_resume_check_optimizer(const kd_checkpoint *ck, const char *path, kd_error *err) {
  /* Every epoch is at least one step: a position that breaks this is damage, found before
   * the settings are compared with it. */
  if (ck->step < 0 || ck->epoch < 0 || ck->epoch > ck->step || ck->data_cursor < 0)
    return kd_fail(err, "--resume %s: its position (step %lld, epoch %lld, row %lld) is not one "
                   "a run reaches (a damaged checkpoint?)", path, (long long)ck->step,
                   (long long)ck->epoch, (long long)ck->data_cursor);
  if (strcmp(ck->optimizer_type, "sgd") && strcmp(ck->optimizer_type, "adamw"))
    return kd_fail(err, "--resume %s: /optimizer type '%s' is neither sgd nor adamw", path,
                   ck->optimizer_type);
  const struct {
    const char *name;
    double value, lo, hi;
    int lo_open;
  } hyper[] = {{"lr", ck->lr, 0, 1e6, 1},           {"momentum", ck->momentum, 0, 1, 0},
               {"dampening", ck->dampening, 0, 1, 0}, {"weight_decay", ck->weight_decay, 0, 1e3, 0},
               {"beta1", ck->beta1, 0, 1, 0},         {"beta2", ck->beta2, 0, 1, 0},
               {"eps", ck->eps, 0, 1, 1}};
  for (size_t i = 0; i < sizeof hyper / sizeof hyper[0]; i++) {
    double v = hyper[i].value;
    if (!(v >= hyper[i].lo && v <= hyper[i].hi) || (hyper[i].lo_open && v == hyper[i].lo))
      return kd_fail(err, "--resume %s: /optimizer attribute %s is %g, outside %s%g, %g]", path,
                     hyper[i].name, v, hyper[i].lo_open ? "(" : "[", hyper[i].lo, hyper[i].hi);
  }
  return 0;
}

int kd_resume_check_position(const kd_checkpoint *ck, const char *path, int64_t num_rows,
                             int64_t batch, const char *data_path, kd_error *err) {
  int64_t steps_per_epoch = (num_rows + batch - 1) / batch;
  /* kd_resume_check_optimizer has seen 0 <= epoch <= step (each epoch is at least one step),
   * which keeps the product below in range. */
  int ok = ck->data_cursor < num_rows &&
           ck->step == ck->epoch * steps_per_epoch + (ck->data_cursor + batch - 1) / batch;
  if (!ok)
    return kd_fail(err, "--resume %s: its position (step %lld, epoch %lld, row %lld) is not one "
                   "a run over the %lld rows of %s in batches of %lld reaches (a damaged "
                   "checkpoint, or other data than the run's?)", path, (long long)ck->step,
                   (long long)ck->epoch, (long long)ck->data_cursor, (long long)num_rows,
                   data_path, (long long)batch);
  return 0;
}
