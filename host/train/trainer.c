/* The step schedule for sequential models with residual blocks: upload, forward (layer by
 * layer, recursing into residual blocks), loss, backward (the mirror image), optimizer. */
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>

#include "nn/batchnorm.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/pool.h"
#include "nn/residual.h"
#include "train/layer_profile.h"

/* ---- planning: where every layer's tensors live ---- */

typedef struct plan_ctx {
  kd_trainer *t;
  size_t conv_ws_max;
  kd_error *err;
} plan_ctx;

/* Plans layers[0..n) reading (in_act, in_grad); returns the last output's pair. */
static int plan_list(plan_ctx *c, const kd_layer *layers, int n, size_t in_act, size_t in_grad,
                     size_t *out_act, size_t *out_grad) {
  kd_trainer *t = c->t;
  size_t B = t->batch;
  for (int i = 0; i < n; i++) {
    const kd_layer *L = &layers[i];
    kd_layer_state *st = &t->st[L->id];
    if (L->type == KD_LAYER_FLATTEN) {
      st->act_out = in_act;
      st->grad_out = in_grad;
    } else {
      if (L->type == KD_LAYER_RESIDUAL) {
        size_t main_act, main_grad;
        if (plan_list(c, L->sub, L->num_sub, in_act, in_grad, &main_act, &main_grad)) return -1;
        if (L->proj) {
          kd_layer_state *ps = &t->st[L->proj->id];
          ps->act_out = kd_arena_reserve(&t->acts, B * L->out_size);
          st->proj_grad = kd_arena_reserve(&t->dacts, B * L->in_size);
          if (kd_conv2d_shape_init(&ps->conv, B, (size_t)L->in_shape[0], (size_t)L->in_shape[1],
                                   (size_t)L->in_shape[2], (size_t)L->out_shape[0], 1, 1,
                                   L->proj->stride, 0, c->err))
            return kd_fail_context(c->err, "%s.projection", L->key);
          size_t ws = kd_conv2d_workspace_floats(&ps->conv);
          if (ws > c->conv_ws_max) c->conv_ws_max = ws;
        }
      }
      st->act_out = kd_arena_reserve(&t->acts, B * L->out_size);
      st->grad_out = kd_arena_reserve(&t->dacts, B * L->out_size);
      if (L->type == KD_LAYER_MAXPOOL2D) st->aux = kd_arena_reserve(&t->acts, B * L->out_size);
      if (L->type == KD_LAYER_BATCHNORM) {
        st->aux = kd_arena_reserve(&t->work, (size_t)L->out_shape[0]);
        st->aux2 = kd_arena_reserve(&t->work, (size_t)L->out_shape[0]);
      }
      if (L->type == KD_LAYER_CONV2D) {
        if (kd_conv2d_shape_init(&st->conv, B, (size_t)L->in_shape[0], (size_t)L->in_shape[1],
                                 (size_t)L->in_shape[2], (size_t)L->out_shape[0], L->kh, L->kw,
                                 L->stride, L->pad, c->err))
          return kd_fail_context(c->err, "%s", L->key);
        size_t ws = kd_conv2d_workspace_floats(&st->conv);
        if (ws > c->conv_ws_max) c->conv_ws_max = ws;
      }
    }
    in_act = st->act_out;
    in_grad = st->grad_out;
  }
  *out_act = in_act;
  *out_grad = in_grad;
  return 0;
}

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
  t->buffers.name = "batch-norm buffers";
  t->acts.name = "activations";
  t->dacts.name = "activation gradients";
  t->work.name = "workspace";
  kd_arena_reserve(&t->params, m->param_floats);
  kd_arena_reserve(&t->grads, m->param_floats);
  kd_arena_reserve(&t->opt_state, 2 * m->param_floats);
  kd_arena_reserve(&t->buffers, m->buffer_floats);
  t->st = calloc((size_t)m->num_flat, sizeof *t->st);
  t->bn_tracked = calloc((size_t)m->num_bn + 1, sizeof *t->bn_tracked);
  if (!t->st || !t->bn_tracked) {
    kd_trainer_release(t);
    return kd_fail(err, "out of host memory");
  }
  t->act_in = kd_arena_reserve(&t->acts, batch * m->input_size);
  plan_ctx c = {t, 0, err};
  size_t last_act, last_grad;
  /* The input's gradient is never computed; it still gets a slot of its own, which a leading
   * flatten aliases. */
  t->input_grad = kd_arena_reserve(&t->dacts, batch * m->input_size);
  if (plan_list(&c, m->layers, m->num_layers, t->act_in, t->input_grad, &last_act, &last_grad)) {
    kd_trainer_release(t);
    return -1;
  }
  t->logits_grad = last_grad;
  t->conv_ws = kd_arena_reserve(&t->work, c.conv_ws_max);
  size_t rows_padded = (batch + KD_ARENA_ALIGN - 1) / KD_ARENA_ALIGN * KD_ARENA_ALIGN;
  t->loss_slot_floats = 2 * rows_padded;
  t->loss_rows = kd_arena_reserve(&t->work, KD_LOSS_SPAN * t->loss_slot_floats);
  t->teacher_logits = kd_arena_reserve(&t->work, batch * m->num_classes);
  t->topk_k = topk_k;
  t->topk_logp = kd_arena_reserve(&t->work, batch * topk_k);
  t->grad_norm = kd_arena_reserve(&t->work, 1);
  t->grad_norm_ws = kd_arena_reserve(&t->work, kd_grad_norm_workspace_floats(m->param_floats));
  if (kd_arena_create(dev, &t->params, err) || kd_arena_create(dev, &t->grads, err) ||
      kd_arena_create(dev, &t->opt_state, err) || kd_arena_create(dev, &t->buffers, err) ||
      kd_arena_create(dev, &t->acts, err) || kd_arena_create(dev, &t->dacts, err) ||
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
  kd_arena_release(&t->buffers);
  kd_arena_release(&t->acts);
  kd_arena_release(&t->dacts);
  kd_arena_release(&t->work);
  if (t->x_raw) clReleaseMemObject(t->x_raw);
  if (t->labels) clReleaseMemObject(t->labels);
  if (t->topk_idx) clReleaseMemObject(t->topk_idx);
  free(t->st);
  free(t->bn_tracked);
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

/* ---- forward ---- */

/* Dropout masks differ per step and per layer: one stream per (step, layer). */
static uint64_t dropout_stream(int64_t step, int layer) {
  return (uint64_t)step * 4096u + (uint64_t)layer;
}

typedef struct pass_ctx {
  kd_trainer *t;
  size_t n;
  int training;
  uint64_t seed;
  int64_t step;
  kd_error *err;
} pass_ctx;

static int forward_list(pass_ctx *c, const kd_layer *layers, int count, size_t in);

static int forward_layer(pass_ctx *c, const kd_layer *L, size_t in) {
  kd_trainer *t = c->t;
  kd_device *dev = t->dev;
  const kd_layer_state *st = &t->st[L->id];
  cl_mem acts = t->acts.buf, params = t->params.buf, bufs = t->buffers.buf, work = t->work.buf;
  kd_ref x = kd_at(acts, in), y = kd_at(acts, st->act_out);
  kd_ref w = kd_at(params, L->w_off), b = kd_at(L->bias ? params : NULL, L->b_off);
  size_t n = c->n, C = (size_t)L->in_shape[0], H = (size_t)L->in_shape[1],
         W = (size_t)L->in_shape[2];
  kd_error *err = c->err;
  switch (L->type) {
    case KD_LAYER_FLATTEN:
      return 0;
    case KD_LAYER_DENSE:
      return kd_dense_forward(dev, y, x, w, b, n, L->in_size, L->out_size, err);
    case KD_LAYER_ACTIVATION:
      return kd_activation_forward(dev, L->act, y, x, n * L->out_size, err);
    case KD_LAYER_DROPOUT:
      return kd_dropout_forward(dev, y, x, n * L->out_size, c->training ? L->rate : 0.0f, c->seed,
                                dropout_stream(c->step, L->id), err);
    case KD_LAYER_CONV2D:
      return kd_conv2d_forward(dev, &st->conv, n, y, x, w, b, kd_at(work, t->conv_ws), err);
    case KD_LAYER_MAXPOOL2D:
      return kd_maxpool2d_forward(dev, y, kd_at(acts, st->aux), x, n, C, H, W, L->kh, L->stride,
                                  L->pad, err);
    case KD_LAYER_AVGPOOL2D:
      return kd_avgpool2d_forward(dev, y, x, n, C, H, W, L->kh, L->stride, L->pad, err);
    case KD_LAYER_GLOBAL_AVGPOOL:
      return kd_global_avgpool_forward(dev, y, x, n, C, H * W, err);
    case KD_LAYER_BATCHNORM: {
      size_t S = L->in_ndim == 3 ? H * W : 1;
      kd_ref rm = kd_at(bufs, L->rm_off), rv = kd_at(bufs, L->rv_off);
      kd_ref beta = kd_at(params, L->b_off);
      if (!c->training) return kd_batchnorm_forward_eval(dev, y, x, w, beta, rm, rv, n, C, S, L->eps, err);
      t->bn_tracked[L->bn_index]++;
      return kd_batchnorm_forward_train(dev, y, x, w, beta, rm, rv, kd_at(work, st->aux),
                                        kd_at(work, st->aux2), n, C, S, L->momentum, L->eps, err);
    }
    case KD_LAYER_RESIDUAL: {
      if (forward_list(c, L->sub, L->num_sub, in)) return -1;
      size_t main_out = t->st[L->sub[L->num_sub - 1].id].act_out, skip = in;
      if (L->proj) {
        const kd_layer_state *ps = &t->st[L->proj->id];
        if (kd_conv2d_forward(dev, &ps->conv, n, kd_at(acts, ps->act_out), x,
                              kd_at(params, L->proj->w_off), kd_at(NULL, 0),
                              kd_at(work, t->conv_ws), err))
          return kd_fail_context(err, "%s", L->proj->key);
        skip = ps->act_out;
      }
      return kd_add_forward(dev, y, kd_at(acts, main_out), kd_at(acts, skip), n * L->out_size, err);
    }
  }
  return 0;
}

/* A dense layer directly followed by an activation runs as one launch (the activation in the
 * GEMM's epilogue): the activation's output is written, and the dense layer's own output only
 * when the activation's backward reads it (gelu). A batch norm followed by relu, tanh or
 * sigmoid likewise (its output pass applies the activation; those activations' backward needs
 * only their output, which the batch norm's backward then reads). */
static int fuses_with_next(const kd_layer *layers, int count, int i) {
  if (i + 1 >= count || layers[i + 1].type != KD_LAYER_ACTIVATION) return 0;
  return layers[i].type == KD_LAYER_DENSE ||
         (layers[i].type == KD_LAYER_BATCHNORM && layers[i + 1].act != KD_ACT_GELU);
}

static int forward_bn_act(pass_ctx *c, const kd_layer *L, const kd_layer *A, size_t in) {
  kd_trainer *t = c->t;
  const kd_layer_state *st = &t->st[L->id];
  cl_mem acts = t->acts.buf, params = t->params.buf, bufs = t->buffers.buf, work = t->work.buf;
  kd_ref x = kd_at(acts, in), y = kd_at(acts, t->st[A->id].act_out);
  kd_ref w = kd_at(params, L->w_off), beta = kd_at(params, L->b_off);
  kd_ref rm = kd_at(bufs, L->rm_off), rv = kd_at(bufs, L->rv_off);
  size_t C = (size_t)L->in_shape[0];
  size_t S = L->in_ndim == 3 ? (size_t)(L->in_shape[1] * L->in_shape[2]) : 1;
  if (!c->training)
    return kd_batchnorm_forward_eval_act(t->dev, y, x, w, beta, rm, rv, c->n, C, S, L->eps,
                                         (int)A->act, c->err);
  t->bn_tracked[L->bn_index]++;
  return kd_batchnorm_forward_train_act(t->dev, y, x, w, beta, rm, rv, kd_at(work, st->aux),
                                        kd_at(work, st->aux2), c->n, C, S, L->momentum, L->eps,
                                        (int)A->act, c->err);
}

static int forward_dense_act(pass_ctx *c, const kd_layer *D, const kd_layer *A, size_t in) {
  kd_trainer *t = c->t;
  cl_mem acts = t->acts.buf, params = t->params.buf;
  kd_ref pre = kd_at(A->act == KD_ACT_GELU ? acts : NULL, t->st[D->id].act_out);
  return kd_dense_forward_act(t->dev, kd_at(acts, t->st[A->id].act_out), pre, kd_at(acts, in),
                              kd_at(params, D->w_off), kd_at(D->bias ? params : NULL, D->b_off),
                              c->n, D->in_size, D->out_size, (int)A->act, c->err);
}

static int forward_list(pass_ctx *c, const kd_layer *layers, int count, size_t in) {
  int profiling = c->t->dev->profiling;
  for (int i = 0; i < count; i++) {
    kd_layer_state *st = &c->t->st[layers[i].id];
    double t0 = profiling ? kd_layer_profile_start(c->t->dev) : 0;
    int fused = fuses_with_next(layers, count, i);
    int rc;
    if (!fused)
      rc = forward_layer(c, &layers[i], in);
    else if (layers[i].type == KD_LAYER_DENSE)
      rc = forward_dense_act(c, &layers[i], &layers[i + 1], in);
    else
      rc = forward_bn_act(c, &layers[i], &layers[i + 1], in);
    if (rc) return kd_fail_context(c->err, "%s forward", layers[i].key);
    if (profiling) {
      st->fwd_ms += kd_layer_profile_stop(c->t->dev, t0);
      st->fwd_flop += kd_layer_flops(&layers[i], c->n, 0, 0);
    }
    if (fused) st = &c->t->st[layers[++i].id]; /* the activation ran in the same launch */
    in = st->act_out;
  }
  return 0;
}

int kd_trainer_forward(kd_trainer *t, size_t n, int training, uint64_t seed, int64_t step,
                       kd_error *err) {
  pass_ctx c = {t, n, training, seed, step, err};
  return forward_list(&c, t->model->layers, t->model->num_layers, t->act_in);
}

kd_ref kd_trainer_logits(const kd_trainer *t) {
  const kd_model *m = t->model;
  return kd_at(t->acts.buf, t->st[m->layers[m->num_layers - 1].id].act_out);
}

/* ---- loss ---- */

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
                    kd_teacher_source source, kd_ref online_logits, int slot, kd_error *err) {
  const kd_model *m = t->model;
  cl_mem work = t->work.buf;
  if (slot < 0 || slot >= KD_LOSS_SPAN)
    return kd_fail(err, "loss slot %d outside the ring of %d", slot, KD_LOSS_SPAN);
  size_t ce_off = t->loss_rows + (size_t)slot * t->loss_slot_floats;
  kd_ref ce = kd_at(work, ce_off), kd = kd_at(work, ce_off + t->loss_slot_floats / 2);
  kd_ref dlogits = kd_at(t->dacts.buf, t->logits_grad), labels = kd_at(t->labels, 0);
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

/* ---- backward: the mirror of forward ---- */

static int backward_list(pass_ctx *c, const kd_layer *layers, int count, size_t in_act,
                         size_t in_grad, int need_dx);

/* Backward of one layer: from its output gradient to the gradient of its input (in_grad, only
 * when need_dx) and of its parameters. */
static int backward_layer(pass_ctx *c, const kd_layer *L, size_t in_act, size_t in_grad,
                          int need_dx) {
  kd_trainer *t = c->t;
  kd_device *dev = t->dev;
  const kd_layer_state *st = &t->st[L->id];
  cl_mem acts = t->acts.buf, dacts = t->dacts.buf, params = t->params.buf, grads = t->grads.buf,
         work = t->work.buf;
  kd_ref x = kd_at(acts, in_act), y = kd_at(acts, st->act_out), dy = kd_at(dacts, st->grad_out);
  kd_ref dx = kd_at(need_dx ? dacts : NULL, in_grad);
  kd_ref w = kd_at(params, L->w_off), dw = kd_at(grads, L->w_off);
  kd_ref db = kd_at(L->bias ? grads : NULL, L->b_off);
  size_t n = c->n, C = (size_t)L->in_shape[0], H = (size_t)L->in_shape[1],
         W = (size_t)L->in_shape[2];
  kd_error *err = c->err;
  switch (L->type) {
    case KD_LAYER_FLATTEN:
      return 0;
    case KD_LAYER_DENSE:
      return kd_dense_backward(dev, dx, dw, db, dy, x, w, n, L->in_size, L->out_size, err);
    case KD_LAYER_CONV2D:
      return kd_conv2d_backward(dev, &st->conv, n, dx, dw, db, dy, x, w, kd_at(work, t->conv_ws),
                                err);
    case KD_LAYER_BATCHNORM:
      return kd_batchnorm_backward(dev, dx, dw, kd_at(grads, L->b_off), dy, x, w,
                                   kd_at(work, st->aux), kd_at(work, st->aux2), n, C,
                                   L->in_ndim == 3 ? H * W : 1, err);
    case KD_LAYER_RESIDUAL:
      break;
    default:
      if (!need_dx) return 0; /* parameter-free layers only pass the gradient on */
  }
  switch (L->type) {
    case KD_LAYER_ACTIVATION:
      return kd_activation_backward(dev, L->act, dx, dy, x, y, n * L->out_size, err);
    case KD_LAYER_DROPOUT:
      return kd_dropout_backward(dev, dx, dy, n * L->out_size, c->training ? L->rate : 0.0f,
                                 c->seed, dropout_stream(c->step, L->id), err);
    case KD_LAYER_MAXPOOL2D:
      return kd_maxpool2d_backward(dev, dx, dy, kd_at(acts, st->aux), n, C, H, W, L->kh,
                                   L->stride, L->pad, err);
    case KD_LAYER_AVGPOOL2D:
      return kd_avgpool2d_backward(dev, dx, dy, n, C, H, W, L->kh, L->stride, L->pad, err);
    case KD_LAYER_GLOBAL_AVGPOOL:
      return kd_global_avgpool_backward(dev, dx, dy, n, C, H * W, err);
    case KD_LAYER_RESIDUAL: {
      /* The sum passes dy unchanged to both paths. */
      const kd_layer *last = &L->sub[L->num_sub - 1];
      if (kd_copy(dev, kd_at(dacts, t->st[last->id].grad_out), dy, n * L->out_size, err) ||
          backward_list(c, L->sub, L->num_sub, in_act, in_grad, need_dx))
        return -1;
      if (L->proj) {
        const kd_layer_state *ps = &t->st[L->proj->id];
        kd_ref pdx = kd_at(need_dx ? dacts : NULL, st->proj_grad);
        if (kd_conv2d_backward(dev, &ps->conv, n, pdx, kd_at(grads, L->proj->w_off),
                               kd_at(NULL, 0), dy, x, kd_at(params, L->proj->w_off),
                               kd_at(work, t->conv_ws), err))
          return kd_fail_context(err, "%s", L->proj->key);
        return need_dx ? kd_accumulate(dev, dx, pdx, n * L->in_size, err) : 0;
      }
      return need_dx ? kd_accumulate(dev, dx, dy, n * L->in_size, err) : 0;
    }
    default:
      return 0;
  }
}

static int backward_list(pass_ctx *c, const kd_layer *layers, int count, size_t in_act,
                         size_t in_grad, int need_dx) {
  /* A layer needs its input gradient when the list's input needs it or a layer before it has
   * parameters; below the first such layer nothing is left to compute. */
  int first_needed = need_dx ? 0 : count;
  for (int i = 0; i < count && first_needed == count; i++)
    if (kd_layer_has_params(&layers[i])) first_needed = i;
  for (int i = count - 1; i >= first_needed; i--) {
    const kd_layer *L = &layers[i];
    size_t x_act = i ? c->t->st[layers[i - 1].id].act_out : in_act;
    size_t x_grad = i ? c->t->st[layers[i - 1].id].grad_out : in_grad;
    int dx_needed = need_dx || i > first_needed;
    kd_layer_state *st = &c->t->st[L->id];
    double t0 = c->t->dev->profiling ? kd_layer_profile_start(c->t->dev) : 0;
    /* A dense layer right after an activation passes its input gradient through that
     * activation in the same GEMM (kd_dense_backward_act); the activation is then skipped. */
    int through_act = L->type == KD_LAYER_DENSE && i - 1 >= first_needed &&
                      layers[i - 1].type == KD_LAYER_ACTIVATION;
    /* An activation right after a batch norm (fused in the forward) runs inside the batch
     * norm's backward, which is then skipped. */
    int bn_act = L->type == KD_LAYER_ACTIVATION && i - 1 >= first_needed &&
                 fuses_with_next(layers, count, i - 1) &&
                 layers[i - 1].type == KD_LAYER_BATCHNORM;
    int rc;
    if (bn_act) {
      const kd_layer *N = &layers[i - 1];
      kd_trainer *t = c->t;
      cl_mem acts = t->acts.buf, dacts = t->dacts.buf, grads = t->grads.buf;
      const kd_layer_state *ns = &t->st[N->id];
      size_t n_in = i >= 2 ? t->st[layers[i - 2].id].act_out : in_act;
      size_t n_in_grad = i >= 2 ? t->st[layers[i - 2].id].grad_out : in_grad;
      int n_dx = need_dx || i - 1 > first_needed;
      size_t C = (size_t)N->in_shape[0];
      size_t S = N->in_ndim == 3 ? (size_t)(N->in_shape[1] * N->in_shape[2]) : 1;
      rc = kd_batchnorm_backward_act(t->dev, kd_at(n_dx ? dacts : NULL, n_in_grad),
                                     kd_at(grads, N->w_off), kd_at(grads, N->b_off),
                                     kd_at(dacts, st->grad_out), kd_at(acts, n_in),
                                     kd_at(t->params.buf, N->w_off), kd_at(t->work.buf, ns->aux),
                                     kd_at(t->work.buf, ns->aux2), c->n, C, S, (int)L->act,
                                     kd_at(acts, st->act_out), c->err);
    } else if (through_act) {
      const kd_layer *A = &layers[i - 1];
      kd_trainer *t = c->t;
      cl_mem acts = t->acts.buf, dacts = t->dacts.buf, grads = t->grads.buf;
      size_t a_in = i >= 2 ? t->st[layers[i - 2].id].act_out : in_act;
      size_t a_in_grad = i >= 2 ? t->st[layers[i - 2].id].grad_out : in_grad;
      rc = kd_dense_backward_act(t->dev, kd_at(dacts, a_in_grad), (int)A->act, kd_at(acts, a_in),
                                 kd_at(acts, x_act), kd_at(grads, L->w_off),
                                 kd_at(L->bias ? grads : NULL, L->b_off),
                                 kd_at(dacts, st->grad_out), kd_at(acts, x_act),
                                 kd_at(t->params.buf, L->w_off), c->n, L->in_size, L->out_size,
                                 c->err);
    } else {
      rc = backward_layer(c, L, x_act, x_grad, dx_needed);
    }
    if (rc) return kd_fail_context(c->err, "%s backward", L->key);
    if (c->t->dev->profiling) {
      st->bwd_ms += kd_layer_profile_stop(c->t->dev, t0);
      st->bwd_flop += kd_layer_flops(L, c->n, 1, dx_needed);
    }
    if (through_act || bn_act) i--; /* the layer before ran inside this one's backward */
  }
  return 0;
}

int kd_trainer_backward(kd_trainer *t, size_t n, uint64_t seed, int64_t step, kd_error *err) {
  pass_ctx c = {t, n, 1, seed, step, err};
  return backward_list(&c, t->model->layers, t->model->num_layers, t->act_in, t->input_grad, 0);
}

/* ---- optimizer and host copies ---- */

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

int kd_trainer_read_params(kd_trainer *t, float *params, float *buffers, kd_error *err) {
  if (kd_read_floats(t->dev, t->params.buf, 0, t->model->param_floats, params, err)) return -1;
  return buffers ? kd_read_floats(t->dev, t->buffers.buf, 0, t->model->buffer_floats, buffers, err)
                 : 0;
}

int kd_trainer_write_params(kd_trainer *t, const float *params, const float *buffers,
                            kd_error *err) {
  if (kd_write_floats(t->dev, t->params.buf, 0, t->model->param_floats, params, err)) return -1;
  return buffers ? kd_write_floats(t->dev, t->buffers.buf, 0, t->model->buffer_floats, buffers, err)
                 : 0;
}
