/* The step schedule for sequential models: upload, forward, loss + backward, optimizer. */
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>

#include "nn/layers.h"
#include "nn/loss.h"

int kd_trainer_create(kd_trainer *t, kd_device *dev, const kd_model *m, size_t batch,
                      size_t topk_k, kd_error *err) {
  memset(t, 0, sizeof *t);
  t->dev = dev;
  t->model = m;
  t->batch = batch;
  t->sample_size = m->input_size;
  t->params.name = "params";
  t->grads.name = "grads";
  t->opt_state.name = "optimizer state";
  t->acts.name = "activations";
  t->work.name = "workspace";
  kd_arena_reserve(&t->params, m->param_floats);
  kd_arena_reserve(&t->grads, m->param_floats);
  kd_arena_reserve(&t->opt_state, 2 * m->param_floats);
  if (batch > ((size_t)1 << 31) / (m->max_features ? m->max_features : 1))
    return kd_fail(err, "--batch %zu is too large for this model (%zu features per layer)", batch,
                   m->max_features);
  t->act_out = calloc((size_t)m->num_layers, sizeof *t->act_out);
  if (!t->act_out) return kd_fail(err, "out of host memory");
  t->act_in = kd_arena_reserve(&t->acts, batch * m->input_size);
  size_t prev = t->act_in;
  for (int i = 0; i < m->num_layers; i++) {
    const kd_layer *L = &m->layers[i];
    t->act_out[i] = L->type == KD_LAYER_FLATTEN ? prev : kd_arena_reserve(&t->acts, batch * L->out_size);
    prev = t->act_out[i];
  }
  for (int k = 0; k < 2; k++) t->dact[k] = kd_arena_reserve(&t->work, batch * m->max_features);
  t->loss_rows = kd_arena_reserve(&t->work, batch);
  t->kd_rows = kd_arena_reserve(&t->work, batch);
  t->teacher_logits = kd_arena_reserve(&t->work, batch * m->num_classes);
  t->topk_k = topk_k;
  t->topk_logp = kd_arena_reserve(&t->work, batch * topk_k);
  t->grad_norm = kd_arena_reserve(&t->work, 1);
  t->grad_norm_ws = kd_arena_reserve(&t->work, kd_grad_norm_workspace_floats(m->param_floats));
  if (kd_arena_create(dev, &t->params, err) || kd_arena_create(dev, &t->grads, err) ||
      kd_arena_create(dev, &t->opt_state, err) || kd_arena_create(dev, &t->acts, err) ||
      kd_arena_create(dev, &t->work, err)) {
    kd_trainer_release(t);
    return -1;
  }
  cl_int rc;
  t->x_raw = clCreateBuffer(dev->context, CL_MEM_READ_ONLY, batch * m->input_size * sizeof(float),
                            NULL, &rc);
  if (rc == CL_SUCCESS)
    t->labels = clCreateBuffer(dev->context, CL_MEM_READ_ONLY, batch * sizeof(int32_t), NULL, &rc);
  if (rc == CL_SUCCESS)
    t->topk_idx = clCreateBuffer(dev->context, CL_MEM_READ_ONLY,
                                 (topk_k ? batch * topk_k : 1) * sizeof(int32_t), NULL, &rc);
  if (rc != CL_SUCCESS) {
    kd_trainer_release(t);
    return kd_fail(err, "allocating input buffers for --batch %zu failed: %s", batch,
                   kd_cl_errstr(rc));
  }
  return 0;
}

void kd_trainer_release(kd_trainer *t) {
  kd_arena_release(&t->params);
  kd_arena_release(&t->grads);
  kd_arena_release(&t->opt_state);
  kd_arena_release(&t->acts);
  kd_arena_release(&t->work);
  if (t->x_raw) clReleaseMemObject(t->x_raw);
  if (t->labels) clReleaseMemObject(t->labels);
  if (t->topk_idx) clReleaseMemObject(t->topk_idx);
  free(t->act_out);
  memset(t, 0, sizeof *t);
}

int kd_trainer_upload(kd_trainer *t, const void *x, int x_is_u8, const int32_t *labels, size_t n,
                      float scale, float mean, float std, cl_event *done, kd_error *err) {
  size_t elems = n * t->sample_size, bytes = elems * (x_is_u8 ? 1 : sizeof(float));
  cl_event ev_x = NULL, ev_y = NULL;
  KD_CL_CHECK(err, clEnqueueWriteBuffer(t->dev->queue, t->x_raw, CL_FALSE, 0, bytes, x, 0, NULL,
                                        &ev_x));
  if (labels) {
    cl_int rc = clEnqueueWriteBuffer(t->dev->queue, t->labels, CL_FALSE, 0, n * sizeof(int32_t),
                                     labels, 0, NULL, &ev_y);
    if (rc != CL_SUCCESS) {
      clReleaseEvent(ev_x);
      return kd_cl_fail(err, "clEnqueueWriteBuffer", rc, __FILE__, __LINE__);
    }
  }
  /* In an in-order queue the later write completes last: one event covers both. */
  if (ev_y) {
    clReleaseEvent(ev_x);
    ev_x = ev_y;
  }
  if (done) *done = ev_x;
  else clReleaseEvent(ev_x);
  return kd_normalize_inputs(t->dev, kd_at(t->acts.buf, t->act_in), kd_at(t->x_raw, 0), x_is_u8,
                             elems, scale, mean, std, err);
}

/* Dropout masks differ per step and per layer: one stream per (step, layer). */
static uint64_t dropout_stream(int64_t step, int layer) {
  return (uint64_t)step * 4096u + (uint64_t)layer;
}

int kd_trainer_forward(kd_trainer *t, size_t n, int training, uint64_t seed, int64_t step,
                       kd_error *err) {
  const kd_model *m = t->model;
  cl_mem acts = t->acts.buf, params = t->params.buf;
  size_t in = t->act_in;
  for (int i = 0; i < m->num_layers; i++) {
    const kd_layer *L = &m->layers[i];
    kd_ref x = kd_at(acts, in), y = kd_at(acts, t->act_out[i]);
    int rc = 0;
    switch (L->type) {
      case KD_LAYER_FLATTEN:
        break;
      case KD_LAYER_DENSE:
        rc = kd_dense_forward(t->dev, y, x, kd_at(params, L->w_off),
                              kd_at(L->bias ? params : NULL, L->b_off), n, L->in_size,
                              L->out_size, err);
        break;
      case KD_LAYER_ACTIVATION:
        rc = kd_activation_forward(t->dev, L->act, y, x, n * L->out_size, err);
        break;
      case KD_LAYER_DROPOUT:
        rc = kd_dropout_forward(t->dev, y, x, n * L->out_size, training ? L->rate : 0.0f, seed,
                                dropout_stream(step, i), err);
        break;
    }
    if (rc) return kd_fail_context(err, "layers[%d] forward", i);
    in = t->act_out[i];
  }
  return 0;
}

kd_ref kd_trainer_logits(const kd_trainer *t) {
  return kd_at(t->acts.buf, t->act_out[t->model->num_layers - 1]);
}

int kd_trainer_upload_teacher(kd_trainer *t, const float *logits, const int32_t *topk_idx,
                              const float *topk_logp, size_t n, cl_event *done, kd_error *err) {
  cl_command_queue q = t->dev->queue;
  cl_event ev = NULL;
  if (logits) {
    KD_CL_CHECK(err, clEnqueueWriteBuffer(q, t->work.buf, CL_FALSE,
                                          t->teacher_logits * sizeof(float),
                                          n * t->model->num_classes * sizeof(float), logits, 0,
                                          NULL, &ev));
  } else {
    size_t nk = n * t->topk_k;
    if (!t->topk_k) return kd_fail(err, "the trainer was created without room for a top-k teacher");
    KD_CL_CHECK(err, clEnqueueWriteBuffer(q, t->topk_idx, CL_FALSE, 0, nk * sizeof(int32_t),
                                          topk_idx, 0, NULL, NULL));
    KD_CL_CHECK(err, clEnqueueWriteBuffer(q, t->work.buf, CL_FALSE, t->topk_logp * sizeof(float),
                                          nk * sizeof(float), topk_logp, 0, NULL, &ev));
  }
  /* In an in-order queue the last write completes last: its event covers them all. */
  if (done) *done = ev;
  else clReleaseEvent(ev);
  return 0;
}

int kd_trainer_loss(kd_trainer *t, size_t n, const kd_distill_config *cfg,
                    kd_teacher_source source, kd_ref online_logits, kd_error *err) {
  const kd_model *m = t->model;
  cl_mem work = t->work.buf;
  kd_ref ce = kd_at(work, t->loss_rows), kd = kd_at(work, t->kd_rows);
  kd_ref dlogits = kd_at(work, t->dact[0]), labels = kd_at(t->labels, 0);
  float scale = 1.0f / (float)n;
  if (!cfg || source == KD_SOURCE_LABELS)
    return kd_softmax_ce_forward_backward(t->dev, ce, dlogits, kd_trainer_logits(t), labels, n,
                                          m->num_classes, scale, err);
  if (source == KD_SOURCE_TOPK)
    return kd_distill_topk_forward_backward(t->dev, cfg, ce, kd, dlogits, kd_trainer_logits(t),
                                            labels, kd_at(t->topk_idx, 0),
                                            kd_at(work, t->topk_logp), n, m->num_classes,
                                            t->topk_k, scale, err);
  kd_ref teacher = source == KD_SOURCE_DENSE_ONLINE ? online_logits : kd_at(work, t->teacher_logits);
  return kd_distill_forward_backward(t->dev, cfg, ce, kd, dlogits, kd_trainer_logits(t), labels,
                                     teacher, n, m->num_classes, scale, err);
}

int kd_trainer_backward(kd_trainer *t, size_t n, uint64_t seed, int64_t step, kd_error *err) {
  const kd_model *m = t->model;
  cl_mem work = t->work.buf, acts = t->acts.buf;
  int cur = 0; /* kd_trainer_loss left d(loss)/d(logits) in dact[0] */
  /* Input gradients are needed only down to the first layer with parameters. */
  int first_trainable = 0;
  while (m->layers[first_trainable].type != KD_LAYER_DENSE) first_trainable++;
  for (int i = m->num_layers - 1; i >= first_trainable; i--) {
    const kd_layer *L = &m->layers[i];
    size_t in = i ? t->act_out[i - 1] : t->act_in;
    kd_ref dy = kd_at(work, t->dact[cur]);
    int rc = 0;
    switch (L->type) {
      case KD_LAYER_FLATTEN:
        break;
      case KD_LAYER_DENSE: {
        kd_ref dx = kd_at(i > first_trainable ? work : NULL, t->dact[1 - cur]);
        rc = kd_dense_backward(t->dev, dx, kd_at(t->grads.buf, L->w_off),
                               kd_at(L->bias ? t->grads.buf : NULL, L->b_off), dy,
                               kd_at(acts, in), kd_at(t->params.buf, L->w_off), n, L->in_size,
                               L->out_size, err);
        cur = 1 - cur;
        break;
      }
      case KD_LAYER_ACTIVATION:
        rc = kd_activation_backward(t->dev, L->act, dy, dy, kd_at(acts, in),
                                    kd_at(acts, t->act_out[i]), n * L->out_size, err);
        break;
      case KD_LAYER_DROPOUT:
        rc = kd_dropout_backward(t->dev, dy, dy, n * L->out_size, L->rate, seed,
                                 dropout_stream(step, i), err);
        break;
    }
    if (rc) return kd_fail_context(err, "layers[%d] backward", i);
  }
  return 0;
}

int kd_trainer_optimizer_step(kd_trainer *t, const kd_optim_config *cfg, float lr, int64_t step,
                              kd_error *err) {
  size_t n = t->model->param_floats;
  kd_ref norm = kd_at(NULL, 0);
  if (cfg->clip_grad_norm > 0) {
    norm = kd_at(t->work.buf, t->grad_norm);
    if (kd_grad_norm(t->dev, norm, kd_at(t->grads.buf, 0), n, kd_at(t->work.buf, t->grad_norm_ws),
                     err))
      return -1;
  }
  return kd_optimizer_step(t->dev, cfg, kd_at(t->params.buf, 0), kd_at(t->grads.buf, 0),
                           kd_at(t->opt_state.buf, 0), kd_at(t->opt_state.buf, n), n, lr, step,
                           norm, err);
}

int kd_trainer_read_params(kd_trainer *t, float *host, kd_error *err) {
  return kd_read_floats(t->dev, t->params.buf, 0, t->model->param_floats, host, err);
}

int kd_trainer_write_params(kd_trainer *t, const float *host, kd_error *err) {
  return kd_write_floats(t->dev, t->params.buf, 0, t->model->param_floats, host, err);
}
