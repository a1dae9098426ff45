/* Model specs (the JSON files in models/) parsed and checked into a list of layers with their shapes and
 * parameter offsets: the contract that makes checkpoints portable (names as PyTorch's
 * state_dict of a module whose `layers` is the nn.Sequential of the listed layers). */
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
} kd_layer_type;

typedef struct kd_layer {
  kd_layer_type type;
  kd_activation act; /* KD_LAYER_ACTIVATION */
  float rate;        /* KD_LAYER_DROPOUT */
  int bias;          /* KD_LAYER_DENSE */
  size_t in_size;    /* features per sample going in */
  size_t out_size;   /* features per sample coming out */
  int out_ndim;
  int64_t out_shape[3];
  size_t w_off, b_off; /* offsets in the parameter arena (dense) */
} kd_layer;

/* One parameter tensor: its state_dict key, shape and place in the flat parameter arena. */
typedef struct kd_param {
  char name[64];
  int ndim;
  int64_t shape[2];
  size_t numel;
  size_t off;
} kd_param;

typedef struct kd_model {
  char name[128];
  char *spec_json; /* the spec as given, stored in checkpoints as /meta/model_config */
  int input_ndim;
  int64_t input_shape[3];
  size_t input_size; /* features per sample */
  kd_layer *layers;
  int num_layers;
  kd_param *params;
  int num_params;
  size_t param_floats; /* size of the parameter arena, padding included */
  size_t num_classes;  /* features out of the last layer */
  size_t max_features; /* the widest layer output (or input), for activation-gradient buffers */
} kd_model;

/* Parses a spec from JSON text; `source` names it in messages (a path, or "checkpoint X").
 * Fails naming the layer index and field for unknown types, missing or non-positive sizes,
 * sizes whose product overflows, and dense layers placed on un-flattened inputs. */
int kd_model_parse(kd_model *m, const char *json_text, const char *source, kd_error *err);
/* Reads and parses a spec file. */
int kd_model_load(kd_model *m, const char *path, kd_error *err);
void kd_model_free(kd_model *m);

/* Fills the host copy of the parameter arena (m->param_floats floats, padding zero) with the
 * initialisation: dense weights He-uniform U(±sqrt(6/in)) when a relu/gelu follows, else
 * Xavier-uniform U(±sqrt(6/(in+out))); biases zero. Deterministic in seed. */
void kd_model_init_params(const kd_model *m, float *host_params, uint64_t seed);

/* Total trainable parameters (without padding). */
size_t kd_model_count_params(const kd_model *m);

#endif
