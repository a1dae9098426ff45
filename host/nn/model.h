/* Model specs (the JSON files in models/) parsed and checked into a tree of layers with their
 * shapes and parameter offsets: the contract that makes checkpoints portable. Keys follow
 * PyTorch's state_dict of a module whose `layers` is the nn.Sequential of the listed layers:
 * layers.<i>.weight, a residual block's layers.<i>.layers.<j>.weight and
 * layers.<i>.projection.weight, batch norm's running_mean / running_var / num_batches_tracked. */
#ifndef KD_MODEL_H
#define KD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/layers.h"
#include "runtime/error.h"

typedef enum kd_layer_type {
  KD_LAYER_FLATTEN,
  KD_LAYER_DENSE,
  KD_LAYER_ACTIVATION,
  KD_LAYER_DROPOUT,
  KD_LAYER_CONV2D,
  KD_LAYER_MAXPOOL2D,
  KD_LAYER_AVGPOOL2D,
  KD_LAYER_GLOBAL_AVGPOOL,
  KD_LAYER_BATCHNORM, /* batchnorm1d on [C], batchnorm2d on [C, H, W] */
  KD_LAYER_RESIDUAL,
} kd_layer_type;

typedef struct kd_layer {
  kd_layer_type type;
  int id;       /* index over the whole tree (sub-layers and projections too) */
  char key[64]; /* state_dict prefix, e.g. "layers.3", "layers.2.layers.1" */
  int in_ndim, out_ndim;
  int64_t in_shape[3], out_shape[3]; /* [features] or [C, H, W] */
  size_t in_size, out_size;          /* features per sample */
  kd_activation act;                 /* activation */
  float rate;                        /* dropout */
  int bias;                          /* dense, conv2d */
  size_t w_off, b_off;   /* parameter arena offsets: weight, bias (batch norm: gamma, beta) */
  size_t kh, kw;         /* conv2d kernel; pooling window (kh = kw = size) */
  size_t stride, pad;    /* conv2d, pooling */
  float momentum, eps;   /* batch norm */
  size_t rm_off, rv_off; /* batch norm running mean / var in the buffers arena */
  int bn_index;          /* batch norm: which num_batches_tracked counter */
  struct kd_layer *sub;  /* residual: its layers */
  int num_sub;
  struct kd_layer *proj; /* residual: 1x1 conv2d projection (no bias), or NULL */
} kd_layer;

/* One named tensor of the model's state: a parameter (in the parameter arena) or a batch-norm
 * running statistic (in the buffers arena, never touched by the optimizer). */
typedef struct kd_param {
  char name[96];
  int ndim;
  int64_t shape[4];
  size_t numel;
  size_t off;
} kd_param;

typedef struct kd_model {
  char name[128];
  char *spec_json; /* the spec as given, stored in checkpoints as /meta/model_config */
  int input_ndim;
  int64_t input_shape[3];
  size_t input_size; /* features per sample */
  kd_layer *layers;  /* the top-level list */
  int num_layers;
  int num_flat;      /* layers in the whole tree */
  kd_param *params;  /* trainable tensors, in state_dict order */
  int num_params;
  size_t param_floats; /* size of the parameter arena, padding included */
  kd_param *buffers;   /* running_mean / running_var of every batch norm */
  int num_buffers;
  size_t buffer_floats;
  int num_bn;          /* batch-norm layers (each has a num_batches_tracked counter) */
  char (*bn_keys)[64]; /* their state_dict prefixes */
  size_t num_classes;  /* features out of the last layer */
} kd_model;

/* Parses a spec from JSON text; `source` names it in messages (a path, or "X: /meta/..."). Fails
 * naming the layer (e.g. "layers[2].layers[0] (conv2d)") and the field: unknown types or
 * fields, missing or non-positive sizes, products that overflow, kernels larger than their
 * padded input, dense layers on unflattened inputs, residual blocks whose output does not match
 * their input. */
int kd_model_parse(kd_model *m, const char *json_text, const char *source, kd_error *err);
/* Reads and parses a spec file. */
int kd_model_load(kd_model *m, const char *path, kd_error *err);
void kd_model_free(kd_model *m);

/* Fills host copies of the parameter arena (m->param_floats floats) and the buffers arena
 * (m->buffer_floats floats) with the initialisation: conv2d weights and dense weights feeding a
 * relu/gelu He-uniform U(+-sqrt(6/fan_in)), other dense weights Xavier-uniform; biases 0; batch
 * norm gamma 1, beta 0, running mean 0, running var 1. Deterministic in seed. */
void kd_model_init_params(const kd_model *m, float *host_params, float *host_buffers,
                          uint64_t seed);

/* Total trainable parameters (without padding). */
size_t kd_model_count_params(const kd_model *m);

/* Whether a layer (or anything inside it) has trainable parameters. */
int kd_layer_has_params(const kd_layer *L);

#endif
