/* Evaluation: the forward pass in eval mode over a whole dataset, in batches. */
#ifndef KD_EVALUATE_H
#define KD_EVALUATE_H

#include "data/dataset.h"
#include "nn/model.h"
#include "train/trainer.h"

typedef struct kd_eval_result {
  int64_t rows;
  int64_t correct;
  double accuracy;  /* correct / rows */
  double mean_loss; /* cross-entropy, natural log, mean over rows (double on the host) */
  int has_teacher;  /* the dataset has /teacher: the two figures below are set */
  double agreement; /* fraction of rows whose top-1 class equals the teacher's */
  double teacher_kl; /* mean KL(teacher || student) at T = 1; a top-k teacher's distribution
                        is its K probabilities renormalised, the sum running over K */
} kd_eval_result;

/* Runs every row of ds through the model (file order). When logits_out is non-NULL it receives
 * [ds->num_rows, classes] floats. Labels must be in range (kd_dataset_check_labels); with
 * with_teacher and a /teacher in ds, agreement and teacher_kl are computed too. */
int kd_evaluate(kd_trainer *t, kd_dataset *ds, int with_teacher, kd_eval_result *res,
                float *logits_out, kd_error *err);

/* Everything needed to run a checkpoint's model: the spec from /meta/model_config, the device,
 * a trainer sized for `batch` rows, the weights from /model. */
typedef struct kd_inference {
  kd_model model;
  kd_device *own_dev; /* the device, when kd_inference_open opened it */
  kd_trainer trainer;
  int open, owns_dev;
} kd_inference;

/* Opens a device (selector as --device) and loads the checkpoint's model onto it. */
int kd_inference_open(kd_inference *inf, const char *checkpoint_path, const char *device,
                      const char *kernels_binary, int gemm_set, kd_gemm_backend gemm,
                      size_t batch, kd_error *err);
/* Loads the checkpoint's model onto an open device (an online teacher beside a student). */
int kd_inference_open_on(kd_inference *inf, const char *checkpoint_path, kd_device *dev,
                         size_t batch, kd_error *err);
void kd_inference_close(kd_inference *inf);

#endif
