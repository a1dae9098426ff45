/* --profile per layer: the device time of each layer's forward and backward pass, and the
 * GFLOP/s its dense and conv2d layers achieve. Timing drains the queue around every layer, so
 * it is for measuring, not for training runs. */
#ifndef KD_LAYER_PROFILE_H
#define KD_LAYER_PROFILE_H

#include <stdio.h>

#include "train/trainer.h"

/* Drains the queue and returns the time (ms since an arbitrary start). */
double kd_layer_profile_start(kd_device *dev);
/* Drains the queue and returns the ms since start. */
double kd_layer_profile_stop(kd_device *dev, double start);

/* Floating-point operations of one pass of L over n rows: multiply-adds of dense and conv2d
 * layers count 2; backward counts the weight gradient and, with need_dx, the input gradient.
 * 0 for layers without a matrix product. */
double kd_layer_flops(const kd_layer *L, size_t n, int backward, int need_dx);

/* One line per layer (tree order): forward and backward ms and, where it applies, GFLOP/s;
 * then the built-in GEMM kernels' share of the device time, the device bytes of each arena
 * and the peak host RSS (getrusage). */
void kd_layer_profile_print(const kd_trainer *t, FILE *out);

#endif
