/* Evaluation over a dataset: eval-mode forward, logits read back, accuracy, CE and agreement
 * with the teacher computed on the host in double. Loading a checkpoint for inference. */
#include "train/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/checkpoint.h"
#include "data/h5util.h"
#include "train/state_dict.h"

/* log-sum-exp of z[0..n) in double. */
static double logsumexp(const float *z, size_t n) {
  double zmax = z[0], sum = 0;
  for (size_t c = 1; c < n; c++)
    if (z[c] > zmax) zmax = z[c];
  for (size_t c = 0; c < n; c++) sum += exp((double)z[c] - zmax);
  return zmax + log(sum);
}

static size_t argmax(const float *z, size_t n) {
  size_t best = 0;
  for (size_t c = 1; c < n; c++)
    if (z[c] > z[best]) best = c;
  return best;
}

/* KL(teacher || student) of one row, and whether the top-1 classes agree. */
static double teacher_row(const kd_dataset *ds, const float *z, size_t C, const float *t_logits,
                          const int32_t *t_idx, const float *t_logp, int *agree) {
  double lse_s = logsumexp(z, C), kl = 0;
  if (ds->teacher_kind == KD_TEACHER_LOGITS) {
    double lse_t = logsumexp(t_logits, C);
    for (size_t c = 0; c < C; c++) {
      double lt = t_logits[c] - lse_t;
      kl += exp(lt) * (lt - ((double)z[c] - lse_s));
    }
    *agree = argmax(t_logits, C) == argmax(z, C);
  } else {
    size_t K = (size_t)ds->teacher_k, top = 0;
    double lse_t = logsumexp(t_logp, K);
    for (size_t k = 0; k < K; k++) {
      double lt = t_logp[k] - lse_t;
      kl += exp(lt) * (lt - ((double)z[t_idx[k]] - lse_s));
      if (t_logp[k] > t_logp[top]) top = k;
    }
    *agree = (size_t)t_idx[top] == argmax(z, C);
  }
  return kl;
}

int kd_evaluate(kd_trainer *t, kd_dataset *ds, int with_teacher, kd_eval_result *res,
                float *logits_out, kd_error *err) {
  memset(res, 0, sizeof *res);
  size_t B = t->batch, C = t->model->num_classes;
  size_t elem = ds->x_is_u8 ? 1 : sizeof(float);
  int teacher = with_teacher && ds->teacher_kind != KD_TEACHER_NONE;
  size_t K = teacher && ds->teacher_kind == KD_TEACHER_TOPK ? (size_t)ds->teacher_k : 0;
  int64_t *rows = malloc(B * sizeof *rows);
  void *x = malloc(B * ds->sample_size * elem);
  int32_t *y = malloc(B * sizeof *y);
  float *logits = malloc(B * C * sizeof *logits);
  float *t_logits = teacher && !K ? malloc(B * C * sizeof(float)) : NULL;
  int32_t *t_idx = K ? malloc(B * K * sizeof(int32_t)) : NULL;
  float *t_logp = K ? malloc(B * K * sizeof(float)) : NULL;
  int rc = -1;
  if (!rows || !x || !y || !logits || (teacher && !K && !t_logits) || (K && (!t_idx || !t_logp))) {
    kd_fail(err, "out of host memory for evaluation batches");
    goto done;
  }
  double loss_sum = 0, kl_sum = 0;
  int64_t agree_count = 0;
  for (int64_t first = 0; first < ds->num_rows; first += (int64_t)B) {
    size_t n = (size_t)(ds->num_rows - first < (int64_t)B ? ds->num_rows - first : (int64_t)B);
    for (size_t i = 0; i < n; i++) rows[i] = first + (int64_t)i;
    if (kd_dataset_read_rows(ds, rows, n, x, y, err) ||
        (teacher && kd_dataset_read_teacher_rows(ds, rows, n, t_logits, t_idx, t_logp, err)) ||
        kd_trainer_upload(t, x, ds->x_is_u8, NULL, n, ds->scale, ds->mean, ds->std, NULL, err) ||
        kd_trainer_forward(t, n, 0, 0, 0, err))
      goto done;
    kd_ref out = kd_trainer_logits(t);
    /* Blocking read: it also keeps x alive until the upload has completed. */
    if (kd_read_floats(t->dev, out.buf, out.off, n * C, logits, err)) goto done;
    for (size_t i = 0; i < n; i++) {
      const float *z = logits + i * C;
      loss_sum += logsumexp(z, C) - (double)z[y[i]];
      res->correct += argmax(z, C) == (size_t)y[i];
      if (teacher) {
        int agree;
        kl_sum += teacher_row(ds, z, C, t_logits ? t_logits + i * C : NULL,
                              t_idx ? t_idx + i * K : NULL, t_logp ? t_logp + i * K : NULL,
                              &agree);
        agree_count += agree;
      }
    }
    if (logits_out) memcpy(logits_out + (size_t)first * C, logits, n * C * sizeof *logits);
  }
  double rows_d = ds->num_rows ? (double)ds->num_rows : 1;
  res->rows = ds->num_rows;
  res->accuracy = (double)res->correct / rows_d;
  res->mean_loss = loss_sum / rows_d;
  res->has_teacher = teacher;
  res->agreement = (double)agree_count / rows_d;
  res->teacher_kl = kl_sum / rows_d;
  rc = 0;
done:
  free(rows);
  free(x);
  free(y);
  free(logits);
  free(t_logits);
  free(t_idx);
  free(t_logp);
  return rc;
}

int kd_inference_open_on(kd_inference *inf, const char *checkpoint_path, kd_device *dev,
                         size_t batch, kd_error *err) {
  memset(inf, 0, sizeof *inf);
  kd_h5_init();
  kd_checkpoint ck;
  if (kd_checkpoint_read(checkpoint_path, &ck, err)) return -1;
  char source[4200];
  snprintf(source, sizeof source, "%s: /meta/model_config", checkpoint_path);
  int rc = ck.model_config ? kd_model_parse(&inf->model, ck.model_config, source, err)
                           : kd_fail(err, "%s: no /meta/model_config", checkpoint_path);
  float *params = NULL, *buffers = NULL;
  if (rc == 0) {
    params = calloc(inf->model.param_floats, sizeof(float));
    buffers = calloc(inf->model.buffer_floats + 1, sizeof(float));
    rc = params && buffers ? 0 : kd_fail(err, "out of host memory");
  }
  if (rc == 0) rc = kd_trainer_create(&inf->trainer, dev, &inf->model, batch, 0, err);
  if (rc == 0 &&
      ((rc = kd_state_dict_from_checkpoint(&inf->model, &ck, checkpoint_path, params, buffers,
                                          inf->trainer.bn_tracked, err)) != 0 ||
       (rc = kd_trainer_write_params(&inf->trainer, params, buffers, err)) != 0))
    kd_trainer_release(&inf->trainer);
  free(params);
  free(buffers);
  if (rc) kd_model_free(&inf->model);
  kd_checkpoint_free(&ck);
  inf->open = rc == 0;
  return rc;
}

int kd_inference_open(kd_inference *inf, const char *checkpoint_path, const char *device,
                      const char *kernels_binary, int gemm_set, kd_gemm_backend gemm,
                      size_t batch, kd_error *err) {
  kd_device dev;
  if (kd_device_open(&dev, device, kernels_binary, 0, err)) return -1;
  if (gemm_set) dev.gemm_backend = gemm;
  /* The trainer keeps a pointer to the device: open it on inf's own copy. */
  memset(inf, 0, sizeof *inf);
  kd_device *own = malloc(sizeof *own);
  if (!own) {
    kd_device_close(&dev);
    return kd_fail(err, "out of host memory");
  }
  *own = dev;
  if (kd_inference_open_on(inf, checkpoint_path, own, batch, err)) {
    kd_device_close(own);
    free(own);
    return -1;
  }
  inf->own_dev = own;
  inf->owns_dev = 1;
  return 0;
}

void kd_inference_close(kd_inference *inf) {
  if (!inf->open) return;
  kd_trainer_release(&inf->trainer);
  kd_model_free(&inf->model);
  if (inf->owns_dev) {
    kd_device_close(inf->own_dev);
    free(inf->own_dev);
  }
  memset(inf, 0, sizeof *inf);
}
