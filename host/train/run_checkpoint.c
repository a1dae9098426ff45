/* A run's checkpoints: the state written to --out, and restored from --resume. */
#include <stdlib.h>
#include <string.h>

#include "train/run_state.h"
#include "train/state_dict.h"

/* The checkpoint's tensors point into the host copies of the device arenas. */
int kd_run_save_checkpoint(kd_run_state *r, const char *path, kd_error *err) {
  const kd_model *m = &r->model;
  size_t n = m->param_floats;
  if (kd_trainer_read_params(&r->trainer, r->host_params, r->host_buffers, err) ||
      kd_read_floats(&r->dev, r->trainer.opt_state.buf, 0, 2 * n, r->host_state, err))
    return -1;
  kd_checkpoint ck;
  memset(&ck, 0, sizeof ck);
  ck.model_config = m->spec_json;
  if (kd_state_dict_build(m, r->host_params, r->host_buffers, r->trainer.bn_tracked, &ck.model,
                          &ck.num_model, err))
    return -1;
  cJSON *cfg = kd_run_train_config(r);
  ck.train_config = cJSON_PrintUnformatted(cfg);
  cJSON_Delete(cfg);
  int slots = r->optim.type == KD_OPT_ADAMW ? 2 : (r->optim.momentum != 0 ? 1 : 0);
  ck.optim_state = calloc((size_t)m->num_params * 2 + 1, sizeof *ck.optim_state);
  if (!ck.train_config || !ck.optim_state) {
    free(ck.train_config);
    free(ck.model);
    free(ck.optim_state);
    return kd_fail(err, "out of host memory writing a checkpoint");
  }
  for (int i = 0; i < m->num_params; i++) {
    const kd_param *p = &m->params[i];
    for (int s = 0; s < slots; s++) {
      kd_named_tensor *st = &ck.optim_state[ck.num_optim_state++];
      *st = ck.model[i];
      const char *slot = r->optim.type == KD_OPT_SGD ? "momentum_buffer" : s ? "exp_avg_sq" : "exp_avg";
      snprintf(st->name, sizeof st->name, "%s/%s", p->name, slot);
      st->data = r->host_state + (size_t)s * n + p->off;
    }
  }
  snprintf(ck.optimizer_type, sizeof ck.optimizer_type, "%s",
           r->optim.type == KD_OPT_SGD ? "sgd" : "adamw");
  ck.lr = r->optim.lr;
  ck.momentum = r->optim.momentum;
  ck.dampening = r->optim.dampening;
  ck.weight_decay = r->optim.weight_decay;
  ck.beta1 = r->optim.beta1;
  ck.beta2 = r->optim.beta2;
  ck.eps = r->optim.eps;
  ck.nesterov = r->optim.nesterov;
  ck.step = r->step;
  ck.epoch = r->epoch;
  ck.data_cursor = r->cursor;
  ck.seed = r->seed;
  int rc = kd_checkpoint_write(path, &ck, err);
  if (rc == 0) {
    r->saved_step = r->step;
    r->saved_epoch = r->epoch;
    r->saved_cursor = r->cursor;
  }
  free(ck.train_config);
  free(ck.model);
  free(ck.optim_state);
  return rc;
}

int kd_run_restore(kd_run_state *r, const kd_checkpoint *ck, kd_error *err) {
  const kd_model *m = &r->model;
  size_t n = m->param_floats;
  if (kd_state_dict_from_checkpoint(m, ck, r->o->resume_path, r->host_params, r->host_buffers,
                                    r->trainer.bn_tracked, err))
    return -1;
  memset(r->host_state, 0, 2 * n * sizeof(float));
  int slots = r->optim.type == KD_OPT_ADAMW ? 2 : (r->optim.momentum != 0 ? 1 : 0);
  for (int i = 0; i < m->num_params; i++) {
    const kd_param *p = &m->params[i];
    int found = 0;
    for (int k = 0; k < ck->num_optim_state; k++) {
      const char *slash = strrchr(ck->optim_state[k].name, '/');
      if (!slash || (size_t)(slash - ck->optim_state[k].name) != strlen(p->name) ||
          strncmp(ck->optim_state[k].name, p->name, strlen(p->name)))
        continue;
      int s = !strcmp(slash + 1, "exp_avg_sq") ? 1 : 0;
      int64_t numel = 1;
      for (int d = 0; d < ck->optim_state[k].ndim; d++) numel *= ck->optim_state[k].shape[d];
      if ((size_t)numel != p->numel)
        return kd_fail(err, "%s: /optimizer/state/%s has %lld values but %s has %zu",
                       r->o->resume_path, ck->optim_state[k].name, (long long)numel, p->name,
                       p->numel);
      memcpy(r->host_state + (size_t)s * n + p->off, ck->optim_state[k].data,
             p->numel * sizeof(float));
      found++;
    }
    if (ck->step > 0 && found < slots)
      return kd_fail(err, "%s: the optimizer state of %s is missing (/optimizer/state/%s/...)",
                     r->o->resume_path, p->name, p->name);
  }
  r->step = ck->step;
  r->epoch = ck->epoch;
  r->cursor = ck->data_cursor;
  r->seed = ck->seed;
  if (kd_trainer_write_params(&r->trainer, r->host_params, r->host_buffers, err)) return -1;
  return kd_write_floats(&r->dev, r->trainer.opt_state.buf, 0, 2 * n, r->host_state, err);
}
