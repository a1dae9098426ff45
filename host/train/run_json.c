/* A run's JSON descriptions: /meta/train_config, a run directory's recipe.json and eval.json. */
#define _XOPEN_SOURCE 700 /* realpath, for the absolute paths of a saved recipe */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "train/run_state.h"

cJSON *kd_run_train_config(const kd_run_state *r) {
  const kd_train_options *o = r->o;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "command", o->distill ? "distill" : "train");
  if (o->distill) {
    cJSON_AddStringToObject(j, "loss", kd_distill_loss_name(o->dcfg.loss));
    cJSON_AddNumberToObject(j, "temperature", o->dcfg.temperature);
    cJSON_AddNumberToObject(j, "alpha", o->dcfg.alpha);
    cJSON_AddNumberToObject(j, "beta", o->dcfg.beta);
    cJSON_AddNumberToObject(j, "skew", o->dcfg.skew);
    cJSON_AddStringToObject(j, "topk_missing",
                            o->dcfg.topk_missing == KD_TOPK_DROP ? "drop" : "uniform");
    cJSON_AddStringToObject(j, "teacher", o->teacher_path ? o->teacher_path : "offline");
  }
  cJSON_AddStringToObject(j, "data", o->data_path);
  if (o->val_path) cJSON_AddStringToObject(j, "val", o->val_path);
  if (o->init_path) cJSON_AddStringToObject(j, "init", o->init_path);
  cJSON_AddNumberToObject(j, "seed", (double)r->seed);
  cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
  cJSON_AddNumberToObject(j, "batch", (double)o->batch);
  cJSON_AddBoolToObject(j, "shuffle", o->shuffle);
  cJSON_AddStringToObject(j, "optimizer", r->optim.type == KD_OPT_SGD ? "sgd" : "adamw");
  cJSON_AddNumberToObject(j, "lr", r->optim.lr);
  cJSON_AddNumberToObject(j, "momentum", r->optim.momentum);
  cJSON_AddNumberToObject(j, "dampening", r->optim.dampening);
  cJSON_AddBoolToObject(j, "nesterov", r->optim.nesterov);
  cJSON_AddNumberToObject(j, "weight_decay", r->optim.weight_decay);
  cJSON_AddNumberToObject(j, "beta1", r->optim.beta1);
  cJSON_AddNumberToObject(j, "beta2", r->optim.beta2);
  cJSON_AddNumberToObject(j, "eps", r->optim.eps);
  cJSON_AddNumberToObject(j, "clip_grad_norm", r->optim.clip_grad_norm);
  cJSON_AddStringToObject(j, "lr_schedule", kd_lr_schedule_name(o->schedule));
  cJSON_AddNumberToObject(j, "warmup_steps", (double)o->warmup_steps);
  cJSON_AddNumberToObject(j, "lr_step_epochs", (double)o->lr_step_epochs);
  cJSON_AddNumberToObject(j, "lr_gamma", o->lr_gamma);
  cJSON_AddStringToObject(j, "gemm", kd_gemm_backend_name(r->dev.gemm_backend));
  cJSON_AddNumberToObject(j, "train_seconds", r->train_seconds);
  cJSON_AddNumberToObject(j, "rows_trained", (double)r->rows_trained);
  if (r->cursor > 0) { /* a mid-epoch checkpoint: the loss sums of the epoch so far */
    cJSON *sums = cJSON_AddArrayToObject(j, "epoch_loss_sums");
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(sums, cJSON_CreateNumber(r->epoch_sums[i]));
  }
  cJSON_AddStringToObject(j, "device", r->dev.info.name);
  return j;
}

/* A float setting as the shortest decimal that reads back as the same float (0.002, not
 * 0.0020000000949949026), so a saved recipe reads as it was written. */
static double float_setting(double v) {
  char text[32];
  for (int digits = 6; digits < 9; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, v);
    if ((float)strtod(text, NULL) == (float)v) return strtod(text, NULL);
  }
  return v;
}

static void add_path(cJSON *j, const char *key, const char *path) {
  char full[PATH_MAX];
  if (path) cJSON_AddStringToObject(j, key, realpath(path, full) ? full : path);
}

/* Built from the same settings as /meta/train_config. */
cJSON *kd_run_effective_recipe(const kd_run_state *r) {
  const kd_train_options *o = r->o;
  cJSON *cfg = kd_run_train_config(r), *j = cJSON_CreateObject();
  cJSON *model = cJSON_Parse(r->model.spec_json);
  if (model) cJSON_AddItemToObject(j, "model", model);
  add_path(j, "data", o->data_path);
  add_path(j, "val", o->val_path);
  add_path(j, "init", o->init_path);
  if (o->distill && o->teacher_path) add_path(j, "teacher", o->teacher_path);
  int sgd = r->optim.type == KD_OPT_SGD;
  static const char *const skipped[] = {"command", "teacher", "data", "val", "init", "shuffle",
                                        "beta1", "beta2", "gemm", "device", "train_seconds",
                                        "rows_trained", "epoch_loss_sums", NULL};
  for (const cJSON *item = cfg->child; item; item = item->next) {
    int skip = 0;
    for (const char *const *k = skipped; *k; k++) skip |= !strcmp(*k, item->string);
    if (!sgd && (!strcmp(item->string, "momentum") || !strcmp(item->string, "dampening") ||
                 !strcmp(item->string, "nesterov")))
      skip = 1;
    if (sgd && !strcmp(item->string, "eps")) skip = 1;
    if (!strcmp(item->string, "lr_step_epochs") && item->valuedouble == 0) skip = 1;
    if (skip) continue;
    char key[64];
    snprintf(key, sizeof key, "%s", item->string);
    for (char *c = key; *c; c++)
      if (*c == '_') *c = '-';
    cJSON *value = cJSON_Duplicate(item, 0);
    /* Settings stored from floats read back as written; integers (seed, epochs, batch,
     * steps) are exact already and must stay so. */
    if (cJSON_IsNumber(value) && value->valuedouble != floor(value->valuedouble))
      cJSON_SetNumberValue(value, float_setting(value->valuedouble));
    cJSON_AddItemToObject(j, key, value);
  }
  if (!o->shuffle) cJSON_AddBoolToObject(j, "no-shuffle", 1);
  if (!sgd) {
    cJSON *betas = cJSON_CreateArray();
    cJSON_AddItemToArray(betas, cJSON_CreateNumber(float_setting(r->optim.beta1)));
    cJSON_AddItemToArray(betas, cJSON_CreateNumber(float_setting(r->optim.beta2)));
    cJSON_AddItemToObject(j, "betas", betas);
  }
  if (o->keep > 0) cJSON_AddNumberToObject(j, "keep", (double)o->keep);
  cJSON_AddNumberToObject(j, "checkpoint-every", (double)o->checkpoint_every);
  cJSON_AddNumberToObject(j, "log-every", (double)o->log_every);
  if (o->gemm_set) cJSON_AddStringToObject(j, "gemm", kd_gemm_backend_name(o->gemm));
  if (o->device) cJSON_AddStringToObject(j, "device", o->device);
  cJSON_Delete(cfg);
  return j;
}

cJSON *kd_run_final_evaluation(const kd_run_state *r) {
  const kd_train_options *o = r->o;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "model", r->model.name);
  cJSON_AddNumberToObject(j, "parameters", (double)kd_model_count_params(&r->model));
  cJSON_AddStringToObject(j, "command", o->distill ? "distill" : "train");
  cJSON_AddStringToObject(j, "loss", o->distill ? kd_distill_loss_name(o->dcfg.loss) : "ce");
  cJSON_AddNumberToObject(j, "epochs", (double)r->epoch);
  cJSON_AddNumberToObject(j, "steps", (double)r->step);
  cJSON_AddStringToObject(j, "device", r->dev.info.name);
  cJSON_AddStringToObject(j, "checkpoint", "checkpoints/latest.h5");
  if (r->have_last_val) {
    char full[PATH_MAX];
    cJSON_AddStringToObject(j, "val_data", realpath(o->val_path, full) ? full : o->val_path);
    cJSON_AddNumberToObject(j, "val_accuracy", r->last_val.accuracy);
    cJSON_AddNumberToObject(j, "val_loss", r->last_val.mean_loss);
    if (r->last_val.has_teacher) {
      cJSON_AddNumberToObject(j, "val_teacher_agreement", r->last_val.agreement);
      cJSON_AddNumberToObject(j, "val_teacher_kl", r->last_val.teacher_kl);
    }
  }
  if (r->best_val_accuracy >= 0) {
    cJSON_AddNumberToObject(j, "best_val_accuracy", r->best_val_accuracy);
    cJSON_AddStringToObject(j, "best_checkpoint", "checkpoints/best.h5");
  }
  if (r->train_seconds > 0) {
    cJSON_AddNumberToObject(j, "train_seconds", r->train_seconds);
    cJSON_AddNumberToObject(j, "samples_per_s", (double)r->rows_trained / r->train_seconds);
  }
  return j;
}
