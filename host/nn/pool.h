/* 2-D pooling for CNNs on NCHW tensors with PyTorch semantics (nn.MaxPool2d, nn.AvgPool2d,
 * nn.AdaptiveAvgPool2d(1) + flatten), as forward/backward launcher pairs. Square windows
 * (size x size), the same stride and zero padding on both axes, ceil_mode=False, dilation 1.
 * x is [n, C, H, W] and y [n, C, OH, OW] (OH, OW from kd_pool2d_out_size), row-major, in
 * floats; n is the rows in this call. Every function enqueues only (no host sync) and returns
 * 0, or -1 with a message in err. Outputs are overwritten, never accumulated; backward passes
 * are gathers over the windows an input element belongs to (deterministic, no atomics).
 * Outputs must not overlap inputs. Sizes must be non-zero and every tensor must fit the
 * kernels' 32-bit indices (offset + extent < 2^32 elements), else -1. One launch each. */
#ifndef KD_POOL_H
#define KD_POOL_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* OH = (H + 2*pad - size) / stride + 1 (floor, PyTorch ceil_mode=False), OW likewise.
 * Refuses size > H + 2*pad (or W + 2*pad), pad > size/2 (PyTorch's rule, so every window
 * holds at least one real element), and zero H, W, size or stride. */
int kd_pool2d_out_size(size_t H, size_t W, size_t size, size_t stride, size_t pad, size_t *OH,
                       size_t *OW, kd_error *err);

/* y[n,C,OH,OW] = max over each window of x[n,C,H,W]; padding never wins (it acts as -inf).
 * argmax[n,C,OH,OW] (int32; argmax.off in ints) = h*W + w, the index into the H*W plane of
 * the element taken, kept for backward. Ties: the first in row-major window order; a NaN
 * wins over numbers (PyTorch CPU's rule: the last NaN of the window). */
int kd_maxpool2d_forward(kd_device *dev, kd_ref y, kd_ref argmax, kd_ref x, size_t n, size_t C,
                         size_t H, size_t W, size_t size, size_t stride, size_t pad,
                         kd_error *err);
/* dx[n,C,H,W] = sum of dy[n,C,OH,OW] over the windows whose argmax is that element (0 for
 * elements no window took). */
int kd_maxpool2d_backward(kd_device *dev, kd_ref dx, kd_ref dy, kd_ref argmax, size_t n,
                          size_t C, size_t H, size_t W, size_t size, size_t stride, size_t pad,
                          kd_error *err);

/* y = (sum of the window's real elements) / (size*size): count_include_pad=True (PyTorch's
 * default), so padding counts as zeros and the divisor is always size*size. */
int kd_avgpool2d_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, size_t C, size_t H,
                         size_t W, size_t size, size_t stride, size_t pad, kd_error *err);
/* dx[n,C,H,W] = (sum of dy over the windows containing the element) / (size*size). */
int kd_avgpool2d_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, size_t C, size_t H,
                          size_t W, size_t size, size_t stride, size_t pad, kd_error *err);

/* Global average pool: y[n,C] = mean over the HW values of x[n,C,HW] (nn.AdaptiveAvgPool2d(1)
 * + flatten); one work-item per (n, c), summed in order. */
int kd_global_avgpool_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, size_t C, size_t HW,
                              kd_error *err);
/* dx[n,C,HW] = dy[n,C] / HW. */
int kd_global_avgpool_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, size_t C,
                               size_t HW, kd_error *err);

#endif
