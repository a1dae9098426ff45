/* Checkpoint files (format "kdcl-checkpoint"): model tensors named as PyTorch names them,
 * optimizer settings and state, training position and RNG seed, written atomically. */
#ifndef KD_CHECKPOINT_H
#define KD_CHECKPOINT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* A host copy of one tensor: data is malloc'd, row-major, shape[0..ndim) (ndim 0..4). */
typedef struct kd_named_tensor {
  char name[128];
  int ndim;
  int64_t shape[4];
  float *data;
  int64_t *idata; /* when non-NULL the tensor is int64 (num_batches_tracked): written as i64 from
                     idata; on reading, integer datasets fill idata as well as data */
} kd_named_tensor;

typedef struct kd_checkpoint {
  char *model_config; /* JSON text of the model spec, /meta/model_config (NULL: not written) */
  char *train_config; /* JSON text of the run's settings, /meta/train_config (NULL: not written) */
  kd_named_tensor *model; /* /model/<name>, e.g. layers.1.weight [out, in], layers.1.bias [out] */
  int num_model;
  char optimizer_type[16]; /* "sgd" | "adamw" -> /optimizer attr `type` */
  double lr, momentum, dampening, weight_decay, beta1, beta2, eps; /* /optimizer attrs (f64) */
  int nesterov;                                                    /* /optimizer attr (int32) */
  /* name "<param>/<slot>", slot = momentum_buffer | exp_avg | exp_avg_sq, stored at
   * /optimizer/state/<param>/<slot> */
  kd_named_tensor *optim_state;
  int num_optim_state;
  int64_t step, epoch, data_cursor; /* /train/step, /train/epoch, /train/data_cursor i64 scalars */
  uint64_t seed; /* /rng/seed u64 scalar (RNG streams derive from seed+step+epoch) */
} kd_checkpoint;

/* Writes ck to path atomically: path.tmp gets root attrs format="kdcl-checkpoint",
 * format_version=[1, 0] (int32), /meta strings (scalar VL UTF-8, skipped when NULL), /model
 * and /optimizer/state tensors (contiguous, uncompressed, H5T_IEEE_F32LE), /optimizer attrs,
 * /train i64 and /rng u64 scalars, and last the root attr complete=1 (int32); then it is
 * closed, fsynced and renamed over path, and the directory fsynced. On any failure path is
 * untouched and path.tmp removed. Tensor and group names must not contain '/' beyond the
 * one separating "<param>/<slot>". */
int kd_checkpoint_write(const char *path, const kd_checkpoint *ck, kd_error *err);

/* Reads a whole checkpoint into ck (zeroed first; free with kd_checkpoint_free, also after a
 * failure). Refuses a file whose root attr format is not "kdcl-checkpoint", whose
 * format_version major is not 1, or which lacks complete=1, each with a message naming the
 * file. Tensors of any integer or float type are converted to float32; /model and each
 * /optimizer/state/<param> are listed in the order they were written (name order for files
 * without creation-order tracking); optim_state is grouped by parameter. Missing /meta
 * strings leave NULL; a missing /optimizer leaves type "" and zeros. */
int kd_checkpoint_read(const char *path, kd_checkpoint *ck, kd_error *err);

/* Frees everything kd_checkpoint_read allocated and zeroes ck (safe on a zeroed struct). */
void kd_checkpoint_free(kd_checkpoint *ck);

/* --init support: from any HDF5 file (a kdcl checkpoint, or one written by h5py from a
 * PyTorch state_dict) reads /model/<name> into out (prod(shape) floats, converted from any
 * float type), requiring exactly shape[0..ndim). Errors, with path_for_messages as the file
 * name: "init.h5: /model/layers.1.weight has shape [10, 20] but the model needs [10, 30]",
 * "init.h5: file has no /model/layers.1.weight (the model needs [10, 30])", non-float type. */
int kd_h5_read_model_tensor(hid_t file, const char *path_for_messages, const char *name, int ndim,
                            const int64_t *shape, float *out, kd_error *err);

/* Opens an existing HDF5 file read-only with a clear message for a missing file, a file that
 * is not HDF5, or a truncated one (declared in data/h5util.h too). */
int kd_h5_open_read(const char *path, hid_t *file, kd_error *err);

/* Reads the integer scalar /model/<name> (num_batches_tracked) of any HDF5 file; *found = 0
 * (and 0 returned) when it is absent. */
int kd_h5_read_model_int64(hid_t file, const char *path_for_messages, const char *name,
                           int64_t *out, int *found, kd_error *err);

#endif
