/* Evaluation over a dataset: eval-mode forward, logits read back, accuracy and CE on host. */
#include "train/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "data/checkpoint.h"
#include "data/h5util.h"

int kd_evaluate(kd_trainer *t, kd_dataset *ds, kd_eval_result *res, float *logits_out,
                kd_error *err) {
  memset(res, 0, sizeof *res);
  size_t B = t->batch, C = t->model->num_classes;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  int64_t *rows = malloc(B * sizeof *rows);
  void *x = malloc(B * ds->sample_size * elem);
  int32_t *y = malloc(B * sizeof *y);
  float *logits = malloc(B * C * sizeof *logits);
  int rc = -1;
  if (!rows || !x || !y || !logits) {
    kd_fail(err, "out of host memory for evaluation batches");
    goto done;
  }
  double loss_sum = 0;
  for (int64_t first = 0; first < ds->num_rows; first += (int64_t)B) {
    size_t n = (size_t)(ds->num_rows - first < (int64_t)B ? ds->num_rows - first : (int64_t)B);
    for (size_t i = 0; i < n; i++) rows[i] = first + (int64_t)i;
    if (kd_dataset_read_rows(ds, rows, n, x, y, err) ||
        kd_trainer_upload(t, x, ds->x_is_u8, NULL, n, ds->scale, ds->mean, ds->std, NULL, err) ||
        kd_trainer_forward(t, n, 0, 0, 0, err))
      goto done;
    kd_ref out = kd_trainer_logits(t);
    /* Blocking read: it also keeps x alive until the upload has completed. */
    if (kd_read_floats(t->dev, out.buf, out.off, n * C, logits, err)) goto done;
    for (size_t i = 0; i < n; i++) {
      const float *z = logits + i * C;
      size_t best = 0;
      double zmax = z[0];
      for (size_t c = 1; c < C; c++)
        if (z[c] > z[best]) best = c;
      for (size_t c = 1; c < C; c++)
        if (z[c] > zmax) zmax = z[c];
      double sum = 0;
      for (size_t c = 0; c < C; c++) sum += exp((double)z[c] - zmax);
      loss_sum += zmax + log(sum) - (double)z[y[i]];
      res->correct += best == (size_t)y[i];
    }
    if (logits_out) memcpy(logits_out + (size_t)first * C, logits, n * C * sizeof *logits);
  }
  res->rows = ds->num_rows;
  res->accuracy = ds->num_rows ? (double)res->correct / (double)ds->num_rows : 0;
  res->mean_loss = ds->num_rows ? loss_sum / (double)ds->num_rows : 0;
  rc = 0;
done:
  free(rows);
  free(x);
  free(y);
  free(logits);
  return rc;
}

int kd_inference_open(kd_inference *inf, const char *checkpoint_path, const char *device,
                      const char *kernels_binary, int gemm_set, kd_gemm_backend gemm,
                      size_t batch, kd_error *err) {
  memset(inf, 0, sizeof *inf);
  kd_h5_init();
  kd_checkpoint ck;
  if (kd_checkpoint_read(checkpoint_path, &ck, err)) return -1;
  char source[4200];
  snprintf(source, sizeof source, "%s: /meta/model_config", checkpoint_path);
  int rc = kd_model_parse(&inf->model, ck.model_config, source, err);
  if (rc == 0 && (rc = kd_device_open(&inf->dev, device, kernels_binary, 0, err)) != 0)
    kd_model_free(&inf->model);
  if (rc == 0) {
    if (gemm_set) inf->dev.gemm_backend = gemm;
    float *params = calloc(inf->model.param_floats, sizeof(float));
    rc = params ? 0 : kd_fail(err, "out of host memory");
    for (int i = 0; rc == 0 && i < inf->model.num_params; i++) {
      const kd_param *p = &inf->model.params[i];
      int found = 0;
      for (int k = 0; k < ck.num_model && !found; k++)
        if (!strcmp(ck.model[k].name, p->name)) {
          found = 1;
          memcpy(params + p->off, ck.model[k].data, p->numel * sizeof(float));
        }
      if (!found) rc = kd_fail(err, "%s: no /model/%s", checkpoint_path, p->name);
    }
    if (rc == 0) rc = kd_trainer_create(&inf->trainer, &inf->dev, &inf->model, batch, err);
    if (rc == 0 && (rc = kd_trainer_write_params(&inf->trainer, params, err)) != 0)
      kd_trainer_release(&inf->trainer);
    free(params);
    if (rc) {
      kd_device_close(&inf->dev);
      kd_model_free(&inf->model);
    }
  }
  kd_checkpoint_free(&ck);
  inf->open = rc == 0;
  return rc;
}

void kd_inference_close(kd_inference *inf) {
  if (!inf->open) return;
  kd_trainer_release(&inf->trainer);
  kd_device_close(&inf->dev);
  kd_model_free(&inf->model);
  inf->open = 0;
}
