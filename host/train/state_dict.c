/* Named tensors <-> host copies of the parameter and buffer arenas. */
#include "train/state_dict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"

static void set_tensor(kd_named_tensor *t, const kd_param *p, float *base) {
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", p->name);
  t->ndim = p->ndim;
  memcpy(t->shape, p->shape, sizeof t->shape);
  t->data = base + p->off;
}

int kd_state_dict_build(const kd_model *m, float *params, float *buffers, int64_t *bn_tracked,
                        kd_named_tensor **out, int *count, kd_error *err) {
  int n = m->num_params + m->num_buffers + m->num_bn;
  kd_named_tensor *t = calloc((size_t)n, sizeof *t);
  if (!t) return kd_fail(err, "out of host memory");
  int k = 0;
  for (int i = 0; i < m->num_params; i++) set_tensor(&t[k++], &m->params[i], params);
  for (int i = 0; i < m->num_buffers; i++) set_tensor(&t[k++], &m->buffers[i], buffers);
  for (int i = 0; i < m->num_bn; i++, k++) {
    snprintf(t[k].name, sizeof t[k].name, "%s.num_batches_tracked", m->bn_keys[i]);
    t[k].ndim = 0;
    t[k].idata = &bn_tracked[i];
  }
  *out = t;
  *count = n;
  return 0;
}

static const kd_named_tensor *find(const kd_checkpoint *ck, const char *name) {
  for (int k = 0; k < ck->num_model; k++)
    if (!strcmp(ck->model[k].name, name)) return &ck->model[k];
  return NULL;
}

static int copy_from(const kd_checkpoint *ck, const char *path, const kd_param *p, float *base,
                     kd_error *err) {
  const kd_named_tensor *t = find(ck, p->name);
  if (!t) return kd_fail(err, "%s: no /model/%s", path, p->name);
  int same = t->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
  if (!same) {
    char have[96], want[96];
    kd_h5_format_shape(have, sizeof have, t->ndim, t->shape);
    kd_h5_format_shape(want, sizeof want, p->ndim, p->shape);
    return kd_fail(err, "%s: /model/%s has shape %s but the model needs %s", path, p->name, have,
                   want);
  }
  memcpy(base + p->off, t->data, p->numel * sizeof(float));
  return 0;
}

/* Weights that are NaN or Inf, or a batch-norm running variance below 0, would only show up
 * as a diverged loss or NaN outputs: name them instead. */
static int check_values(const kd_model *m, const char *path, const float *params,
                        const float *buffers, kd_error *err) {
  for (int pass = 0; pass < 2; pass++) {
    const kd_param *list = pass ? m->buffers : m->params;
    int count = pass ? m->num_buffers : m->num_params;
    const float *base = pass ? buffers : params;
    for (int i = 0; i < count; i++) {
      size_t len = strlen(list[i].name);
      int variance = len >= 12 && !strcmp(list[i].name + len - 12, ".running_var");
      for (size_t k = 0; k < list[i].numel; k++) {
        float v = base[list[i].off + k];
        if (!isfinite(v))
          return kd_fail(err, "%s: /model/%s has a non-finite value at flat index %zu", path,
                         list[i].name, k);
        if (variance && v < 0)
          return kd_fail(err, "%s: /model/%s has a negative variance (%g) at index %zu", path,
                         list[i].name, (double)v, k);
      }
    }
  }
  return 0;
}

int kd_state_dict_from_checkpoint(const kd_model *m, const kd_checkpoint *ck, const char *path,
                                  float *params, float *buffers, int64_t *bn_tracked,
                                  kd_error *err) {
  for (int i = 0; i < m->num_params; i++)
    if (copy_from(ck, path, &m->params[i], params, err)) return -1;
  for (int i = 0; i < m->num_buffers; i++)
    if (copy_from(ck, path, &m->buffers[i], buffers, err)) return -1;
  for (int i = 0; i < m->num_bn; i++) {
    char name[128];
    snprintf(name, sizeof name, "%s.num_batches_tracked", m->bn_keys[i]);
    const kd_named_tensor *t = find(ck, name);
    int64_t numel = 1;
    for (int d = 0; t && d < t->ndim; d++) numel *= t->shape[d];
    if (t && (!t->idata || numel != 1 || t->idata[0] < 0))
      return kd_fail(err, "%s: /model/%s must be one integer >= 0 (a step count)", path, name);
    bn_tracked[i] = t ? t->idata[0] : 0;
  }
  return check_values(m, path, params, buffers, err);
}

int kd_state_dict_from_file(const kd_model *m, const char *path, float *params, float *buffers,
                            int64_t *bn_tracked, kd_error *err) {
  hid_t file;
  if (kd_h5_open_read(path, &file, err)) return -1;
  int rc = 0;
  for (int i = 0; i < m->num_params && rc == 0; i++) {
    const kd_param *p = &m->params[i];
    rc = kd_h5_read_model_tensor(file, path, p->name, p->ndim, p->shape, params + p->off, err);
  }
  for (int i = 0; i < m->num_buffers && rc == 0; i++) {
    const kd_param *p = &m->buffers[i];
    rc = kd_h5_read_model_tensor(file, path, p->name, p->ndim, p->shape, buffers + p->off, err);
  }
  for (int i = 0; i < m->num_bn && rc == 0; i++) {
    char name[128];
    int found;
    snprintf(name, sizeof name, "%s.num_batches_tracked", m->bn_keys[i]);
    bn_tracked[i] = 0;
    rc = kd_h5_read_model_int64(file, path, name, &bn_tracked[i], &found, err);
  }
  H5Fclose(file);
  return rc ? rc : check_values(m, path, params, buffers, err);
}

int kd_state_dict_check(const kd_checkpoint *ck, const char *path, kd_error *err) {
  char source[4200];
  snprintf(source, sizeof source, "%s: /meta/model_config", path);
  kd_model m;
  if (kd_model_parse(&m, ck->model_config, source, err)) return -1;
  float *params = calloc(m.param_floats + 1, sizeof(float));
  float *buffers = calloc(m.buffer_floats + 1, sizeof(float));
  int64_t *tracked = calloc((size_t)m.num_bn + 1, sizeof(int64_t));
  int rc = !params || !buffers || !tracked ? kd_fail(err, "out of host memory")
           : kd_state_dict_from_checkpoint(&m, ck, path, params, buffers, tracked, err);
  int expected = m.num_params + m.num_buffers + m.num_bn;
  if (rc == 0 && ck->num_model != expected)
    rc = kd_fail(err, "%s: /model holds %d tensors but the model '%s' has %d (a state_dict "
                 "with other keys would not load strictly)", path, ck->num_model, m.name,
                 expected);
  free(params);
  free(buffers);
  free(tracked);
  kd_model_free(&m);
  return rc;
}
