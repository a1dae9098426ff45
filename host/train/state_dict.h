/* The model's state as named tensors (PyTorch's state_dict): parameters, batch-norm running
 * statistics and num_batches_tracked, between host copies of the arenas and checkpoints. */
#ifndef KD_STATE_DICT_H
#define KD_STATE_DICT_H

#include <stdint.h>

#include "data/checkpoint.h"
#include "nn/model.h"

/* The /model tensors of a checkpoint, in state_dict order. The float tensors point into params
 * (m->param_floats) and buffers (m->buffer_floats), num_batches_tracked into bn_tracked
 * (m->num_bn); only the array *out is allocated (free it, not the data). */
int kd_state_dict_build(const kd_model *m, float *params, float *buffers, int64_t *bn_tracked,
                        kd_named_tensor **out, int *count, kd_error *err);

/* Fills params, buffers and bn_tracked from a checkpoint read earlier (path for messages):
 * every tensor the model needs must be there with its shape. */
int kd_state_dict_from_checkpoint(const kd_model *m, const kd_checkpoint *ck, const char *path,
                                  float *params, float *buffers, int64_t *bn_tracked,
                                  kd_error *err);

/* The same from any HDF5 file holding /model/<key> tensors (--init: a kdcl checkpoint, or a
 * PyTorch state_dict written with h5py); num_batches_tracked may be absent (then 0). */
int kd_state_dict_from_file(const kd_model *m, const char *path, float *params, float *buffers,
                            int64_t *bn_tracked, kd_error *err);

/* Fails, naming path, unless ck's /model is exactly the state_dict of the spec in its
 * /meta/model_config: the spec parses, every tensor has its name and shape, values are finite
 * (running variances >= 0), and there is no other tensor, as torch's
 * load_state_dict(strict=True) wants. */
int kd_state_dict_check(const kd_checkpoint *ck, const char *path, kd_error *err);

#endif
