/* Fashion-MNIST importer: the IDX .gz files of Debian's dataset-fashion-mnist package into
 * kdcl datasets. */
#ifndef KD_IMPORT_FMNIST_H
#define KD_IMPORT_FMNIST_H

#include "runtime/error.h"

#define KD_FMNIST_DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

/* Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from src_dir and writes
 * out_dir/fashion-mnist-train.h5 (60000 rows) and out_dir/fashion-mnist-test.h5 (10000 rows):
 * u8 inputs [N, 1, 28, 28], scale 1/255, mean and std of the training pixels (after scale),
 * i32 labels with num_classes 10. Checks magic numbers, counts and sizes. */
int kd_import_fashion_mnist(const char *src_dir, const char *out_dir, kd_error *err);

#endif
