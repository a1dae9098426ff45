/* The device side of training one model at one batch size: the arenas, the input upload, the
 * forward pass, the loss and the backward pass, the optimizer step. Everything is allocated in
 * kd_trainer_create; the step functions only enqueue kernels. */
#ifndef KD_TRAINER_H
#define KD_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "nn/arena.h"
#include "nn/conv.h"
#include "nn/distill_loss.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "runtime/device.h"

/* Steps whose per-row losses the device keeps before they are read back (train/loss_ring.h). */
#define KD_LOSS_SPAN 8

/* Where one layer's tensors live for the trainer's batch size. */
typedef struct kd_layer_state {
  size_t act_out;   /* output activations [B, out] in acts (flatten: its input's) */
  size_t grad_out;  /* gradient w.r.t. the output [B, out] in dacts */
  size_t aux, aux2; /* maxpool: argmax in acts; batch norm: saved mean, invstd in work */
  size_t proj_grad; /* residual with projection: the projection's input gradient in dacts */
  kd_conv2d_shape conv; /* conv2d geometry */
  /* --profile: device time and arithmetic of this layer's passes (a residual block's include
   * its sub-layers) */
  double fwd_ms, bwd_ms, fwd_flop, bwd_flop;
} kd_layer_state;

typedef struct kd_trainer {
  kd_device *dev;
  const kd_model *model;
  size_t batch;            /* rows per batch (the largest; a short last batch uses fewer) */
  size_t sample_size;      /* input features per row */
  kd_arena params, grads;  /* flat, laid out as model->params */
  kd_arena opt_state;      /* [state1 | state2], each laid out as params */
  kd_arena buffers;        /* batch-norm running statistics, laid out as model->buffers */
  kd_arena acts;           /* normalised input, every layer's output, maxpool argmax */
  kd_arena dacts;          /* gradients w.r.t. every layer's output */
  kd_arena work;           /* loss rows, teacher rows, norms, conv scratch, batch-norm stats */
  kd_layer_state *st;      /* per layer, indexed by kd_layer.id */
  int64_t *bn_tracked;     /* num_batches_tracked of each batch norm (model->num_bn) */
  size_t act_in;           /* offset of the normalised input */
  size_t input_grad;       /* its gradient slot (never computed) */
  size_t logits_grad;      /* where the loss writes d(loss)/d(logits) */
  size_t conv_ws;          /* conv scratch in work */
  size_t loss_rows;        /* KD_LOSS_SPAN slots of loss_slot_floats: per-row losses */
  size_t loss_slot_floats; /* a slot: [B] cross-entropy rows, [B] distillation rows (each
                            * padded to the arena alignment) */
  size_t teacher_logits;   /* B * classes floats: offline dense teacher logits */
  size_t topk_k;           /* K of a top-k teacher (0: none) */
  cl_mem topk_idx;         /* int32 [B, K] */
  size_t topk_logp;        /* B * K floats in work */
  size_t grad_norm, grad_norm_ws;
  cl_mem x_raw;            /* raw input rows as stored in the file (uint8 or float) */
  cl_mem labels;           /* int32 [B] */
} kd_trainer;

/* Plans and allocates everything for batches of up to `batch` rows; topk_k > 0 also makes
 * room for a top-k teacher's [batch, topk_k] indices and log-probabilities. */
int kd_trainer_create(kd_trainer *t, kd_device *dev, const kd_model *m, size_t batch,
                      size_t topk_k, kd_error *err);
void kd_trainer_release(kd_trainer *t);

/* Copies n rows of raw inputs (uint8 when x_is_u8, else float) and their labels (may be NULL)
 * to the device without blocking, then normalises them on the device:
 * x = (raw * scale - mean) / std. *done (if non-NULL) is the event of the last host read;
 * the host buffers must stay untouched until it completes. */
int kd_trainer_upload(kd_trainer *t, const void *x, int x_is_u8, const int32_t *labels, size_t n,
                      float scale, float mean, float std, cl_event *done, kd_error *err);

/* Forward pass over n rows. training=1 applies dropout with a mask drawn from
 * (seed, step, layer); training=0 is evaluation mode. */
int kd_trainer_forward(kd_trainer *t, size_t n, int training, uint64_t seed, int64_t step,
                       kd_error *err);
/* Where the logits [n, classes] of the last forward pass are. */
kd_ref kd_trainer_logits(const kd_trainer *t);

/* What the loss of a step compares the student's logits with. */
typedef enum kd_teacher_source {
  KD_SOURCE_LABELS,       /* cross-entropy with the labels only */
  KD_SOURCE_DENSE_OFFLINE, /* teacher logits uploaded with the batch */
  KD_SOURCE_DENSE_ONLINE,  /* teacher logits from a teacher's forward pass on the device */
  KD_SOURCE_TOPK,          /* top-k indices and log-probabilities uploaded with the batch */
} kd_teacher_source;

/* Teacher rows for a batch, uploaded without blocking (dense [n, classes] logits, or top-k
 * [n, K] indices and log-probabilities); the host arrays must stay untouched until *done. */
int kd_trainer_upload_teacher(kd_trainer *t, const float *logits, const int32_t *topk_idx,
                              const float *topk_logp, size_t n, cl_event *done, kd_error *err);

/* The loss (a mean over the n rows) fused with its gradient into the logits' gradient buffer.
 * cfg NULL or source LABELS: plain cross-entropy; otherwise cfg's distillation loss against the
 * teacher: for KD_SOURCE_DENSE_ONLINE, online_logits holds the teacher's [n, classes] logits.
 * Per-row CE and distillation terms are left in loss slot `slot` (< KD_LOSS_SPAN). */
int kd_trainer_loss(kd_trainer *t, size_t n, const kd_distill_config *cfg,
                    kd_teacher_source source, kd_ref online_logits, int slot, kd_error *err);

/* The backward pass from the gradient kd_trainer_loss left, into the grads arena. seed/step as
 * in forward (dropout masks are regenerated). */
int kd_trainer_backward(kd_trainer *t, size_t n, uint64_t seed, int64_t step, kd_error *err);

/* One optimizer launch over the whole parameter arena (and the gradient norm first when
 * clipping is on). step is 1-based. */
int kd_trainer_optimizer_step(kd_trainer *t, const kd_optim_config *cfg, float lr, int64_t step,
                              kd_error *err);

/* Host copies of the parameter arena (model->param_floats floats) and of the buffers arena
 * (model->buffer_floats floats); buffers may be NULL when the model has no batch norm. */
int kd_trainer_read_params(kd_trainer *t, float *params, float *buffers, kd_error *err);
int kd_trainer_write_params(kd_trainer *t, const float *params, const float *buffers,
                            kd_error *err);

#endif
